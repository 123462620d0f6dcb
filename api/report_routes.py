"""The supervisory report (docs/AUDIT.md, "The supervisory report"), for auditors.

``GET /v1/audit/report`` counts what the ledger recorded in a period (``from`` and ``to``, both
days included) for the key's share, as of a checkpoint signed when asked, and signs the report:
JSON, CSV or PDF. An auditor of ``*`` reads the whole ledger or, with ``party``, one Party's
share; a Party's auditor its own share only. The report holds no personal values (counts, ids,
rules, dates), so reading it is not a consultation of personal data and is not logged.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.deps import CurrentPrincipal, Ledger, require_role
from api.errors import ApiProblem
from api.responses import UNAUTHENTICATED, problems
from ledger.audit.report import MEDIA_TYPES, render
from ledger.service.checkpoints import InconsistentTreeError
from ledger.service.report import FORMATS, build_report, parse_format, parse_period

router = APIRouter(tags=["audit"])

_PROBLEMS = problems({
    401: UNAUTHENTICATED,
    403: "The key is not an auditor's (`role-required`), or a Party's auditor asked for another Party "
         "(`not-your-party`)",
    422: "A malformed date (`invalid-date`), `from` after `to` (`invalid-period`), an unknown format "
         "(`unknown-format`): `field` names it",
    503: "The tree cannot be signed (`tree-inconsistent`)",
})

_CONTENT = {
    "application/json": {"schema": {"type": "object", "description": "The signed report (docs/AUDIT.md)"}},
    "text/csv": {"schema": {"type": "string", "description": "Columns section, measure, key, value"}},
    "application/pdf": {"schema": {"type": "string", "format": "binary"}},
}


@router.get("/v1/audit/report", response_class=Response,
            responses={200: {"description": "The signed report of the period, as of a signed checkpoint",
                             "content": _CONTENT}, **_PROBLEMS},
            summary="The supervisory report of a period: transfers, authorizations, consents, preservations, "
                    "erasures, consultations, control checks, findings; signed, checkable offline")
def audit_report(
    request: Request,
    principal: CurrentPrincipal,
    ledger: Ledger,
    party: Annotated[str | None, Query(max_length=16, description="One Party's share (an auditor of * only; "
                                       "a Party's auditor always gets its own)")] = None,
    from_: Annotated[str | None, Query(alias="from", max_length=40, description="First day of the period, "
                                       "included (YYYY-MM-DD); default: the ledger's beginning",
                                       json_schema_extra={"format": "date"})] = None,
    to: Annotated[str | None, Query(max_length=40, description="Last day of the period, included "
                                    "(YYYY-MM-DD); default: open", json_schema_extra={"format": "date"})] = None,
    format_: Annotated[str, Query(alias="format", max_length=10, description="One of " + ", ".join(FORMATS))
                       ] = "json",
) -> Response:
    require_role(principal, "auditor")
    share = None if principal.is_global else principal.party
    if party is not None and party != "*":
        if share is not None and party != share:
            raise ApiProblem(403, "not-your-party", f"this key is an auditor of {share}; it reads {share}'s share "
                             f"only, not {party}'s", field="party")
        share = party
    fmt = parse_format(format_)
    period = parse_period(from_, to)
    ledger.consultations.flush()  # the reads answered so far are in the tree the report is computed at
    try:
        doc = build_report(ledger, request.app.state.signer, period, party=share)
    except InconsistentTreeError as e:
        raise ApiProblem(503, "tree-inconsistent", f"{e}; nothing was signed") from None
    size = doc["checkpoint"]["tree_size"]
    name = f"report-{doc['party'].replace('*', 'all')}-{size}.{fmt}"
    return Response(render(doc, fmt), media_type=MEDIA_TYPES[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
