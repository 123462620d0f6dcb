"""``POST /v1/transfers/batch``: a recording system catching up sends many transfers in one request.

The same path as ``transfer-ledger import`` (``ledger.service.imports``): each transfer is
checked by every rule of art. 36 §3 as if recorded alone, seeing the ones before it; they
are saved in one transaction; a refused one is answered with its problem in its place and
the rest are recorded (unless ``all_or_nothing``). Each item's ``key`` is its idempotency
key, under the caller's principal: a retry of the request records nothing twice.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import views
from api.deps import CurrentPrincipal, ledger_of, require_role
from api.errors import ApiProblem, domain_problem
from api.responses import UNAUTHENTICATED, problems
from domain.errors import DomainError, NotFound
from ledger.service.imports import Item, record_items

router = APIRouter(tags=["transfers"])

MAX_ITEMS = 1000


class BatchItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: Annotated[str, Field(min_length=1, max_length=255, pattern="^[ -~]+$",
                              description="Unique per transfer: its idempotency key")]
    transfer: dict[str, Any] = Field(description="The body of POST /v1/transfers")


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[BatchItemIn] = Field(min_length=1, max_length=MAX_ITEMS)
    all_or_nothing: StrictBool = Field(default=False, description="Record nothing if any item is refused")


class BatchItemOut(BaseModel):
    index: int = Field(description="The item's place in the request, from 0")
    key: str
    status: int = Field(description="201 recorded now, 200 recorded by an earlier request with this key, "
                        "or the problem's status")
    transfer: dict[str, Any] | None = Field(description="The transfer as recorded (as POST /v1/transfers answers)")
    problem: dict[str, Any] | None = Field(description="Why the item was refused (RFC 9457), or null")


class BatchOut(BaseModel):
    recorded: int
    already: int
    refused: int
    rolled_back: bool = Field(description="all_or_nothing and an item was refused: nothing was recorded")
    items: list[BatchItemOut]


_PROBLEMS = problems({
    401: UNAUTHENTICATED,
    403: "The key lacks the role recorder (`role-required`)",
    422: "The request is not a list of 1 to 1000 items with a key and a transfer (`invalid-input`)",
})


@router.post("/v1/transfers/batch", response_model=BatchOut, responses=_PROBLEMS,
             summary="Record many transfers in one transaction, each checked as if recorded alone")
async def record_batch(body: BatchIn, request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    require_role(principal, "recorder")
    ledger = ledger_of(request)

    def allowed(transfer: dict[str, Any]) -> DomainError | None:
        """As POST /v1/transfers: only for the recorder's own Party, naming only what it may read."""
        sender = (transfer.get("sender") or {}).get("party") if isinstance(transfer.get("sender"), dict) else None
        if sender is None:
            return None  # no sender: the transfer's own validation names the field
        if sender != principal.party:
            return DomainError(f"this key belongs to {principal.party}; it cannot record transfers sent by "
                               f"{sender}", rule="not-your-party", field="sender.party")
        try:
            views.refer_only_to_readable(ledger, principal, transfer.get("parent_transfer_id"),
                                         transfer.get("authorization_id"))
        except NotFound as e:
            return e
        return None

    items = [Item(i, item.key, item.transfer) for i, item in enumerate(body.items)]
    done, report = await run_in_threadpool(record_items, ledger, items, principal_id=principal.id,
                                           batch=MAX_ITEMS, all_or_nothing=body.all_or_nothing, allowed=allowed)
    if report.lines != len(items):
        raise ApiProblem(500, "internal-error", "not every item was answered")
    out = []
    for item in done:
        if item.error is not None:
            status, problem = domain_problem(item.error)
            if item.error.rule == "not-your-party":
                status, problem = 403, {**problem, "status": 403, "title": "Forbidden"}
            out.append({"index": item.number, "key": item.key, "status": status, "transfer": None,
                        "problem": problem})
        else:
            out.append({"index": item.number, "key": item.key, "status": 200 if item.already else 201,
                        "transfer": item.view if not report.rolled_back else None, "problem": None})
    return {"recorded": report.recorded, "already": report.already, "refused": len(report.refused),
            "rolled_back": report.rolled_back, "items": out}


@router.api_route("/v1/transfers/batch", methods=["GET", "HEAD", "PUT", "PATCH", "DELETE"], include_in_schema=False)
def batch_other_methods() -> None:
    """POST only: ``GET /v1/transfers/batch`` is not a transfer whose id is "batch" (405, not 404)."""
    raise StarletteHTTPException(405, "Method Not Allowed")


#: Not a method of the path: ``api.errors`` leaves it out of ``Allow``.
batch_other_methods.method_guard = True  # type: ignore[attr-defined]
