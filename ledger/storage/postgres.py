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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg import Connection, Cursor, Pipeline
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Identifier, Literal

from ledger.storage.reads import Dialect, LedgerReads
from ledger.storage.schema import tables_beside_the_events
from ledger.storage.sql import DDL_LOCK, TABLE_REF, group_rows
from ledger.storage.store import Head, compute_append
from ledger.tlog.leaf import ZERO_HASH
from ledger.tlog.merkle import NodeId

#: Most rows of one table a save inserts with one statement (each row count
#: is a prepared statement of its own).
_ROWS_PER_INSERT = 64


def _as_text(column: str) -> str:
    """An originator id column as text: a uuid's is its hyphenated form."""
    return f"{column}::text"


class PostgresLedgerRecorder(LedgerReads, PostgresApplicationRecorder):
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
        tables = {name.removeprefix("ledger_"): table.as_string() for name, table in self._t.items()}
        self._use_dialect(Dialect(
            placeholder="%s",
            tables={**tables, "events": self._events.as_string()},
            event_id="notification_id",
            id_text=_as_text,
            id_hyphenated=_as_text,
            id_feed=_as_text,
            stored_id=lambda originator_id: originator_id,
        ))
        self._reads["leaf_hashes"] = f"SELECT leaf_index, leaf_hash FROM {tables['leaves']} WHERE leaf_index = ANY(%s)"
        self._reads["node_hashes"] = (
            f"SELECT n.level, n.idx, n.hash FROM {tables['nodes']} n "
            "JOIN unnest(%s::smallint[], %s::bigint[]) AS k(level, idx) ON n.level = k.level AND n.idx = k.idx"
        )
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
                *(SQL(statement) for statement in tables_beside_the_events(
                    lambda name: SQL("{}.{}").format(schema, Identifier(name)).as_string())),
            ]
        )
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
        """eventsourcing's name for :meth:`create_schema`, called when the store is opened."""
        self.create_schema()

    def create_schema(self) -> None:
        """Create the whole schema if missing: eventsourcing's types and tables, the store's
        and those beside the events (``ledger.storage.schema``), one process at a time.

        Concurrent DDL from several starting processes fails in PostgreSQL
        ("tuple concurrently updated"): a session advisory lock, held on a
        connection of its own, serializes it across processes and hosts.

        A read-only database (a hot standby, ``default_transaction_read_only``) creates
        nothing: its schema is the primary's, replicated; the store is then read-only.
        """
        with self.datastore.get_connection() as conn:
            row = conn.execute("SELECT current_setting('transaction_read_only') AS read_only").fetchone()
            if row is not None and row["read_only"] == "on":
                self.read_only = True
                return
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
        also_run: Sequence[tuple[str, Sequence[Any]]] = (),
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
        for statement, values in also_run:  # written with {name} table references (ledger.storage.sql)
            control.execute(self._qualified(statement), tuple(values), prepare=False)
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
        """Insert the other rows of the transaction (idempotency records, openings, data keys): one
        statement per table and up to :data:`_ROWS_PER_INSERT` rows, not one per row."""
        for (table, columns), group in group_rows(rows).items():
            for start in range(0, len(group), _ROWS_PER_INSERT):
                chunk = group[start : start + _ROWS_PER_INSERT]
                params = [value for values in chunk for value in values]
                curs.execute(self._insert_into(table, columns, len(chunk), conn), params, prepare=True)

    def clear_old_pages(self) -> bool:
        """Nothing to do here: PostgreSQL keeps dead tuples and WAL segments until vacuum and
        recycling (docs/OPERATIONS.md, "Personal data"); what they hold is sealed."""
        return True

    def _qualified(self, statement: str) -> str:
        """A statement of ``{name}`` table references and ``?`` marks, as PostgreSQL runs it here."""
        schema = self.datastore.schema
        return TABLE_REF.sub(lambda m: f'"{schema}"."{m.group(1)}"', statement).replace("?", "%s")

    def _insert_into(self, table: str, columns: int, rows: int, conn: Any) -> str:
        key = ("insert", table, columns, rows)
        text = self._text.get(key)
        if text is None:
            row = SQL("({})").format(SQL(",").join([SQL("%s")] * columns))
            text = self._text[key] = SQL("INSERT INTO {}.{} VALUES {}").format(
                Identifier(self.datastore.schema), Identifier(table), SQL(",").join([row] * rows)
            ).as_string(conn)
        return text

    # -- the shared reads' access layer (ledger.storage.reads) ----------------------

    @contextmanager
    def _cursor(self, *, commit: bool = False) -> Iterator[Cursor[Any]]:
        """A cursor of a transaction, rows as plain tuples (no dict per row)."""
        with self.datastore.transaction(commit=commit) as curs:
            curs.row_factory = tuple_row  # type: ignore[assignment]
            yield curs

    def _leaf_hashes_query(self, indexes: list[int]) -> tuple[str, Sequence[Any]]:
        return self._reads["leaf_hashes"], (indexes,)

    def _node_hashes_query(self, ids: list[NodeId]) -> tuple[str, Sequence[Any]]:
        return self._reads["node_hashes"], ([level for level, _ in ids], [idx for _, idx in ids])
