"""The read models wired to the ledger (for the command line and the API).

``projections`` depends on ``domain`` only; here the ledger gives it its store
and database, and the state "as of" a leaf comes back with the signed
checkpoint that covers that leaf, and the proof that the leaf is in it, so an
auditor can check the answer against the tree it claims to describe.
"""

from __future__ import annotations

import base64
from typing import Any

from ledger.service.application import TransferLedger
from ledger.service.checkpoints import sign_current_checkpoint
from ledger.storage.sql import SqlAccess
from ledger.storage.store import ReadOnly
from ledger.tlog.merkle import inclusion_proof
from ledger.tlog.note import Signer
from projections import runner_for
from projections.events import decoder_for
from projections.queries import ALL_MODELS, DEFAULT_PENDING_DEADLINE_DAYS
from projections.replay import Replay, covering_checkpoint, replay
from projections.runner import ProjectionRunner


def runner_of(ledger: TransferLedger, **options: Any) -> ProjectionRunner:
    """The read models' runner on the ledger's own database."""
    return runner_for(ledger, SqlAccess(ledger.recorder), **options)


def checkpoint_covering(ledger: TransferLedger, signer: Signer, index: int) -> dict[str, Any]:
    """The first stored checkpoint whose tree holds leaf ``index`` (signed now if there
    is none yet), with the leaf's hash and its RFC 9162 inclusion proof in that tree."""
    stored = covering_checkpoint(ledger.store, index)
    if stored is None:
        stored = sign_current_checkpoint(ledger.store, signer)
        if stored.tree_size <= index:  # a read-only store signs nothing: its newest is too small
            raise ReadOnly(f"no stored checkpoint covers leaf {index} yet and this server is read-only: "
                           "sign one on the primary (`transfer-ledger checkpoint`)")

    def get_nodes(ids: Any) -> list[bytes]:
        found = ledger.store.read_nodes(ids)
        if any(h is None for h in found):
            raise LookupError("stored Merkle nodes are missing: run `transfer-ledger verify`")
        return found  # type: ignore[return-value]

    b64 = base64.b64encode
    return {
        "tree_size": stored.tree_size,
        "root_hash": b64(stored.root_hash).decode(),
        "note": stored.note,
        "leaf_index": index,
        "leaf_hash": b64(get_nodes([(0, index)])[0]).decode(),
        "inclusion_proof": [b64(p).decode() for p in inclusion_proof(index, stored.tree_size, get_nodes)],
    }


def state_as_of(
    ledger: TransferLedger,
    signer: Signer,
    *,
    at_index: int | None = None,
    at_time: str | None = None,
    share: str | None = None,
    models: tuple[str, ...] = ALL_MODELS,
    transfer_id: str | None = None,
    pending_deadline_days: float = DEFAULT_PENDING_DEADLINE_DAYS,
    limit: int = 1000,
) -> dict[str, Any]:
    """Every read model as of a leaf index or a time (``projections.replay``), with the
    checkpoint that covers that leaf. Raises ``projections.replay.ReplayError``."""
    replayed: Replay = replay(ledger.store, at_index=at_index, at_time=at_time, decode=decoder_for(ledger.mapper))
    try:
        state = replayed.state(share=share, models=models, transfer_id=transfer_id,
                               pending_deadline_days=pending_deadline_days, limit=limit)
    finally:
        replayed.close()
    return {
        "at_index": replayed.at_index if replayed.at_index >= 0 else None,
        "tree_size": replayed.tree_size,
        "at_time": replayed.at_time,
        "leaf_recorded_at": replayed.leaf_time,
        "now": replayed.now,
        "checkpoint": checkpoint_covering(ledger, signer, replayed.at_index) if replayed.at_index >= 0 else None,
        "party": share or "*",
        **state,
    }
