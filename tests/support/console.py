"""The console in a real browser: helpers of tests/console (a served ledger seeded through the
HTTP API, signing in, screenshots). The fixtures are in tests/console/conftest.py."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx

from ledger.config import Settings, eventsourcing_env
from ledger.service.application import TransferLedger
from ledger.storage.principals import PrincipalStore
from ledger.storage.sql import SqlAccess
from tests.support import builders
from tests.support.api import PARTIES, PARTY_ROLES, Api, run_init
from tests.support.backends import Backend, fresh_backend
from tests.support.server import Server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("TRANSFER_LEDGER_REQUIRE_BROWSER") == "1"
#: Where a run writes the console's screenshots (``make screenshots``: docs/console).
SCREENSHOTS = os.environ.get("TRANSFER_LEDGER_CONSOLE_SCREENSHOTS")


def add_console_keys(settings: Settings) -> dict[str, str]:
    ledger = TransferLedger(eventsourcing_env(settings))
    try:
        store = PrincipalStore(SqlAccess(ledger.recorder))
        keys = {f"{party}-{role}": store.add(party, [role], name=f"{party} {role}")[1]
                for party in PARTIES for role in PARTY_ROLES}
        for name, party, roles in (("*-auditor", "*", ["auditor", "verifier"]), ("DE-auditor", "DE", ["auditor"]),
                                   ("NL-auditor", "NL", ["auditor"]), ("*-verifier", "*", ["verifier"])):
            keys[name] = store.add(party, roles, name=f"{name.replace('-', ' ')} (console test)")[1]
        return keys
    finally:
        ledger.close()


@dataclass
class Console:
    """A served ledger, an API client over it, and what the scenario recorded."""

    server: Server
    api: Api
    backend: Backend
    seeded: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url


def seed(api: Api) -> dict[str, Any]:
    """DE -> FR; FR -> BR (a third country) with DE's authorization; FR's request to pass the data to
    INTERPOL refused by DE; FR's use of the data, and its request for DE's consent to use them in another
    proceeding; a DE -> NL transfer of last year, by a unit without a control plan (a finding)."""
    root = api.transfer("DE", "FR", request_reference="MLA-2026-0042")
    auth = api.grant(api.request("FR", "BR", root), "DE")
    onward = api.onward("FR", "BR", root, auth)
    refused = api.request("FR", "INTERPOL", root)
    api.decide(refused, builders.refuse("DE"))
    api.ok(api.post(f"/v1/transfers/{root['id']}/uses", builders.use("FR"), "FR-recorder"), 201)
    api.ok(api.post("/v1/consent-requests", builders.consent_request(root, "FR"), "FR-recorder"), 201)
    late = api.transfer("DE", "NL", transferred_at=f"{date.today().year - 1}-06-01T10:00:00Z")
    return {"root": root, "onward": onward, "refused": refused, "late": late}


def served(tmp: Path) -> Iterator[Console]:
    with fresh_backend(tmp / "ledger-data") as backend:
        init = run_init(backend.settings)
        keys = add_console_keys(backend.settings)
        server = Server(backend.settings, tmp / "server.log").start()
        client = httpx.Client(base_url=server.url, timeout=20.0)
        api = Api(init, keys, client)  # type: ignore[arg-type]
        try:
            yield Console(server, api, backend, seed(api))
        finally:
            client.close()
            server.stop()


def sign_in(page: Any, console: Console, who: str = "*-auditor", *, justification: str = "annual control 2026",
            officer: str = "Insp. Weber", path: str = "/console/") -> None:
    page.goto(console.url + path)
    page.fill("input[name=api_key]", console.api.keys[who])
    page.fill("input[name=officer]", officer)
    page.fill("textarea[name=justification]", justification)
    page.click("button[type=submit]")


def screenshot(page: Any, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)
