"""The tamper-evident store: leaves, Merkle nodes, head and checkpoints.

Both backends (``ledger.storage.sqlite``, ``ledger.storage.postgres``) subclass
eventsourcing's application recorder and, in the same database transaction
as each batch of events, append one **leaf** per event (gap-free index,
previous leaf's hash, canonical bytes: ``ledger.tlog.leaf``), the RFC 9162 subtree
hashes that became complete, and the new **head** (size, last leaf hash, and
the compact range of the tree, so an append reads one row: O(log n) work).

Tables (same names on both backends):

``ledger_leaves``
    leaf_index (PK), notification_id (the event's row), originator_id,
    originator_version, recorded_at (RFC 3339 text, exactly as in the leaf),
    leaf_hash.
``ledger_nodes``
    (level, idx) -> hash of the perfect subtree of 2**level leaves starting
    at idx * 2**level, for level >= 1 (level 0 is ``ledger_leaves.leaf_hash``).
``ledger_head``
    one row: size, last_leaf_hash, frontier (the compact range's hashes).
``ledger_checkpoints``
    every signed checkpoint: tree_size (PK), root_hash, note, created_at.

This module holds what both backends share: the append computation and the
read interface that verification, proofs and checkpoints use (its SQL, written
once for both, is in ``ledger.storage.reads``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from domain.values import format_datetime
from ledger.tlog.leaf import ZERO_HASH, AppendedLeaf, encode_leaf, originator_id_text
from ledger.tlog.merkle import CompactRange, NodeId, leaf_hash


@dataclass(frozen=True)
class Head:
    """The tip of the ledger: how many leaves, the last one's hash, the frontier."""

    size: int
    last_leaf_hash: bytes
    frontier: bytes

    @classmethod
    def empty(cls) -> Head:
        return cls(0, ZERO_HASH, b"")

    def compact_range(self) -> CompactRange:
        return CompactRange.from_bytes(self.size, self.frontier)


class LeafRow(NamedTuple):
    """One ``ledger_leaves`` row, the originator id in hyphenated form.

    A named tuple: verification reads every row, and a store makes a page of
    them from the database's own row tuples without a call per row.
    """

    leaf_index: int
    notification_id: int
    originator_id: str
    originator_version: int
    recorded_at: str
    leaf_hash: bytes


class EventRow(NamedTuple):
    """One stored event row (its notification id, hyphenated originator id,
    version, topic and state bytes as stored); a named tuple, as :class:`LeafRow`."""

    notification_id: int
    originator_id: str
    originator_version: int
    topic: str
    state: bytes


#: One leaf of the feed as a plain row: (leaf_index, recorded_at, originator_id
#: in hyphenated form, originator_version, topic, state bytes as stored).
FeedRow = tuple[int, str, str, int, str, bytes]


class ReadOnly(Exception):
    """This process serves a read-only database (``serve --read-only``, a replica): what was
    asked would write, and nothing was written (503 ``read-only`` in the API)."""


@dataclass(frozen=True)
class StoredCheckpoint:
    tree_size: int
    root_hash: bytes
    note: str
    created_at: str


@dataclass
class Append:
    """The rows one batch of events adds to the ledger tables."""

    leaves: list[tuple[Any, ...]]
    nodes: list[tuple[int, int, bytes]]
    head: Head
    appended: list[AppendedLeaf]


def compute_append(
    head: Head,
    stored_events: Sequence[StoredEvent],
    notification_ids: Sequence[int],
    recorded_at: datetime,
    stored_id: Any,
) -> Append:
    """Leaves, completed Merkle nodes and the new head for a batch of events.

    ``stored_id`` maps an originator id to the form the backend stores it in.
    """
    if len(stored_events) != len(notification_ids):
        msg = f"got {len(notification_ids)} notification ids for {len(stored_events)} events"
        raise RuntimeError(msg)
    when = format_datetime(recorded_at)
    tree = head.compact_range()
    index, prev = head.size, head.last_leaf_hash
    leaves: list[tuple[Any, ...]] = []
    nodes: list[tuple[int, int, bytes]] = []
    appended: list[AppendedLeaf] = []
    for event, notification_id in zip(stored_events, notification_ids, strict=True):
        originator_id = event.originator_id
        version = event.originator_version
        oid = originator_id_text(originator_id)
        digest = leaf_hash(encode_leaf(index, prev, oid, version, event.topic, event.state, when))
        completed = tree.append(digest)
        if len(completed) > 1:
            nodes.extend(completed[1:])  # the first is the leaf itself
        leaves.append((index, notification_id, stored_id(originator_id), version, when, digest))
        appended.append(AppendedLeaf(index, notification_id, oid, version, when, digest))
        index, prev = index + 1, digest
    return Append(leaves, nodes, Head(index, prev, tree.to_bytes()), appended)


class LedgerStore(Protocol):
    """What verification, proofs and checkpoints read from a backend."""

    def head(self) -> Head: ...

    def read_leaves(self, start: int, limit: int) -> list[LeafRow]:
        """Leaves with ``leaf_index >= start`` in index order."""
        ...

    def read_events(self, after_notification_id: int, limit: int) -> list[EventRow]:
        """Stored events with ``notification_id > after`` in notification order."""
        ...

    def read_leaves_with_events(self, start: int, limit: int) -> list[tuple[Any, ...]]:
        """Leaves with ``leaf_index >= start`` in index order, each joined to the
        event row its notification id names, as plain rows: (leaf_index,
        notification_id, originator_id, originator_version, recorded_at,
        leaf_hash, then the event row's originator_id, originator_version,
        topic, state), the ids as the database gives them as text (not
        converted to the hyphenated form), the event's four None where no
        event row has that notification id. For bulk verification, which
        checks every value itself."""
        ...

    def read_nodes(self, ids: Sequence[NodeId]) -> list[bytes | None]:
        """Stored hashes for node ids (level 0 from the leaves), None where missing."""
        ...

    def read_level_range(self, level: int, first: int, last: int) -> list[tuple[int, bytes]]:
        """Stored (idx, hash) at one level with first <= idx <= last, by idx; level 0 from the leaves."""
        ...

    def leaf_of_event(self, originator_id: UUID, originator_version: int) -> LeafRow | None: ...

    def read_feed(self, start: int, limit: int) -> list[tuple[LeafRow, EventRow]]:
        """Leaves from ``start`` in leaf order, each with its event row."""
        ...

    def read_feed_rows(self, start: int, limit: int) -> list[FeedRow]:
        """The feed as plain rows, for bulk readers (the read models): see :data:`FeedRow`."""
        ...

    def checkpoints(self) -> list[StoredCheckpoint]: ...

    def save_checkpoint(self, tree_size: int, root_hash: bytes, note: str) -> StoredCheckpoint:
        """Store a checkpoint; one per tree size (the first stored is kept)."""
        ...

    def count_events(self) -> int: ...


def iter_batches(fetch: Any, start: Any, key: Any, batch: int) -> Iterator[Any]:
    """Keyset pagination: call ``fetch(cursor, batch)`` until it returns nothing."""
    cursor = start
    while True:
        rows = fetch(cursor, batch)
        if not rows:
            return
        yield from rows
        if len(rows) < batch:
            return
        cursor = key(rows[-1])
