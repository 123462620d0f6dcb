"""Auditors' endpoints over the read models (``projections``).

Role ``auditor`` only. An auditor of party ``*`` reads the whole ledger; an
auditor of a Party reads that Party's share: the transfers it sent,
received or originated, the requests it made, received or must decide on,
and the findings and statistics about those.

The live read models are caught up before each answer (briefly: a separate
``transfer-ledger projections run --follow`` keeps them current on a busy
ledger). **Read-your-writes**: ``min_index=N`` (the ``leaf_index`` a write
returned) waits until leaf N is applied, up to ``wait`` seconds, else 503
``projection-behind``. Every answer says up to which leaf it is (``position``).

``GET /v1/audit/state`` replays leaves 0..N in memory and answers as of leaf N
(or a time), with the signed checkpoint that covers leaf N and the leaf's
inclusion proof: later events never change it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Annotated, Any

from eventsourcing.persistence import PersistenceError
from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CurrentPrincipal, Ledger, Read, Reading, not_found, read_models_of, require_role
from api.errors import ApiProblem
from api.responses import PERSONAL_READ, UNAUTHENTICATED, problems
from domain.personal import strings_in
from ledger.service.application import TransferLedger
from ledger.service.read_models import state_as_of
from ledger.storage.principals import Principal
from projections import queries
from projections.db import Db
from projections.events import now_time
from projections.model import RULES
from projections.replay import ReplayError
from projections.runner import ProjectionError

router = APIRouter(tags=["audit"])

#: How long a read catches the models up before answering when no ``min_index`` is given (seconds).
CATCH_UP_BUDGET = 2.0
MAX_WAIT = 30.0

_PROBLEMS = problems({
    401: UNAUTHENTICATED,
    403: "The key is not an auditor's (`role-required`)",
    422: "Invalid query parameter (`field` names it), or `min_index` beyond the ledger (`index-out-of-range`)",
    503: "The read models did not reach `min_index` within `wait` seconds (`projection-behind`), "
         "or they cannot advance (`projection-stuck`)",
})
_PROBLEMS_404 = {**_PROBLEMS, **problems({404: "No such transfer in the key's share"})}
#: Answers holding personal data are logged (``Read``): a justification may be required.
_PROBLEMS_LOGGED = {**_PROBLEMS, 428: PERSONAL_READ[428]}
_PROBLEMS_404_LOGGED = {**_PROBLEMS_404, 428: PERSONAL_READ[428]}


# -- the runner, freshness, access ---------------------------------------------------


def _share(principal: Principal) -> str | None:
    require_role(principal, "auditor")
    return None if principal.is_global else principal.party


def _answer(request: Request, principal: Principal, ledger: TransferLedger, min_index: int | None, wait: float,
            query: Callable[[Db, str | None], dict[str, Any]], read: Reading | None = None,
            kind: str = "audit") -> dict[str, Any]:
    """An auditor's answer from the read models: ``query(db, share)`` once they are fresh,
    with where they stand and the share answered; logged as a consultation (``read``) of the
    objects it names (``kind``) when it holds personal data."""
    share = _share(principal)
    where = fresh(request, ledger, min_index, wait)
    # The read models hold commitments in place of personal values (event format 2): opened here.
    answer = ledger.open_personal_named(query(read_models_of(request).db, share))
    if read is not None:
        read.log(kind, sorted(strings_in(answer, _UUID.fullmatch)), [share] if share else ())
    return {**where, "party": share or "*", **answer}


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def fresh(request: Request, ledger: TransferLedger, min_index: int | None, wait: float) -> dict[str, int]:
    """Catch the read models up (read-your-writes with ``min_index``); where they stand."""
    runner = read_models_of(request)
    size = ledger.store.head().size
    if min_index is not None and min_index >= size:
        raise ApiProblem(422, "index-out-of-range",
                         f"min_index {min_index} is not a leaf of the ledger (it has {size} leaves)",
                         field="min_index")
    try:
        if min_index is not None:
            position = runner.wait_for(min_index, timeout=wait)
            if position < min_index:
                raise ApiProblem(503, "projection-behind",
                                 f"the read models reached leaf {position}, not {min_index}, within {wait:g} s; "
                                 "retry, or run `transfer-ledger projections run --follow`",
                                 headers={"Retry-After": "1"})
        else:
            runner.catch_up(deadline=time.monotonic() + min(wait, CATCH_UP_BUDGET))
    except ProjectionError as e:
        raise ApiProblem(503, "projection-stuck", str(e)) from None
    except PersistenceError:
        if min_index is not None:
            raise
        # e.g. a read-only replica: answer from the read models as they stand
    return {"position": runner.position(), "tree_size": size}


MinIndex = Annotated[int | None, Query(
    ge=0, le=2**62, description="Read-your-writes: answer only once this leaf index (a write's `leaf_index`) "
    "is applied to the read models")]
Wait = Annotated[float, Query(ge=0, le=MAX_WAIT, description="Seconds to wait for `min_index`")]


# -- response documents ---------------------------------------------------------------


class Fresh(BaseModel):
    position: int = Field(description="The last leaf index the read models applied (-1: none)")
    tree_size: int = Field(description="The ledger's size when asked")
    party: str = Field(description="The share answered: a Party, or * for the whole ledger")


class Evidence(BaseModel):
    model_config = ConfigDict(extra="allow")
    leaf_index: int | None = Field(description="A leaf of the ledger that proves the finding")
    event: str
    id: str | None


class Parties(BaseModel):
    origin: str | None
    sender: str | None = Field(description="The sender, or the holder who asked for authorization")
    recipient: str | None


class Finding(BaseModel):
    id: str
    rule: str
    article: str = Field(description="The provision the rule comes from, e.g. art. 36 §3")
    title: str
    reason: str = Field(description="Which check failed (for grants: the application's refusal rule)")
    leaf_index: int = Field(description="The leaf that gives rise to it")
    detected_at: str
    parties: Parties
    transfer_id: str | None
    authorization_id: str | None
    detail: str
    evidence: list[Evidence]


class FindingsOut(Fresh):
    now: str = Field(description="The moment time-dependent findings are judged at")
    pending_deadline_days: float
    notice_deadline_days: float = Field(description="How long a Party told of an erasure has to acknowledge it")
    counts: dict[str, int]
    total: int
    truncated: bool
    items: list[Finding]


class StatisticsOut(Fresh):
    transfers: dict[str, Any] = Field(description="total, onward, first; by_month, by_route (sender -> "
                                      "recipient), by_legal_basis, by_data_category, by_origin")
    requests: dict[str, Any] = Field(description="requested, granted, refused, revoked, pending, decided; "
                                     "time_to_decide_seconds (count, mean, median, p90, max); by_month, by_origin")
    referrals: dict[str, Any] = Field(default_factory=dict, description="Third-country referrals: total, onward "
                                      "(passing on received data), own_findings; by_month, by_route (requesting "
                                      "-> referring -> third Party)")


class RegistryOut(Fresh):
    counts: dict[str, int]
    items: list[dict[str, Any]] = Field(description="Requests in request order: status, decision with reasons, "
                                        "conditions, uses, remaining_transfers, valid_until, expired, revocation")
    next_after: int | None = Field(description="Pass as ?after= for the next page; null at the end")


class LineageNode(BaseModel):
    """A hop: who sent the data to whom, under which grant (the full record: GET /v1/transfers/{id})."""

    id: str
    leaf_index: int
    transferred_at: str
    sender: str = Field(description="The sending Party")
    recipient: str = Field(description="The receiving Party")
    origin: str
    parent_transfer_id: str | None
    depth: int = Field(description="Hops from the root (0: a first transfer)")
    authorization_id: str | None
    legal_basis: str
    data_categories: list[str]
    referral_id: str | None = Field(default=None, description="The third-country referral the hop was made "
                                    "under (GET /v1/referrals/{id}), or null")


class AuditLineageOut(Fresh):
    id: str
    origin: str
    root_transfer_id: str
    transfer: LineageNode
    ancestors: list[LineageNode] = Field(description="Parent first, up to the root: those in the key's share")
    descendants: list[LineageNode] = Field(description="Every onward hop of its data, at any depth, in leaf "
                                           "order (each names its parent): those in the key's share")


class CheckpointCover(BaseModel):
    tree_size: int = Field(description="The checkpoint's tree size (> at_index)")
    root_hash: str
    note: str = Field(description="The C2SP signed note")
    leaf_index: int
    leaf_hash: str
    inclusion_proof: list[str] = Field(description="RFC 9162 inclusion proof of leaf at_index in that tree")


class StateOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    at_index: int | None = Field(description="The last leaf replayed (null: none)")
    tree_size: int = Field(description="at_index + 1")
    at_time: str | None
    leaf_recorded_at: str | None
    now: str
    checkpoint: CheckpointCover | None
    party: str
    lineage: dict[str, Any] | None = None
    authorizations: dict[str, Any] | None = None
    findings: dict[str, Any] | None = None
    statistics: dict[str, Any] | None = None


class ProjectionStatusOut(BaseModel):
    tree_size: int
    up_to_date: bool
    models: list[dict[str, Any]]


# -- endpoints ------------------------------------------------------------------------------

RULE_NAMES = tuple(RULES)
NoticeDeadline = Annotated[float, Query(ge=0, le=36500, description="An erasure notice unacknowledged longer "
                                        "than this is a finding")]


@router.get("/v1/audit/findings", response_model=FindingsOut, responses=_PROBLEMS_LOGGED,
            summary="Compliance findings, each with its rule, article and the leaves that prove it")
def audit_findings(
    request: Request,
    principal: CurrentPrincipal,
    ledger: Ledger,
    read: Read,
    rule: Annotated[str | None, Query(pattern="^(" + "|".join(RULE_NAMES) + ")$")] = None,
    pending_deadline_days: Annotated[float, Query(ge=0, le=36500, description="A request undecided longer than "
                                                  "this is a finding")] = queries.DEFAULT_PENDING_DEADLINE_DAYS,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    min_index: MinIndex = None,
    wait: Wait = 5.0,
    notice_deadline_days: NoticeDeadline = queries.DEFAULT_NOTICE_DEADLINE_DAYS,
) -> dict[str, Any]:
    return _answer(request, principal, ledger, min_index, wait, lambda db, share: queries.findings(
        db, now=now_time(), share=share, rule=rule, pending_deadline_days=pending_deadline_days, limit=limit,
        notice_deadline_days=notice_deadline_days), read, "findings")


@router.get("/v1/audit/statistics", response_model=StatisticsOut, responses=_PROBLEMS,
            summary="Transfers by month, route, legal basis, category; requests granted, refused, pending")
def audit_statistics(
    request: Request,
    principal: CurrentPrincipal,
    ledger: Ledger,
    month_from: Annotated[str | None, Query(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")] = None,
    month_to: Annotated[str | None, Query(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")] = None,
    min_index: MinIndex = None,
    wait: Wait = 5.0,
) -> dict[str, Any]:
    return _answer(request, principal, ledger, min_index, wait, lambda db, share: queries.statistics(
        db, share=share, month_from=month_from, month_to=month_to))


@router.get("/v1/audit/authorizations", response_model=RegistryOut, responses=_PROBLEMS_LOGGED,
            summary="The authorization registry: requests by status, grants with remaining uses and expiry, "
                    "refusals with reasons, revocations")
def audit_authorizations(
    request: Request,
    principal: CurrentPrincipal,
    ledger: Ledger,
    read: Read,
    status: Annotated[str | None, Query(pattern="^(pending|granted|refused|revoked)$")] = None,
    after: Annotated[int, Query(ge=-1, le=2**62, description="next_after of the previous page")] = -1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    min_index: MinIndex = None,
    wait: Wait = 5.0,
) -> dict[str, Any]:
    return _answer(request, principal, ledger, min_index, wait, lambda db, share: queries.authorizations(
        db, now=now_time(), share=share, status=status, after=after, limit=limit), read, "authorization-registry")


@router.get("/v1/audit/lineage/{transfer_id}", response_model=AuditLineageOut, responses=_PROBLEMS_404_LOGGED,
            summary="Where a dataset went: the origin, ancestors and the whole tree of descendants, hop by hop")
def audit_lineage(
    request: Request,
    principal: CurrentPrincipal,
    ledger: Ledger,
    read: Read,
    transfer_id: Annotated[str, Path(max_length=100)],
    min_index: MinIndex = None,
    wait: Wait = 5.0,
) -> dict[str, Any]:
    def lineage(db: Db, share: str | None) -> dict[str, Any]:
        found = queries.lineage(db, transfer_id.lower(), share)
        if found is None:
            raise not_found("transfer", transfer_id)
        return found

    return _answer(request, principal, ledger, min_index, wait, lineage, read, "lineage")


@router.get("/v1/audit/state", response_model=StateOut, responses=_PROBLEMS_LOGGED,
            summary="Every read model as of a leaf index (or a time), with the checkpoint that covers it")
def audit_state(
    request: Request,
    principal: CurrentPrincipal,
    ledger: Ledger,
    read: Read,
    at_index: Annotated[int | None, Query(ge=0, le=2**62, description="Replay leaves 0..at_index")] = None,
    at_time: Annotated[str | None, Query(max_length=40, description="Replay the leaves recorded at or before "
                                         "this time (RFC 3339); with at_index, whichever comes first",
                                         json_schema_extra={"format": "date-time"})] = None,
    transfer_id: Annotated[str | None, Query(max_length=100, description="Also this transfer's lineage")] = None,
    models: Annotated[str | None, Query(pattern="^(lineage|authorizations|findings|statistics)"
                                        "(,(lineage|authorizations|findings|statistics))*$",
                                        description="Comma-separated; default all")] = None,
    pending_deadline_days: Annotated[float, Query(ge=0, le=36500)] = queries.DEFAULT_PENDING_DEADLINE_DAYS,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> dict[str, Any]:
    share = _share(principal)
    state = replayed_state(
        ledger, request.app.state.signer, at_index=at_index, at_time=at_time, share=share,
        models=tuple(models.split(",")) if models else queries.ALL_MODELS,
        transfer_id=transfer_id.lower() if transfer_id else None,
        pending_deadline_days=pending_deadline_days, limit=limit,
    )
    read.log("state", [f"0-{state.get('at_index', '')}"], [share] if share else ())
    return state


def replayed_state(ledger: TransferLedger, signer: Any, **as_of: Any) -> dict[str, Any]:
    """``state_as_of`` (the read models replayed as of a leaf or a time), its errors as problems:
    422 naming ``at_index`` or ``at_time``, 503 when stored nodes are missing. The console calls it too."""
    try:
        return state_as_of(ledger, signer, **as_of)
    except ReplayError as e:
        about_time = str(e).startswith("at_time")
        raise ApiProblem(422, "invalid-time" if about_time else "index-out-of-range", str(e),
                         field="at_time" if about_time else "at_index") from None
    except LookupError as e:
        raise ApiProblem(503, "nodes-missing", str(e)) from None


@router.get("/v1/audit/projections", response_model=ProjectionStatusOut, responses=_PROBLEMS,
            summary="Each read model's position and how far behind the ledger it is")
def audit_projections(request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    _share(principal)
    return read_models_of(request).status()
