"""The API in process: the real app over an initialized data dir, keys per Party and role, problems."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from ledger.cli import app as cli
from ledger.config import Settings
from ledger.tlog.note import Checkpoint, Verifier, open_checkpoint
from tests.support import builders
from tests.support.backends import PG_URL

PARTIES = ("DE", "FR", "INTERPOL", "BR", "NL")


PARTY_ROLES = ("recorder", "authority")


ORIGIN_LINE = "transfer-ledger.example/ledger"


@dataclass(frozen=True)
class Initialized:
    settings: Settings
    vkey: str
    admin_key: str

    @property
    def verifier(self) -> Verifier:
        return Verifier.from_vkey(self.vkey)


def run_init(settings: Settings) -> Initialized:
    """``transfer-ledger init`` on ``settings``: the verifier key, then the admin key, on stdout."""
    argv = ["init", "--data-dir", str(settings.data_dir)]
    if settings.database_url:
        argv += ["--database-url", settings.database_url]
    result = CliRunner().invoke(cli, argv, env={"TRANSFER_LEDGER_DATA_DIR": None,
                                                "TRANSFER_LEDGER_DATABASE_URL": None})
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    vkey, admin_key = result.stdout.splitlines()
    assert (settings.data_dir / "ledger.vkey").read_text().strip() == vkey
    return Initialized(settings, vkey, admin_key)


@contextmanager
def fresh_settings(data_dir: Path) -> Iterator[Settings]:
    """A data dir on the suite's backend (its own PostgreSQL schema, dropped afterwards)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if not PG_URL:
        yield Settings(data_dir)
        return
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield Settings(data_dir, f"{PG_URL}?schema={schema}")
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@dataclass
class Api:
    """A TestClient over the app, the keys, and request helpers."""

    init: Initialized
    keys: dict[str, str] = field(default_factory=dict)
    client: TestClient | None = None
    _stack: ExitStack = field(default_factory=ExitStack)

    @property
    def settings(self) -> Settings:
        return self.init.settings

    # -- life cycle --------------------------------------------------------------

    def start(self) -> Api:
        self.client = self._stack.enter_context(TestClient(create_app(self.settings)))
        return self

    def stop(self) -> None:
        self._stack.close()
        self.client = None

    def restart(self) -> None:
        """Close the app (its lifespan closes the ledger) and build a new one on the same data dir."""
        self.stop()
        self._stack = ExitStack()
        self.start()

    def add_principals(self) -> None:
        store = self.app.state.principals
        for party in PARTIES:
            for role in PARTY_ROLES:
                self.keys[f"{party}-{role}"] = store.add(party, [role], name=f"{party} {role}")[1]
        for name, party, roles in (("*-auditor", "*", ["auditor"]), ("DE-auditor", "DE", ["auditor"]),
                                   ("NL-auditor", "NL", ["auditor"]), ("*-verifier", "*", ["verifier"])):
            self.keys[name] = store.add(party, roles, name=name)[1]
        revoked, self.keys["revoked"] = store.add("DE", ["recorder"], name="revoked DE recorder")
        store.revoke(revoked.id)
        self.keys["*-admin"] = self.init.admin_key

    @property
    def app(self) -> Any:
        assert self.client is not None
        return self.client.app

    # -- requests ----------------------------------------------------------------

    def headers(self, who: str | None, idem: str | None = None) -> dict[str, str]:
        out = {}
        if who is not None and who != "none":
            out["Authorization"] = f"Bearer {self.keys[who]}"
        if idem is not None:
            out["Idempotency-Key"] = idem
        return out

    def post(self, path: str, body: Any, who: str | None = "DE-recorder", idem: str | None = None,
             **kwargs: Any) -> httpx.Response:
        assert self.client is not None
        return self.client.post(path, json=body, headers=self.headers(who, idem), **kwargs)

    def get(self, path: str, who: str | None = "*-auditor", **kwargs: Any) -> httpx.Response:
        assert self.client is not None
        return self.client.get(path, headers=self.headers(who), **kwargs)

    # -- the scenario, asserting success -------------------------------------------

    def ok(self, response: httpx.Response, status: int) -> dict[str, Any]:
        assert response.status_code == status, response.text
        return response.json()  # type: ignore[no-any-return]

    def transfer(self, sender: str, recipient: str, **overrides: Any) -> dict[str, Any]:
        return self.ok(self.post("/v1/transfers", builders.transfer(sender, recipient, **overrides),
                                 f"{sender}-recorder"), 201)

    def onward(self, sender: str, recipient: str, parent: dict[str, Any], auth: dict[str, Any] | None = None,
               **overrides: Any) -> dict[str, Any]:
        body = builders.onward(sender, recipient, parent, auth, **overrides)
        return self.ok(self.post("/v1/transfers", body, f"{sender}-recorder"), 201)

    def request(self, holder: str, recipient: str, parent: dict[str, Any], **overrides: Any) -> dict[str, Any]:
        body = builders.request(holder, recipient, parent, **overrides)
        return self.ok(self.post("/v1/authorization-requests", body, f"{holder}-recorder"), 201)

    def decide(self, auth: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        party = body["decided_by"]["party"]
        return self.ok(self.post(f"/v1/authorization-requests/{auth['id']}/decision", body,
                                 f"{party}-authority"), 200)

    def grant(self, auth: dict[str, Any], by: str = "DE", **conditions: Any) -> dict[str, Any]:
        return self.decide(auth, builders.grant(by, **conditions))

    def revoke(self, auth: dict[str, Any], by: str = "DE") -> dict[str, Any]:
        return self.ok(self.post(f"/v1/authorizations/{auth['id']}/revocation", builders.revocation(by),
                                 f"{by}-authority"), 200)

    def chain(self, **conditions: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """DE -> FR recorded; FR asked DE to pass it on to INTERPOL; DE granted."""
        root = self.transfer("DE", "FR")
        auth = self.grant(self.request("FR", "INTERPOL", root), "DE", **conditions)
        return root, auth

    # -- the ledger ------------------------------------------------------------------

    def tree_size(self) -> int:
        return self.ok(self.get("/healthz", None), 200)["tree_size"]  # type: ignore[no-any-return]

    def checkpoint(self) -> Checkpoint:
        response = self.get("/v1/checkpoint", "*-verifier")
        assert response.status_code == 200, response.text
        return open_checkpoint(response.text, self.init.verifier, ORIGIN_LINE)


@contextmanager
def serving(settings: Settings) -> Iterator[Api]:
    api = Api(run_init(settings)).start()
    try:
        api.add_principals()
        yield api
    finally:
        api.stop()


def problem(response: httpx.Response, status: int, rule: str | None = None) -> dict[str, Any]:
    """Assert an RFC 9457 problem with this status (and rule); return it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert body["type"] == f"/problems/{body['rule']}"
    if rule is not None:
        assert body["rule"] == rule, body
    return body  # type: ignore[no-any-return]


@pytest.fixture
def api(settings: Settings) -> Iterator[Api]:
    """A fresh ledger and app for one test."""
    with serving(settings) as out:
        yield out


@pytest.fixture(scope="module")
def module_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One ledger and app shared by a module's tests (they must not depend on its contents)."""
    with fresh_settings(tmp_path_factory.mktemp("api") / "ledger-data") as settings, serving(settings) as out:
        yield out
