"""The tamper-evident store on PostgreSQL: for several writers and hosts.

:class:`PostgresLedgerRecorder` extends eventsourcing's
``PostgresApplicationRecorder``. Its insert takes an EXCLUSIVE lock on the
events table, inserts the events and reads the ledger's head in the same
transaction (psycopg pipeline mode), then writes the leaves, nodes and new
head and commits: the lock serializes every writer, so the head is safe to
read and extend there. Notification ids may have
gaps after rejected writes; the leaf index never does. Record times come from
the database server's clock, one clock for every API process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg import Connection, Pipeline
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Identifier, Literal

from domain.values import format_datetime
from ledger.storage.sql import DDL_LOCK
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

#: Makes a row type (a named tuple) from a database row tuple, without a call per field.
_new_row = tuple.__new__

#: Most rows of one table a save inserts with one statement (each row count
#: is a prepared statement of its own).
_ROWS_PER_INSERT = 64



class PostgresLedgerRecorder(PostgresApplicationRecorder):
    """Application recorder that appends the ledger's leaves with every event."""

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        schema = Identifier(self.datastore.schema)
        id_type = Identifier(self.datastore.originator_id_type)
        self._t = {
            name: SQL("{}.{}").format(schema, Identifier(name))
            for name in ("ledger_leaves", "ledger_nodes", "ledger_head", "ledger_checkpoints")
        }
        self._events = SQL("{}.{}").format(schema, Identifier(self.events_table_name))
        self.sql_create_statements.extend(
            [
                SQL(
                    "CREATE TABLE IF NOT EXISTS {} ("
                    "leaf_index bigint PRIMARY KEY, "
                    "notification_id bigint NOT NULL UNIQUE, "
                    "originator_id {} NOT NULL, "
                    "originator_version bigint NOT NULL, "
                    "recorded_at text NOT NULL, "
                    "leaf_hash bytea NOT NULL, "
                    "UNIQUE (originator_id, originator_version))"
                ).format(self._t["ledger_leaves"], id_type),
                SQL(
                    "CREATE TABLE IF NOT EXISTS {} ("
                    "level smallint NOT NULL, idx bigint NOT NULL, hash bytea NOT NULL, "
                    "PRIMARY KEY (level, idx))"
                ).format(self._t["ledger_nodes"]),
                SQL(
                    "CREATE TABLE IF NOT EXISTS {} ("
                    "id smallint PRIMARY KEY CHECK (id = 1), size bigint NOT NULL, "
                    "last_leaf_hash bytea NOT NULL, frontier bytea NOT NULL)"
                ).format(self._t["ledger_head"]),
                SQL(
                    "INSERT INTO {} VALUES (1, 0, '\\x" + ZERO_HASH.hex() + "', '') "
                    "ON CONFLICT (id) DO NOTHING"
                ).format(self._t["ledger_head"]),
                SQL(
                    "CREATE TABLE IF NOT EXISTS {} ("
                    "tree_size bigint PRIMARY KEY, root_hash bytea NOT NULL, "
                    "note text NOT NULL, created_at text NOT NULL)"
                ).format(self._t["ledger_checkpoints"]),
            ]
        )
        self._select_head = SQL(
            "SELECT size, last_leaf_hash, frontier, clock_timestamp() AS now FROM {} WHERE id = 1"
        ).format(self._t["ledger_head"])
        # One statement writes a batch's leaves, its completed nodes and the new
        # head (data-modifying WITH queries always run to completion): one
        # prepared statement, whatever the batch, instead of one per row.
        self._append = SQL(
            "WITH leaves AS (INSERT INTO {leaves} "
            "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::{id_type}[], %s::bigint[], "
            "%s::text[], %s::bytea[])), "
            "nodes AS (INSERT INTO {nodes} SELECT * FROM unnest(%s::smallint[], %s::bigint[], %s::bytea[])) "
            "UPDATE {head} SET size = %s, last_leaf_hash = %s, frontier = %s WHERE id = 1"
        ).format(
            leaves=self._t["ledger_leaves"], nodes=self._t["ledger_nodes"], head=self._t["ledger_head"],
            id_type=id_type,
        )
        # The write path's statements as text, rendered once: a composed SQL
        # object is rendered again (identifiers escaped) at every execute.
        self._text: dict[Any, str] = {}
        self._write_text: dict[str, str] | None = None

    def create_table(self) -> None:
        """Create types and tables, one process at a time.

        Concurrent DDL from several starting processes fails in PostgreSQL
        ("tuple concurrently updated"): a session advisory lock, held on a
        connection of its own, serializes it across processes and hosts.
        """
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (DDL_LOCK,))
            try:
                super().create_table()
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (DDL_LOCK,))

    def _rendered(self, key: Any, statement: Any, conn: Any) -> str:
        text = self._text.get(key)
        if text is None:
            text = self._text[key] = statement.as_string(conn)
        return text

    def _append_one(self, nodes: int, conn: Any) -> str:
        """The statement that writes one leaf (a command saved on its own),
        ``nodes`` completed nodes and the head: as :attr:`_append`, with plain
        parameters (cheaper to adapt than arrays); one per number of nodes (at
        most one per level of the tree)."""
        text = self._text.get(nodes)
        if text is None:
            parts = [SQL("WITH leaves AS (INSERT INTO {} VALUES (%s,%s,%s,%s,%s,%s))").format(
                self._t["ledger_leaves"]
            )]
            if nodes:
                parts.append(SQL(", nodes AS (INSERT INTO {} VALUES {})").format(
                    self._t["ledger_nodes"], SQL(",").join([SQL("(%s,%s,%s)")] * nodes)
                ))
            parts.append(SQL(" UPDATE {} SET size = %s, last_leaf_hash = %s, frontier = %s WHERE id = 1").format(
                self._t["ledger_head"]
            ))
            text = self._text[nodes] = SQL("").join(parts).as_string(conn)
        return text

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """Save a batch of events and append their leaves: one transaction, two round trips.

        As eventsourcing's insert (the same statements, locks and
        notification), written as one pipeline of two parts:

        1. ``BEGIN``, the lock timeout, the EXCLUSIVE lock on the events table,
           then one statement that inserts the events, reads the head (after
           the lock is granted, so no other writer can move it) and notifies
           the events' channel, then one sync: the new notification ids and
           the head come back together;
        2. the leaves, the completed nodes and the new head in one statement,
           the idempotency rows, and ``COMMIT``, sent with the pipeline's
           closing sync.

        eventsourcing's ``conn.transaction()`` inside a pipeline syncs three
        more times (after ``BEGIN``, before ``COMMIT`` and at the end), each a
        round trip to the server. If anything fails, the transaction is rolled
        back before the connection goes back to the pool, and nothing of the
        batch is written.
        """
        if not stored_events:
            return super().insert_events(stored_events, **kwargs)
        with self.datastore.get_connection() as conn:
            try:
                with conn.pipeline() as pipeline:
                    return self._append_in_pipeline(conn, pipeline, stored_events, **kwargs)
            except BaseException:
                # Roll back what the failed batch did (psycopg also forgets the
                # statements it prepared); if the connection itself is broken,
                # the pool discards it, and the first error is the one to raise.
                if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
                    with contextlib.suppress(Exception):
                        conn.rollback()
                raise

    def _append_in_pipeline(
        self,
        conn: Connection[DictRow],
        pipeline: Pipeline,
        stored_events: Sequence[StoredEvent],
        *,
        leaf_sink: list[Any] | None = None,
        also_insert: Sequence[tuple[str, Sequence[Any]]] = (),
        **_: Any,
    ) -> list[int]:
        text = self._write_statements(conn)
        control = conn.cursor()
        control.execute(text["begin"], prepare=False)
        control.execute(text["lock_timeout"], prepare=True)
        control.execute(text["lock"], prepare=True)
        # The events' insert, the head read and the notification in one
        # statement: it starts after the lock is granted, so its snapshot sees
        # every earlier writer's commit and no other writer can move the head.
        insert = conn.cursor()
        if len(stored_events) == 1:
            event = stored_events[0]
            insert.execute(
                text["insert_one"],
                (event.originator_id, event.originator_version, event.topic, event.state),
                prepare=True,
            )
        else:
            insert.execute(
                text["insert"],
                (
                    [e.originator_id for e in stored_events], [e.originator_version for e in stored_events],
                    [e.topic for e in stored_events], [e.state for e in stored_events],
                ),
                prepare=True,
            )
        # Sync now: a conflict (a version already stored) raises here, and the
        # ids and the head arrive with it.
        pipeline.sync()
        row = insert.fetchone()
        assert row is not None
        notification_ids = row["ids"]
        head = Head(row["size"], bytes(row["last_leaf_hash"]), bytes(row["frontier"]))
        append = compute_append(head, stored_events, notification_ids, row["now"], lambda i: i)
        leaves, nodes, new_head = append.leaves, append.nodes, append.head
        if len(leaves) == 1:
            params: list[Any] = [*leaves[0]]
            for node in nodes:
                params.extend(node)
            params += (new_head.size, new_head.last_leaf_hash, new_head.frontier)
            control.execute(self._append_one(len(nodes), conn), params, prepare=True)
        else:
            control.execute(
                self._rendered("append", self._append, conn),
                (
                    [leaf[0] for leaf in leaves], [leaf[1] for leaf in leaves], [leaf[2] for leaf in leaves],
                    [leaf[3] for leaf in leaves], [leaf[4] for leaf in leaves], [leaf[5] for leaf in leaves],
                    [node[0] for node in nodes], [node[1] for node in nodes], [node[2] for node in nodes],
                    new_head.size, new_head.last_leaf_hash, new_head.frontier,
                ),
                prepare=True,
            )
        self._insert_rows(control, also_insert, conn)
        control.execute(text["commit"], prepare=False)
        # The pipeline's closing sync sends the above and waits for the commit.
        if leaf_sink is not None:
            leaf_sink.extend(append.appended)
        return notification_ids

    def _write_statements(self, conn: Any) -> dict[str, str]:
        """The write path's fixed statements, rendered once (a composed SQL
        object is rendered again, identifiers escaped, at every execute)."""
        text = self._write_text
        if text is None:
            events = self._events.as_string(conn)
            id_type = Identifier(self.datastore.originator_id_type).as_string(conn)
            with_new = f"WITH new AS (INSERT INTO {events} (originator_id, originator_version, topic, state)"
            then_head = SQL(
                "RETURNING notification_id) "
                "SELECT ARRAY(SELECT notification_id FROM new ORDER BY notification_id) AS ids, "
                "h.size, h.last_leaf_hash, h.frontier, clock_timestamp() AS now "
                "FROM {} h, pg_notify({}, '') AS notified WHERE h.id = 1"
            ).format(self._t["ledger_head"], Literal(self.channel_name)).as_string(conn)
            text = self._write_text = {
                "begin": "BEGIN",
                "lock_timeout": self.lock_table_statements[0].as_string(conn),
                "lock": self.lock_table_statements[1].as_string(conn),
                # As eventsourcing's insert and NOTIFY, without the composite
                # type (plain parameters for one event, one array per column
                # for several), with the head read; the ids in insertion order
                # (the sequence is drawn row by row, under the lock).
                "insert_one": f"{with_new} VALUES (%s::{id_type}, %s, %s, %s) {then_head}",
                "insert": f"{with_new} SELECT * FROM unnest(%s::{id_type}[], %s::bigint[], %s::text[], "
                f"%s::bytea[]) {then_head}",
                "commit": "COMMIT",
            }
        return text

    def _insert_rows(self, curs: Any, rows: Sequence[tuple[str, Sequence[Any]]], conn: Any) -> None:
        """Insert the other rows of the transaction (idempotency records): one
        statement per table and up to :data:`_ROWS_PER_INSERT` rows, not one per row."""
        groups: dict[tuple[str, int], list[Sequence[Any]]] = {}
        for table, values in rows:
            groups.setdefault((table, len(values)), []).append(values)
        for (table, columns), group in groups.items():
            for start in range(0, len(group), _ROWS_PER_INSERT):
                chunk = group[start : start + _ROWS_PER_INSERT]
                params = [value for values in chunk for value in values]
                curs.execute(self._insert_into(table, columns, len(chunk), conn), params, prepare=True)

    def _insert_into(self, table: str, columns: int, rows: int, conn: Any) -> str:
        key = ("insert", table, columns, rows)
        text = self._text.get(key)
        if text is None:
            row = SQL("({})").format(SQL(",").join([SQL("%s")] * columns))
            text = self._text[key] = SQL("INSERT INTO {}.{} VALUES {}").format(
                Identifier(self.datastore.schema), Identifier(table), SQL(",").join([row] * rows)
            ).as_string(conn)
        return text

    # -- reads -----------------------------------------------------------------

    def _query(self, sql: Any, params: Sequence[Any] = ()) -> list[Any]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(sql, params)
            return list(curs.fetchall())

    def head(self) -> Head:
        row = self._query(self._select_head)[0]
        return Head(row["size"], bytes(row["last_leaf_hash"]), bytes(row["frontier"]))

    @staticmethod
    def _leaf(r: dict[str, Any]) -> LeafRow:
        return LeafRow(
            r["leaf_index"],
            r["notification_id"],
            originator_id_text(r["originator_id"]),
            r["originator_version"],
            r["recorded_at"],
            bytes(r["leaf_hash"]),
        )

    def _rows(self, sql: Any, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Like :meth:`_query`, as plain tuples (no dict per row)."""
        with self.datastore.transaction(commit=False) as curs:
            curs.row_factory = tuple_row  # type: ignore[assignment]
            curs.execute(sql, params)
            return list(curs.fetchall())

    def read_leaves(self, start: int, limit: int) -> list[LeafRow]:
        rows = self._rows(
            SQL(
                "SELECT leaf_index, notification_id, originator_id::text, originator_version, recorded_at, "
                "leaf_hash FROM {} WHERE leaf_index >= %s ORDER BY leaf_index LIMIT %s"
            ).format(self._t["ledger_leaves"]),
            (start, limit),
        )
        # ``::text`` is the hyphenated form of a uuid column; a text column's
        # 32-hex-digit ids are converted as everywhere.
        return [
            _new_row(LeafRow, r) if type(r[5]) is bytes and len(r[2]) != 32
            else LeafRow(r[0], r[1], originator_id_text(r[2]), r[3], r[4], bytes(r[5]))
            for r in rows
        ]

    def read_events(self, after_notification_id: int, limit: int) -> list[EventRow]:
        rows = self._rows(
            SQL(
                "SELECT notification_id, originator_id::text, originator_version, topic, state "
                "FROM {} WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
            ).format(self._events),
            (after_notification_id, limit),
        )
        return [
            _new_row(EventRow, r) if type(r[4]) is bytes and len(r[1]) != 32
            else EventRow(r[0], originator_id_text(r[1]), r[2], r[3], bytes(r[4]))
            for r in rows
        ]

    def read_leaves_with_events(self, start: int, limit: int) -> list[tuple[Any, ...]]:
        """Leaves from ``start`` in index order, each with its event row's fields:
        see :meth:`ledger.storage.store.LedgerStore.read_leaves_with_events`."""
        return self._rows(
            SQL(
                "SELECT l.leaf_index, l.notification_id, l.originator_id::text, l.originator_version, "
                "l.recorded_at, l.leaf_hash, e.originator_id::text, e.originator_version, e.topic, e.state "
                "FROM {} l LEFT JOIN {} e ON e.notification_id = l.notification_id "
                "WHERE l.leaf_index >= %s ORDER BY l.leaf_index LIMIT %s"
            ).format(self._t["ledger_leaves"], self._events),
            (start, limit),
        )

    def read_feed(self, start: int, limit: int) -> list[tuple[LeafRow, EventRow]]:
        """Leaves from ``start`` in leaf order, each with its event row."""
        rows = self._query(
            SQL(
                "SELECT l.*, e.topic, e.state FROM {} l JOIN {} e ON e.notification_id = l.notification_id "
                "WHERE l.leaf_index >= %s ORDER BY l.leaf_index LIMIT %s"
            ).format(self._t["ledger_leaves"], self._events),
            (start, limit),
        )
        out = []
        for r in rows:
            leaf = self._leaf(r)
            out.append((leaf, EventRow(leaf.notification_id, leaf.originator_id, leaf.originator_version,
                                       r["topic"], bytes(r["state"]))))
        return out

    def read_feed_rows(self, start: int, limit: int) -> list[FeedRow]:
        """The feed as plain rows (no per-row objects): the read models read it in bulk."""
        rows = self._query(
            SQL(
                "SELECT l.leaf_index, l.recorded_at, l.originator_id::text AS oid, l.originator_version, "
                "e.topic, e.state FROM {} l JOIN {} e ON e.notification_id = l.notification_id "
                "WHERE l.leaf_index >= %s ORDER BY l.leaf_index LIMIT %s"
            ).format(self._t["ledger_leaves"], self._events),
            (start, limit),
        )
        return [
            (r["leaf_index"], r["recorded_at"], r["oid"], r["originator_version"], r["topic"], bytes(r["state"]))
            for r in rows
        ]

    def count_events(self) -> int:
        return int(self._query(SQL("SELECT COUNT(*) AS n FROM {}").format(self._events))[0]["n"])

    def read_nodes(self, ids: Sequence[NodeId]) -> list[bytes | None]:
        found: dict[NodeId, bytes] = {}
        leaves = [idx for level, idx in ids if level == 0]
        inner = [(level, idx) for level, idx in ids if level > 0]
        with self.datastore.transaction(commit=False) as curs:
            if leaves:
                curs.execute(
                    SQL("SELECT leaf_index, leaf_hash FROM {} WHERE leaf_index = ANY(%s)").format(
                        self._t["ledger_leaves"]
                    ),
                    (leaves,),
                )
                found.update(((0, r["leaf_index"]), bytes(r["leaf_hash"])) for r in curs.fetchall())
            if inner:
                curs.execute(
                    SQL(
                        "SELECT n.level, n.idx, n.hash FROM {} n "
                        "JOIN unnest(%s::smallint[], %s::bigint[]) AS k(level, idx) "
                        "ON n.level = k.level AND n.idx = k.idx"
                    ).format(self._t["ledger_nodes"]),
                    ([lv for lv, _ in inner], [ix for _, ix in inner]),
                )
                found.update(((r["level"], r["idx"]), bytes(r["hash"])) for r in curs.fetchall())
        return [found.get(tuple(i)) for i in ids]  # type: ignore[arg-type]

    def read_level_range(self, level: int, first: int, last: int) -> list[tuple[int, bytes]]:
        if level == 0:
            rows = self._rows(
                SQL(
                    "SELECT leaf_index, leaf_hash FROM {} WHERE leaf_index BETWEEN %s AND %s ORDER BY leaf_index"
                ).format(self._t["ledger_leaves"]),
                (first, last),
            )
        else:
            rows = self._rows(
                SQL(
                    "SELECT idx, hash FROM {} WHERE level = %s AND idx BETWEEN %s AND %s ORDER BY idx"
                ).format(self._t["ledger_nodes"]),
                (level, first, last),
            )
        return [r if type(r[1]) is bytes else (r[0], bytes(r[1])) for r in rows]

    def leaf_of_event(self, originator_id: UUID, originator_version: int) -> LeafRow | None:
        rows = self._query(
            SQL("SELECT * FROM {} WHERE originator_id = %s AND originator_version = %s").format(
                self._t["ledger_leaves"]
            ),
            (originator_id, originator_version),
        )
        return self._leaf(rows[0]) if rows else None

    def checkpoints(self) -> list[StoredCheckpoint]:
        rows = self._query(
            SQL("SELECT * FROM {} ORDER BY tree_size").format(self._t["ledger_checkpoints"])
        )
        return [
            StoredCheckpoint(r["tree_size"], bytes(r["root_hash"]), r["note"], r["created_at"])
            for r in rows
        ]

    def save_checkpoint(self, tree_size: int, root_hash: bytes, note: str) -> StoredCheckpoint:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL("INSERT INTO {} VALUES (%s,%s,%s,%s) ON CONFLICT (tree_size) DO NOTHING").format(
                    self._t["ledger_checkpoints"]
                ),
                (tree_size, root_hash, note, format_datetime(datetime.now(UTC))),
            )
            curs.execute(
                SQL("SELECT * FROM {} WHERE tree_size = %s").format(self._t["ledger_checkpoints"]),
                (tree_size,),
            )
            r = curs.fetchone()
        assert r is not None
        return StoredCheckpoint(r["tree_size"], bytes(r["root_hash"]), r["note"], r["created_at"])
