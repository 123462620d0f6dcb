"""`verify --since CHECKPOINT`: consistency with a trusted checkpoint, then only what is new."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from ledger.audit.verify import verify_ledger
from ledger.config import Settings, eventsourcing_env
from ledger.service.application import TransferLedger
from ledger.service.checkpoints import sign_current_checkpoint
from ledger.tlog.note import Checkpoint, Signer, open_checkpoint, sign_checkpoint
from tests.support.backends import Backend
from tests.support.builders import granted_chain, onward, transfer

SIGNER = Signer.from_seed("ledger.example/incremental", bytes(range(32)))


class CountingStore:
    """Passes every call through, counting the leaf and event rows read (through
    every read method that returns them)."""

    def __init__(self, store: Any) -> None:
        self.store, self.leaves_read, self.events_read = store, 0, 0

    def read_leaves(self, start: int, limit: int) -> Any:
        rows = self.store.read_leaves(start, limit)
        self.leaves_read += len(rows)
        return rows

    def read_events(self, after: int, limit: int) -> Any:
        rows = self.store.read_events(after, limit)
        self.events_read += len(rows)
        return rows

    def read_leaves_with_events(self, start: int, limit: int) -> Any:
        """Leaf rows joined to their event rows: each counts as a leaf read, and
        each joined event row (the last four fields not None) as an event read."""
        rows = self.store.read_leaves_with_events(start, limit)
        self.leaves_read += len(rows)
        self.events_read += sum(1 for row in rows if row[6:] != (None, None, None, None))
        return rows

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def record(ledger: TransferLedger, count: int) -> None:
    for _ in range(count):
        ledger.record_transfer(transfer("DE", "FR"))


def trusted(ledger: TransferLedger) -> Checkpoint:
    note = sign_current_checkpoint(ledger.store, SIGNER).note
    return open_checkpoint(note, SIGNER.verifier(), SIGNER.name)


def test_only_the_new_leaves_are_read(ledger: TransferLedger) -> None:
    root, auth = granted_chain(ledger)
    record(ledger, 40)
    since = trusted(ledger)
    ledger.record_transfer(onward("FR", "INTERPOL", root, auth))
    record(ledger, 9)
    counting = CountingStore(ledger.store)
    report = verify_ledger(counting, SIGNER.verifier(), SIGNER.name, since=since)  # type: ignore[arg-type]
    assert report.ok, report.problems
    new = ledger.store.head().size - since.size
    assert new == 11
    assert report.events_checked == new
    assert counting.leaves_read == new + 1  # and the trusted checkpoint's last leaf
    assert counting.events_read == new
    assert report.since == since.size and report.tree_size == since.size + new
    full = verify_ledger(ledger.store, SIGNER.verifier(), SIGNER.name)
    assert full.ok and full.root_hash == report.root_hash


def test_a_modified_new_event_is_found(ledger: TransferLedger, backend: Backend) -> None:
    record(ledger, 10)
    since = trusted(ledger)
    record(ledger, 5)
    leaf = ledger.store.read_leaves(12, 1)[0]
    backend.execute(
        f"UPDATE {backend.events_table} SET topic = ? WHERE {backend.notification_id} = ?",
        ("transfer-ledger:Tampered:v1", leaf.notification_id),
    )
    report = verify_ledger(ledger.store, SIGNER.verifier(), SIGNER.name, since=since)
    assert not report.ok and report.first_bad_index == 12
    assert any(p.startswith("modified") for p in report.problems)


def test_a_rewritten_history_before_the_trusted_checkpoint_is_a_fork(ledger: TransferLedger,
                                                                      backend: Backend) -> None:
    record(ledger, 16)
    since = trusted(ledger)
    record(ledger, 3)
    backend.execute("UPDATE ledger_nodes SET hash = ? WHERE level = 3 AND idx = 0", (bytes(32),))
    report = verify_ledger(ledger.store, SIGNER.verifier(), SIGNER.name, since=since)
    assert not report.ok
    assert any(p.startswith("forked") for p in report.problems)


def test_a_ledger_shorter_than_the_trusted_checkpoint_is_truncated(ledger: TransferLedger,
                                                                   backend: Backend) -> None:
    record(ledger, 6)
    since = trusted(ledger)
    backend.execute("UPDATE ledger_head SET size = 4")
    report = verify_ledger(ledger.store, SIGNER.verifier(), SIGNER.name, since=since)
    assert not report.ok and report.first_bad_index == 4
    assert report.problems[0].startswith("truncated")


def test_nothing_new_is_consistent(ledger: TransferLedger) -> None:
    record(ledger, 3)
    since = trusted(ledger)
    report = verify_ledger(ledger.store, SIGNER.verifier(), SIGNER.name, since=since)
    assert report.ok and report.events_checked == 0 and report.tree_size == 3


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "ledger.cli", *args, "--data-dir", str(settings.data_dir)]
    if settings.database_url:
        argv += ["--database-url", settings.database_url]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def test_cli_since(settings: Settings, tmp_path: Any) -> None:
    assert cli(settings, "init").returncode == 0
    app = TransferLedger(eventsourcing_env(settings))
    try:
        record(app, 5)
        checkpoint_file = tmp_path / "trusted.checkpoint"
        done = cli(settings, "checkpoint")
        checkpoint_file.write_text(done.stdout)
        record(app, 4)
    finally:
        app.close()
    done = cli(settings, "verify", "--json", "--since", str(checkpoint_file))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] and report["since"] == 5 and report["events_checked"] == 4
    # a checkpoint the ledger's key did not sign is not something to start from
    other = Signer.from_seed("transfer-ledger.example/ledger", bytes(32))
    parsed = Checkpoint.parse(checkpoint_file.read_text().split("\n\n")[0] + "\n")
    checkpoint_file.write_text(sign_checkpoint(parsed, other))
    done = cli(settings, "verify", "--json", "--since", str(checkpoint_file))
    assert done.returncode == 2 and json.loads(done.stdout)["ok"] is False, done.stderr
    assert "transfer-ledger: error:" in done.stderr
    missing = cli(settings, "verify", "--since", str(tmp_path / "nope"))
    assert missing.returncode == 2


@pytest.mark.parametrize("size", [0, 1, 2, 7, 8, 9])
def test_every_small_trusted_size(ledger: TransferLedger, size: int) -> None:
    record(ledger, size)
    since = trusted(ledger)
    record(ledger, 3)
    report = verify_ledger(ledger.store, SIGNER.verifier(), SIGNER.name, since=since)
    assert report.ok, report.problems
    assert report.events_checked == 3
