"""Plain SQL on the ledger's database, the same way on SQLite and PostgreSQL.

For the ledger's own tables that are not events (API principals, idempotency
records): they live in the same database as the events, so every API
process on every host sees the same ones, and they use the recorder's
connection pool. Statements are written with ``?`` placeholders and
``{name}`` table references; :meth:`SqlAccess.table` qualifies a name with
the PostgreSQL schema.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder

#: A ``{name}`` table reference in a statement.
TABLE_REF = re.compile(r"\{([a-z_][a-z0-9_]*)\}")

def group_rows(rows: Sequence[tuple[str, Sequence[Any]]]) -> dict[tuple[str, int], list[Sequence[Any]]]:
    """The other rows of an append (``also_insert``: idempotency records, openings, data keys)
    by table and width, in order: one statement per group, not one per row."""
    groups: dict[tuple[str, int], list[Sequence[Any]]] = {}
    for table, values in rows:
        groups.setdefault((table, len(values)), []).append(values)
    return groups


#: PostgreSQL advisory lock key serializing the creation of the ledger's tables ("TLDG" in ASCII).
DDL_LOCK = 0x544C4447


class SqlAccess:
    """Runs statements on the database behind an application recorder."""

    def __init__(self, recorder: Any) -> None:
        if isinstance(recorder, PostgresApplicationRecorder):
            self.backend = "postgresql"
            self.schema = recorder.datastore.schema
        elif isinstance(recorder, SQLiteApplicationRecorder):
            self.backend = "sqlite"
            self.schema = None
        else:
            raise TypeError(f"unsupported recorder {type(recorder).__name__}")
        self.datastore = recorder.datastore
        self._prepared: dict[str, str] = {}

    def table(self, name: str) -> str:
        if self.schema is None:
            return name
        return f'"{self.schema}"."{name}"'

    def _prepare(self, sql: str) -> str:
        prepared = self._prepared.get(sql)
        if prepared is None:
            prepared = TABLE_REF.sub(lambda m: self.table(m.group(1)), sql)
            if self.backend == "postgresql":
                prepared = prepared.replace("?", "%s")
            if len(self._prepared) < 1000:  # the statements are the code's own: a few dozen
                self._prepared[sql] = prepared
        return prepared

    def query(self, sql: str, params: Sequence[Any] = (), *, commit: bool = False) -> list[dict[str, Any]]:
        """Run one statement in its own transaction; rows as dicts."""
        return self.script([(sql, params)], commit=commit)[-1]

    def script(
        self, statements: Sequence[tuple[str, Sequence[Any]]], *, commit: bool = True
    ) -> list[list[dict[str, Any]]]:
        """Run statements in one transaction; the rows of each, as dicts."""
        results: list[list[dict[str, Any]]] = []
        with self.datastore.transaction(commit=commit) as cursor:
            for sql, params in statements:
                cursor.execute(self._prepare(sql), tuple(params))
                results.append(_rows(cursor))
        return results

    def run_in(self, cursor: Any, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a statement on a cursor of a transaction already open (e.g. a save's)."""
        cursor.execute(self._prepare(sql), tuple(params))
        return _rows(cursor)


def _rows(cursor: Any) -> list[dict[str, Any]]:
    inner = getattr(cursor, "sqlite_cursor", cursor)  # eventsourcing wraps sqlite3 cursors
    if inner.description is None:
        return []
    return [dict(row) for row in inner.fetchall()]
