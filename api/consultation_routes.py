"""The consultation logs, for auditors (docs/API.md, "Consultation logs"; LED 2016/680 art. 25).

``GET /v1/audit/consultations`` lists who read personal data through the ledger: for an
auditor of party ``*`` every read; for a Party's auditor the reads by its Party's principals
and the reads of what involves its Party. The logs are read only for a purpose LED art. 25(2)
allows (``purpose``, required), and reading them is itself logged.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.deps import CurrentPrincipal, Ledger, Read, require_role
from api.errors import ApiProblem
from api.responses import PERSONAL_READ, UNAUTHENTICATED, problems
from api.schemas import ErasedOut
from domain.consultation import LOG_PURPOSES, log_purpose_problem, object_ref
from domain.errors import DomainError
from domain.values import parse_datetime
from ledger.service.consultations import log_time
from ledger.storage.consultations import parse_cursor

router = APIRouter(tags=["audit"])


class ReaderOut(BaseModel):
    officer: str | None = Field(description="The officer named by the reader (X-Officer), if any")
    justification: str | None = Field(description="The justification given (X-Justification), if any")


class ConsultationOut(BaseModel):
    id: str = Field(description="<log_id>:<seq>: the entry's event and its place in it")
    log_id: str = Field(description="The ConsultationsLogged event holding the entry")
    seq: int
    leaf_index: int | None = Field(description="The leaf of that event: prove it with /v1/proofs/inclusion")
    at: str = Field(description="When the read was answered (UTC, microseconds)")
    via: str = Field(description="api or cli")
    principal: str = Field(description="The API key's principal id")
    party: str = Field(description="The reader's Party (* for the whole ledger)")
    route: str = Field(description="Method and route template, or the CLI command")
    status: int
    objects: list[str] = Field(description="What was read, by id: transfer:<id>, authorization:<id>, "
                               "leaves:<first>-<last>... (never the personal values)")
    parties: list[str] = Field(description="The Parties what was read involves")
    purpose: str | None = Field(default=None, description="For a read of these logs: its purpose")
    reader: ReaderOut | ErasedOut = Field(description="Who read and why; erased once the logs' period ended")


class ConsultationPage(BaseModel):
    items: list[ConsultationOut]
    next_cursor: str | None


_PROBLEMS = {
    **problems({
        401: UNAUTHENTICATED,
        403: "The key is not an auditor's (`role-required`)",
        422: "No purpose, or one LED art. 25(2) does not allow (`purpose-required`, `unknown-log-purpose`); "
             "a malformed time or cursor (`invalid-input`)",
    }),
    **PERSONAL_READ,
}


@router.get("/v1/audit/consultations", response_model=ConsultationPage, responses=_PROBLEMS,
            summary="Who read personal data, when, what and why (LED art. 25), for a stated purpose")
def consultations(
    request: Request,
    principal: CurrentPrincipal,
    ledger: Ledger,
    read: Read,
    purpose: Annotated[str | None, Query(
        max_length=40, description="Why the logs are read (LED art. 25(2)): " + ", ".join(LOG_PURPOSES))] = None,
    principal_id: Annotated[str | None, Query(alias="principal", max_length=100,
                                              description="Reads by this principal")] = None,
    party: Annotated[str | None, Query(max_length=16, description="Reads by principals of this Party")] = None,
    transfer: Annotated[str | None, Query(max_length=100, description="Reads of this transfer")] = None,
    since: Annotated[str | None, Query(max_length=40, description="Reads at or after (RFC 3339)",
                                       json_schema_extra={"format": "date-time"})] = None,
    until: Annotated[str | None, Query(max_length=40, description="Reads before (RFC 3339)",
                                       json_schema_extra={"format": "date-time"})] = None,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    require_role(principal, "auditor")
    wrong = log_purpose_problem(purpose)
    if wrong is not None:
        raise wrong
    try:
        since_at = log_time(parse_datetime(since, "since")) if since is not None else None
        until_at = log_time(parse_datetime(until, "until")) if until is not None else None
    except DomainError as error:
        raise ApiProblem(422, error.rule, error.detail, field=error.field) from None
    after = None
    if cursor is not None:
        after = parse_cursor(cursor)
        if after is None:
            raise ApiProblem(422, "invalid-input", f"{cursor!r} is not a cursor this route gave", field="cursor")
    ledger.consultations.flush()  # the reads answered so far, this one's predecessors included
    items, next_cursor = ledger.consultations.page(
        principal=principal_id, party=party, share=None if principal.is_global else principal.party,
        object_ref=object_ref("transfer", transfer.lower()) if transfer else None,
        since=since_at, until=until_at, cursor=after, limit=limit)
    read.log("consultation", [item["id"] for item in items], [] if principal.is_global else [principal.party],
             purpose=purpose)
    return {"items": items, "next_cursor": next_cursor}
