"""The routes of internal control checks (Order 949, annex 3; docs/API.md, "Internal control checks").

Plans, checks, conclusions and completed measures are recorded by an ``auditor`` of the Party
whose unit is checked (its internal-control commission), or by an ``admin``. A Party's
principals read its plans and checks; an auditor of ``*`` reads every Party's. Every rule is the
command's (``domain.control``): 409 for a rule of the annex, 422 for a field.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api import views
from api.deps import READER_ROLES, CurrentPrincipal, IdempotencyKey, Ledger, Read, ledger_of, not_found, require_role
from api.errors import ApiProblem
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
from api.schemas import ActorIn, contract
from domain.control import (
    CompletionDraft,
    ConclusionDraft,
    ControlCheckDraft,
    ControlPlanDraft,
    GroundIn,
    MeasureIn,
    PlannedCheck,
    ViolationFound,
)
from domain.errors import NotFound
from domain.parties import Official
from ledger.service.control import control_parties
from ledger.storage.principals import Principal

router = APIRouter(tags=["internal control"])
_MEASURE_PATH = Path(description="The measure's id in the conclusion (m1, m2, ...)", max_length=8)

_HEAD = {"party": "DE", "authority": "DE/BKA", "officer": "Dir. Schulz"}
_CHAIR = {"party": "DE", "authority": "DE/BKA", "officer": "ORR Braun"}

PlannedCheckIn = contract(PlannedCheck, "PlannedCheckIn")
ControlPlanIn = contract(ControlPlanDraft, "ControlPlanIn", names={Official: ActorIn, PlannedCheck: PlannedCheckIn},
                         example={
    "party": "DE", "unit": "DE/BKA", "year": 2026, "approved_by": _HEAD,
    "checks": [{"objects": ["transfers to INTERPOL", "onward-transfer authorizations"],
                "period_from": "2025-07-01", "period_to": "2025-12-31", "starts_on": "2026-03-02",
                "ends_on": "2026-03-31", "responsible": ["ORR Braun", "KOK Lang"]}],
})
GroundInSchema = contract(GroundIn, "ControlGroundIn")
ControlCheckIn = contract(ControlCheckDraft, "ControlCheckIn", names={Official: ActorIn, GroundIn: GroundInSchema},
                          example={
    "party": "DE", "unit": "DE/BKA", "decided_by": _HEAD, "decided_on": "2026-04-08", "ends_on": "2026-05-07",
    "ground": {"kind": "complaint", "reference": "DE-BFDI-2026-311", "received_on": "2026-04-06",
               "summary": "a data subject asks who received her data"},
    "objects": ["transfers of the proceeding 2026/117"], "participants": ["ORR Braun", "KOK Lang"],
    "events": [0, 1], "tree_size": 2,
})
ViolationIn = contract(ViolationFound, "ControlViolationIn")
MeasureInSchema = contract(MeasureIn, "ControlMeasureIn")
ConclusionIn = contract(ConclusionDraft, "ControlConclusionIn",
                        names={Official: ActorIn, ViolationFound: ViolationIn, MeasureIn: MeasureInSchema}, example={
    "concluded_by": _CHAIR, "conclusion": "the transfers were lawful; one request lacked its reasons",
    "violations": [{"description": "authorization request without reasons", "leaf_index": 1}],
    "measures": [{"description": "remind the unit of art. 36 §3", "deadline": "2026-06-30",
                  "responsible": "KOK Lang"}],
})
CompletionIn = contract(CompletionDraft, "ControlCompletionIn", names={Official: ActorIn}, example={
    "completed_by": _CHAIR, "note": "briefing held on 2026-06-12",
})


class ControlPlanOut(BaseModel):
    id: str
    party: str
    unit: str
    year: int
    approved_by: dict[str, Any]
    approved_on: str
    checks: list[dict[str, Any]] = Field(description="number, objects, period_from, period_to, starts_on, ends_on, "
                                         "responsible")
    version: int
    leaf_index: int | None
    recorded_at: str | None


class ControlCheckOut(BaseModel):
    id: str
    party: str
    unit: str
    kind: str = Field(description="planned or unplanned")
    ground: dict[str, Any] | None = Field(description="An unplanned check's ground: kind, reference, received_on, "
                                          "summary")
    plan_id: str | None
    check_number: int | None
    decided_by: dict[str, Any]
    decided_on: str
    starts_on: str
    ends_on: str
    responsible_official: dict[str, Any]
    objects: list[str]
    participants: Any = Field(description="The participants' names (or what says they were erased)")
    events: list[int] = Field(description="The leaf indexes of the events under check")
    tree_size: int = Field(description="The working set: every statement of the check is about this tree size")
    status: str = Field(description="open or concluded")
    conclusion: dict[str, Any] | None = Field(description="concluded_by, concluded_at, conclusion, violations, "
                                              "tree_size, reported_to (the notice of an unplanned check's "
                                              "results), leaf_index")
    measures: list[dict[str, Any]] = Field(description="id, description, deadline, responsible, status (open, "
                                           "overdue, completed), completion")
    version: int
    leaf_index: int | None
    recorded_at: str | None


class ControlCheckPage(BaseModel):
    items: list[ControlCheckOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at the end")


def _require_recorder(principal: Principal, party: str, field: str) -> None:
    """An auditor of the Party (its internal-control commission) or an admin records control checks."""
    require_role(principal, "auditor", "admin")
    if principal.has_role("admin"):
        return
    if principal.party != party:
        raise ApiProblem(403, "not-your-party",
                         f"this key belongs to {principal.party}; it cannot record control checks for {party}",
                         field=field)


def _require_reader(principal: Principal) -> None:
    require_role(principal, *READER_ROLES)


def _readable(principal: Principal, view: dict[str, Any]) -> bool:
    return principal.can_read(control_parties(view))


# -- commands ---------------------------------------------------------------------------------


@router.post("/v1/control/plans", status_code=201, response_model=ControlPlanOut, responses=_COMMAND,
             summary="A unit's yearly plan of checks, approved by its head (Order 949 annex 3 §5-§7)")
async def approve_plan(body: ControlPlanIn, request: Request, principal: CurrentPrincipal,
                       idempotency_key: IdempotencyKey = None) -> Response:
    ledger = ledger_of(request)
    _require_recorder(principal, body.party, "party")
    return await _command(request, ledger, principal, idempotency_key, _fingerprinted(body), 201,
                          lambda claim: ledger.plan_approve_control_plan(body, idempotency=claim))


@router.post("/v1/control/checks", status_code=201, response_model=ControlCheckOut, responses=_COMMAND,
             summary="Open a check: unplanned on a ground (§8), organized within five working days (§9), or "
                     "one of a plan; no participant interested in the result (§4)")
async def open_check(body: ControlCheckIn, request: Request, principal: CurrentPrincipal,
                     idempotency_key: IdempotencyKey = None) -> Response:
    ledger = ledger_of(request)
    _require_recorder(principal, body.party, "party")
    return await _command(request, ledger, principal, idempotency_key, _fingerprinted(body), 201,
                          lambda claim: ledger.plan_open_control_check(body, idempotency=claim))


async def _check_party(request: Request, principal: Principal, check_id: str) -> tuple[str, str]:
    ledger = ledger_of(request)
    require_role(principal, "auditor", "admin")
    cid = views.path_id(check_id, "control-check")
    try:
        party = await run_in_threadpool(ledger.control_check_party, cid)
    except NotFound:
        raise not_found("control-check", cid) from None
    if not principal.has_role("admin") and not principal.can_read({party}):
        raise not_found("control-check", cid)
    return cid, party


@router.post("/v1/control/checks/{check_id}/conclusion", response_model=ControlCheckOut, responses=_COMMAND,
             summary="The written conclusion of a check: violations found, remedial measures (§10-§12)")
async def conclude(body: ConclusionIn, request: Request, principal: CurrentPrincipal,
                   check_id: Annotated[str, UUID_PATH], idempotency_key: IdempotencyKey = None) -> Response:
    ledger = ledger_of(request)
    cid, party = await _check_party(request, principal, check_id)
    _require_recorder(principal, party, "concluded_by.party")
    return await _command(request, ledger, principal, idempotency_key, _fingerprinted(body), 200,
                          lambda claim: ledger.plan_conclude_control_check(cid, body, idempotency=claim))


@router.post("/v1/control/checks/{check_id}/measures/{measure_id}/completion", response_model=ControlCheckOut,
             responses=_COMMAND, summary="A remedial measure of a conclusion was carried out (§11)")
async def complete_measure(body: CompletionIn, request: Request, principal: CurrentPrincipal,
                           check_id: Annotated[str, UUID_PATH],
                           measure_id: Annotated[str, _MEASURE_PATH],
                           idempotency_key: IdempotencyKey = None) -> Response:
    ledger = ledger_of(request)
    cid, party = await _check_party(request, principal, check_id)
    _require_recorder(principal, party, "completed_by.party")
    return await _command(request, ledger, principal, idempotency_key, _fingerprinted(body), 200,
                          lambda claim: ledger.plan_complete_control_measure(cid, measure_id, body,
                                                                             idempotency=claim))


# -- reads ------------------------------------------------------------------------------------


@router.get("/v1/control/plans/{plan_id}", response_model=ControlPlanOut, responses=_READ_LOGGED,
            summary="One yearly plan of checks")
def get_plan(principal: CurrentPrincipal, ledger: Ledger, read: Read,
             plan_id: Annotated[str, UUID_PATH]) -> dict[str, Any]:
    view = views._readable(principal, "control-plan", views.path_id(plan_id, "control-plan"),
                           ledger.get_control_plan, control_parties)
    read.objects("control-plan", [view], control_parties)
    return view


@router.get("/v1/control/checks/{check_id}", response_model=ControlCheckOut, responses=_READ_LOGGED,
            summary="One check: its working set, participants, conclusion and measures")
def get_check(principal: CurrentPrincipal, ledger: Ledger, read: Read,
              check_id: Annotated[str, UUID_PATH]) -> dict[str, Any]:
    view = views._readable(principal, "control-check", views.path_id(check_id, "control-check"),
                           ledger.get_control_check, control_parties)
    read.objects("control-check", [view], control_parties)
    return view


@router.get("/v1/control/checks", response_model=ControlCheckPage, responses=_LIST_LOGGED,
            summary="Checks the key may read (of its Party's units), in commit order")
def list_checks(
    principal: CurrentPrincipal,
    ledger: Ledger,
    read: Read,
    party: Annotated[str | None, Query(max_length=16, description="The Party whose unit is checked")] = None,
    cursor: Annotated[str | None, CURSOR] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    _require_reader(principal)
    mentions = views.readable_share(principal)
    items, next_cursor = ledger.list_control_checks(
        visible=lambda view: _readable(principal, view), party=party, after=_cursor(cursor), limit=limit,
        mentions=mentions,
    )
    return _page(read.objects("control-check", items, control_parties), next_cursor)
