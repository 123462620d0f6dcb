"""The tamper-evident store on SQLite: the embedded default.

:class:`SQLiteLedgerRecorder` extends eventsourcing's
``SQLiteApplicationRecorder``: its ``_insert_events`` runs inside the write
transaction and returns the new rowids (notification ids); the ledger's
leaves, nodes and head are written there with the same cursor, so an event
and its leaf commit together or not at all.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
    SQLiteDatastore,
    SQLiteFactory,
)

from ledger.storage.reads import Dialect, LedgerReads
from ledger.storage.schema import tables_beside_the_events
from ledger.storage.sql import TABLE_REF, group_rows
from ledger.storage.store import Head, compute_append
from ledger.tlog.leaf import ZERO_HASH
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


def _stored_id(originator_id: UUID | str) -> str:
    return originator_id.hex if isinstance(originator_id, UUID) else originator_id


def _hyphenated(column: str) -> str:
    """An originator id column in the leaf's (hyphenated) form when it holds 32
    lowercase hex digits, as :func:`ledger.tlog.leaf.originator_id_text` would make it;
    any other cell as it is."""
    return (
        f"CASE WHEN typeof({column}) = 'text' AND length({column}) = 32 "
        f"AND {column} NOT GLOB '*[^0-9a-f]*' THEN substr({column}, 1, 8) || '-' || "
        f"substr({column}, 9, 4) || '-' || substr({column}, 13, 4) || '-' || "
        f"substr({column}, 17, 4) || '-' || substr({column}, 21) ELSE {column} END"
    )


def _feed_id(column: str) -> str:
    """An originator id column of 32 characters hyphenated (and lowercased), as the feed's rows carry it."""
    return (
        f"CASE WHEN length({column}) = 32 THEN "
        f"lower(substr({column}, 1, 8) || '-' || substr({column}, 9, 4) || '-' || "
        f"substr({column}, 13, 4) || '-' || substr({column}, 17, 4) || '-' || "
        f"substr({column}, 21)) ELSE {column} END"
    )


class SQLiteLedgerRecorder(LedgerReads, SQLiteApplicationRecorder):
    """Application recorder that appends the ledger's leaves with every event."""

    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name)
        self._use_dialect(Dialect(
            placeholder="?",
            tables={"leaves": "ledger_leaves", "nodes": "ledger_nodes", "head": "ledger_head",
                    "checkpoints": "ledger_checkpoints", "events": self.events_table_name},
            event_id="rowid",
            id_text=lambda column: column,
            id_hyphenated=_hyphenated,
            id_feed=_feed_id,
            stored_id=_stored_id,
        ))

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *_SCHEMA, *tables_beside_the_events(str)]

    def create_table(self) -> None:
        """eventsourcing's name for :meth:`create_schema`, called when the store is opened."""
        self.create_schema()

    def create_schema(self) -> None:
        """Create the whole schema if missing: eventsourcing's tables, the store's and those
        beside the events (``ledger.storage.schema``), each statement on its own (autocommit).

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
        also_run: Sequence[tuple[str, Sequence[Any]]] = (),
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
        if also_insert:
            for (table, columns), rows in group_rows(also_insert).items():
                cursor.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * columns)})", rows)
        for statement, params in also_run:  # written with {name} table references (ledger.storage.sql)
            cursor.execute(TABLE_REF.sub(lambda m: m.group(1), statement), tuple(params))
        if leaf_sink is not None:
            leaf_sink.extend(append.appended)
        return notification_ids

    def clear_old_pages(self) -> bool:
        """After an erasure: copy the WAL into the database and truncate it, so that no old
        page (a destroyed key, an erased opening) stays in the WAL; secure_delete has zeroed
        them in the database. Whether the WAL was emptied (readers may hold it: retried)."""
        for _ in range(50):
            with self.datastore.get_connection(commit=True) as conn:
                busy, _log, _done = conn.cursor().sqlite_cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return True
            time.sleep(0.02)
        return False

    # -- the shared reads' access layer (ledger.storage.reads) ----------------------

    @contextmanager
    def _cursor(self, *, commit: bool = False) -> Iterator[sqlite3.Cursor]:
        """The sqlite3 cursor of a transaction, rows as plain tuples (no ``sqlite3.Row``
        per row); eventsourcing's transaction translates its errors and rolls back."""
        with self.datastore.transaction(commit=commit) as c:
            cursor = c.sqlite_cursor
            cursor.row_factory = None
            yield cursor

    def _leaf_hashes_query(self, indexes: list[int]) -> tuple[str, Sequence[Any]]:
        marks = ",".join("?" * len(indexes))
        return f"SELECT leaf_index, leaf_hash FROM ledger_leaves WHERE leaf_index IN ({marks})", indexes

    def _node_hashes_query(self, ids: list[NodeId]) -> tuple[str, Sequence[Any]]:
        # Point lookups on the primary key (a row-value IN over VALUES would scan the table).
        one = "SELECT level, idx, hash FROM ledger_nodes WHERE level = ? AND idx = ?"
        return " UNION ALL ".join([one] * len(ids)), [v for pair in ids for v in pair]


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
            # Freed pages and cells are overwritten with zeros: a destroyed data key or an
            # erased opening leaves no bytes in the file (docs/OPERATIONS.md, "Personal data").
            conn.execute("PRAGMA secure_delete=ON")
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
