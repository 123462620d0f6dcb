"""Witness cosignatures over HTTP: witnesses send them, checkpoints carry them.

``POST /v1/checkpoint/cosignatures`` (role ``verifier``) checks a witness's
C2SP tlog-cosignature over a stored checkpoint and keeps it
(``ledger.storage.cosignatures``); ``GET /v1/checkpoint`` (in ``api.routers``) serves
the checkpoint with the stored cosignature lines appended, through
:func:`checkpoint_note`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CurrentPrincipal, IdempotencyKey, Ledger, cosignatures_of, require_role
from api.errors import ApiProblem
from api.responses import UNAUTHENTICATED, body_too_large, problems
from ledger.service.application import TransferLedger
from ledger.service.checkpoints import InconsistentTreeError, sign_current_checkpoint
from ledger.storage.cosignatures import CosignatureRefused, cosigned_note
from ledger.tlog.note import MAX_TREE_SIZE

router = APIRouter()


def checkpoint_note(request: Request, ledger: TransferLedger, tree_size: int | None) -> str:
    """The signed checkpoint with its stored cosignature lines appended: the
    latest (signed now, as ``transfer-ledger checkpoint`` does) or, given
    ``tree_size``, the one stored for that size (404 problem if none)."""
    store = cosignatures_of(request)
    if tree_size is None:
        try:
            stored = sign_current_checkpoint(ledger.store, request.app.state.signer)
        except InconsistentTreeError as e:
            # The log refuses to sign a tree inconsistent with one it signed before.
            raise ApiProblem(503, "tree-inconsistent", f"{e}; nothing was signed") from None
        size, note = stored.tree_size, stored.note
    else:
        found = store.checkpoint_note(tree_size)
        if found is None:
            raise ApiProblem(404, "checkpoint-not-found", f"no checkpoint of size {tree_size} is stored",
                             field="tree_size")
        size, note = tree_size, found
    return cosigned_note(note, store.lines(size))


class CosignatureIn(BaseModel):
    """A witness's cosignature of a stored checkpoint."""

    model_config = ConfigDict(extra="forbid")

    tree_size: int = Field(ge=0, le=MAX_TREE_SIZE, description="The size of the stored checkpoint cosigned")
    vkey: str = Field(
        min_length=1, max_length=600,
        description="The witness's cosigner key: <name>+<8 hex key id>+<base64(0x04 || 32-byte Ed25519 key)>",
    )
    cosignature: str = Field(
        min_length=1, max_length=800,
        description="The cosignature line: U+2014, space, the witness's name, space, "
        "base64(4-byte key id || 8-byte big-endian timestamp || 64-byte Ed25519 signature), "
        "optionally followed by a newline",
    )


class CosignatureOut(BaseModel):
    tree_size: int
    vkey: str
    key_name: str
    key_id: str = Field(description="8 hex digits")
    timestamp: int = Field(description="The cosignature's POSIX time")
    cosignature: str = Field(description="The line as the checkpoint carries it, with its newline")
    created_at: str = Field(description="When the ledger stored it")


_PROBLEMS = problems({
    401: UNAUTHENTICATED,
    403: "The key lacks the role verifier (`role-required`)",
    409: "Another key already cosigned under this name and key id (`cosigner-key-conflict`), or the "
         "checkpoint has the most cosigners the ledger keeps (`too-many-cosigners`)",
    413: body_too_large(),
    422: "No checkpoint of this size is stored (`checkpoint-not-stored`), a malformed vkey "
         "(`invalid-vkey`), or a cosignature that is malformed, by another key or does not verify "
         "over the stored checkpoint (`invalid-cosignature`)",
})


@router.post(
    "/v1/checkpoint/cosignatures", status_code=201, response_model=CosignatureOut, responses=_PROBLEMS,
    tags=["ledger"], summary="A witness's cosignature (C2SP tlog-cosignature) of a stored checkpoint",
    description="201 when stored now; 200 with the stored one when this key already cosigned that size "
    "(so a retry, with or without `Idempotency-Key`, records nothing twice). The checkpoint is then served "
    "with the cosignature line by `GET /v1/checkpoint`.",
)
def add_cosignature(
    body: CosignatureIn,
    request: Request,
    principal: CurrentPrincipal,
    ledger: Ledger,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    del ledger, idempotency_key  # the request is idempotent by nature: one row per size and key
    require_role(principal, "verifier")
    store = cosignatures_of(request)
    try:
        stored, created = store.add(
            body.tree_size, body.vkey, body.cosignature, principal.id, request.app.state.signer.verifier()
        )
    except CosignatureRefused as refused:
        raise ApiProblem(refused.status, refused.rule, refused.detail, field=refused.field) from None
    return JSONResponse(stored.as_dict(), status_code=201 if created else 200)

