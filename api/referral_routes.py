"""The routes of the third-country referral (docs/API.md, "Referrals"; the Ministry's letter,
art. 43 §1, art. 40 §4): the referring Party records the transfer to the third Party and the
notice to the requesting Party in one command.

Who may do what is checked here; every rule lives in ``domain/referral.py`` (and, for the
transfer, in ``domain/rules.py``, as for any transfer).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api import views
from api.deps import (
    READER_ROLES,
    CurrentPrincipal,
    IdempotencyKey,
    Ledger,
    Read,
    can_read,
    ledger_of,
    require_party,
    require_role,
    transfer_parties,
)
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
from api.schemas import ReferralIn, ReferralOut, ReferralPage
from ledger.service.referrals import referral_parties
from ledger.storage.principals import Principal

router = APIRouter()


@router.post("/v1/referrals", status_code=201, response_model=ReferralOut, responses=_COMMAND,
             tags=["referrals"],
             summary="The requested Party informs a third country and tells the requesting Party where to turn")
async def record_referral(body: ReferralIn, request: Request, principal: CurrentPrincipal,
                          idempotency_key: IdempotencyKey = None) -> Response:
    ledger = ledger_of(request)
    views.may_record_transfer(ledger, principal, body.transfer)
    require_party(principal, body.notice.notified_by.party, "notice.notified_by.party",
                  "give notices for another Party")
    return await _command(request, ledger, principal, idempotency_key, _fingerprinted(body), 201,
                          lambda claim: ledger.plan_record_referral(body, idempotency=claim))


def _as_read_by(principal: Principal, view: dict[str, Any]) -> dict[str, Any]:
    """A referral as the key reads it: its transfer only if the key may read that transfer."""
    transfer = view["transfer"]
    if transfer is not None and not can_read(principal, transfer_parties(transfer)):
        return {**view, "transfer": None}
    return view


@router.get("/v1/referrals/{referral_id}", response_model=ReferralOut, responses=_READ_LOGGED, tags=["referrals"],
            summary="A referral: the third Party informed, the notice to the requesting Party, the transfer")
def get_referral(principal: CurrentPrincipal, ledger: Ledger, read: Read,
                 referral_id: Annotated[str, UUID_PATH]) -> dict[str, Any]:
    view = views._readable(principal, "referral", views.path_id(referral_id, "referral"), ledger.get_referral,
                           referral_parties)
    return read.objects("referral", [_as_read_by(principal, view)], referral_parties)[0]


@router.get("/v1/referrals", response_model=ReferralPage, responses=_LIST_LOGGED, tags=["referrals"],
            summary="Referrals the key may read, in commit order")
def list_referrals(
    principal: CurrentPrincipal,
    ledger: Ledger,
    read: Read,
    party: Annotated[str | None, Query(max_length=16, description="Requesting, referring or third Party, "
                                       "or the transfer's origin")] = None,
    third_party: Annotated[str | None, Query(max_length=16)] = None,
    cursor: Annotated[str | None, CURSOR] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    require_role(principal, *READER_ROLES)
    items, next_cursor = ledger.list_referrals(
        visible=lambda view: can_read(principal, referral_parties(view)), party=party, third_party=third_party,
        after=_cursor(cursor), limit=limit, mentions=views.readable_share(principal))
    return _page(read.objects("referral", [_as_read_by(principal, item) for item in items], referral_parties),
                 next_cursor)
