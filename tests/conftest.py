"""Shared fixtures: one suite, run on SQLite (default) and on PostgreSQL.

Set ``TRANSFER_LEDGER_TEST_DATABASE_URL=postgresql://user:pw@host:port/db``
to run every backend test against that PostgreSQL server instead of SQLite
(``.ci/run`` does, with a server it starts itself). Each test gets a fresh
schema there, dropped afterwards, and a data dir of its own.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledger.config import Settings, eventsourcing_env
from ledger.service.application import TransferLedger

PG_URL = os.environ.get("TRANSFER_LEDGER_TEST_DATABASE_URL") or None
BACKEND = "postgresql" if PG_URL else "sqlite"
#: The RFC 6962 / RFC 9162 proof vectors of transparency-dev/merkle, shipped with the tests.
RFC6962_VECTORS = Path(__file__).resolve().parent / "testdata" / "rfc6962"


def pytest_report_header(config: pytest.Config) -> str:
    return f"transfer-ledger backend: {BACKEND}"


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


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    with fresh_backend(tmp_path / "ledger-data") as made:
        yield made


@contextmanager
def fresh_backend(data_dir: Path) -> Iterator[Backend]:
    """A ledger database of its own with its data dir (created): a SQLite
    file in it, or a PostgreSQL schema dropped afterwards."""
    data_dir.mkdir(parents=True)
    if not PG_URL:
        yield Backend("sqlite", Settings(data_dir))
        return
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield Backend("postgresql", Settings(data_dir, f"{PG_URL}?schema={schema}"), schema)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def settings(backend: Backend) -> Settings:
    return backend.settings


@pytest.fixture
def ledger(settings: Settings) -> Iterator[TransferLedger]:
    app = TransferLedger(eventsourcing_env(settings))
    try:
        yield app
    finally:
        app.close()
