"""The tamper-evident store on SQLite: the embedded default.

:class:`SQLiteLedgerRecorder` extends eventsourcing's
``SQLiteApplicationRecorder``: its ``_insert_events`` runs inside the write
transaction and returns the new rowids (notification ids); the ledger's
leaves, nodes and head are written there with the same cursor, so an event
and its leaf commit together or not at all.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import InterfaceError, StoredEvent
from eventsourcing.sqlite import (
    SQLITE3_DEFAULT_LOCK_TIMEOUT,
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteFactory,
)

from domain.values import format_datetime
from ledger.storage.store import (
    EventRow,
    FeedRow,
    Head,
    LeafRow,
    StoredCheckpoint,
    compute_append,
)
from ledger.tlog.leaf import ZERO_HASH, originator_id_text
from ledger.tlog.merkle import NodeId

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS ledger_leaves ("
    "leaf_index INTEGER PRIMARY KEY, "
    "notification_id INTEGER NOT NULL UNIQUE, "
    "originator_id TEXT NOT NULL, "
    "originator_version INTEGER NOT NULL, "
    "recorded_at TEXT NOT NULL, "
    "leaf_hash BLOB NOT NULL)",
    # One leaf per event, as PostgreSQL's table constraint says; an index, so that ledgers
    # created before it get it too.
    "CREATE UNIQUE INDEX IF NOT EXISTS ledger_leaves_originator ON ledger_leaves (originator_id, originator_version)",
    "CREATE TABLE IF NOT EXISTS ledger_nodes ("
    "level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, "
    "PRIMARY KEY (level, idx)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS ledger_head ("
    "id INTEGER PRIMARY KEY CHECK (id = 1), size INTEGER NOT NULL, "
    "last_leaf_hash BLOB NOT NULL, frontier BLOB NOT NULL)",
    "INSERT OR IGNORE INTO ledger_head VALUES (1, 0, X'" + ZERO_HASH.hex() + "', X'')",
    "CREATE TABLE IF NOT EXISTS ledger_checkpoints ("
    "tree_size INTEGER PRIMARY KEY, root_hash BLOB NOT NULL, note TEXT NOT NULL, "
    "created_at TEXT NOT NULL)",
]


_SELECT_HEAD = "SELECT size, last_leaf_hash, frontier FROM ledger_head WHERE id = 1"
_INSERT_LEAF = "INSERT INTO ledger_leaves VALUES (?,?,?,?,?,?)"
_INSERT_NODE = "INSERT INTO ledger_nodes VALUES (?,?,?)"
_UPDATE_HEAD = "UPDATE ledger_head SET size = ?, last_leaf_hash = ?, frontier = ? WHERE id = 1"


def _as_bytes(value: Any) -> bytes:
    """A BLOB cell as bytes. SQLite columns are dynamically typed: a tampered
    state may come back as text or a number, which must verify as modified,
    not crash verification."""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogatepass")


#: An originator id column in the leaf's (hyphenated) form when it holds 32
#: lowercase hex digits, as :func:`ledger.tlog.leaf.originator_id_text` would make it;
#: any other cell as it is.
_HYPHENATED_ID = (
    "CASE WHEN typeof(originator_id) = 'text' AND length(originator_id) = 32 "
    "AND originator_id NOT GLOB '*[^0-9a-f]*' THEN substr(originator_id, 1, 8) || '-' || "
    "substr(originator_id, 9, 4) || '-' || substr(originator_id, 13, 4) || '-' || "
    "substr(originator_id, 17, 4) || '-' || substr(originator_id, 21) ELSE originator_id END"
)

#: Makes a row type (a named tuple) from a database row tuple, without a call per field.
_new_row = tuple.__new__


def _stored_id(originator_id: UUID | str) -> str:
    return originator_id.hex if isinstance(originator_id, UUID) else originator_id


class SQLiteLedgerRecorder(SQLiteApplicationRecorder):
    """Application recorder that appends the ledger's leaves with every event."""

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *_SCHEMA]

    def create_table(self) -> None:
        """Create the tables, each statement on its own (autocommit).

        In one deferred transaction, a process that read the schema and then
        writes would fail at once ("database is locked") if another process
        committed in between; single statements wait for the lock instead.
        """
        with self.datastore.get_connection(commit=True) as conn:
            cursor = conn.cursor()
            for statement in self.create_table_statements:
                cursor.execute(statement)

    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        *,
        leaf_sink: list[Any] | None = None,
        also_insert: Sequence[tuple[str, Sequence[Any]]] = (),
        **kwargs: Any,
    ) -> Sequence[int] | None:
        notification_ids = super()._insert_events(c, stored_events, **kwargs)
        if not stored_events:
            return notification_ids
        assert notification_ids is not None
        # The sqlite3 cursor itself: the statements below are the ledger's
        # own, run for every append (its errors propagate as sqlite3's, and
        # the transaction around them translates and rolls back).
        cursor = c.sqlite_cursor
        size, last_leaf_hash, frontier = cursor.execute(_SELECT_HEAD).fetchone()
        append = compute_append(
            Head(size, bytes(last_leaf_hash), bytes(frontier)),
            stored_events, notification_ids, datetime.now(UTC), _stored_id,
        )
        if len(append.leaves) == 1:
            cursor.execute(_INSERT_LEAF, append.leaves[0])
        else:
            cursor.executemany(_INSERT_LEAF, append.leaves)
        if append.nodes:
            cursor.executemany(_INSERT_NODE, append.nodes)
        head = append.head
        cursor.execute(_UPDATE_HEAD, (head.size, head.last_leaf_hash, head.frontier))
        for table, values in also_insert:
            cursor.execute(f"INSERT INTO {table} VALUES ({','.join('?' * len(values))})", tuple(values))
        if leaf_sink is not None:
            leaf_sink.extend(append.appended)
        return notification_ids

    # -- reads -----------------------------------------------------------------

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(sql, params)
            return list(c.fetchall())

    def head(self) -> Head:
        row = self._query("SELECT size, last_leaf_hash, frontier FROM ledger_head WHERE id = 1")[0]
        return Head(row["size"], bytes(row["last_leaf_hash"]), bytes(row["frontier"]))

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Like :meth:`_query`, as plain tuples (no ``sqlite3.Row`` per row)."""
        with self.datastore.transaction(commit=False) as c:
            cursor = c.sqlite_cursor
            cursor.row_factory = None
            return cursor.execute(sql, params).fetchall()

    def read_leaves(self, start: int, limit: int) -> list[LeafRow]:
        rows = self._rows(
            f"SELECT leaf_index, notification_id, {_HYPHENATED_ID}, originator_version, recorded_at, "
            "leaf_hash FROM ledger_leaves WHERE leaf_index >= ? ORDER BY leaf_index LIMIT ?",
            (start, limit),
        )
        # SQLite hyphenated the ids that are 32 lowercase hex digits; any other
        # cell (a tampered one) goes through the same conversion as everywhere.
        return [
            _new_row(LeafRow, r) if type(r[2]) is str and len(r[2]) != 32 and type(r[5]) is bytes
            else LeafRow(r[0], r[1], originator_id_text(r[2]), r[3], r[4], bytes(r[5]))
            for r in rows
        ]

    def read_events(self, after_notification_id: int, limit: int) -> list[EventRow]:
        rows = self._rows(
            f"SELECT rowid, {_HYPHENATED_ID}, originator_version, topic, state "
            f"FROM {self.events_table_name} WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (after_notification_id, limit),
        )
        return [
            _new_row(EventRow, r)
            if type(r[1]) is str and len(r[1]) != 32 and type(r[3]) is str and type(r[4]) is bytes
            else EventRow(r[0], originator_id_text(str(r[1])), r[2], str(r[3]), _as_bytes(r[4]))
            for r in rows
        ]

    def read_leaves_with_events(self, start: int, limit: int) -> list[tuple[Any, ...]]:
        """Leaves from ``start`` in index order, each with its event row's fields:
        see :meth:`ledger.storage.store.LedgerStore.read_leaves_with_events`."""
        return self._rows(
            "SELECT l.leaf_index, l.notification_id, l.originator_id, l.originator_version, l.recorded_at, "
            "l.leaf_hash, e.originator_id, e.originator_version, e.topic, e.state "
            f"FROM ledger_leaves l LEFT JOIN {self.events_table_name} e ON e.rowid = l.notification_id "
            "WHERE l.leaf_index >= ? ORDER BY l.leaf_index LIMIT ?",
            (start, limit),
        )

    def read_feed(self, start: int, limit: int) -> list[tuple[LeafRow, EventRow]]:
        """Leaves from ``start`` in leaf order, each with its event row."""
        rows = self._query(
            f"SELECT l.*, e.topic, e.state FROM ledger_leaves l JOIN {self.events_table_name} e "
            "ON e.rowid = l.notification_id WHERE l.leaf_index >= ? ORDER BY l.leaf_index LIMIT ?",
            (start, limit),
        )
        out = []
        for r in rows:
            leaf = LeafRow(
                r["leaf_index"], r["notification_id"], originator_id_text(r["originator_id"]),
                r["originator_version"], r["recorded_at"], bytes(r["leaf_hash"]),
            )
            out.append((leaf, EventRow(leaf.notification_id, leaf.originator_id, leaf.originator_version,
                                       str(r["topic"]), _as_bytes(r["state"]))))
        return out

    def read_feed_rows(self, start: int, limit: int) -> list[FeedRow]:
        """The feed as plain rows (no per-row objects): the read models read it in bulk.

        The originator id is put in hyphenated form by SQLite itself.
        """
        rows = self._query(
            "SELECT l.leaf_index, l.recorded_at, CASE WHEN length(l.originator_id) = 32 THEN "
            "lower(substr(l.originator_id, 1, 8) || '-' || substr(l.originator_id, 9, 4) || '-' || "
            "substr(l.originator_id, 13, 4) || '-' || substr(l.originator_id, 17, 4) || '-' || "
            "substr(l.originator_id, 21)) ELSE l.originator_id END, l.originator_version, e.topic, e.state "
            f"FROM ledger_leaves l JOIN {self.events_table_name} e ON e.rowid = l.notification_id "
            "WHERE l.leaf_index >= ? ORDER BY l.leaf_index LIMIT ?",
            (start, limit),
        )
        return [
            r if isinstance(r[5], bytes) else (r[0], r[1], r[2], r[3], str(r[4]), _as_bytes(r[5]))
            for r in rows
        ]

    def count_events(self) -> int:
        return int(self._query(f"SELECT COUNT(*) AS n FROM {self.events_table_name}")[0]["n"])

    def read_nodes(self, ids: Sequence[NodeId]) -> list[bytes | None]:
        found: dict[NodeId, bytes] = {}
        leaves = [idx for level, idx in ids if level == 0]
        inner = [(level, idx) for level, idx in ids if level > 0]
        with self.datastore.transaction(commit=False) as c:
            if leaves:
                c.execute(
                    "SELECT leaf_index, leaf_hash FROM ledger_leaves WHERE leaf_index IN "
                    f"({','.join('?' * len(leaves))})",
                    leaves,
                )
                found.update(((0, r[0]), bytes(r[1])) for r in c.fetchall())
            if inner:
                # Point lookups on the primary key (a row-value IN over VALUES
                # would scan the table).
                c.execute(
                    " UNION ALL ".join(
                        ["SELECT level, idx, hash FROM ledger_nodes WHERE level = ? AND idx = ?"] * len(inner)
                    ),
                    [v for pair in inner for v in pair],
                )
                found.update(((r[0], r[1]), bytes(r[2])) for r in c.fetchall())
        return [found.get(tuple(i)) for i in ids]  # type: ignore[arg-type]

    def read_level_range(self, level: int, first: int, last: int) -> list[tuple[int, bytes]]:
        if level == 0:
            rows = self._rows(
                "SELECT leaf_index, leaf_hash FROM ledger_leaves WHERE leaf_index BETWEEN ? AND ? "
                "ORDER BY leaf_index",
                (first, last),
            )
        else:
            rows = self._rows(
                "SELECT idx, hash FROM ledger_nodes WHERE level = ? AND idx BETWEEN ? AND ? ORDER BY idx",
                (level, first, last),
            )
        return [r if type(r[1]) is bytes else (r[0], bytes(r[1])) for r in rows]

    def leaf_of_event(self, originator_id: UUID, originator_version: int) -> LeafRow | None:
        rows = self._query(
            f"SELECT l.* FROM {self.events_table_name} e JOIN ledger_leaves l "
            "ON l.notification_id = e.rowid WHERE e.originator_id = ? AND e.originator_version = ?",
            (_stored_id(originator_id), originator_version),
        )
        if not rows:
            return None
        r = rows[0]
        return LeafRow(
            r["leaf_index"], r["notification_id"], originator_id_text(r["originator_id"]),
            r["originator_version"], r["recorded_at"], bytes(r["leaf_hash"]),
        )

    def checkpoints(self) -> list[StoredCheckpoint]:
        rows = self._query("SELECT * FROM ledger_checkpoints ORDER BY tree_size")
        return [
            StoredCheckpoint(r["tree_size"], bytes(r["root_hash"]), r["note"], r["created_at"])
            for r in rows
        ]

    def save_checkpoint(self, tree_size: int, root_hash: bytes, note: str) -> StoredCheckpoint:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                "INSERT OR IGNORE INTO ledger_checkpoints VALUES (?,?,?,?)",
                (tree_size, root_hash, note, format_datetime(datetime.now(UTC))),
            )
            c.execute("SELECT * FROM ledger_checkpoints WHERE tree_size = ?", (tree_size,))
            r = c.fetchone()
        return StoredCheckpoint(r["tree_size"], bytes(r["root_hash"]), r["note"], r["created_at"])


#: Prepared statements kept per connection. eventsourcing 9.5 opens SQLite
#: connections with a cache of one statement, so every append would
#: re-prepare the ledger's four statements.
STATEMENT_CACHE = 128


class LedgerSQLiteConnectionPool(SQLiteConnectionPool):
    """eventsourcing's pool, with a statement cache and explicit durability.

    ``synchronous=FULL`` in WAL mode: a transaction acknowledged is on disk
    (an audit ledger must not lose an acknowledged record on power loss).
    """

    def _create_connection(self) -> SQLiteConnection:
        try:
            conn = sqlite3.connect(
                database=self.db_name,
                uri=True,
                check_same_thread=False,
                isolation_level=None,  # eventsourcing issues BEGIN itself
                cached_statements=STATEMENT_CACHE,
                timeout=self.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT,
            )
        except (sqlite3.Error, TypeError) as e:
            raise InterfaceError(e) from e
        if not self.is_sqlite_memory_mode:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
                self.journal_mode_was_changed_to_wal = True
            self.is_journal_mode_wal = True
            conn.execute("PRAGMA synchronous=FULL")
        conn.row_factory = sqlite3.Row
        return SQLiteConnection(sqlite_conn=conn, max_age=self.max_age)


class SQLiteLedgerFactory(SQLiteFactory):
    """Infrastructure factory for the ledger on SQLite (``PERSISTENCE_MODULE``)."""

    application_recorder_class = SQLiteLedgerRecorder

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        default_pool = self.datastore.pool
        self.datastore.pool = LedgerSQLiteConnectionPool(
            db_name=default_pool.db_name, lock_timeout=default_pool.lock_timeout
        )
        default_pool.close()
