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

from fastapi import Depends, Header, Request
from fastapi.security import HTTPBearer

from api.errors import ApiProblem
from ledger.service.application import TransferLedger
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
