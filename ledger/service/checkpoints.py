"""Signing and storing checkpoints (C2SP tlog-checkpoint) of the ledger's tree."""

from __future__ import annotations

from ledger.storage.store import LedgerStore, ReadOnly, StoredCheckpoint
from ledger.tlog.merkle import root_at
from ledger.tlog.note import Checkpoint, Signer, sign_checkpoint


class InconsistentTreeError(Exception):
    """The current tree does not extend the last signed checkpoint: refuse to sign."""


def current_tree(store: LedgerStore) -> tuple[int, bytes]:
    """The tree size and RFC 9162 root hash at the head."""
    head = store.head()
    return head.size, head.compact_range().root()


def stored_root_at(store: LedgerStore, size: int) -> bytes:
    """The root of the tree at an earlier size, from the stored subtree hashes."""

    def get_nodes(ids: object) -> list[bytes]:
        found = store.read_nodes(ids)  # type: ignore[arg-type]
        missing = [i for i, h in zip(ids, found, strict=True) if h is None]  # type: ignore[call-overload]
        if missing:
            raise InconsistentTreeError(f"stored Merkle nodes {missing} are missing")
        return found  # type: ignore[return-value]

    return root_at(size, get_nodes)


def sign_current_checkpoint(store: LedgerStore, signer: Signer) -> StoredCheckpoint:
    """Sign the tree at its head, store the checkpoint and return it.

    A log must never sign a checkpoint inconsistent with one it signed before
    (tlog-checkpoint, "Signatures"): the last stored checkpoint's root is
    recomputed from the stored nodes first, and signing is refused if it
    differs. Signing the same size twice returns the stored checkpoint
    (Ed25519 signatures are deterministic, so the bytes are the same).

    On a read-only store (``serve --read-only``, a replica) nothing is signed: the newest
    stored checkpoint is returned (:class:`ReadOnly` if there is none yet).
    """
    if getattr(store, "read_only", False):
        return newest_stored_checkpoint(store)
    # The stored checkpoints first, then the head: the head only grows, so a
    # checkpoint another process signed meanwhile is never beyond the size read.
    previous = store.checkpoints()
    size, root = current_tree(store)
    if previous:
        last = previous[-1]
        if last.tree_size > size:
            raise InconsistentTreeError(
                f"a checkpoint was signed at size {last.tree_size}, but the tree has only {size} leaves"
            )
        if stored_root_at(store, last.tree_size) != last.root_hash:
            raise InconsistentTreeError(
                f"the tree at size {last.tree_size} no longer has the root signed there; "
                "run `transfer-ledger verify`"
            )
    note = sign_checkpoint(Checkpoint(origin=signer.name, size=size, root_hash=root), signer)
    return store.save_checkpoint(size, root, note)


def newest_stored_checkpoint(store: LedgerStore) -> StoredCheckpoint:
    """The checkpoint of the largest tree stored (a replica serves it instead of signing)."""
    stored = store.checkpoints()
    if not stored:
        raise ReadOnly("no checkpoint is stored yet and this server is read-only: "
                       "sign one on the primary (`transfer-ledger checkpoint`)")
    return stored[-1]
