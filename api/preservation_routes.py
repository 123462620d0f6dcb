"""The routes of preservation requests (art. 42; docs/API.md, "Preservations").

An authority of the requesting Party asks for preservation, extends it and files the
follow-up request; an authority of the requested Party decides on the follow-up and releases
the data. Who may act is checked with the rules of ``domain.preservation`` (403 when the key's
Party may not act on it; 404 when it may not even read it); every other rule is the command's
(409). ``GET /v1/audit/preservations`` answers auditors from the read models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api import views
from api.audit_routes import Fresh, MinIndex, Wait, fresh
from api.deps import (
    READER_ROLES,
    CurrentPrincipal,
    IdempotencyKey,
    Ledger,
    Read,
    ledger_of,
    not_found,
    require_party,
    require_role,
)
from api.errors import ApiProblem
from api.responses import UNAUTHENTICATED, problems
from api.routers import (
    _COMMAND,
    _LIST_LOGGED,
    _READ_LOGGED,
    CURSOR,
    UUID_PATH,
    _command,
    _cursor,
    _fingerprinted,
    _page,
)
from api.schemas import ActorIn, ErasedOut, contract
from domain.errors import DomainError, NotFound
from domain.parties import Official
from domain.preservation import (
    ExtensionDraft,
    FollowUpDecisionDraft,
    FollowUpDraft,
    PreservationDraft,
    ReleaseDraft,
    StoredData,
    not_requested_party,
    not_requesting_party,
    parse_duration,
)
from ledger.service.application import Prepare, TransferLedger
from ledger.service.preservation import PRESERVATION_STATUSES, preservation_parties
from ledger.storage.principals import Principal
from projections import preservation as preservation_queries
from projections.events import now_time

router = APIRouter(tags=["preservations"])

_AUTHORITY = {"party": "DE", "authority": "DE/BKA", "officer": "KHK Weber"}
_REQUESTED = {"party": "FR", "authority": "FR/OCLCTIC", "officer": "Cdt Martin"}

StoredDataIn = contract(StoredData, "StoredDataIn")
PreservationIn = contract(PreservationDraft, "PreservationIn", names={Official: ActorIn, StoredData: StoredDataIn},
                          example={
    "requesting_authority": _AUTHORITY,
    "requested_party": "FR",
    "request_reference": "DE-PRES-2026-042",
    "offence": "illegal access (art. 7), ransomware",
    "facts": "the hospital's servers were encrypted on 2026-02-27; the ransom note names a mailbox",
    "data": {"description": "mailbox ops@example.fr: content and traffic data since 2026-02-01",
             "data_categories": ["content", "traffic"]},
    "relation_to_offence": "the ransom note directs payment negotiations to this mailbox",
    "custodian": "Example Mail SAS, Paris",
    "necessity": "the provider deletes mailboxes inactive for 30 days",
    "mla_request_intended": True,
    "confidential": True,
    "no_user_notice": True,
    "period_days": 90,
})
ExtensionIn = contract(ExtensionDraft, "ExtensionIn", names={Official: ActorIn}, example={
    "extended_by": _AUTHORITY, "period_days": 60, "reasons": "the MLA request awaits the prosecutor's signature",
})
FollowUpIn = contract(FollowUpDraft, "FollowUpIn", names={Official: ActorIn}, example={
    "filed_by": _AUTHORITY, "mla_request_reference": "DE-MLA-2026-117",
})
FollowUpDecisionIn = contract(FollowUpDecisionDraft, "FollowUpDecisionIn", names={Official: ActorIn}, example={
    "decided_by": _REQUESTED, "decision": "granted",
})
ReleaseIn = contract(ReleaseDraft, "ReleaseIn", names={Official: ActorIn}, example={
    "released_by": _REQUESTED, "reasons": "the data were disclosed under the MLA request DE-MLA-2026-117",
})

#: A personal value (sealed in event format 2) reads as erased once its key is destroyed.
_Personal = str | ErasedOut


class PreservationOut(BaseModel):
    id: str
    status: str = Field(description="preserved, expired, awaiting-decision, decided or released")
    days_left: int | None = Field(description="Days (rounded up) until the period ends while it runs; 0 once "
                                  "expired; null once a follow-up arrived in time, was decided, or the data "
                                  "were released")
    requesting_party: str
    requesting_authority: dict[str, _Personal]
    requested_party: str
    request_reference: str | None
    offence: str
    facts: _Personal
    data: dict[str, Any]
    relation_to_offence: _Personal
    custodian: _Personal | None
    location: _Personal | None
    necessity: _Personal
    mla_request_intended: bool
    confidential: bool
    no_user_notice: bool
    period_days: int = Field(description="The period asked for (at least 60 days, art. 42 §8)")
    requested_at: str
    expires_at: str = Field(description="The end of the period, as extended (art. 42 §9)")
    extensions: list[dict[str, Any]] = Field(description="extended_by, period_days, reasons, expires_at, "
                                             "extended_at, leaf_index")
    follow_up: dict[str, Any] | None = Field(description="filed_by, mla_request_reference, received_at, filed_at, "
                                             "leaf_index")
    decision: dict[str, Any] | None = Field(description="decided_by, decision, reasons, decided_at, leaf_index")
    release: dict[str, Any] | None = Field(description="released_by, reasons, released_at, leaf_index")
    version: int
    leaf_index: int | None = Field(description="The leaf of the request")
    recorded_at: str | None


class PreservationPage(BaseModel):
    items: list[PreservationOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at the end")


class ExpiringPreservation(BaseModel):
    id: str
    requesting_party: str
    requested_party: str
    offence: str
    requested_at: str
    expires_at: str
    days_left: int
    leaf_index: int
    extensions: int


class ExpiringOut(Fresh):
    now: str
    expiring_within: str
    until: str = Field(description="Preservations whose period ends by then (and has not ended) are listed")
    items: list[ExpiringPreservation]


# -- commands ---------------------------------------------------------------------------------


@router.post("/v1/preservations", status_code=201, response_model=PreservationOut, responses=_COMMAND,
             summary="Ask another Party to preserve stored data (art. 42 §3), for at least 60 days (§8)")
async def request_preservation(body: PreservationIn, request: Request, principal: CurrentPrincipal,
                               idempotency_key: IdempotencyKey = None) -> Response:
    ledger = ledger_of(request)
    require_role(principal, "authority")
    require_party(principal, body.requesting_authority.party, "requesting_authority.party",
                  "request preservation")
    return await _command(request, ledger, principal, idempotency_key, _fingerprinted(body), 201,
                          lambda claim: ledger.plan_request_preservation(body, idempotency=claim))


@router.post("/v1/preservations/{preservation_id}/extension", response_model=PreservationOut, responses=_COMMAND,
             summary="The requesting Party extends the period, before it expires (art. 42 §9)")
async def extend(body: ExtensionIn, request: Request, principal: CurrentPrincipal,
                 preservation_id: Annotated[str, UUID_PATH], idempotency_key: IdempotencyKey = None) -> Response:
    return await _acting(request, principal, preservation_id, idempotency_key, body, body.extended_by.party,
                         "extended_by.party", not_requesting_party, TransferLedger.plan_extend_preservation)


@router.post("/v1/preservations/{preservation_id}/follow-up", response_model=PreservationOut, responses=_COMMAND,
             summary="The request for mutual legal assistance arrived: the data stay preserved until it is "
                     "decided (art. 42 §8)")
async def follow_up(body: FollowUpIn, request: Request, principal: CurrentPrincipal,
                    preservation_id: Annotated[str, UUID_PATH], idempotency_key: IdempotencyKey = None) -> Response:
    return await _acting(request, principal, preservation_id, idempotency_key, body, body.filed_by.party,
                         "filed_by.party", not_requesting_party, TransferLedger.plan_file_follow_up)


@router.post("/v1/preservations/{preservation_id}/follow-up/decision", response_model=PreservationOut,
             responses=_COMMAND, summary="The requested Party's decision on the follow-up request (art. 42 §8)")
async def decide_follow_up(body: FollowUpDecisionIn, request: Request, principal: CurrentPrincipal,
                           preservation_id: Annotated[str, UUID_PATH],
                           idempotency_key: IdempotencyKey = None) -> Response:
    return await _acting(request, principal, preservation_id, idempotency_key, body, body.decided_by.party,
                         "decided_by.party", not_requested_party, TransferLedger.plan_decide_follow_up)


@router.post("/v1/preservations/{preservation_id}/release", response_model=PreservationOut, responses=_COMMAND,
             summary="The requested Party no longer preserves the data: after the period, or the decision (§8)")
async def release(body: ReleaseIn, request: Request, principal: CurrentPrincipal,
                  preservation_id: Annotated[str, UUID_PATH], idempotency_key: IdempotencyKey = None) -> Response:
    return await _acting(request, principal, preservation_id, idempotency_key, body, body.released_by.party,
                         "released_by.party", not_requested_party, TransferLedger.plan_release_preservation)


async def _acting(request: Request, principal: Principal, path: str, key: str | None, body: Any,
                  actor_party: str, field: str, may_act: Callable[..., DomainError | None],
                  plan: Callable[..., Prepare]) -> Response:
    """A command on a preservation: only an authority of the Party the rule ``may_act`` names acts
    (403 with its rule); a key that may not read the preservation is told it does not exist."""
    ledger = ledger_of(request)
    require_role(principal, "authority")
    pid = views.path_id(path, "preservation")
    try:
        facts = await run_in_threadpool(ledger.preservation_facts, pid)
    except NotFound:
        raise not_found("preservation", pid) from None
    violation = may_act(principal.party, facts, field)
    if violation is not None:
        if not principal.can_read({facts.requesting_party, facts.requested_party}):
            raise not_found("preservation", pid)
        raise ApiProblem(403, violation.rule, f"{violation.detail}; this key belongs to {principal.party}",
                         field=field)
    require_party(principal, actor_party, field, "act")
    return await _command(request, ledger, principal, key, _fingerprinted(body), 200,
                          lambda claim: plan(ledger, pid, body, idempotency=claim))


# -- reads ------------------------------------------------------------------------------------


@router.get("/v1/preservations/{preservation_id}", response_model=PreservationOut, responses=_READ_LOGGED,
            summary="One preservation: its status and days left, extensions, follow-up, decision, release")
def get_preservation(principal: CurrentPrincipal, ledger: Ledger, read: Read,
                     preservation_id: Annotated[str, UUID_PATH]) -> dict[str, Any]:
    view = views._readable(principal, "preservation", views.path_id(preservation_id, "preservation"),
                           ledger.get_preservation, preservation_parties)
    read.objects("preservation", [view], preservation_parties)
    return view


@router.get("/v1/preservations", response_model=PreservationPage, responses=_LIST_LOGGED,
            summary="Preservations the key may read (its Party requested or was asked), in commit order")
def list_preservations(
    principal: CurrentPrincipal,
    ledger: Ledger,
    read: Read,
    party: Annotated[str | None, Query(max_length=16, description="Requesting or requested Party")] = None,
    status: Annotated[str | None, Query(pattern="^(" + "|".join(PRESERVATION_STATUSES) + ")$")] = None,
    cursor: Annotated[str | None, CURSOR] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    require_role(principal, *READER_ROLES)
    items, next_cursor = ledger.list_preservations(
        visible=lambda view: principal.can_read(preservation_parties(view)),
        party=party, status=status, after=_cursor(cursor), limit=limit, mentions=views.readable_share(principal),
    )
    return _page(read.objects("preservation", items, preservation_parties), next_cursor)


@router.get("/v1/audit/preservations", response_model=ExpiringOut, tags=["audit"], responses=problems({
    401: UNAUTHENTICATED,
    403: "The key is not an auditor's (`role-required`)",
    422: "Invalid query parameter: `expiring_within` not a duration such as 7d or 24h (`invalid-duration`)",
    503: "The read models did not reach `min_index` within `wait` seconds (`projection-behind`)",
}), summary="Preservations whose period ends within a time (art. 42 §8, §9): to extend or follow up")
def audit_expiring(
    request: Request,
    principal: CurrentPrincipal,
    ledger: Ledger,
    expiring_within: Annotated[str, Query(max_length=20, description="A duration: days or hours, e.g. 7d, 24h")],
    min_index: MinIndex = None,
    wait: Wait = 5.0,
) -> dict[str, Any]:
    require_role(principal, "auditor")
    try:
        within = parse_duration(expiring_within, "expiring_within")
    except DomainError as error:
        raise ApiProblem(422, error.rule, error.detail, field="expiring_within") from None
    share = None if principal.is_global else principal.party
    where = fresh(request, ledger, min_index, wait)
    now = now_time()
    db = request.app.state.projections.db
    found = preservation_queries.expiring(db, now=now, within=within, share=share)
    return {**where, "party": share or "*", "expiring_within": expiring_within, **found}
