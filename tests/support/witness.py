"""A witnessed ledger: ``transfer-ledger serve`` in a process of its own over an initialized data dir,
with a key per Party and role and a verifier's key for witnesses, and witnesses made and run with the
real ``transfer-ledger witness init`` and ``witness run``; the command line as a process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from ledger.config import Settings, eventsourcing_env
from ledger.service.application import TransferLedger
from ledger.storage.principals import PrincipalStore
from ledger.storage.sql import SqlAccess
from tests.support import builders
from tests.support.api import Initialized, run_init
from tests.support.server import Server, add_keys, clean_env


def cli(*args: str, check: int | None = 0, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "ledger.cli", *args], capture_output=True, text=True,
                          env={**clean_env(), **(env or {})}, timeout=120)
    if check is not None:
        assert done.returncode == check, (done.returncode, done.stdout, done.stderr)
    return done


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("transfer-ledger: error: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


@dataclass
class Witnessed:
    init: Initialized
    server: Server
    keys: dict[str, str]
    tmp: Path

    @property
    def vkey_file(self) -> Path:
        return self.init.settings.data_dir / "ledger.vkey"

    def client(self, who: str) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=10.0,
                            headers={"Authorization": f"Bearer {self.keys[who]}"})

    def record(self, count: int) -> int:
        with self.client("DE-recorder") as de:
            for _ in range(count):
                assert de.post("/v1/transfers", json=builders.transfer("DE", "FR")).status_code == 201
        return int(httpx.get(f"{self.server.url}/healthz", timeout=10.0).json()["tree_size"])

    def checkpoint(self, tree_size: int | None = None) -> str:
        with self.client("verifier") as client:
            params = {"tree_size": tree_size} if tree_size is not None else {}
            response = client.get("/v1/checkpoint", params=params)
        assert response.status_code == 200, response.text
        return response.text

    def witness_init(self, name: str) -> tuple[Path, str]:
        state = self.tmp / name.replace("/", "_")
        vkey = cli("witness", "init", "--state", str(state), "--name", name).stdout
        assert vkey.count("\n") == 1
        return state, vkey.strip()

    def witness_run(self, state: Path, url: str | None = None, check: int | None = 0,
                    key: str = "verifier") -> subprocess.CompletedProcess[str]:
        return cli("witness", "run", "--state", str(state), "--ledger-url", url or self.server.url,
                   "--log-vkey", str(self.vkey_file), check=check, env={"TRANSFER_LEDGER_API_KEY": self.keys[key]})


@contextmanager
def witnessed_ledger(settings: Settings, tmp_path: Path) -> Iterator[Witnessed]:
    """``init`` on ``settings``, the keys, and ``serve`` running until the block ends."""
    init = run_init(settings)
    keys = add_keys(settings)
    ledger_app = TransferLedger(eventsourcing_env(settings))
    try:
        keys["verifier"] = PrincipalStore(SqlAccess(ledger_app.recorder)).add("*", ["verifier"], "witness")[1]
    finally:
        ledger_app.close()
    server = Server(settings, tmp_path / "server.log")
    try:
        yield Witnessed(init, server.start(), keys, tmp_path)
    finally:
        server.kill()
