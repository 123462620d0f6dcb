"""Shared fixtures: one suite, run on SQLite (default) and on PostgreSQL.

Set ``TRANSFER_LEDGER_TEST_DATABASE_URL=postgresql://user:pw@host:port/db``
to run every backend test against that PostgreSQL server instead of SQLite
(``.ci/run`` does, with a server it starts itself). Each test gets a fresh
schema there, dropped afterwards, and a data dir of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.config import Settings, eventsourcing_env
from ledger.service.application import TransferLedger
from tests.support.backends import BACKEND, Backend, fresh_backend


def pytest_report_header(config: pytest.Config) -> str:
    return f"transfer-ledger backend: {BACKEND}"






@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    with fresh_backend(tmp_path / "ledger-data") as made:
        yield made




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
