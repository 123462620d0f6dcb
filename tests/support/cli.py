"""The CLI in process (typer's runner), and what a one-line error looks like."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from ledger.config import Settings


def where(settings: Settings) -> list[str]:
    """The options that name a ledger: its data dir, and its database when not the embedded one."""
    args = ["--data-dir", str(settings.data_dir)]
    if settings.database_url:
        args += ["--database-url", settings.database_url]
    return args


def run(*args: str, settings: Settings | None = None, check: int | None = 0) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "ledger.cli", *args]
    if settings is not None:
        argv += where(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRANSFER_LEDGER_")}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    if check is not None:
        assert done.returncode == check, (done.returncode, done.stdout, done.stderr)
    return done


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("transfer-ledger: error: ")
    assert "Traceback" not in done.stderr
    return lines[0]


@dataclass
class Done:
    """A command's exit status and output, however it was run."""

    status: int
    stdout: str
    stderr: str

    def one_line_error(self) -> str:
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1, self.stderr
        assert lines[0].startswith("transfer-ledger: error: "), self.stderr
        assert "Traceback" not in self.stderr
        return lines[0]
