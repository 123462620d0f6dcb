"""Fixtures for the HTTP API, in-process: the real app over an initialized data dir.

The data dir is made by the real ``transfer-ledger init`` (in-process, through
typer's runner), on the suite's backend (SQLite, or PostgreSQL when
``TRANSFER_LEDGER_TEST_DATABASE_URL`` is set). The app runs under fastapi's
``TestClient`` used as a context manager, so its lifespan (opening and closing
the ledger) runs as it does under uvicorn.

Keys are named ``<PARTY>-<role>``: a recorder and an authority for each of
DE, FR, INTERPOL, BR and NL; ``*-auditor`` (the whole ledger), ``DE-auditor``
and ``NL-auditor`` (one Party's share), ``*-verifier``, ``*-admin`` (the key
``init`` printed) and ``revoked`` (a DE recorder whose key was revoked).
"""

from __future__ import annotations

from tests.support.api import api, module_api  # noqa: F401 - the fixtures of these tests
