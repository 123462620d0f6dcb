"""``transfer-ledger backup`` and ``restore`` (docs/OPERATIONS.md, "Backup and restore";
docs/decisions/0018-backup-and-restore.md).

A copy made while a real server records transfers holds every transfer answered
before it began; a restore verifies the copy before it replaces anything,
refuses a ledger older than (or forking from) the newest checkpoint the data
dir signed unless told to accept it, and applies again the erasures made after
the backup. On PostgreSQL, ``backup`` points to pg_dump.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from ledger.audit.verify import verify_ledger
from ledger.bootstrap import open_ledger, signer_of
from ledger.config import Settings
from ledger.service.checkpoints import sign_current_checkpoint
from ledger.storage import backup as backup_module
from ledger.storage.high_water import HighWater
from ledger.storage.idempotency import IdempotencyClaim
from ledger.tlog.note import Verifier
from tests.support.api import run_init
from tests.support.backends import BACKEND
from tests.support.builders import actor, transfer
from tests.support.cli import one_line_error, run
from tests.support.load import Load
from tests.support.server import Server, add_keys

sqlite_only = pytest.mark.skipif(BACKEND != "sqlite", reason="backup and restore copy the embedded SQLite database")

SUBJECT = "Ivan Petrovich Sidorov"


def record(settings: Settings, count: int = 1, **overrides: Any) -> list[dict[str, Any]]:
    with closing(open_ledger(settings)) as ledger:
        return [ledger.record_transfer(transfer("DE", "FR", **overrides)) for _ in range(count)]


def tree_size(settings: Settings) -> int:
    with closing(open_ledger(settings)) as ledger:
        return ledger.store.head().size


def fingerprint(settings: Settings) -> str:
    """The database's content (its file, the WAL folded in by reading it through SQLite)."""
    with closing(sqlite3.connect(settings.database_file)) as db:
        return hashlib.sha256("\n".join(db.iterdump()).encode()).hexdigest()


def keys_copied(source: Settings, target: Path) -> Settings:
    """A fresh data dir with what an operator keeps apart from the database: settings, keys, data-keys/."""
    target.mkdir(mode=0o700)
    for name in ("settings.json", "signing.key", "ledger.vkey"):
        shutil.copy2(source.data_dir / name, target / name)
    if source.data_keys_dir.exists():
        shutil.copytree(source.data_keys_dir, target / "data-keys")
    return Settings(target)


@sqlite_only
@pytest.mark.slow
def test_a_backup_under_load_holds_every_transfer_answered_before_it(settings: Settings, tmp_path: Path) -> None:
    run_init(settings)
    keys = add_keys(settings)
    out = tmp_path / "backup.sqlite3"
    server = Server(settings, tmp_path / "server.log").start()
    try:
        load = Load(server.url, keys["DE-recorder"], clients=8).start()
        try:
            load.wait_for_answers(100)
            acknowledged = [o.body for o in list(load.outcomes) if o.status == 201]
            answered_before = load.answered()
            done = run("backup", "--out", str(out), "--json", settings=settings)
            load.wait_for_answers(answered_before + 50)  # the server went on recording meanwhile
        finally:
            outcomes = load.stop()
        busy = run("restore", str(out), settings=settings, check=2)  # not under a serving server
        assert "stop every process of the data dir" in one_line_error(busy)
        server.assert_stopped_cleanly(server.stop())
    finally:
        server.kill()
    copied = json.loads(done.stdout)
    assert copied["ok"] is True and copied["tree_size"] >= len(acknowledged) > 0
    assert out.stat().st_mode & 0o777 == 0o600
    assert sum(1 for o in outcomes if o.status == 201) > len(acknowledged)

    # restored in a new data dir, with the keys copied as an operator would
    fresh = keys_copied(settings, tmp_path / "restored")
    restored = run("restore", str(out), settings=fresh)
    assert f"{copied['tree_size']} leaves" in restored.stdout and "verified" in restored.stdout
    report = json.loads(run("verify", "--json", settings=fresh).stdout)
    assert report["ok"] is True and report["tree_size"] == copied["tree_size"]
    with closing(open_ledger(fresh)) as ledger:
        for body in acknowledged:
            assert ledger.get_transfer(body["id"])["leaf_index"] == body["leaf_index"]
    # and in the same data dir, where the server recorded more since: no checkpoint was signed
    # there, so no verifier holds a larger tree, and the older one is restored
    again = json.loads(run("restore", str(out), "--json", settings=settings).stdout)
    assert again["ok"] is True and again["tree_size"] == copied["tree_size"]


@sqlite_only
def test_an_older_backup_is_refused_after_newer_checkpoints_unless_accepted(settings: Settings,
                                                                          tmp_path: Path) -> None:
    run_init(settings)
    record(settings)
    run("checkpoint", settings=settings)
    old, forked = tmp_path / "old.sqlite3", tmp_path / "forked.sqlite3"
    run("backup", "--out", str(old), settings=settings)
    old_size = tree_size(settings)
    record(settings, 2)
    run("checkpoint", settings=settings)
    run("backup", "--out", str(forked), settings=settings)
    high = json.loads(settings.high_water_file.read_text())
    assert high["tree_size"] == old_size + 2

    before = fingerprint(settings)
    refused = run("restore", str(old), settings=settings, check=2)
    assert "roll the ledger back" in one_line_error(refused) and "--accept-rollback" in refused.stderr
    assert fingerprint(settings) == before  # nothing changed
    assert not list(settings.data_dir.glob("*.restoring*"))

    accepted = json.loads(run("restore", str(old), "--accept-rollback", "--json", settings=settings).stdout)
    assert accepted["rollback_accepted"] and accepted["tree_size"] == old_size == tree_size(settings)
    high = json.loads(settings.high_water_file.read_text())
    assert high["tree_size"] == old_size and high["superseded"]["tree_size"] == old_size + 2

    # the ledger goes on from the old tree, another way: the newer backup is now a fork
    record(settings, 2, purpose={"proceeding": "another", "description": "after the rollback"})
    run("checkpoint", settings=settings)
    assert tree_size(settings) == old_size + 2
    fork = run("restore", str(forked), settings=settings, check=2)
    assert "fork" in one_line_error(fork)


@sqlite_only
def test_a_tampered_backup_is_refused_and_the_database_stays(settings: Settings, tmp_path: Path) -> None:
    run_init(settings)
    record(settings, 3)
    out = tmp_path / "backup.sqlite3"
    run("backup", "--out", str(out), settings=settings)
    record(settings)
    with closing(sqlite3.connect(out)) as db:
        rowid, state = db.execute("SELECT rowid, state FROM stored_events ORDER BY rowid LIMIT 1 OFFSET 1").fetchone()
        changed = bytearray(state)
        changed[len(changed) // 2] ^= 0x01
        db.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (bytes(changed), rowid))
        db.commit()
    before = fingerprint(settings)
    failed = run("restore", str(out), settings=settings, check=1)
    assert failed.stdout.startswith("FAILED: the backup does not verify"), failed.stdout
    assert fingerprint(settings) == before
    assert not list(settings.data_dir.glob("*.restoring*"))
    assert run("verify", settings=settings).stdout.startswith("OK: 4 leaves")


@sqlite_only
def test_an_erasure_made_after_the_backup_is_applied_again(settings: Settings, tmp_path: Path) -> None:
    run_init(settings)
    (t,) = record(settings, subjects=[SUBJECT])
    claim = IdempotencyClaim("p", "k", "h", 201)  # a refusal stored for a retry quotes the value
    with closing(open_ledger(settings)) as ledger:
        ledger.remember_refusal(claim, 409, {"detail": f"refused for {SUBJECT}"})
    out = tmp_path / "backup.sqlite3"
    run("backup", "--out", str(out), settings=settings)
    with closing(open_ledger(settings)) as ledger:
        ledger.erase_personal_data(t["id"], {"erased_by": actor("FR"), "ground": "purpose-achieved",
                                             "reasons": "proceeding closed by judgment"})
    restored = run("restore", str(out), settings=settings)
    assert restored.stdout.rstrip().endswith("; 1 erasure(s) re-applied"), restored.stdout
    with closing(open_ledger(settings)) as ledger:
        assert ledger.erasures_reapplied == 0  # done by the restore already
        view = ledger.get_transfer(t["id"])
        assert view["subjects"]["erased"]["retention_class"] == "subject-data"
        assert ledger.replay(claim) == (409, {"detail": "refused for [erased]"})
    for path in [p for p in settings.data_dir.rglob("*") if p.is_file()]:
        assert SUBJECT.encode() not in path.read_bytes(), path
    # in the database restored, the key is destroyed and its openings gone
    with closing(sqlite3.connect(settings.database_file)) as db:
        assert db.execute("SELECT COUNT(*) FROM ledger_data_keys WHERE wrapped IS NOT NULL "
                          "AND scope = ?", (f"subject-data:{t['id']}",)).fetchone()[0] == 0


@sqlite_only
def test_a_copy_made_while_another_connection_writes_is_one_consistent_ledger(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_init(settings)
    record(settings, 50, justification="x" * 2000)  # some pages to copy
    monkeypatch.setattr(backup_module, "PAGES_PER_STEP", 1)  # a write between nearly every two steps
    stop = threading.Event()

    def write() -> None:
        with closing(open_ledger(settings)) as ledger:
            while not stop.is_set():
                ledger.record_transfer(transfer("DE", "FR"))

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    seen: list[tuple[int, int]] = []
    try:
        time.sleep(0.2)
        def progress(done: int, total: int) -> None:
            seen.append((done, total))
            time.sleep(0.005)  # a slow copy: the writer commits between steps

        copied = backup_module.backup_file(settings.database_file, tmp_path / "copy.sqlite3", progress)
    finally:
        stop.set()
        writer.join(30)
    assert seen and seen[-1][0] == seen[-1][1]
    assert any(b[0] <= a[0] for a, b in zip(seen, seen[1:], strict=False))  # the copy started again
    assert tree_size(settings) > copied.tree_size >= 50
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy2(tmp_path / "copy.sqlite3", other / "ledger.sqlite3")
    with closing(open_ledger(Settings(other))) as ledger:
        verifier = Verifier.from_vkey((settings.data_dir / "ledger.vkey").read_text().strip())
        report = verify_ledger(ledger.store, verifier, settings.log_origin())
    assert report.ok and report.tree_size == copied.tree_size, report.problems


def test_backup_on_postgresql_points_to_pg_dump(settings: Settings, tmp_path: Path) -> None:
    target = settings if settings.database_url else Settings(settings.data_dir, "postgresql://u@localhost/db")
    run_init(settings)
    out = tmp_path / "backup.dump"
    refused = run("backup", "--out", str(out), settings=target, check=2)
    line = one_line_error(refused)
    assert "pg_dump" in line and "docs/OPERATIONS.md" in line
    assert not out.exists()
    refused = run("restore", str(out), settings=target, check=2)
    assert "pg_restore" in one_line_error(refused)


@sqlite_only
def test_bad_input_is_one_line_and_changes_nothing(settings: Settings, tmp_path: Path) -> None:
    run_init(settings)
    record(settings)
    existing = tmp_path / "existing"
    existing.write_text("keep me")
    assert "not overwritten" in one_line_error(run("backup", "--out", str(existing), settings=settings, check=2))
    assert existing.read_text() == "keep me"
    no_dir = tmp_path / "missing" / "backup.sqlite3"
    assert "no such directory" in one_line_error(run("backup", "--out", str(no_dir), settings=settings, check=2))

    before = fingerprint(settings)
    assert "not a ledger database" in one_line_error(run("restore", str(existing), settings=settings, check=2))
    assert "no such file" in one_line_error(run("restore", str(tmp_path / "nope"), settings=settings, check=2))
    assert fingerprint(settings) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []

    uninitialized = tmp_path / "empty"
    uninitialized.mkdir()
    line = one_line_error(run("restore", str(existing), "--data-dir", str(uninitialized), check=2))
    assert "not an initialized ledger data dir" in line


def test_every_checkpoint_stored_raises_the_high_water_record_and_none_lowers_it(settings: Settings) -> None:
    run_init(settings)
    record(settings)
    assert not settings.high_water_file.exists()
    note = run("checkpoint", settings=settings).stdout
    mark = HighWater(settings.high_water_file).read()
    assert mark is not None and (mark.tree_size, mark.note) == (1, note)
    record(settings, 2)
    with closing(open_ledger(settings)) as ledger:  # any signer of the data dir: the API, the console...
        stored = sign_current_checkpoint(ledger.store, signer_of(settings))
    mark = HighWater(settings.high_water_file).read()
    assert mark is not None and (mark.tree_size, mark.root_hash, mark.note) == (3, stored.root_hash, stored.note)
    # a smaller one, from any process, never lowers it
    assert HighWater(settings.high_water_file).raise_to(1, b"\0" * 32, note) is False
    marks = [HighWater(settings.high_water_file) for _ in range(8)]
    threads = [threading.Thread(target=m.raise_to, args=(size, bytes([size]) * 32, f"note {size}\n"))
               for size, m in zip(range(10, 18), marks, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = HighWater(settings.high_water_file).read()
    assert final is not None and (final.tree_size, final.note) == (17, "note 17\n")
