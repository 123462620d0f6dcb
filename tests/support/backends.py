"""The backend under test: SQLite, or PostgreSQL when TRANSFER_LEDGER_TEST_DATABASE_URL is set; raw access for tampering."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.config import Settings

PG_URL = os.environ.get("TRANSFER_LEDGER_TEST_DATABASE_URL") or None


BACKEND = "postgresql" if PG_URL else "sqlite"


@dataclass
class Backend:
    """Raw access to the database under test, for tampering and inspection."""

    kind: str
    settings: Settings
    schema: str | None = None

    @property
    def events_table(self) -> str:
        return "stored_events" if self.kind == "sqlite" else "transferledger_events"

    @property
    def notification_id(self) -> str:
        return "rowid" if self.kind == "sqlite" else "notification_id"

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement outside the application and commit it."""
        if self.kind == "sqlite":
            with sqlite3.connect(self.settings.database_file) as conn:
                rows = conn.execute(sql, params).fetchall()
            conn.close()
            return rows
        import psycopg

        with psycopg.connect(_plain_url(self.settings.database_url or ""), autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{self.schema}"')
            cur = conn.execute(sql.replace("?", "%s"), params)
            return list(cur.fetchall()) if cur.description else []


def _plain_url(url: str) -> str:
    return url.split("?", 1)[0]


@contextmanager
def fresh_backend(data_dir: Path) -> Iterator[Backend]:
    """A ledger database of its own with its data dir (created), on the suite's
    backend: a SQLite file in it, or a PostgreSQL schema dropped afterwards."""
    with (postgres_backend(data_dir) if PG_URL else sqlite_backend(data_dir)) as made:
        yield made


@contextmanager
def sqlite_backend(data_dir: Path) -> Iterator[Backend]:
    """A SQLite ledger database of its own (a file in ``data_dir``, created), whatever the suite's backend."""
    data_dir.mkdir(parents=True)
    yield Backend("sqlite", Settings(data_dir))


@contextmanager
def postgres_backend(data_dir: Path) -> Iterator[Backend]:
    """A PostgreSQL schema of its own on TRANSFER_LEDGER_TEST_DATABASE_URL's server, dropped
    afterwards, with its data dir (created)."""
    if not PG_URL:
        raise RuntimeError("TRANSFER_LEDGER_TEST_DATABASE_URL is not set")
    import psycopg

    data_dir.mkdir(parents=True)
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield Backend("postgresql", Settings(data_dir, f"{PG_URL}?schema={schema}"), schema)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


#: The RFC 6962 / RFC 9162 proof vectors of transparency-dev/merkle, shipped with the tests.
RFC6962_VECTORS = Path(__file__).resolve().parent.parent / "testdata" / "rfc6962"
