"""Tampering with the real database: `transfer-ledger verify` must say where and what.

Each test records a realistic ledger (transfers, requests, grants, refusals,
onward transfers, a revocation: 31 events), signs checkpoints at sizes 12
and 23 with `transfer-ledger checkpoint`, records more, closes the
application, then changes the database directly (sqlite3 or psycopg, outside
the application: what someone with access to the database could do) and runs
`transfer-ledger verify --json`, checking the exit status, the first bad leaf
index and the kind of problem (docs/FORMAT.md section 12, docs/decisions/0004-verify-first-bad-index.md).

The SQL is written for both backends: the suite runs on SQLite, or on
PostgreSQL when TRANSFER_LEDGER_TEST_DATABASE_URL is set (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ledger.cli import app as cli_app
from ledger.config import Settings, eventsourcing_env
from ledger.service.application import TransferLedger
from ledger.tlog.leaf import ZERO_HASH, encode_leaf, originator_id_text
from ledger.tlog.merkle import CompactRange, leaf_hash
from ledger.tlog.note import Checkpoint, Signer, sign_checkpoint
from tests.support.backends import Backend
from tests.support.builders import actor, grant, onward, refuse, request, revocation, transfer

ROOT = Path(__file__).resolve().parents[2]
GRANTED = "transfer-ledger:AuthorizationGranted:v1"
REFUSED = "transfer-ledger:AuthorizationRefused:v1"
USED = "transfer-ledger:AuthorizationUsed:v1"

#: Checkpoints are signed at these sizes; the ledger then grows to SIZE.
C1, C2, SIZE = 12, 23, 31


# -- running the command line ----------------------------------------------------


@dataclass
class Run:
    status: int
    stdout: str
    stderr: str

    def report(self) -> dict[str, Any]:
        lines = self.stdout.strip().splitlines()
        assert len(lines) == 1, f"--json must print one line, got {self.stdout!r}"
        report = json.loads(lines[0])
        assert isinstance(report, dict)
        return report


def location_args(settings: Settings) -> list[str]:
    args = ["--data-dir", str(settings.data_dir)]
    if settings.database_url:
        args += ["--database-url", settings.database_url]
    return args


def run_cli(*args: str, subprocess_: bool = True) -> Run:
    """Run `transfer-ledger ARGS`: as a real process, or in-process with CliRunner."""
    if subprocess_:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRANSFER_LEDGER_")}
        done = subprocess.run(
            [sys.executable, "-m", "ledger.cli", *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
        )
        return Run(done.returncode, done.stdout, done.stderr)
    result = CliRunner().invoke(cli_app, list(args), catch_exceptions=False)
    return Run(result.exit_code, result.stdout, result.stderr)


def kinds(report: dict[str, Any]) -> set[str]:
    return {problem.split(":", 1)[0] for problem in report["problems"]}


# -- the ledger under test ---------------------------------------------------------


@dataclass
class Ledger:
    """A recorded, checkpointed ledger and raw access to its tables."""

    settings: Settings
    db: Backend

    def verify(self, *extra: str, subprocess_: bool = True) -> Run:
        return run_cli("verify", *location_args(self.settings), *extra, subprocess_=subprocess_)

    def verify_json(self, *extra: str, subprocess_: bool = True) -> tuple[int, dict[str, Any]]:
        run = self.verify("--json", *extra, subprocess_=subprocess_)
        return run.status, run.report()

    @property
    def events(self) -> str:
        return self.db.events_table

    @property
    def nid(self) -> str:
        return self.db.notification_id

    def notification_id(self, leaf_index: int) -> int:
        rows = self.db.execute(
            "SELECT notification_id FROM ledger_leaves WHERE leaf_index = ?", (leaf_index,)
        )
        return int(rows[0][0])

    def event(self, leaf_index: int) -> tuple[Any, ...]:
        """(originator_id, originator_version, topic, state) of a leaf's event row."""
        rows = self.db.execute(
            f"SELECT originator_id, originator_version, topic, state FROM {self.events} "
            f"WHERE {self.nid} = ?",
            (self.notification_id(leaf_index),),
        )
        return tuple(rows[0])

    def leaf_of_topic(self, topic: str, after: int) -> int:
        """The first leaf after ``after`` whose event has this topic."""
        for index in range(after + 1, SIZE):
            if self.event(index)[2] == topic:
                return index
        raise AssertionError(f"no {topic} after leaf {after}")

    def max_notification_id(self) -> int:
        return int(self.db.execute(f"SELECT MAX({self.nid}) FROM {self.events}")[0][0])

    def set_notification_id(self, old: int, new: int) -> None:
        self.db.execute(f"UPDATE {self.events} SET {self.nid} = ? WHERE {self.nid} = ?", (new, old))

    def rebuild_tree(self, leaf_hashes: list[bytes]) -> None:
        """Rewrite the Merkle nodes and the head for these leaf hashes, as an
        attacker who recomputes everything would."""
        tree = CompactRange()
        self.db.execute("DELETE FROM ledger_nodes")
        for digest in leaf_hashes:
            for level, idx, node in tree.append(digest):
                if level > 0:
                    self.db.execute("INSERT INTO ledger_nodes VALUES (?, ?, ?)", (level, idx, node))
        self.db.execute(
            "UPDATE ledger_head SET size = ?, last_leaf_hash = ?, frontier = ? WHERE id = 1",
            (tree.size, leaf_hashes[-1] if leaf_hashes else ZERO_HASH, tree.to_bytes()),
        )

    def leaf_hashes(self) -> list[bytes]:
        rows = self.db.execute("SELECT leaf_hash FROM ledger_leaves ORDER BY leaf_index")
        return [bytes(r[0]) for r in rows]


def record(app: TransferLedger, phase: int) -> None:
    """Three phases of a multi-hop art. 36 §3 scenario: 12, 11 and 8 events."""
    if phase == 1:
        app.set_party_policy("DE", written_authorization_required=False, set_by=actor("DE"))
        root = app.record_transfer(transfer("DE", "FR"))
        auth = app.request_authorization(request("FR", "INTERPOL", root))
        auth = app.decide(auth["id"], grant("DE", max_transfers=2))
        app.record_transfer(onward("FR", "INTERPOL", root, auth))  # transfer + use: 2 events
        app.record_transfer(transfer("NL", "DE"))
        asked = app.request_authorization(request("FR", "US", root))
        app.decide(asked["id"], refuse("DE"))
        app.record_transfer(onward("FR", "INTERPOL", root, auth, dataset_sha256="ab" * 32))
    elif phase == 2:
        root = app.record_transfer(transfer("BR", "US"))
        auth = app.request_authorization(request("US", "NL", root))
        auth = app.decide(auth["id"], grant("BR"))
        app.record_transfer(onward("US", "NL", root, auth))
        app.revoke(auth["id"], revocation("BR"))
        root = app.record_transfer(transfer("DE", "NL"))
        auth = app.request_authorization(request("NL", "FR", root))
        auth = app.decide(auth["id"], grant("DE"))
        app.record_transfer(onward("NL", "FR", root, auth))
    else:
        root = app.record_transfer(transfer("FR", "BR"))
        auth = app.request_authorization(request("BR", "US", root))
        auth = app.decide(auth["id"], grant("FR"))
        app.record_transfer(onward("BR", "US", root, auth))
        app.record_transfer(transfer("US", "DE"))
        asked = app.request_authorization(request("BR", "NL", root))
        app.decide(asked["id"], refuse("FR"))


@pytest.fixture
def ledger(backend: Backend) -> Ledger:
    """init, record 12 events, checkpoint, record 11, checkpoint, record 8; closed."""
    settings = backend.settings
    where = location_args(settings)
    done = run_cli("init", *where, subprocess_=False)
    assert done.status == 0, done.stderr
    for phase, size in [(1, C1), (2, C2), (3, SIZE)]:
        app = TransferLedger(eventsourcing_env(settings))
        try:
            record(app, phase)
            assert app.store.head().size == size
        finally:
            app.close()
        if phase < 3:
            done = run_cli("checkpoint", *where, subprocess_=False)
            assert done.status == 0, done.stderr
            assert done.stdout.split("\n")[1] == str(size)
    return Ledger(settings, backend)


def assert_failure(status: int, report: dict[str, Any], first: int | None, kind: str) -> None:
    assert status == 1, report
    assert report["ok"] is False
    assert report["first_bad_index"] == first, report
    assert kind in kinds(report), report
    assert report["problem_count"] >= len(report["problems"]) >= 1


# -- an intact ledger ----------------------------------------------------------------


def test_intact_ledger_verifies(ledger: Ledger) -> None:
    status, report = ledger.verify_json()
    assert status == 0, report
    assert report["ok"] is True
    assert report["tree_size"] == SIZE
    assert report["first_bad_index"] is None
    assert report["problems"] == [] and report["problem_count"] == 0
    assert report["checkpoints_checked"] == 2
    assert report["events_checked"] == SIZE
    frontier = ledger.db.execute("SELECT frontier FROM ledger_head")[0][0]
    assert report["root_hash"] == CompactRange.from_bytes(SIZE, bytes(frontier)).root().hex()

    text = ledger.verify()
    assert text.status == 0, text.stderr
    assert text.stdout.startswith("OK")
    assert f"{SIZE} leaves" in text.stdout and "2 checkpoint(s)" in text.stdout


def test_full_command_line_flow(backend: Backend) -> None:
    """init, checkpoint and verify as real processes, then one tampered byte."""
    settings = backend.settings
    where = location_args(settings)
    init = run_cli("init", *where)
    assert init.status == 0, init.stderr
    vkey = init.stdout.strip().splitlines()[0]
    assert vkey.startswith("transfer-ledger.example/ledger+")
    app = TransferLedger(eventsourcing_env(settings))
    try:
        record(app, 1)
    finally:
        app.close()
    signed = run_cli("checkpoint", *where)
    assert signed.status == 0, signed.stderr
    assert signed.stdout.split("\n")[:2] == ["transfer-ledger.example/ledger", str(C1)]
    ok = run_cli("verify", "--json", *where)
    assert ok.status == 0 and ok.report()["ok"] is True

    led = Ledger(settings, backend)
    state = led.event(7)[3]
    backend.execute(
        f"UPDATE {backend.events_table} SET state = ? WHERE {backend.notification_id} = ?",
        (state[:-1] + bytes([state[-1] ^ 1]), led.notification_id(7)),
    )
    bad = run_cli("verify", "--json", *where)
    assert_failure(bad.status, bad.report(), 7, "modified")
    text = run_cli("verify", *where)
    assert text.status == 1
    assert text.stdout.startswith("FAILED") and "first bad index: 7" in text.stdout


# -- modified --------------------------------------------------------------------------


@pytest.mark.parametrize("index", [5, 15, 27, SIZE - 1], ids=["before-c1", "c1-c2", "after-c2", "last"])
def test_one_byte_of_state_changed(ledger: Ledger, index: int) -> None:
    state = bytearray(ledger.event(index)[3])
    state[len(state) // 2] ^= 0x20
    ledger.db.execute(
        f"UPDATE {ledger.events} SET state = ? WHERE {ledger.nid} = ?",
        (bytes(state), ledger.notification_id(index)),
    )
    status, report = ledger.verify_json()
    assert_failure(status, report, index, "modified")
    assert all(p.startswith(f"modified: leaf {index}:") for p in report["problems"]), report


def test_topic_changed(ledger: Ledger) -> None:
    """A grant turned into a refusal (same state bytes, another topic)."""
    index = ledger.leaf_of_topic(GRANTED, after=C1)
    ledger.db.execute(
        f"UPDATE {ledger.events} SET topic = ? WHERE {ledger.nid} = ?",
        (REFUSED, ledger.notification_id(index)),
    )
    status, report = ledger.verify_json(subprocess_=False)
    assert_failure(status, report, index, "modified")
    assert kinds(report) == {"modified"}


def test_originator_version_changed(ledger: Ledger) -> None:
    index = ledger.leaf_of_topic(USED, after=0)
    ledger.db.execute(
        f"UPDATE {ledger.events} SET originator_version = originator_version + 1000 "
        f"WHERE {ledger.nid} = ?",
        (ledger.notification_id(index),),
    )
    status, report = ledger.verify_json(subprocess_=False)
    assert_failure(status, report, index, "modified")
    assert kinds(report) == {"modified"}, report["problems"]


# -- missing -------------------------------------------------------------------------


def test_event_row_deleted(ledger: Ledger) -> None:
    index = 17
    ledger.db.execute(
        f"DELETE FROM {ledger.events} WHERE {ledger.nid} = ?", (ledger.notification_id(index),)
    )
    status, report = ledger.verify_json()
    assert_failure(status, report, index, "missing")
    assert kinds(report) == {"missing"}


@pytest.mark.parametrize(("index", "count"), [(9, 1), (15, 3), (SIZE - 2, 2)])
def test_leaves_and_events_deleted(ledger: Ledger, index: int, count: int) -> None:
    for i in range(index, index + count):
        nid = ledger.notification_id(i)
        ledger.db.execute(f"DELETE FROM {ledger.events} WHERE {ledger.nid} = ?", (nid,))
        ledger.db.execute("DELETE FROM ledger_leaves WHERE leaf_index = ?", (i,))
    status, report = ledger.verify_json(subprocess_=False)
    kind = "truncated" if index + count == SIZE else "missing"  # the tail: the head counts them
    assert_failure(status, report, index, kind)
    assert kinds(report) == {kind}, report["problems"]


# -- inserted --------------------------------------------------------------------------


def forged_row(ledger: Ledger, like: int) -> tuple[Any, ...]:
    """A new event row copied from leaf ``like``'s, for an aggregate with no leaf."""
    _, _, topic, state = ledger.event(like)
    new = uuid.uuid4()
    return (new.hex if ledger.db.kind == "sqlite" else new, 1, topic, state)


def test_event_inserted_at_the_end(ledger: Ledger) -> None:
    row = forged_row(ledger, like=14)
    ledger.db.execute(
        f"INSERT INTO {ledger.events} ({ledger.nid}, originator_id, originator_version, topic, state) "
        "VALUES (?, ?, ?, ?, ?)",
        (ledger.max_notification_id() + 1, *row),
    )
    status, report = ledger.verify_json()
    assert_failure(status, report, SIZE, "inserted")
    assert kinds(report) == {"inserted"}


def test_event_inserted_in_the_middle(ledger: Ledger) -> None:
    """Make room in commit order before leaf 10's event, then slip a forged row in."""
    index = 10
    shift = ledger.max_notification_id() + 1000
    at = ledger.notification_id(index)
    ledger.db.execute(
        f"UPDATE {ledger.events} SET {ledger.nid} = {ledger.nid} + ? WHERE {ledger.nid} >= ?",
        (shift, at),
    )
    ledger.db.execute(
        "UPDATE ledger_leaves SET notification_id = notification_id + ? WHERE notification_id >= ?",
        (shift, at),
    )
    ledger.db.execute(
        f"INSERT INTO {ledger.events} ({ledger.nid}, originator_id, originator_version, topic, state) "
        "VALUES (?, ?, ?, ?, ?)",
        (at, *forged_row(ledger, like=3)),
    )
    status, report = ledger.verify_json(subprocess_=False)
    assert_failure(status, report, index, "inserted")
    assert kinds(report) == {"inserted"}


# -- reordered ---------------------------------------------------------------------------


@pytest.mark.parametrize(("first", "second"), [(13, 14), (4, 20)], ids=["adjacent", "distant"])
def test_event_rows_swapped(ledger: Ledger, first: int, second: int) -> None:
    a, b = ledger.notification_id(first), ledger.notification_id(second)
    ledger.set_notification_id(a, -1)
    ledger.set_notification_id(b, a)
    ledger.set_notification_id(-1, b)
    status, report = ledger.verify_json()
    assert_failure(status, report, first, "reordered")
    assert kinds(report) == {"reordered", "modified"}  # each row also hashes wrong at its place
    for index in (first, second):
        assert any(p.startswith(f"reordered: leaf {index}: ") for p in report["problems"]), report


@pytest.mark.parametrize(("first", "second"), [(13, 14), (4, 20)], ids=["adjacent", "distant"])
def test_event_rows_swapped_with_their_leaves_following(ledger: Ledger, first: int, second: int) -> None:
    """The rows trade places in commit order, and each leaf row is pointed at
    its event's new place: every leaf still finds its own event, but the
    events are no longer in leaf order."""
    a, b = ledger.notification_id(first), ledger.notification_id(second)
    ledger.set_notification_id(a, -1)
    ledger.set_notification_id(b, a)
    ledger.set_notification_id(-1, b)
    ledger.db.execute("UPDATE ledger_leaves SET notification_id = -1 WHERE leaf_index = ?", (first,))
    ledger.db.execute("UPDATE ledger_leaves SET notification_id = ? WHERE leaf_index = ?", (a, second))
    ledger.db.execute("UPDATE ledger_leaves SET notification_id = ? WHERE leaf_index = ?", (b, first))
    status, report = ledger.verify_json(subprocess_=False)
    assert_failure(status, report, first, "reordered")
    assert kinds(report) == {"reordered"}, report["problems"]


# -- truncated ----------------------------------------------------------------------------


@pytest.mark.parametrize("fix_up", [True, False], ids=["head-fixed-up", "head-left"])
def test_tail_truncated_below_a_checkpoint(ledger: Ledger, fix_up: bool) -> None:
    keep = C2 - 2
    nids = [ledger.notification_id(i) for i in range(keep, SIZE)]
    for nid in nids:
        ledger.db.execute(f"DELETE FROM {ledger.events} WHERE {ledger.nid} = ?", (nid,))
    ledger.db.execute("DELETE FROM ledger_leaves WHERE leaf_index >= ?", (keep,))
    if fix_up:
        ledger.rebuild_tree(ledger.leaf_hashes())
        assert ledger.db.execute("SELECT size FROM ledger_head")[0][0] == keep
    status, report = ledger.verify_json()
    assert_failure(status, report, keep, "truncated")
    assert report["tree_size"] == keep
    assert kinds(report) == {"truncated"}


# -- forked: stored checkpoints ------------------------------------------------------------


def test_checkpoint_note_edited(ledger: Ledger) -> None:
    """The root line of the stored checkpoint at C1 changed: its signature fails.
    No leaf differs, so there is no first bad index, but verification fails."""
    note = ledger.db.execute("SELECT note FROM ledger_checkpoints WHERE tree_size = ?", (C1,))[0][0]
    lines = note.split("\n")
    lines[2] = ("A" if lines[2][0] != "A" else "B") + lines[2][1:]
    ledger.db.execute(
        "UPDATE ledger_checkpoints SET note = ? WHERE tree_size = ?", ("\n".join(lines), C1)
    )
    status, report = ledger.verify_json()
    assert_failure(status, report, None, "forked")
    assert kinds(report) == {"forked"}
    assert report["problem_count"] == 1
    assert f"size {C1}" in report["problems"][0]


def test_checkpoint_row_root_changed(ledger: Ledger) -> None:
    ledger.db.execute(
        "UPDATE ledger_checkpoints SET root_hash = ? WHERE tree_size = ?", (bytes(32), C2)
    )
    status, report = ledger.verify_json(subprocess_=False)
    assert_failure(status, report, None, "forked")
    assert kinds(report) == {"forked"}


def test_checkpoint_replaced_by_one_signed_with_another_key(ledger: Ledger) -> None:
    """Someone without the ledger's key re-signs a checkpoint of a rewritten tree."""
    forger = Signer.generate("transfer-ledger.example/ledger")
    root = bytes(range(32))
    note = sign_checkpoint(Checkpoint("transfer-ledger.example/ledger", C1, root), forger)
    ledger.db.execute(
        "UPDATE ledger_checkpoints SET note = ?, root_hash = ? WHERE tree_size = ?", (note, root, C1)
    )
    status, report = ledger.verify_json(subprocess_=False)
    assert_failure(status, report, None, "forked")


def test_wrong_verifier_key(ledger: Ledger, tmp_path: Path) -> None:
    other = tmp_path / "other.vkey"
    other.write_text(Signer.generate("transfer-ledger.example/ledger").vkey() + "\n", "utf-8")
    status, report = ledger.verify_json("--vkey", str(other))
    assert_failure(status, report, None, "forked")
    assert report["problem_count"] == 2  # both stored checkpoints
    assert report["checkpoints_checked"] == 2


@pytest.mark.parametrize("index", [5, 15], ids=["before-c1", "c1-c2"])
def test_chain_rewritten_consistently(ledger: Ledger, index: int) -> None:
    """An attacker changes an event and recomputes its leaf, every later leaf
    (the chain), the Merkle nodes and the head: every row agrees with every
    other, and only the signed checkpoints tell."""
    nid = ledger.notification_id(index)
    state = bytes(ledger.event(index)[3])
    forged = state[:-1] + bytes([state[-1] ^ 1])
    ledger.db.execute(f"UPDATE {ledger.events} SET state = ? WHERE {ledger.nid} = ?", (forged, nid))

    hashes = ledger.leaf_hashes()
    prev = hashes[index - 1] if index else ZERO_HASH
    for i in range(index, SIZE):
        recorded_at = ledger.db.execute(
            "SELECT recorded_at FROM ledger_leaves WHERE leaf_index = ?", (i,)
        )[0][0]
        oid, version, topic, state = ledger.event(i)
        digest = leaf_hash(
            encode_leaf(i, prev, originator_id_text(oid), version, topic, bytes(state), recorded_at)
        )
        ledger.db.execute("UPDATE ledger_leaves SET leaf_hash = ? WHERE leaf_index = ?", (digest, i))
        hashes[i] = prev = digest
    ledger.rebuild_tree(hashes)

    status, report = ledger.verify_json()
    assert status == 1 and report["ok"] is False, report
    assert kinds(report) == {"forked"}, report
    # The last checkpoint the tree still agrees with bounds where the rewrite starts.
    covered = max([0] + [c for c in (C1, C2) if c <= index])
    assert report["first_bad_index"] == covered
    assert report["first_bad_index"] <= index


# -- stored Merkle nodes ------------------------------------------------------------------


@pytest.mark.parametrize("how", ["modified", "missing"])
def test_merkle_node_changed(ledger: Ledger, how: str) -> None:
    level, idx = 2, 4  # covers leaves [16, 20)
    if how == "modified":
        ledger.db.execute(
            "UPDATE ledger_nodes SET hash = ? WHERE level = ? AND idx = ?", (bytes(32), level, idx)
        )
    else:
        ledger.db.execute("DELETE FROM ledger_nodes WHERE level = ? AND idx = ?", (level, idx))
    status, report = ledger.verify_json(subprocess_=False)
    assert_failure(status, report, 16, how)
    assert "(level 2, index 4)" in report["problems"][0]


# -- usage errors ---------------------------------------------------------------------------


def test_not_an_initialized_data_dir(tmp_path: Path) -> None:
    nowhere = str(tmp_path / "nowhere")
    run = run_cli("verify", "--data-dir", nowhere)
    assert run.status == 2
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("transfer-ledger: error: "), run.stderr
    assert "init" in lines[0]

    run = run_cli("verify", "--json", "--data-dir", nowhere, subprocess_=False)
    assert run.status == 2
    assert run.stderr.strip().splitlines() == lines
    if run.stdout:  # a job may get a JSON object too, but never an "ok" one
        assert run.report()["ok"] is False
