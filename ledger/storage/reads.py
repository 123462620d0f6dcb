"""The store's reads, written once for both backends.

:class:`LedgerReads` is the read half of :class:`ledger.storage.store.LedgerStore`
(and the checkpoint write), mixed into both recorders. Its SQL is written
once, with ``?`` placeholders; a backend gives it a :class:`Dialect` (its
placeholder, its table names, its events' notification id column, how it
spells an originator id as text) and a cursor factory (:meth:`LedgerReads._cursor`:
a transaction's cursor whose rows are plain tuples). What differs beyond
that, the write path, the connections and the DDL, stays in
``ledger.storage.sqlite`` and ``ledger.storage.postgres``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from domain.values import format_datetime
from ledger.storage.high_water import HighWater
from ledger.storage.store import EventRow, FeedRow, Head, LeafRow, ReadOnly, StoredCheckpoint
from ledger.tlog.leaf import originator_id_text
from ledger.tlog.merkle import NodeId

#: Makes a row type (a named tuple) from a database row tuple, without a call per field.
_new_row = tuple.__new__


def as_bytes(value: Any) -> bytes:
    """A BLOB cell as bytes. SQLite columns are dynamically typed: a tampered
    state may come back as text or a number, which must verify as modified,
    not crash verification."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8", "surrogatepass")


@dataclass(frozen=True)
class Dialect:
    """How one backend spells the shared reads."""

    #: The parameter placeholder: ``?`` (sqlite3) or ``%s`` (psycopg).
    placeholder: str
    #: The tables, as the statements name them: ``leaves``, ``nodes``, ``head``,
    #: ``checkpoints`` and ``events``.
    tables: dict[str, str]
    #: The events table's notification id column.
    event_id: str
    #: An originator id column as the database gives it as text.
    id_text: Callable[[str], str]
    #: An originator id column in the leaf's (hyphenated) form where the database can make it.
    id_hyphenated: Callable[[str], str]
    #: An originator id column as the feed's plain rows carry it.
    id_feed: Callable[[str], str]
    #: An originator id as the leaves table stores it (the lookup's parameter).
    stored_id: Callable[[UUID], Any]

    def statements(self) -> dict[str, str]:
        """The shared statements, in this dialect."""
        t, eid = self.tables, self.event_id
        leaves, events, page = t["leaves"], t["events"], "WHERE l.leaf_index >= ? ORDER BY l.leaf_index LIMIT ?"
        leaf_columns = "leaf_index, notification_id, originator_id, originator_version, recorded_at, leaf_hash"
        checkpoint_columns = f"tree_size, root_hash, note, created_at FROM {t['checkpoints']}"
        statements = {
            "head": f"SELECT size, last_leaf_hash, frontier FROM {t['head']} WHERE id = 1",
            "leaves": f"SELECT leaf_index, notification_id, {self.id_hyphenated('originator_id')}, "
            f"originator_version, recorded_at, leaf_hash FROM {leaves} "
            "WHERE leaf_index >= ? ORDER BY leaf_index LIMIT ?",
            "events": f"SELECT {eid}, {self.id_hyphenated('originator_id')}, originator_version, topic, state "
            f"FROM {events} WHERE {eid} > ? ORDER BY {eid} LIMIT ?",
            "leaves_with_events": f"SELECT l.leaf_index, l.notification_id, {self.id_text('l.originator_id')}, "
            "l.originator_version, l.recorded_at, l.leaf_hash, "
            f"{self.id_text('e.originator_id')}, e.originator_version, e.topic, e.state "
            f"FROM {leaves} l LEFT JOIN {events} e ON e.{eid} = l.notification_id {page}",
            "feed": "SELECT l.leaf_index, l.notification_id, l.originator_id, l.originator_version, "
            "l.recorded_at, l.leaf_hash, e.topic, e.state "
            f"FROM {leaves} l JOIN {events} e ON e.{eid} = l.notification_id {page}",
            "feed_rows": f"SELECT l.leaf_index, l.recorded_at, {self.id_feed('l.originator_id')}, "
            "l.originator_version, e.topic, e.state "
            f"FROM {leaves} l JOIN {events} e ON e.{eid} = l.notification_id {page}",
            "count_events": f"SELECT COUNT(*) FROM {events}",
            "leaf_range": f"SELECT leaf_index, leaf_hash FROM {leaves} WHERE leaf_index BETWEEN ? AND ? "
            "ORDER BY leaf_index",
            "node_range": f"SELECT idx, hash FROM {t['nodes']} WHERE level = ? AND idx BETWEEN ? AND ? "
            "ORDER BY idx",
            "leaf_of_event": f"SELECT {leaf_columns} FROM {leaves} "
            "WHERE originator_id = ? AND originator_version = ?",
            "checkpoints": f"SELECT {checkpoint_columns} ORDER BY tree_size",
            "checkpoint": f"SELECT {checkpoint_columns} WHERE tree_size = ?",
            "save_checkpoint": f"INSERT INTO {t['checkpoints']} VALUES (?,?,?,?) ON CONFLICT (tree_size) DO NOTHING",
        }
        return {name: sql.replace("?", self.placeholder) for name, sql in statements.items()}


def _leaf(r: Sequence[Any]) -> LeafRow:
    """A leaf from its row as stored (the id converted to the leaf's form)."""
    return LeafRow(r[0], r[1], originator_id_text(r[2]), r[3], r[4], bytes(r[5]))


class LedgerReads:
    """The reads of :class:`~ledger.storage.store.LedgerStore`, over a backend's
    :class:`Dialect` and :meth:`_cursor`; the backend calls :meth:`_use_dialect`
    once when it is made."""

    _dialect: Dialect
    _reads: dict[str, str]
    #: A read-only database (``serve --read-only``, a replica): nothing is signed or stored.
    read_only: bool = False
    #: The data dir's record of the newest checkpoint (``ledger.storage.high_water``), raised by
    #: every checkpoint stored; None where the ledger was opened without a data dir to keep it in.
    high_water: HighWater | None = None

    def _use_dialect(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._reads = dialect.statements()

    # -- what a backend provides ---------------------------------------------------

    def _cursor(self, *, commit: bool = False) -> AbstractContextManager[Any]:
        """A cursor in a transaction of its own whose rows are plain tuples
        (committed at the end if ``commit``, else rolled back)."""
        raise NotImplementedError

    def _leaf_hashes_query(self, indexes: list[int]) -> tuple[str, Sequence[Any]]:
        """The statement and parameters that select (leaf_index, leaf_hash) of these leaves."""
        raise NotImplementedError

    def _node_hashes_query(self, ids: list[NodeId]) -> tuple[str, Sequence[Any]]:
        """The statement and parameters that select (level, idx, hash) of these inner nodes."""
        raise NotImplementedError

    # -- the reads -----------------------------------------------------------------

    def _rows(self, name: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._cursor() as cursor:
            cursor.execute(self._reads[name], params)
            return list(cursor.fetchall())

    def head(self) -> Head:
        size, last_leaf_hash, frontier = self._rows("head")[0]
        return Head(size, bytes(last_leaf_hash), bytes(frontier))

    def read_leaves(self, start: int, limit: int) -> list[LeafRow]:
        # The database gave the ids it could in hyphenated form (SQLite those
        # of 32 lowercase hex digits, PostgreSQL every uuid); any other cell
        # (a tampered one) goes through the same conversion as everywhere.
        return [
            _new_row(LeafRow, r) if type(r[2]) is str and len(r[2]) != 32 and type(r[5]) is bytes else _leaf(r)
            for r in self._rows("leaves", (start, limit))
        ]

    def read_events(self, after_notification_id: int, limit: int) -> list[EventRow]:
        return [
            _new_row(EventRow, r)
            if type(r[1]) is str and len(r[1]) != 32 and type(r[3]) is str and type(r[4]) is bytes
            else EventRow(r[0], originator_id_text(str(r[1])), r[2], str(r[3]), as_bytes(r[4]))
            for r in self._rows("events", (after_notification_id, limit))
        ]

    def read_leaves_with_events(self, start: int, limit: int) -> list[tuple[Any, ...]]:
        """Leaves from ``start`` in index order, each with its event row's fields:
        see :meth:`ledger.storage.store.LedgerStore.read_leaves_with_events`."""
        return self._rows("leaves_with_events", (start, limit))

    def read_feed(self, start: int, limit: int) -> list[tuple[LeafRow, EventRow]]:
        """Leaves from ``start`` in leaf order, each with its event row."""
        out = []
        for r in self._rows("feed", (start, limit)):
            leaf = _leaf(r)
            out.append((leaf, EventRow(leaf.notification_id, leaf.originator_id, leaf.originator_version,
                                       str(r[6]), as_bytes(r[7]))))
        return out

    def read_feed_rows(self, start: int, limit: int) -> list[FeedRow]:
        """The feed as plain rows (no per-row objects): the read models read it in bulk.

        The originator id is put in hyphenated form by the database itself.
        """
        return [
            r if type(r[5]) is bytes else (r[0], r[1], r[2], r[3], str(r[4]), as_bytes(r[5]))
            for r in self._rows("feed_rows", (start, limit))
        ]

    def count_events(self) -> int:
        return int(self._rows("count_events")[0][0])

    def read_nodes(self, ids: Sequence[NodeId]) -> list[bytes | None]:
        found: dict[NodeId, bytes] = {}
        leaves = [idx for level, idx in ids if level == 0]
        inner = [(level, idx) for level, idx in ids if level > 0]
        with self._cursor() as cursor:
            if leaves:
                cursor.execute(*self._leaf_hashes_query(leaves))
                found.update(((0, r[0]), bytes(r[1])) for r in cursor.fetchall())
            if inner:
                cursor.execute(*self._node_hashes_query(inner))
                found.update(((r[0], r[1]), bytes(r[2])) for r in cursor.fetchall())
        return [found.get(tuple(i)) for i in ids]  # type: ignore[arg-type]

    def read_level_range(self, level: int, first: int, last: int) -> list[tuple[int, bytes]]:
        rows = (self._rows("leaf_range", (first, last)) if level == 0
                else self._rows("node_range", (level, first, last)))
        return [r if type(r[1]) is bytes else (r[0], bytes(r[1])) for r in rows]

    def leaf_of_event(self, originator_id: UUID, originator_version: int) -> LeafRow | None:
        """The leaf that records this event (its originator id and version), or None."""
        rows = self._rows("leaf_of_event", (self._dialect.stored_id(originator_id), originator_version))
        return _leaf(rows[0]) if rows else None

    def checkpoints(self) -> list[StoredCheckpoint]:
        return [StoredCheckpoint(r[0], bytes(r[1]), r[2], r[3]) for r in self._rows("checkpoints")]

    def save_checkpoint(self, tree_size: int, root_hash: bytes, note: str) -> StoredCheckpoint:
        """Store a checkpoint; one per tree size (the first stored is kept, and returned)."""
        if self.read_only:
            raise ReadOnly("this server is read-only: checkpoints are signed on the primary")
        with self._cursor(commit=True) as cursor:
            cursor.execute(self._reads["save_checkpoint"],
                           (tree_size, root_hash, note, format_datetime(datetime.now(UTC))))
            cursor.execute(self._reads["checkpoint"], (tree_size,))
            r = cursor.fetchone()
        assert r is not None
        stored = StoredCheckpoint(r[0], bytes(r[1]), r[2], r[3])
        if self.high_water is not None:
            self.high_water.raise_to(stored.tree_size, stored.root_hash, stored.note)
        return stored

