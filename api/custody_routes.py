"""The routes of the chain of custody (docs/API.md, "Uses and consents"): uses of received
data, the notice of an exculpatory use, consent requests and decisions (art. 40 §19, §25).

Who may do what is checked here; every rule lives in ``domain/custody.py``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api import views
from api.deps import (
    CurrentPrincipal,
    IdempotencyKey,
    Ledger,
    Read,
    can_read,
    ledger_of,
    not_found,
    require_party,
    require_role,
    transfer_parties,
)
from api.errors import ApiProblem
from api.routers import _COMMAND, _READ_LOGGED, UUID_PATH, _command, _fingerprinted
from api.schemas import (
    AfterNoticeIn,
    ConsentDecisionIn,
    ConsentOut,
    ConsentRequestIn,
    TransferOut,
    UseIn,
    UseOut,
    UsePage,
)
from domain.errors import NotFound
from ledger.service.application import TransferLedger
from ledger.storage.principals import Principal

router = APIRouter()

def _party_acting(ledger: TransferLedger, principal: Principal, path: str, actor_party: str, field: str,
                  side: str = "recipient") -> str:
    """Only a recorder of the transfer's recipient records a use of its data or asks consent (art. 40
    §19), and only one of its sender informs the authorizing State of an urgent transfer (LED art.
    35(2)); others are told why, or nothing. The transfer's id in canonical form."""
    require_role(principal, "recorder")
    transfer_id = views.path_id(path, "transfer")
    try:
        view = ledger.get_transfer(transfer_id)
    except NotFound:
        raise not_found("transfer", transfer_id) from None
    if principal.party != view[side]["party"]:
        if not can_read(principal, transfer_parties(view)):
            raise not_found("transfer", transfer_id)
        what = ("records uses of its data or asks consent (art. 40 §19)" if side == "recipient"
                else "informs the authorizing State of it (LED art. 35(2))")
        raise ApiProblem(403, f"not-the-{side}",
                         f"only the {side} ({view[side]['party']}) of the transfer {what}; this key belongs to "
                         f"{principal.party}")
    require_party(principal, actor_party, field, "act")
    return transfer_id


def _recipient_acting(ledger: TransferLedger, principal: Principal, path: str, actor_party: str,
                      field: str) -> str:
    return _party_acting(ledger, principal, path, actor_party, field)


@router.post("/v1/transfers/{transfer_id}/uses", status_code=201, response_model=UseOut, responses=_COMMAND,
             tags=["chain of custody"],
             summary="The recipient records a use of the data (art. 40 §19: another proceeding needs consent)")
async def record_use(body: UseIn, request: Request, principal: CurrentPrincipal,
                     transfer_id: Annotated[str, UUID_PATH], idempotency_key: IdempotencyKey = None) -> Response:
    ledger = ledger_of(request)
    tid = _recipient_acting(ledger, principal, transfer_id, body.used_by.party, "used_by.party")
    return await _command(request, ledger, principal, idempotency_key, _fingerprinted(body), 201,
                          lambda claim: ledger.plan_record_use(tid, body, idempotency=claim))


@router.get("/v1/transfers/{transfer_id}/uses", response_model=UsePage, responses=_READ_LOGGED,
            tags=["chain of custody"], summary="A transfer's recorded uses, in commit order")
def list_uses(principal: CurrentPrincipal, ledger: Ledger, read: Read,
              transfer_id: Annotated[str, UUID_PATH]) -> dict[str, Any]:
    view = read.transfer(views.readable_transfer(ledger, principal, views.path_id(transfer_id, "transfer")))
    return {"items": view["uses"]}


@router.post("/v1/transfers/{transfer_id}/uses/{use_id}/notice", response_model=UseOut, responses=_COMMAND,
             tags=["chain of custody"],
             summary="The notice of an exculpatory use, given after it because prior notice was impossible")
async def give_use_notice(body: AfterNoticeIn, request: Request, principal: CurrentPrincipal,
                          transfer_id: Annotated[str, UUID_PATH], use_id: Annotated[str, UUID_PATH],
                          idempotency_key: IdempotencyKey = None) -> Response:
    ledger = ledger_of(request)
    tid = _recipient_acting(ledger, principal, transfer_id, body.notified_by.party, "notified_by.party")
    uid = views.path_id(use_id, "use")
    return await _command(request, ledger, principal, idempotency_key, _fingerprinted(body), 200,
                          lambda claim: ledger.plan_give_use_notice(tid, uid, body, idempotency=claim))


@router.post("/v1/consent-requests", status_code=201, response_model=ConsentOut, responses=_COMMAND,
             tags=["chain of custody"], summary="The recipient asks the sender's consent to another use")
async def request_consent(body: ConsentRequestIn, request: Request, principal: CurrentPrincipal,
                          idempotency_key: IdempotencyKey = None) -> Response:
    ledger = ledger_of(request)
    _recipient_acting(ledger, principal, str(body.transfer_id), body.requested_by.party, "requested_by.party")
    return await _command(request, ledger, principal, idempotency_key, _fingerprinted(body), 201,
                          lambda claim: ledger.plan_request_consent(body, idempotency=claim))


def _readable_consent(ledger: TransferLedger, principal: Principal, path: str) -> dict[str, Any]:
    """A consent request is read as its transfer is: by its sender, recipient and origin, and auditors."""
    consent_id = views.path_id(path, "consent-request")

    def parties(view: dict[str, Any]) -> set[str]:
        return transfer_parties(ledger.get_transfer(view["transfer_id"]))

    return views._readable(principal, "consent-request", consent_id, ledger.get_consent_request, parties)


@router.post("/v1/consent-requests/{consent_id}/decision", response_model=ConsentOut, responses=_COMMAND,
             tags=["chain of custody"],
             summary="The sender grants (with conditions) or refuses (with reasons) a consent (art. 40 §25)")
async def decide_consent(body: ConsentDecisionIn, request: Request, principal: CurrentPrincipal,
                         consent_id: Annotated[str, UUID_PATH], idempotency_key: IdempotencyKey = None) -> Response:
    ledger = ledger_of(request)
    require_role(principal, "authority")
    view = _readable_consent(ledger, principal, consent_id)
    if principal.party != view["sender"]:
        raise ApiProblem(403, "consent-decided-by-sender",
                         f"only the requested Party ({view['sender']}), which sent the data, decides on this "
                         f"consent (art. 40 §19); this key belongs to {principal.party}")
    require_party(principal, body.decided_by.party, "decided_by.party", "decide")
    return await _command(request, ledger, principal, idempotency_key, _fingerprinted(body), 200,
                          lambda claim: ledger.plan_decide_consent(view["id"], body, idempotency=claim))


def _log_consent(read: Any, view: dict[str, Any]) -> dict[str, Any]:
    parties = {view["sender"], str(view["requested_by"].get("party"))}
    read.log("consent-request", [view["id"]], parties - {"None"})
    return view


@router.get("/v1/consent-requests/{consent_id}", response_model=ConsentOut, responses=_READ_LOGGED,
            tags=["chain of custody"], summary="A consent request and its decision")
def get_consent(principal: CurrentPrincipal, ledger: Ledger, read: Read,
                consent_id: Annotated[str, UUID_PATH]) -> dict[str, Any]:
    return _log_consent(read, _readable_consent(ledger, principal, consent_id))


@router.get("/v1/consent-requests/{consent_id}/decision", responses=_READ_LOGGED, tags=["chain of custody"],
            summary="A consent request's decision (404 while it is pending)")
def get_consent_decision(principal: CurrentPrincipal, ledger: Ledger, read: Read,
                         consent_id: Annotated[str, UUID_PATH]) -> dict[str, Any]:
    view = _log_consent(read, _readable_consent(ledger, principal, consent_id))
    if view["decision"] is None:
        raise ApiProblem(404, "consent-not-decided", f"consent request {view['id']} is pending: no decision yet")
    return dict(view["decision"])


@router.post("/v1/transfers/{transfer_id}/urgent-notice", response_model=TransferOut, responses=_COMMAND,
             tags=["transfers"],
             summary="LED art. 35(2): the sender informs the authorizing State of an urgent onward transfer")
async def notify_urgent_transfer(body: AfterNoticeIn, request: Request, principal: CurrentPrincipal,
                                 transfer_id: Annotated[str, UUID_PATH],
                                 idempotency_key: IdempotencyKey = None) -> Response:
    ledger = ledger_of(request)
    tid = _party_acting(ledger, principal, transfer_id, body.notified_by.party, "notified_by.party", side="sender")
    return await _command(request, ledger, principal, idempotency_key, _fingerprinted(body), 200,
                          lambda claim: ledger.plan_notify_urgent_transfer(tid, body, idempotency=claim))
