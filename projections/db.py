"""Where the read models live: the ledger's own database, or memory.

:class:`LedgerDb` runs on the ledger's database through the ``SqlAccess``
the caller gives (``ledger.storage.sql.SqlAccess``: ``?`` placeholders and
``{table}`` references, the same SQL on SQLite and PostgreSQL), so the
read-model rows and the tracking positions commit in the ledger's
database, in one transaction. :class:`MemoryDb` is an in-memory SQLite
database with the same interface, for replays "as of" a leaf.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

#: One statement in a transaction: run it, get its rows as dicts.
Exec = Callable[..., list[dict[str, Any]]]

#: Advisory lock key serializing schema creation on PostgreSQL: the one the
#: ledger's own tables use ("TLDG"), so that concurrent first starts wait in turn.
DDL_LOCK = 0x544C4447

#: Bound parameters per statement (SQLite allows 32766, PostgreSQL 65535).
MAX_PARAMS = 30000

#: SQLite's page cache on the connections the read models use (KiB; its default is 2 MiB):
#: a large ledger's read-model indexes are keyed by random UUIDs, and a cache that holds
#: them turns each insert's page reads into memory reads. Memory is taken only as used.
SQLITE_CACHE = "PRAGMA cache_size = -131072"


class Db(Protocol):
    backend: str

    def transaction(self) -> Any:
        """A context manager: one committed transaction; yields an :data:`Exec`."""
        ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        """Like :meth:`query`, rows as sequences in the order of the selected columns (no dicts)."""
        ...


class LedgerDb:
    """The read models in the ledger's database, through its ``SqlAccess``."""

    def __init__(self, sql: Any) -> None:
        self.sql = sql
        self.backend: str = sql.backend

    @contextmanager
    def transaction(self) -> Iterator[Exec]:
        with self.sql.datastore.transaction(commit=True) as cursor:
            def run(statement: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
                return self.sql.run_in(cursor, statement, params)  # type: ignore[no-any-return]

            if self.backend == "sqlite":
                cursor.execute(SQLITE_CACHE)
            yield run

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        if self.backend == "sqlite":
            return self.sql.script([(SQLITE_CACHE, ()), (sql, params)], commit=False)[-1]  # type: ignore[no-any-return]
        return self.sql.query(sql, params)  # type: ignore[no-any-return]

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        statement = _TABLE_REF.sub(lambda m: self.sql.table(m.group(1)), sql)
        if self.backend == "postgresql":
            statement = statement.replace("?", "%s")
        with self.sql.datastore.transaction(commit=False) as cursor:
            if self.backend == "sqlite":
                cursor.execute(SQLITE_CACHE)
            cursor.execute(statement, tuple(params))
            found = cursor.fetchall()
        if found and isinstance(found[0], dict):  # psycopg's dict rows
            return [tuple(row.values()) for row in found]
        return found  # type: ignore[no-any-return]


_TABLE_REF = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


class MemoryDb:
    """An in-memory SQLite database with the interface of :class:`LedgerDb`."""

    backend = "sqlite"

    def __init__(self) -> None:
        self._conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()

    @staticmethod
    def _prepare(sql: str) -> str:
        return _TABLE_REF.sub(lambda m: m.group(1), sql)

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self._conn.execute(self._prepare(sql), tuple(params))
        if cursor.description is None:
            return []
        return [dict(row) for row in cursor.fetchall()]

    @contextmanager
    def transaction(self) -> Iterator[Exec]:
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield self._run
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return self._run(sql, params)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        with self._lock:
            return self._conn.execute(self._prepare(sql), tuple(params)).fetchall()

    def close(self) -> None:
        self._conn.close()


def insert_rows(
    run: Exec, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], conflict: str = ""
) -> None:
    """Multi-row ``INSERT INTO {table} AS t (columns) VALUES ... conflict``, in chunks."""
    if not rows:
        return
    width = len(columns)
    per = max(1, MAX_PARAMS // width)
    head = f"INSERT INTO {{{table}}} AS t ({', '.join(columns)}) VALUES "
    one = "(" + ",".join("?" * width) + ")"
    for start in range(0, len(rows), per):
        part = rows[start:start + per]
        params: list[Any] = []
        for row in part:
            params.extend(row)
        run(head + ",".join([one] * len(part)) + " " + conflict, params)


def upsert_clause(key: Sequence[str], columns: Sequence[str]) -> str:
    """``ON CONFLICT (key) DO UPDATE SET col = excluded.col`` for every other column."""
    sets = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"


def add_clause(key: Sequence[str], counters: Sequence[str]) -> str:
    """``ON CONFLICT (key) DO UPDATE SET n = t.n + excluded.n`` for each counter."""
    sets = ", ".join(f"{c} = t.{c} + excluded.{c}" for c in counters)
    return f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"
