"""Audit bundles: `transfer-ledger export` and `transfer-ledger verify-export`.

A realistic ledger (tests/support/builders.py) is exported on the backend under test;
the bundle must verify offline, as a real process, with nothing but its files
and the verifier key. Then the bundle is tampered with, file by file, and
verify-export must exit 1 naming the first bad ``file:line``. Malformed
bundles, keys and proofs are rejected with one precise line, never a
traceback. Hypothesis fuzzes the tlog-proof parser and verify_bundle on
mutated bundles; the interesting cases it found are kept as explicit tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ledger.audit.bundles import (
    BundleError,
    BundleReport,
    ExportError,
    ExportRefused,
    decode_state,
    event_object,
    events_line,
    export_bundle,
    load_vkey,
    verify_bundle,
)
from ledger.cli import app as cli_app
from ledger.config import Settings, eventsourcing_env
from ledger.service.application import TransferLedger
from ledger.service.checkpoints import current_tree, sign_current_checkpoint
from ledger.tlog.leaf import encode_leaf
from ledger.tlog.merkle import CompactRange, inclusion_proof, leaf_hash
from ledger.tlog.note import Checkpoint, Signer, Verifier, sign_checkpoint
from ledger.tlog.tlog_proof import (
    HEADER,
    TlogProof,
    TlogProofError,
    format_tlog_proof,
    parse_tlog_proof,
    verify_tlog_proof,
)
from tests.support.backends import Backend
from tests.support.builders import (
    actor,
    grant,
    granted_chain,
    onward,
    refuse,
    request,
    revocation,
    transfer,
)
from tests.support.cli import Done, where

ROOT = Path(__file__).resolve().parents[2]
FORMAT_MD = ROOT / "docs" / "FORMAT.md"
ORIGIN = "transfer-ledger.example/ledger"
TRANSFER_TOPIC = "transfer-ledger:TransferRecorded:v1"


# -- helpers -------------------------------------------------------------------------


def in_process(*args: str) -> Done:
    """`transfer-ledger ARGS` in this process (quicker; the exit status and output are the same)."""
    result = CliRunner().invoke(cli_app, list(args), catch_exceptions=False)
    return Done(result.exit_code, result.stdout, result.stderr)


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Done:
    """`transfer-ledger ARGS` as a real process, without TRANSFER_LEDGER_* settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TRANSFER_LEDGER_")}
    done = subprocess.run(
        [sys.executable, "-m", "ledger.cli", *args], capture_output=True, text=True,
        env={**base, **(env or {})}, cwd=cwd or ROOT, timeout=120, check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return Done(done.returncode, done.stdout, done.stderr)


def record_scenario(app: TransferLedger) -> list[str]:
    """A multi-hop art. 36 §3 history: policy, transfers, grants, a refusal,
    onward transfers and a revocation. Returns the transfer ids, in order."""
    app.set_party_policy("DE", written_authorization_required=False, set_by=actor("DE"))
    root, auth = granted_chain(app, max_transfers=2)
    hop = app.record_transfer(onward("FR", "INTERPOL", root, auth))
    other = app.record_transfer(transfer("NL", "DE", subjects=["person:NL-2026/7"], item_count=12))
    asked = app.request_authorization(request("FR", "US", root))
    app.decide(asked["id"], refuse("DE"))
    second = app.record_transfer(transfer("BR", "US"))
    auth2 = app.decide(app.request_authorization(request("US", "NL", second))["id"], grant("BR"))
    third = app.record_transfer(onward("US", "NL", second, auth2))
    app.revoke(auth2["id"], revocation("BR"))
    return [root["id"], hop["id"], other["id"], second["id"], third["id"]]


@dataclass
class Bundle:
    path: Path
    vkey: Path
    signer: Signer
    transfers: list[str]
    proofs: dict[str, int]
    size: int

    def lines(self) -> list[bytes]:
        return (self.path / "events.jsonl").read_bytes().splitlines(keepends=True)

    def write_lines(self, lines: list[bytes]) -> None:
        (self.path / "events.jsonl").write_bytes(b"".join(lines))

    def line(self, number: int) -> dict[str, Any]:
        return json.loads(self.lines()[number - 1])

    def proof_file(self, transfer_id: str) -> Path:
        return self.path / "proofs" / f"{transfer_id}.tlog-proof"

    def verify(self, vkey: Verifier | None = None) -> BundleReport:
        return verify_bundle(self.path, vkey or self.signer.verifier())

    def copy(self, to: Path) -> Bundle:
        shutil.copytree(self.path, to)
        return Bundle(to, self.vkey, self.signer, self.transfers, self.proofs, self.size)


def line_bytes(obj: dict[str, Any]) -> bytes:
    """A line in the exporter's form (member order as given)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


@pytest.fixture
def bundle(ledger: TransferLedger, tmp_path: Path) -> Bundle:
    """The scenario recorded on the backend under test and exported in-process,
    with proofs for three transfers."""
    transfers = record_scenario(ledger)
    signer = Signer.generate(ORIGIN)
    vkey = tmp_path / "ledger.vkey"
    vkey.write_text(signer.vkey() + "\n")
    chosen = [transfers[0], transfers[1], transfers[4]]
    result = export_bundle(ledger, signer, tmp_path / "bundle", chosen)
    return Bundle(result.out_dir, vkey, signer, transfers, result.proofs, result.tree_size)


def tampered(bundle: Bundle) -> tuple[int, dict[str, Any], str]:
    """verify-export as a process: exit status, JSON report, human first line."""
    done = cli("verify-export", str(bundle.path), "--vkey", str(bundle.vkey), "--json")
    report = json.loads(done.stdout)
    human = in_process("verify-export", str(bundle.path), "--vkey", str(bundle.vkey))
    assert human.status == done.status
    return done.status, report, human.stdout.splitlines()[0]


def assert_first_bad(bundle: Bundle, file: str, line: int | None, text: str) -> dict[str, Any]:
    status, report, human = tampered(bundle)
    assert status == 1, report
    assert report["ok"] is False
    assert (report["first_bad_file"], report["first_bad_line"]) == (file, line), report["problems"]
    where_ = f"{file}:{line}" if line is not None else file
    assert report["problems"][0].startswith(f"{where_}: "), report["problems"]
    assert re.search(text, report["problems"][0]), report["problems"][0]
    assert human.startswith(f"FAILED: {where_}: ")
    # in-process, the same verdict
    again = bundle.verify()
    assert (again.first_bad_file, again.first_bad_line) == (file, line)
    return report


# -- export, then verify-export as real processes ----------------------------------


def test_export_and_verify_export_as_processes(settings: Settings, tmp_path: Path) -> None:
    assert cli("init", *where(settings)).status == 0
    app = TransferLedger(eventsourcing_env(settings))
    try:
        transfers = record_scenario(app)
        size, root = current_tree(app.store)
        rows = app.store.read_feed(0, size)
    finally:
        app.close()
    out = tmp_path / "bundle"
    done = cli("export", *where(settings), "--out", str(out),
               "--transfer", transfers[0], "--transfer", transfers[3], "--transfer", transfers[0].upper())
    assert done.status == 0, done.stderr
    assert f"exported {size} leaves" in done.stdout and "2 proof(s)" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["bundle.json", "checkpoint", "events.jsonl", "proofs"]
    assert sorted(p.name for p in (out / "proofs").iterdir()) == sorted(
        f"{t}.tlog-proof" for t in (transfers[0], transfers[3])
    )

    # The checkpoint is the one `checkpoint` prints (reused: same size, same bytes).
    note = cli("checkpoint", *where(settings)).stdout
    assert (out / "checkpoint").read_text("utf-8") == note

    # events.jsonl: one line per leaf, in order, rebuilt from the database rows.
    lines = (out / "events.jsonl").read_bytes().splitlines()
    assert len(lines) == size
    prev = bytes(32)
    for raw, (leaf, event) in zip(lines, rows, strict=True):
        obj = json.loads(raw)
        assert list(obj) == ["leaf_index", "leaf", "leaf_hash", "event"]
        assert obj["leaf_index"] == leaf.leaf_index
        data = base64.b64decode(obj["leaf"], validate=True)
        assert data == encode_leaf(leaf.leaf_index, prev, leaf.originator_id, leaf.originator_version,
                                   event.topic, event.state, leaf.recorded_at)
        assert base64.b64decode(obj["leaf_hash"]) == leaf.leaf_hash == leaf_hash(data)
        assert obj["event"]["originator_id"] == leaf.originator_id
        assert obj["event"]["originator_version"] == leaf.originator_version
        assert obj["event"]["topic"] == event.topic
        assert obj["event"]["recorded_at"] == leaf.recorded_at
        state = json.loads(event.state)
        assert obj["event"]["data"]["timestamp"] == state["timestamp"]["_data_"]
        assert {k: v for k, v in obj["event"]["data"].items() if k != "timestamp"} == {
            k: v for k, v in state.items() if k != "timestamp"
        }
        prev = leaf.leaf_hash
    first = next(e for e in (json.loads(raw)["event"] for raw in lines) if e["topic"] == TRANSFER_TOPIC)
    assert first["originator_id"] == transfers[0] and first["data"]["sender"]["party"] == "DE"

    manifest = json.loads((out / "bundle.json").read_text())
    assert manifest["tree_size"] == size and manifest["root_hash"] == root.hex()
    assert manifest["origin"] == ORIGIN and manifest["format"] == "transfer-ledger/bundle/v1"
    for entry in manifest["files"]:
        data = (out / entry["name"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["size"] == len(data)

    vkey = settings.data_dir / "ledger.vkey"
    ok = cli("verify-export", str(out), "--vkey", str(vkey))
    assert ok.status == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith(f"OK: {size} leaves, root {root.hex()}")
    report = json.loads(cli("verify-export", str(out), "--vkey", str(vkey), "--json").stdout)
    assert report["ok"] is True and report["tree_size"] == size and report["root_hash"] == root.hex()
    assert report["first_bad_line"] is None and report["problems"] == []
    assert report["lines_checked"] == size and report["proofs_checked"] == 2
    # The vkey itself may be given instead of a file.
    assert cli("verify-export", str(out), "--vkey", vkey.read_text().strip()).status == 0


def test_verify_export_needs_no_data_dir_and_no_database(bundle: Bundle, tmp_path: Path) -> None:
    # Settings that would break any command touching the database are ignored.
    env = {"TRANSFER_LEDGER_DATABASE_URL": "postgresql://nobody:x@127.0.0.1:1/none",
           "TRANSFER_LEDGER_DATA_DIR": str(tmp_path / "no-such-dir")}
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    done = cli("verify-export", str(bundle.path), "--vkey", str(bundle.vkey), env=env, cwd=cwd)
    assert done.status == 0, done.stdout + done.stderr
    assert not (tmp_path / "no-such-dir").exists() and list(cwd.iterdir()) == []
    # The verifier imports none of the storage code.
    script = (
        "import json, sys\n"
        "from ledger.audit.bundles import load_vkey, verify_bundle\n"
        "report = verify_bundle(sys.argv[1], load_vkey(sys.argv[2]))\n"
        "storage = ('psycopg', 'sqlite3', '_sqlite3', 'eventsourcing')\n"
        "ours = ('ledger.storage.store', 'ledger.storage.sqlite', 'ledger.storage.postgres', 'ledger.storage.sql',\n"
        "        'ledger.service.application', 'ledger.service.checkpoints')\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in storage or m in ours)\n"
        "print(json.dumps({'ok': report.ok, 'loaded': loaded}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(bundle.path), str(bundle.vkey)],
                         capture_output=True, text=True, cwd=ROOT, check=True, timeout=60)
    assert json.loads(out.stdout) == {"ok": True, "loaded": []}


def test_export_of_an_empty_ledger(ledger: TransferLedger, tmp_path: Path) -> None:
    signer = Signer.generate(ORIGIN)
    result = export_bundle(ledger, signer, tmp_path / "b")
    assert result.tree_size == 0 and (tmp_path / "b" / "events.jsonl").read_bytes() == b""
    assert not (tmp_path / "b" / "proofs").exists()
    report = verify_bundle(tmp_path / "b", signer.verifier())
    assert report.ok and report.tree_size == 0 and report.lines_checked == 0


def test_export_reuses_the_checkpoint_and_reports_progress(bundle: Bundle, ledger: TransferLedger,
                                                           tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    again = export_bundle(ledger, bundle.signer, tmp_path / "again", progress=lambda d, t: seen.append((d, t)))
    assert (tmp_path / "again" / "checkpoint").read_bytes() == (bundle.path / "checkpoint").read_bytes()
    assert (tmp_path / "again" / "events.jsonl").read_bytes() == (bundle.path / "events.jsonl").read_bytes()
    assert again.proofs == {} and seen[-1] == (bundle.size, bundle.size)
    # More events: a new checkpoint, and the earlier bundle still verifies.
    ledger.record_transfer(transfer("FR", "DE"))
    later = export_bundle(ledger, bundle.signer, tmp_path / "later")
    assert later.tree_size == bundle.size + 1
    assert verify_bundle(tmp_path / "later", bundle.signer.verifier()).ok
    assert bundle.verify().ok


def test_export_into_a_non_empty_dir_is_refused(bundle: Bundle, ledger: TransferLedger,
                                                tmp_path: Path) -> None:
    out = tmp_path / "full"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="is not empty") as caught:
        export_bundle(ledger, bundle.signer, out)
    assert caught.value.status == 2
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="not a directory"):
        export_bundle(ledger, bundle.signer, tmp_path / "file")
    # An empty directory is fine.
    (tmp_path / "empty").mkdir()
    export_bundle(ledger, bundle.signer, tmp_path / "empty")


def test_export_of_unknown_or_non_transfer_ids_writes_nothing(bundle: Bundle, ledger: TransferLedger,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "never"
    policy_id = bundle.line(1)["event"]["originator_id"]  # the DE policy aggregate
    for named, message in [
        ("not-a-uuid", "is not a transfer id"),
        ("00000000-0000-4000-8000-000000000000", "there is no transfer"),
        (policy_id, "is not a transfer: its first event is transfer-ledger:PartyPolicyRegistered:v1"),
    ]:
        with pytest.raises(ExportError, match=message) as caught:
            export_bundle(ledger, bundle.signer, out, [bundle.transfers[0], named])
        assert caught.value.status == 2
        assert not out.exists()


def test_export_refuses_a_tampered_database(backend: Backend, ledger: TransferLedger, tmp_path: Path) -> None:
    record_scenario(ledger)
    signer = Signer.generate(ORIGIN)
    row = backend.execute(f"SELECT {backend.notification_id}, state FROM {backend.events_table} "
                          f"ORDER BY {backend.notification_id} LIMIT 1 OFFSET 4")[0]
    state = bytes(row[1]).replace(b'"DE"', b'"XX"', 1)
    assert state != bytes(row[1])
    backend.execute(f"UPDATE {backend.events_table} SET state = ? WHERE {backend.notification_id} = ?",
                    (state, row[0]))
    out = tmp_path / "refused"
    with pytest.raises(ExportRefused, match=r"^leaf 4: .*stored leaf hash") as caught:
        export_bundle(ledger, signer, out)
    assert caught.value.status == 1
    assert not out.exists()


def test_export_command_errors_are_one_line(settings: Settings, tmp_path: Path) -> None:
    assert cli("init", *where(settings)).status == 0
    app = TransferLedger(eventsourcing_env(settings))
    try:
        transfers = record_scenario(app)
    finally:
        app.close()
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    done = cli("export", *where(settings), "--out", str(full))
    assert done.status == 2 and "is not empty" in done.one_line_error()
    done = cli("export", *where(settings), "--out", str(tmp_path / "b"), "--transfer", "nope")
    assert done.status == 2 and "is not a transfer id" in done.one_line_error()
    assert not (tmp_path / "b").exists()
    done = cli("export", "--data-dir", str(tmp_path / "uninitialized"), "--out", str(tmp_path / "b"))
    assert done.status == 2 and "not an initialized ledger data dir" in done.one_line_error()
    assert cli("export", *where(settings), "--out", str(tmp_path / "b"), "--transfer", transfers[2]).status == 0


def test_help_lists_export_commands() -> None:
    done = cli("--help")
    assert "export" in done.stdout and "verify-export" in done.stdout
    assert "Exit status" in cli("verify-export", "--help").stdout


# -- tampering: exit 1 and the first bad line ------------------------------------------


def transfer_line(bundle: Bundle, nth: int = 0) -> int:
    """Line number of the nth TransferRecorded event."""
    numbers = [i + 1 for i, raw in enumerate(bundle.lines()) if json.loads(raw)["event"]["topic"] == TRANSFER_TOPIC]
    return numbers[nth]


def test_an_untouched_bundle_verifies(bundle: Bundle) -> None:
    report = bundle.verify()
    assert report.ok, report.problems
    assert report.lines_checked == bundle.size and report.proofs_checked == 3
    assert report.summary().startswith(f"OK: {bundle.size} leaves")


def test_a_byte_changed_in_a_leaf(bundle: Bundle) -> None:
    lines = bundle.lines()
    obj = json.loads(lines[3])
    leaf = obj["leaf"]
    middle = len(leaf) // 2
    obj["leaf"] = leaf[:middle] + ("B" if leaf[middle] != "B" else "C") + leaf[middle + 1:]
    lines[3] = line_bytes(obj)
    bundle.write_lines(lines)
    report = assert_first_bad(bundle, "events.jsonl", 4, r"leaf_hash is .* but SHA-256\(0x00 \|\| leaf\)")
    assert report["first_bad_index"] == 3


def test_an_event_field_changed(bundle: Bundle) -> None:
    number = transfer_line(bundle, 1)
    lines = bundle.lines()
    obj = json.loads(lines[number - 1])
    obj["event"]["data"]["sender"]["party"] = "NL"
    lines[number - 1] = line_bytes(obj)
    bundle.write_lines(lines)
    assert_first_bad(bundle, "events.jsonl", number, r"event\.data\.sender\.party is \"NL\", but the leaf's state gives \"FR\"")


def test_an_event_header_changed(bundle: Bundle) -> None:
    lines = bundle.lines()
    obj = json.loads(lines[5])
    obj["event"]["originator_version"] += 1
    lines[5] = line_bytes(obj)
    bundle.write_lines(lines)
    assert_first_bad(bundle, "events.jsonl", 6, r"event\.originator_version is \d+, but the leaf says")


def test_a_line_deleted(bundle: Bundle) -> None:
    lines = bundle.lines()
    del lines[6]
    bundle.write_lines(lines)
    assert_first_bad(bundle, "events.jsonl", 7, r"leaf_index is 7, expected 6: leaf 6 is missing")


def test_two_lines_swapped(bundle: Bundle) -> None:
    lines = bundle.lines()
    lines[4], lines[5] = lines[5], lines[4]
    bundle.write_lines(lines)
    assert_first_bad(bundle, "events.jsonl", 5, r"leaf_index is 5, expected 4")


def test_a_line_inserted(bundle: Bundle) -> None:
    lines = bundle.lines()
    lines.insert(8, lines[7])  # line 8 repeated
    bundle.write_lines(lines)
    assert_first_bad(bundle, "events.jsonl", 9, r"leaf_index is 7, expected 8: leaf 7 came before")


def test_a_line_appended(bundle: Bundle) -> None:
    lines = bundle.lines()
    bundle.write_lines(lines + [lines[-1]])
    assert_first_bad(bundle, "events.jsonl", bundle.size + 1, r"the checkpoint covers \d+ leaves, but the file goes on")


def test_the_file_truncated_at_a_line_end(bundle: Bundle) -> None:
    bundle.write_lines(bundle.lines()[:-3])
    assert_first_bad(bundle, "events.jsonl", bundle.size - 2,
                     rf"the file ends after {bundle.size - 3} lines, but the checkpoint covers {bundle.size}")


def test_the_file_truncated_mid_line(bundle: Bundle) -> None:
    path = bundle.path / "events.jsonl"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    assert_first_bad(bundle, "events.jsonl", bundle.size, r"no newline at its end: the file is truncated")


def test_white_space_added_to_a_line(bundle: Bundle) -> None:
    lines = bundle.lines()
    lines[2] = lines[2].replace(b'{"leaf_index":2,', b'{"leaf_index": 2,')
    bundle.write_lines(lines)
    assert_first_bad(bundle, "events.jsonl", 3, r"not in the exporter's form")


def test_a_line_rewritten_consistently_breaks_the_chain_at_the_next_line(bundle: Bundle) -> None:
    number = transfer_line(bundle, 2)
    lines = bundle.lines()
    lines[number - 1] = forged(lines[number - 1], b'"NL"', b'"BE"')
    bundle.write_lines(lines)
    assert_first_bad(bundle, "events.jsonl", number + 1,
                     rf"prev_leaf_hash is [0-9a-f]{{64}}, but it must be line {number}'s leaf hash")


def test_the_last_line_rewritten_consistently_fails_the_root(bundle: Bundle) -> None:
    lines = bundle.lines()
    lines[-1] = forged(lines[-1], b'"BR"', b'"BE"')
    bundle.write_lines(lines)
    assert_first_bad(bundle, "events.jsonl", None, r"have root [0-9a-f]{64}, but the checkpoint signs")


def forged(raw: bytes, old: bytes, new: bytes) -> bytes:
    """A line whose state was changed and whose leaf, hash and event were all
    recomputed to agree: what a careful forger would write."""
    obj = json.loads(raw)
    fields = json.loads(base64.b64decode(obj["leaf"]))
    state = base64.b64decode(fields["state"])
    assert old in state
    state = state.replace(old, new, 1)
    leaf = encode_leaf(fields["leaf_index"], bytes.fromhex(fields["prev_leaf_hash"]), fields["originator_id"],
                       fields["originator_version"], fields["topic"], state, fields["recorded_at"])
    event = event_object(fields["originator_id"], fields["originator_version"], fields["topic"],
                         fields["recorded_at"], state)
    return events_line(fields["leaf_index"], leaf, leaf_hash(leaf), event)


def test_a_leaf_not_in_canonical_form(bundle: Bundle) -> None:
    lines = bundle.lines()
    obj = json.loads(lines[1])
    leaf = base64.b64decode(obj["leaf"]).replace(b'"leaf_index":1,', b'"leaf_index": 1,')
    obj["leaf"] = base64.b64encode(leaf).decode()
    obj["leaf_hash"] = base64.b64encode(leaf_hash(leaf)).decode()
    lines[1] = line_bytes(obj)
    bundle.write_lines(lines)
    assert_first_bad(bundle, "events.jsonl", 2, r"not in RFC 8785 canonical form")


def test_the_checkpoint_edited(bundle: Bundle) -> None:
    path = bundle.path / "checkpoint"
    text = path.read_text("utf-8").split("\n")
    text[1] = str(int(text[1]) - 1)
    path.write_text("\n".join(text), "utf-8")
    assert_first_bad(bundle, "checkpoint", 5, r"does not verify: signature line 1: signature by known key")


def test_a_wrong_verifier_key(bundle: Bundle) -> None:
    other = Signer.generate(ORIGIN)
    bundle.vkey.write_text(other.vkey() + "\n")
    bundle.signer = other
    report = assert_first_bad(bundle, "checkpoint", 5, r"no signature by a known key \(it is signed by")
    assert report["tree_size"] is None


def test_a_proof_line_corrupted(bundle: Bundle) -> None:
    tid = bundle.transfers[1]
    path = bundle.proof_file(tid)
    lines = path.read_text().split("\n")
    assert lines[0] == HEADER and lines[1] == f"index {bundle.proofs[tid]}"
    assert len(lines[3]) == 44
    lines[3] = base64.b64encode(hashlib.sha256(b"forged").digest()).decode()
    path.write_text("\n".join(lines))
    assert_first_bad(bundle, f"proofs/{tid}.tlog-proof", 4, r"proof hash 2 is .*, but the tree over events\.jsonl gives")


def test_a_proof_with_a_wrong_index(bundle: Bundle) -> None:
    tid = bundle.transfers[4]
    path = bundle.proof_file(tid)
    text = path.read_text()
    index = bundle.proofs[tid]
    path.write_text(text.replace(f"index {index}\n", f"index {index - 1}\n", 1))
    assert_first_bad(bundle, f"proofs/{tid}.tlog-proof", 2,
                     rf"index {index - 1}, but bundle.json:\d+ lists leaf {index}")
    # With the manifest changed to agree, the leaf at that index is not the transfer.
    manifest = bundle.path / "bundle.json"
    manifest.write_text(manifest.read_text().replace(f'"leaf_index": {index},', f'"leaf_index": {index - 1},'))
    assert_first_bad(bundle, f"proofs/{tid}.tlog-proof", 2,
                     rf"that leaf is .* not the recording of transfer {tid}")


def test_a_proof_whose_checkpoint_differs(bundle: Bundle) -> None:
    tid = bundle.transfers[0]
    path = bundle.proof_file(tid)
    proof = parse_tlog_proof(path.read_bytes())
    other = Signer.generate(ORIGIN)
    note = sign_checkpoint(Checkpoint(ORIGIN, bundle.size, bytes(32)), other)
    path.write_text(format_tlog_proof(proof.index, proof.hashes, note))
    assert_first_bad(bundle, f"proofs/{tid}.tlog-proof", proof.checkpoint_line + 2,
                     r"the checkpoint differs from the bundle's checkpoint \(at its line 3\)")


def test_a_proof_file_removed_or_added(bundle: Bundle, tmp_path: Path) -> None:
    removed = bundle.copy(tmp_path / "removed")
    removed.proof_file(bundle.transfers[0]).unlink()
    report = assert_first_bad(removed, "bundle.json", _manifest_line(removed, bundle.transfers[0]),
                              rf"lists proofs/{bundle.transfers[0]}\.tlog-proof, which is not in the bundle")
    assert report["problem_count"] >= 1
    added = bundle.copy(tmp_path / "added")
    shutil.copy(added.proof_file(bundle.transfers[0]), added.proof_file(bundle.transfers[3]))
    assert_first_bad(added, f"proofs/{bundle.transfers[3]}.tlog-proof", None, r"not listed in bundle\.json")


def _manifest_line(bundle: Bundle, tid: str) -> int:
    text = (bundle.path / "bundle.json").read_text()
    return text[: text.index(f'"name": "proofs/{tid}.tlog-proof"')].count("\n") + 1


def test_a_digest_changed_in_the_manifest(bundle: Bundle) -> None:
    manifest = bundle.path / "bundle.json"
    obj = json.loads(manifest.read_text())
    obj["files"][1]["sha256"] = "0" * 64
    manifest.write_text(json.dumps(obj, indent=2) + "\n")
    line = manifest.read_text().split("\n").index('      "name": "events.jsonl",') + 1
    assert_first_bad(bundle, "bundle.json", line, r"events\.jsonl has \d+ bytes and SHA-256 [0-9a-f]{64}, but")


def test_an_unexpected_file(bundle: Bundle) -> None:
    (bundle.path / "notes.txt").write_text("trust me")
    assert_first_bad(bundle, "notes.txt", None, r"unexpected file in the bundle")


# -- malformed bundles and keys: exit 2, one line --------------------------------------


def test_usage_errors_exit_2(bundle: Bundle, tmp_path: Path) -> None:
    cases: list[tuple[list[str], str]] = [
        ([str(tmp_path / "nothing"), "--vkey", str(bundle.vkey)], "does not exist"),
        ([str(bundle.vkey), "--vkey", str(bundle.vkey)], "is not a directory"),
        ([str(bundle.path), "--vkey", str(tmp_path / "missing.vkey")], "no such file"),
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    cases.append(([str(empty), "--vkey", str(bundle.vkey)], "checkpoint is missing: not an export bundle"))
    vkey = Signer.from_seed(ORIGIN, bytes(range(32))).vkey()  # key id e71383b0: it has letters
    name, key_id, key64 = vkey.split("+", 2)
    short_key = base64.b64encode(b"\x01" + bytes(31)).decode()
    for label, text, message in [
        ("two-lines", vkey + "\n" + vkey + "\n", "2 lines, expected the vkey alone"),
        ("empty", "", "the file is empty"),
        ("spaces", " " + vkey + "\n", "white space around the vkey"),
        ("bad-base64", f"{name}+{key_id}+{key64[:-1]}!", "not valid standard base64"),
        ("short-key", f"{name}+{key_id}+{short_key}", "decodes to 32 bytes"),
        ("wrong-id", f"{name}+{int(key_id, 16) ^ 1:08x}+{key64}", "does not match the name and key"),
        ("uppercase-id", f"{name}+{key_id.upper()}+{key64}", "is not 8 lowercase hex digits"),
        ("two-parts", f"{name}+{key_id}", "expected 3 '\\+'-separated parts"),
        ("not-utf8", "\udcff", "not valid UTF-8"),
    ]:
        path = tmp_path / f"{label}.vkey"
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        cases.append(([str(bundle.path), "--vkey", str(path)], message))
    for number, (args, message) in enumerate(cases):
        run = cli if number % 4 == 0 else in_process  # some as real processes: never a traceback
        done = run("verify-export", *args)
        assert done.status == 2, (args, done.stdout, done.stderr)
        assert re.search(message, done.one_line_error()), (message, done.stderr)
        assert done.stdout == ""
        as_json = in_process("verify-export", *args, "--json")
        assert as_json.status == 2
        report = json.loads(as_json.stdout)
        assert report["ok"] is False and re.search(message, report["error"])
    events = bundle.path / "events.jsonl"
    events.unlink()
    with pytest.raises(BundleError, match="events.jsonl is missing"):
        bundle.verify()


def test_malformed_manifests(bundle: Bundle) -> None:
    manifest = bundle.path / "bundle.json"
    original = manifest.read_text()
    obj = json.loads(original)
    cases: list[tuple[str, int | None, str]] = [
        ("{", 1, "not valid JSON: Expecting property name"),
        ('{\n  "format": 1,\n}', 3, "not valid JSON: Expecting property name"),
        ("[]\n", 1, "not a JSON object"),
        (original.replace('"format"', '"format2"'), 1, "members are"),
        (original.replace('"tree_size": ', '"tree_size": 1'), 4, "tree_size is 1\\d+, but the checkpoint says"),
        (original.replace('"tree_size": ', '"tree_size": "', 1).replace(',\n  "root_hash"', '",\n  "root_hash"', 1),
         4, "tree_size is \"\\d+\", but the checkpoint says \\d+"),
        (original.replace('"origin": "', '"origin": "x'), 3, "origin is"),
        (original.replace(obj["root_hash"], obj["root_hash"].upper()), 5, "root_hash is"),
        (original.replace('bundle/v1', 'bundle/v2'), 2, "format is"),
        (original.replace('"format": ', '"format": "x", "format": ', 1), 1, "duplicate member 'format'"),
        (original.replace('"size": ', '"size": -', 1), 9, "size -\\d+ is not an integer >= 0"),
        (original.replace(obj["exported_at"], "yesterday"), 6, "exported_at is not RFC 3339"),
        (original.replace('"tree_size": ', '"tree_size": NaN, "x": ', 1), 1, "NaN is not a JSON number"),
        (original.replace('"tree_size": ', '"tree_size": 1e999, "x": ', 1), 1, "out of range"),
    ]
    for text, line, message in cases:
        manifest.write_text(text)
        report = bundle.verify()
        assert not report.ok
        assert (report.first_bad_file, report.first_bad_line) == ("bundle.json", line), (message, report.problems)
        assert re.search(message, report.problems[0]), (message, report.problems)
    manifest.write_bytes(b"\xff\xfe{}")
    assert bundle.verify().problems[0] == "bundle.json:1: not valid UTF-8"


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        (lambda raw: raw.replace(b"\n", b"\r\n"), "carriage return"),
        (lambda raw: b"\n", "empty line"),
        (lambda raw: b"\xff" + raw, "not valid UTF-8"),
        (lambda raw: b"[1]\n", "not a JSON object but list"),
        (lambda raw: raw.replace(b'"leaf_index":', b'"leaf_index":1.0,"x":', 1), "members are"),
        (lambda raw: raw.replace(b'{"leaf_index":5', b'{"leaf_index":true', 1), "leaf_index is true, not an integer"),
        (lambda raw: raw.replace(b'"leaf":"', b'"leaf":"=', 1), "leaf is not valid standard base64"),
        (lambda raw: raw.replace(b'"leaf_hash":"', b'"leaf_hash":"*', 1), "leaf_hash is not valid standard base64"),
        (lambda raw: raw.replace(b'"leaf_index":5', b'"leaf_index":5,"leaf_index":5', 1), "duplicate member"),
        (lambda raw: raw.replace(b'"event":{', b'"event":{"extra":1,', 1), "event members are"),
        (lambda raw: raw.replace(b'"data":{', b'"data":{"z":1,', 1), r"event\.data\.z is not in the leaf's state"),
        (lambda raw: re.sub(rb'"data":\{"timestamp":"[^"]*",', b'"data":{', raw), r"event\.data\.timestamp is missing"),
        (lambda raw: re.sub(rb'"leaf_hash":"[^"]*"', b'"leaf_hash":"' + base64.b64encode(bytes(31)) + b'"', raw),
         "leaf_hash decodes to 31 bytes"),
    ],
)
def test_malformed_lines(bundle: Bundle, replace: Any, message: str) -> None:
    lines = bundle.lines()
    lines[5] = replace(lines[5])
    bundle.write_lines(lines)
    report = bundle.verify()
    assert (report.first_bad_file, report.first_bad_line) == ("events.jsonl", 6), report.problems
    assert re.search(message, report.problems[0]), report.problems[0]


def test_malformed_leaves(bundle: Bundle) -> None:
    original = bundle.lines()

    def with_leaf(fields: dict[str, Any] | bytes) -> BundleReport:
        leaf = fields if isinstance(fields, bytes) else json.dumps(fields, separators=(",", ":"),
                                                                   sort_keys=True).encode()
        obj = json.loads(original[2])
        obj["leaf"] = base64.b64encode(leaf).decode()
        obj["leaf_hash"] = base64.b64encode(leaf_hash(leaf)).decode()
        bundle.write_lines(original[:2] + [line_bytes(obj)] + original[3:])
        return bundle.verify()

    fields = json.loads(base64.b64decode(json.loads(original[2])["leaf"]))
    for change, message in [
        ({"format": "transfer-ledger/leaf/v2"}, "leaf format is"),
        ({"leaf_index": 3}, "the leaf's leaf_index is 3, expected 2"),
        ({"originator_id": fields["originator_id"].upper()}, "not a hyphenated lowercase UUID"),
        ({"originator_version": 0}, "originator_version 0 is not an integer >= 1"),
        ({"prev_leaf_hash": "00" * 32}, "prev_leaf_hash is 0{64}, but it must be line 2's leaf hash"),
        ({"prev_leaf_hash": "AB" * 32}, "is not 64 lowercase hex digits"),
        ({"recorded_at": "2026-03-01T09:30:00.25Z"}, "recorded_at .* is not RFC 3339"),
        ({"state": "e30"}, "the leaf's state is not valid standard base64"),
        ({"topic": ""}, "topic is not a non-empty string"),
        ({"extra": 1}, "leaf members are"),
    ]:
        report = with_leaf({**fields, **change})
        assert (report.first_bad_file, report.first_bad_line) == ("events.jsonl", 3), (change, report.problems)
        assert re.search(message, report.problems[0]), (message, report.problems[0])
    for raw, message in [(b"\xff", "leaf is not UTF-8 JSON"), (b"[]", "leaf is not a JSON object"),
                         (b"{", "leaf is not UTF-8 JSON")]:
        report = with_leaf(raw)
        assert report.first_bad_line == 3 and re.search(message, report.problems[0]), report.problems


# -- the tlog-proof parser -------------------------------------------------------------


def a_proof(size: int = 11, index: int = 6, extra: bytes | None = None) -> tuple[str, bytes, Signer]:
    """A valid proof of leaf ``index`` in a tree of ``size`` synthetic leaves."""
    hashes = [leaf_hash(b"leaf %d" % i) for i in range(size)]
    tree = CompactRange()
    nodes: dict[tuple[int, int], bytes] = {}
    for h in hashes:
        for level, idx, node in tree.append(h):
            nodes[(level, idx)] = node
    signer = Signer.from_seed(ORIGIN, bytes(range(32)))
    note = sign_checkpoint(Checkpoint(ORIGIN, size, tree.root()), signer)
    path = inclusion_proof(index, size, lambda ids: [nodes[i] for i in ids])
    return format_tlog_proof(index, path, note, extra), hashes[index], signer


def test_a_proof_round_trips_and_verifies() -> None:
    text, digest, signer = a_proof(extra=b"context")
    proof = parse_tlog_proof(text.encode())
    assert proof.text() == text and proof.extra == b"context" and proof.index == 6
    assert (proof.index_line, proof.checkpoint_line) == (3, 9)
    checkpoint = verify_tlog_proof(proof, digest, signer.verifier(), ORIGIN)
    assert checkpoint.size == 11
    with pytest.raises(TlogProofError, match="line 4: the inclusion proof of leaf 6 yields root"):
        verify_tlog_proof(proof, leaf_hash(b"other"), signer.verifier())
    one, digest1, _ = a_proof(size=1, index=0)
    assert one.startswith(f"{HEADER}\nindex 0\n\n{ORIGIN}\n1\n")
    assert verify_tlog_proof(parse_tlog_proof(one), digest1, signer.verifier()).size == 1


@pytest.mark.parametrize(
    ("mutate", "line", "message"),
    [
        (lambda t: "", 1, "proof is empty"),
        (lambda t: t.replace(HEADER, "c2sp.org/tlog-proof@v2"), 1, "first line is"),
        (lambda t: "\ufeff" + t, 1, "first line is"),
        (lambda t: t.replace("\n", "\r\n"), 1, "carriage return U\\+000D"),
        (lambda t: t.replace("index 6", "index\x006"), 2, "control character U\\+0000"),
        (lambda t: t.replace("index 6", "index 06"), 2, "'06' is not a decimal number without leading zeros"),
        (lambda t: t.replace("index 6", "index -6"), 2, "not a decimal number"),
        (lambda t: t.replace("index 6", "index  6"), 2, "not a decimal number"),
        (lambda t: t.replace("index 6", "index 9223372036854775808"), 2, "larger than 2\\*\\*63-1"),
        (lambda t: t.replace("index 6", "index 6 "), 2, "not a decimal number"),
        (lambda t: t.replace("index 6", "Index 6"), 2, "expected 'index <N>'"),
        (lambda t: t.replace("index 6\n", "extra\nindex 6\n"), 2, "extra line must be"),
        (lambda t: t.replace("index 6\n", "extra !!\nindex 6\n"), 2, "extra data is not valid standard base64"),
        (lambda t: t.replace("index 6\n", "extra AB==\nindex 6\n"), 2, "not canonical base64"),
        (lambda t: t.replace("index 6\n", "extra AA==\nextra AA==\nindex 6\n"), 3, "expected 'index <N>'"),
        (lambda t: HEADER + "\n", 2, "proof ends before its index line"),
        (lambda t: HEADER, 2, "proof ends before its index line"),
        (lambda t: re.sub("\nindex 6\n[^\n]+", "\nindex 6\nAAAA", t, count=1), 3,
         "proof hash 1 decodes to 3 bytes, expected 32"),
        (lambda t: re.sub("\nindex 6\n[^\n]+", "\nindex 6\n" + base64.b64encode(bytes(33)).decode(), t, count=1),
         3, "decodes to 33 bytes"),
        (lambda t: re.sub("\nindex 6\n([^\n]+)=", "\nindex 6\n\\1", t, count=1), 3, "not valid standard base64"),
        (lambda t: t.replace("\n\n" + ORIGIN, "\n" + ORIGIN, 1), 7, "proof hash 5 is not valid standard base64"),
        (lambda t: t.split("\n\n")[0], 7, "no empty line and checkpoint"),
        (lambda t: t.split("\n\n")[0] + "\n", 7, "no empty line and checkpoint"),
        (lambda t: t.split("\n\n")[0] + "\n\n", 8, "no checkpoint after the empty line"),
        (lambda t: t.replace("\n\n" + ORIGIN, "\n\n\n" + ORIGIN, 1), 8, "two empty lines"),
        (lambda t: t[:-1], 12, "the checkpoint does not end in a newline"),
        (lambda t: HEADER + "\nindex 0\n" + ("A" * 43 + "=\n") * 65 + "\n", 67, "more than 64 proof hashes"),
    ],
)
def test_malformed_proofs_are_rejected_precisely(mutate: Any, line: int, message: str) -> None:
    text, _, _ = a_proof()
    with pytest.raises(TlogProofError, match=message) as caught:
        parse_tlog_proof(mutate(text).encode("utf-8"))
    assert caught.value.line == line, str(caught.value)
    assert str(caught.value).startswith(f"line {line}: ")


@pytest.mark.parametrize(
    ("mutate", "line", "message"),
    [
        (lambda t: t.replace(f"\n{ORIGIN}\n11\n", f"\n{ORIGIN}\n12\n"), 13, "signature by known key .* does not verify"),
        (lambda t: t.replace(f"\n\n{ORIGIN}\n11\n", "\n\nother.example/log\n11\n"), 13, "does not verify"),
        (lambda t: t.replace("index 6", "index 11"), 3, "index 11 is not below the checkpoint's tree size 11"),
        (lambda t: t.replace("index 6", "index 10"), 6, "in a tree of 11 leaves has 2 hashes, this one has 4"),
        (lambda t: t.replace("index 6", "index 0"), 4, "yields root"),
        (lambda t: re.sub(r"\n\n", "\n" + "A" * 43 + "=\n\n", t, count=1), 8, "has 4 hashes, this one has 5"),
        (lambda t: t + "\u2014 " + ORIGIN + " AAAA\n", 14, "signature line 2: base64 decodes to 3 bytes"),
    ],
)
def test_proofs_that_do_not_verify_name_the_line(mutate: Any, line: int, message: str) -> None:
    text, digest, signer = a_proof(extra=b"x")
    proof = parse_tlog_proof(mutate(text))
    with pytest.raises(TlogProofError, match=message) as caught:
        verify_tlog_proof(proof, digest, signer.verifier(), ORIGIN)
    assert caught.value.line == line, str(caught.value)


def test_a_proof_with_a_lone_surrogate_or_too_large() -> None:
    with pytest.raises(TlogProofError, match="line 2: lone surrogate U\\+D800"):
        parse_tlog_proof(HEADER + "\nindex \ud800\n")
    with pytest.raises(TlogProofError, match="at most"):
        parse_tlog_proof(b"x" * (2 << 20))
    with pytest.raises(TypeError):
        parse_tlog_proof(42)  # type: ignore[arg-type]
    with pytest.raises(TlogProofError, match="index -1 is not an integer"):
        format_tlog_proof(-1, [], "x\n")
    with pytest.raises(TlogProofError, match="proof hash 0 is not 32 bytes"):
        format_tlog_proof(0, [b"x"], "x\n")


# -- fuzzing ---------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600) | st.text(max_size=400).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_fuzz_the_proof_parser_on_bytes(data: bytes) -> None:
    try:
        proof = parse_tlog_proof(data)
    except TlogProofError as e:
        assert e.line is None or 1 <= e.line <= data.count(b"\n") + 2
        return
    assert isinstance(proof, TlogProof)
    assert proof.text().encode("utf-8") == data  # what parses is exactly what it formats to


@st.composite
def proof_texts(draw: st.DrawFn) -> str:
    """Texts made of proof-like lines, valid and not."""
    hash_line = st.binary(min_size=32, max_size=32).map(lambda b: base64.b64encode(b).decode())
    line = st.one_of(
        st.just(HEADER), hash_line, st.just(""),
        st.integers(-5, 2**64).map(lambda i: f"index {i}"),
        st.from_regex(r"index [0-9 ]{0,4}", fullmatch=True),
        st.binary(max_size=12).map(lambda b: "extra " + base64.b64encode(b).decode()),
        st.sampled_from([ORIGIN, "12", "\u2014 " + ORIGIN + " AAAA", "extra", "index", "=", "A==="]),
        st.text(max_size=8),
    )
    return "\n".join(draw(st.lists(line, max_size=14))) + draw(st.sampled_from(["", "\n"]))


@settings(max_examples=400, deadline=None)
@given(proof_texts())
def test_fuzz_the_proof_parser_on_proof_like_lines(text: str) -> None:
    _, digest, signer = a_proof()
    try:
        proof = parse_tlog_proof(text)
    except TlogProofError as e:
        assert e.line is None or 1 <= e.line <= text.count("\n") + 2
        return
    assert proof.text() == text
    try:
        verify_tlog_proof(proof, digest, signer.verifier(), ORIGIN)
    except TlogProofError as e:
        assert e.line is not None and 1 <= e.line <= text.count("\n") + 2
    else:  # pragma: no cover - would need a forged signature
        raise AssertionError("a random proof verified")


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_mutated_proofs_never_verify_something_else(data: st.DataObject) -> None:
    text, digest, signer = a_proof(size=13, index=data.draw(st.integers(0, 12)))
    original = parse_tlog_proof(text)
    mutated = mutate_text(data, text)
    try:
        proof = parse_tlog_proof(mutated)
        checkpoint = verify_tlog_proof(proof, digest, signer.verifier(), ORIGIN)
    except TlogProofError as e:
        assert e.line is None or 1 <= e.line <= mutated.count("\n") + 2
        return
    # What verifies proves the same leaf in the same tree.
    assert (proof.index, proof.hashes) == (original.index, original.hashes)
    assert checkpoint.size == 13


def mutate_text(data: st.DataObject, text: str) -> str:
    lines = text.split("\n")
    op = data.draw(st.sampled_from(["char", "delete", "insert", "dup-line", "drop-line", "swap-lines", "truncate"]))
    if op == "char":
        at = data.draw(st.integers(0, len(text) - 1))
        return text[:at] + data.draw(st.characters(codec="utf-8")) + text[at + 1:]
    if op == "delete":
        at = data.draw(st.integers(0, len(text) - 1))
        return text[:at] + text[at + data.draw(st.integers(1, 8)):]
    if op == "insert":
        at = data.draw(st.integers(0, len(text)))
        return text[:at] + data.draw(st.text(min_size=1, max_size=6)) + text[at:]
    i = data.draw(st.integers(0, len(lines) - 1))
    if op == "dup-line":
        return "\n".join(lines[: i + 1] + lines[i:])
    if op == "drop-line":
        return "\n".join(lines[:i] + lines[i + 1:])
    if op == "swap-lines":
        j = data.draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
        return "\n".join(lines)
    return text[: data.draw(st.integers(0, len(text) - 1))]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_verify_bundle_on_mutated_bundles(bundle: Bundle, data: st.DataObject) -> None:
    files = ["events.jsonl", "checkpoint", "bundle.json"] + [
        f"proofs/{tid}.tlog-proof" for tid in sorted(bundle.proofs)
    ]
    name = data.draw(st.sampled_from(files), label="file")
    with tempfile.TemporaryDirectory() as tmp:
        copy = bundle.copy(Path(tmp) / "b")
        path = copy.path / name
        before = path.read_bytes()
        after = mutate_bytes(data, before)
        assume(after != before)
        path.write_bytes(after)
        report = copy.verify()
    assert isinstance(report, BundleReport)
    if name != "bundle.json":  # the manifest's white space and time are not covered
        assert not report.ok, (name, after[:200])
    if not report.ok:
        assert report.first_bad_file is not None and report.problems
        where_ = report.first_bad_file + (f":{report.first_bad_line}" if report.first_bad_line else "")
        assert report.problems[0].startswith(where_ + ": ")
        assert "\n" not in report.summary()


def mutate_bytes(data: st.DataObject, raw: bytes) -> bytes:
    lines = raw.split(b"\n")
    op = data.draw(st.sampled_from(["flip", "delete", "insert", "dup-line", "drop-line", "swap-lines", "truncate"]))
    if op == "flip":
        at = data.draw(st.integers(0, len(raw) - 1))
        bit = 1 << data.draw(st.integers(0, 7))
        return raw[:at] + bytes([raw[at] ^ bit]) + raw[at + 1:]
    if op == "delete":
        at = data.draw(st.integers(0, len(raw) - 1))
        return raw[:at] + raw[at + data.draw(st.integers(1, 40)):]
    if op == "insert":
        at = data.draw(st.integers(0, len(raw)))
        return raw[:at] + data.draw(st.binary(min_size=1, max_size=8)) + raw[at:]
    i = data.draw(st.integers(0, len(lines) - 1))
    if op == "dup-line":
        return b"\n".join(lines[: i + 1] + lines[i:])
    if op == "drop-line":
        return b"\n".join(lines[:i] + lines[i + 1:])
    if op == "swap-lines":
        j = data.draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
        return b"\n".join(lines)
    return raw[: data.draw(st.integers(0, len(raw) - 1))]


# -- the state as the bundle shows it ---------------------------------------------------


def test_decode_state() -> None:
    state = (b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-03-01T09:29:59.812345+00:00"},'
             b'"id":{"_type_":"uuid_hex","_data_":"d55df8e064835ed3a84d0593d6e9b2a5"},'
             b'"amount":{"_type_":"decimal_str","_data_":"1.50"},"other":{"_type_":"mystery","_data_":1},'
             b'"party":"D\xc3\xa9"}')
    assert decode_state(state) == {
        "timestamp": "2026-03-01T09:29:59.812345+00:00", "id": "d55df8e0-6483-5ed3-a84d-0593d6e9b2a5",
        "amount": "1.50", "other": {"_type_": "mystery", "_data_": 1}, "party": "Dé",
    }
    # Not a plain JSON object: shown as null (the leaf still binds the bytes).
    for opaque in [b"\x1f\x8b\x08compressed", b"[1,2]", b'{"a":NaN}', b'{"a":1e400}', b'{"a":1,"a":2}',
                   b'{"a":"\\ud800"}', b"[" * 100000, b"\xff{}"]:
        assert decode_state(opaque) is None, opaque


def test_an_opaque_state_exports_and_verifies(ledger: TransferLedger, backend: Backend, tmp_path: Path) -> None:
    """A state that is not JSON (as if compressed or encrypted) has data null."""
    from eventsourcing.persistence import StoredEvent

    record_scenario(ledger)
    ledger.recorder.insert_events([StoredEvent(__import__("uuid").uuid4(), 1, "x:Opaque:v1", b"\x00\xff opaque")])
    signer = Signer.generate(ORIGIN)
    export_bundle(ledger, signer, tmp_path / "b")
    last = json.loads((tmp_path / "b" / "events.jsonl").read_bytes().splitlines()[-1])
    assert last["event"]["topic"] == "x:Opaque:v1" and last["event"]["data"] is None
    assert verify_bundle(tmp_path / "b", signer.verifier()).ok


# -- FORMAT.md section 14 ---------------------------------------------------------------


def example_blocks() -> dict[str, str]:
    text = FORMAT_MD.read_text("utf-8")
    return dict(re.findall(r"^```\w+ example=([a-z0-9-]+)\n(.*?)\n```$", text, re.M | re.S))


def test_format_md_bundle_examples_are_what_the_code_writes() -> None:
    blocks = example_blocks()
    hashes = dict(line.split(" = ", 1) for line in blocks["hashes"].splitlines())
    note = blocks["checkpoint"] + "\n"
    leaf = blocks["leaf-2"].encode("utf-8")
    fields = json.loads(leaf)
    event = event_object(fields["originator_id"], fields["originator_version"], fields["topic"],
                         fields["recorded_at"], blocks["state-2"].encode("utf-8"))
    line = events_line(2, leaf, bytes.fromhex(hashes["leaf_hash 2"]), event)
    assert line == blocks["events-line-2"].encode("utf-8") + b"\n"
    proof = format_tlog_proof(2, [bytes.fromhex(hashes["node 1 0"])], note)
    assert proof == blocks["tlog-proof-2"] + "\n"
    verifier = load_vkey(blocks["vkey"])
    parsed = parse_tlog_proof(proof.encode())
    assert verify_tlog_proof(parsed, bytes.fromhex(hashes["leaf_hash 2"]), verifier).size == 3


def test_sign_current_checkpoint_is_what_export_writes(bundle: Bundle, ledger: TransferLedger) -> None:
    stored = sign_current_checkpoint(ledger.store, bundle.signer)
    assert (bundle.path / "checkpoint").read_text("utf-8") == stored.note
