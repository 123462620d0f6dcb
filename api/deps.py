"""Dependencies: the ledger, the principal behind the API key, access rules.

Access (docs/API.md, "Keys, roles and access"):

- a **recorder** records transfers its Party sends and requests authorization
  for data its Party holds;
- an **authority** of the origin decides on and revokes authorizations;
- a Party reads the transfers it sent, received or originated, and the
  requests and grants about them; an **auditor** of party ``*`` reads
  everything, an auditor of a Party reads that Party's share;
- a **verifier** reads checkpoints, proofs and leaf hashes, never personal data;
- reading something of another Party answers 404, as if it did not exist.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPBearer

from api.errors import ApiProblem
from domain.consultation import MAX_JUSTIFICATION, justification_missing, object_ref
from ledger.service.application import TransferLedger
from ledger.service.consultations import Consultation, LogUnavailable
from ledger.storage.cosignatures import CosignatureStore
from ledger.storage.idempotency import IdempotencyClaim
from ledger.storage.principals import READER_ROLES as READER_ROLES
from ledger.storage.principals import Principal
from ledger.storage.principals import authorization_parties as authorization_parties
from ledger.storage.principals import transfer_parties as transfer_parties
from projections.runner import ProjectionRunner


def ledger_of(request: Request) -> TransferLedger:
    """The application of the app serving ``request``. Command routes call it directly
    rather than through :data:`Ledger`: one dependency less to resolve per request."""
    return request.app.state.ledger  # type: ignore[no-any-return]


def cosignatures_of(request: Request) -> CosignatureStore:
    """The witnesses' cosignatures of the ledger's checkpoints (made with the app's ledger)."""
    return request.app.state.cosignatures  # type: ignore[no-any-return]


def read_models_of(request: Request) -> ProjectionRunner:
    """The runner of the ledger's read models (made with the app's ledger)."""
    return request.app.state.projections  # type: ignore[no-any-return]


async def get_ledger(request: Request) -> TransferLedger:
    return ledger_of(request)


Ledger = Annotated[TransferLedger, Depends(get_ledger)]


class ApiKeyAuth(HTTPBearer):
    """The API key scheme: declared in the OpenAPI document (and the "Authorize" button of
    /docs) and the authentication itself, in one dependency. Every failure is answered as a
    problem with a ``WWW-Authenticate`` challenge."""

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        challenge = {"WWW-Authenticate": 'Bearer realm="transfer-ledger"'}
        credentials = await super().__call__(request)
        if credentials is None:
            if request.headers.get("authorization"):
                raise ApiProblem(401, "authentication-required",
                                 "the Authorization header must be 'Bearer <key>'", headers=challenge)
            raise ApiProblem(401, "authentication-required",
                             "send your API key as 'Authorization: Bearer <key>'", headers=challenge)
        principal = request.app.state.principals.authenticate(credentials.credentials.strip())
        if principal is None:
            raise ApiProblem(401, "invalid-api-key", "the API key is unknown or was revoked",
                             headers=challenge)
        return principal  # type: ignore[no-any-return]


#: Authenticates the caller; it is also the ``ApiKey`` bearer scheme of the OpenAPI document.
get_principal = ApiKeyAuth(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key made by `transfer-ledger principals add`, sent as `Authorization: Bearer <key>`",
)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require_role(principal: Principal, *roles: str) -> None:
    if not any(principal.has_role(role) for role in roles):
        raise ApiProblem(403, "role-required",
                         f"this needs the role {' or '.join(roles)}; the key has {', '.join(sorted(principal.roles))}")


def require_party(principal: Principal, party: str, field: str, what: str) -> None:
    """The principal acts only for its own Party."""
    if principal.party != party:
        raise ApiProblem(403, "not-your-party",
                         f"this key belongs to {principal.party}; it cannot {what} for {party}", field=field)


def can_read(principal: Principal, parties: set[str]) -> bool:
    """Whether the principal may read an object involving these Parties (``Principal.can_read``)."""
    return principal.can_read(parties)


def not_found(what: str, ident: str) -> ApiProblem:
    return ApiProblem(404, f"{what}-not-found", f"no {what.replace('-', ' ')} {ident}")


def idempotency_claim(
    request: Request, principal: Principal, key: str | None, body: Any, success_status: int
) -> IdempotencyClaim | None:
    """The claim for an ``Idempotency-Key`` header: the key names this exact request."""
    if key is None:
        return None
    digest = hashlib.sha256()
    digest.update(request.method.encode() + b" " + request.url.path.encode() + b"\n")
    digest.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    return IdempotencyClaim(principal.id, key, digest.hexdigest(), success_status)


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="A key the client makes unique per request (1 to 255 printable ASCII characters). "
        "Retrying with the same key and body returns the first response and records nothing new; "
        "the same key with another body is refused (422 `idempotency-key-reused`)",
        min_length=1,
        max_length=255,
        pattern="^[ -~]+$",
    ),
]


# -- consultation logs (LED art. 25; docs/API.md, "Consultation logs") -----------------


class Reading:
    """A read of personal data being answered: :meth:`log` records who read what, through
    which route, and why, in the consultation log (written in batches, ``ledger.service.consultations``)."""

    def __init__(self, request: Request, principal: Principal, justification: str | None,
                 officer: str | None) -> None:
        self.request, self.principal = request, principal
        self.justification, self.officer = justification, officer

    def log(self, kind: str, ids: Any, parties: Any = (), *, purpose: str | None = None) -> None:
        """Log that the principal read these objects (``kind``: ``transfer``, ``authorization``...)
        involving these Parties. 503 when the log cannot take it (the read is not answered)."""
        route = self.request.scope.get("route")
        template = getattr(route, "path", self.request.url.path)
        consultation = Consultation(
            principal=self.principal.id, party=self.principal.party, route=f"{self.request.method} {template}",
            objects=tuple(object_ref(kind, str(i)) for i in ids), parties=tuple(sorted(set(parties))),
            officer=self.officer, justification=self.justification, purpose=purpose,
        )
        try:
            ledger_of(self.request).consultations.log(consultation)
        except LogUnavailable as e:
            retry = {"Retry-After": str(e.retry_after)} if e.retry_after is not None else {}
            raise ApiProblem(503, "consultation-log-unavailable", str(e), headers=retry) from None

    def objects(self, kind: str, items: list[dict[str, Any]], parties_of: Any) -> list[dict[str, Any]]:
        """Log the read of these objects (a page, or one), each involving ``parties_of(item)``; the items."""
        parties: set[str] = set()
        for item in items:
            parties |= set(parties_of(item))
        self.log(kind, [item["id"] for item in items], parties)
        return items

    def transfer(self, view: dict[str, Any]) -> dict[str, Any]:
        """Log the read of one transfer; the view, to answer."""
        self.log("transfer", [view["id"]], transfer_parties(view))
        return view

    def transfers(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Log the read of a page of transfers (an empty page too); the items, to answer."""
        return self.objects("transfer", items, transfer_parties)

    def authorizations(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.objects("authorization", items, authorization_parties)


def reading(
    request: Request,
    principal: CurrentPrincipal,
    x_justification: Annotated[str | None, Header(
        alias="X-Justification", max_length=MAX_JUSTIFICATION,
        description="Why personal data are read (LED art. 25(1)), logged with the read; required when the "
        "reader's Party's policy says so (428 `justification-required`)")] = None,
    justification: Annotated[str | None, Query(
        max_length=MAX_JUSTIFICATION, description="The justification, when a header cannot be sent "
        "(X-Justification wins)")] = None,
    x_officer: Annotated[str | None, Header(
        alias="X-Officer", max_length=200, description="The officer reading, logged with the read")] = None,
) -> Reading:
    """A read of personal data: its justification checked against the reader's Party's policy."""
    return reading_for(request, principal, x_justification if x_justification is not None else justification,
                       x_officer)


def reading_for(request: Request, principal: Principal, given: str | None, officer: str | None) -> Reading:
    """A read by ``principal`` justified by ``given`` (blank: none), checked against its Party's policy
    (428 ``justification-required``); the API's routes and the console's pages read through it."""
    if given is not None and not given.strip():
        given = None
    if not principal.is_global:
        violation = justification_missing(ledger_of(request).justification_required(principal.party), given,
                                          principal.party)
        if violation is not None:
            raise ApiProblem(428, violation.rule, f"{violation.detail} ({violation.article})",
                             field=violation.field)
    return Reading(request, principal, given, officer)


#: A route that reads personal data: it logs what it answers (``Reading.log``).
Read = Annotated[Reading, Depends(reading)]
