"""A real server: ``transfer-ledger serve`` as a process on a free loopback port, and the CLI as a process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ledger.config import Settings, eventsourcing_env
from ledger.service.application import TransferLedger
from ledger.storage.principals import PrincipalStore
from ledger.storage.sql import SqlAccess

START_TIMEOUT = 30.0


#: A server stopped by SIGTERM after a complete graceful shutdown exits 0.
CLEAN_EXIT = (0,)


STOP_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TRANSFER_LEDGER_")}


def cli(*args: str, settings: Settings, check: int | None = 0) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "ledger.cli", *args, "--data-dir", str(settings.data_dir)]
    if settings.database_url:
        argv += ["--database-url", settings.database_url]
    done = subprocess.run(argv, capture_output=True, text=True, env=clean_env(), timeout=120)
    if check is not None:
        assert done.returncode == check, (done.returncode, done.stdout, done.stderr)
    return done


@dataclass
class Server:
    """``transfer-ledger serve`` in a process of its own."""

    settings: Settings
    log: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    #: More ``serve`` options, e.g. ``("--workers", "2")``.
    extra_args: tuple[str, ...] = ()
    _log_file: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        assert self.process is None
        self.port = free_port()
        argv = [sys.executable, "-m", "ledger.cli", "serve", "--data-dir", str(self.settings.data_dir),
                "--host", "127.0.0.1", "--port", str(self.port), "--graceful-timeout", "10"]
        if self.settings.database_url:
            argv += ["--database-url", self.settings.database_url]
        argv += self.extra_args
        self._log_file = self.log.open("ab")
        self.process = subprocess.Popen(argv, stdout=self._log_file, stderr=subprocess.STDOUT, env=clean_env())
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server did not answer /healthz within {START_TIMEOUT}s:\n{self.output()}")

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, and the exit status (killed, and failing, if it does not exit in time)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        finally:
            self.kill()

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"server still running {timeout}s after SIGTERM:\n{self.output()}") from None

    def kill(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
            self.process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def assert_stopped_cleanly(self, status: int) -> None:
        """Exited as after a graceful shutdown: requests finished, lifespan ended (ledger closed)."""
        log = self.output()
        assert status in CLEAN_EXIT, (status, log)
        assert "Application shutdown complete." in log and "Finished server process" in log, log
        assert "Traceback" not in log, log

    def output(self) -> str:
        return self.log.read_text("utf-8", errors="replace")[-5000:]


def add_keys(settings: Settings) -> dict[str, str]:
    ledger = TransferLedger(eventsourcing_env(settings))
    try:
        store = PrincipalStore(SqlAccess(ledger.recorder))
        keys = {f"{party}-{role}": store.add(party, [role])[1]
                for party in ("DE", "FR", "INTERPOL", "BR") for role in ("recorder", "authority")}
        keys["*-auditor"] = store.add("*", ["auditor", "verifier"])[1]
        return keys
    finally:
        ledger.close()


def consultation_leaves(settings: Settings) -> int:
    """The leaves of the consultation log (one ConsultationsLogged event each) in the ledger:
    a served ledger writes them beside the commands, for the reads it answered."""
    ledger = TransferLedger(eventsourcing_env(settings))
    try:
        rows = SqlAccess(ledger.recorder).query("SELECT COUNT(DISTINCT log_id) AS n FROM {ledger_consultations}")
        return int(rows[0]["n"])
    finally:
        ledger.close()
