"""`transfer-ledger export --with-personal-data`: openings beside the commitments, for whoever may read them.

A ledger of event format 2 is recorded on the backend under test, with principals of every kind.
Exported with the API key of an auditor of ``*``, the bundle carries ``openings.jsonl``: every
personal value's salt and value, each of which verify-export recomputes into the commitment of its
leaf. A Party's key gets its Party's share only; a verifier's, an unknown or a revoked key is
refused (exit 2, nothing written). ``events.jsonl`` is byte for byte the plain export's. An erased
value is in no file of the bundle; a changed opening fails verify-export at its line.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ledger.audit.bundles import OPENING_KEYS, export_bundle, openings_line, verify_bundle
from ledger.bootstrap import principals_of
from ledger.cli import app as cli_app
from ledger.config import Settings, eventsourcing_env
from ledger.service.application import TransferLedger
from ledger.tlog.commitment import commit
from ledger.tlog.note import Signer
from tests.support.backends import Backend
from tests.support.builders import actor, request, transfer
from tests.support.cli import Done, one_line_error, run, where

ROOT = Path(__file__).resolve().parents[2]
FORMAT_MD = ROOT / "docs" / "FORMAT.md"

DE_SUBJECT = "Ivan Petrovich Sidorov"
DE_JUSTIFICATION = "suspected of laundering via account 40817810099910004312"
DE_OFFICER = "Insp. Katharina Weber-Lindqvist"
NL_SUBJECT = "Johanna Maria van der Berg-Oosterhuis"
NL_OFFICER = "Rechercheur Pieter-Jan Hoogendijk"
ASK_JUSTIFICATION = "INTERPOL notice for the same account 40817810099910004312"


def cli(*args: str, stdin: str | None = None) -> Done:
    """`transfer-ledger ARGS` in this process (the exit status and output are a process's)."""
    result = CliRunner().invoke(cli_app, list(args), input=stdin, catch_exceptions=False)
    return Done(result.exit_code, result.stdout, result.stderr)


@dataclass
class World:
    settings: Settings
    tmp: Path
    vkey: Path
    keys: dict[str, Path]  # who -> a file holding the key
    de_fr: str  # DE -> FR, with DE's subject and officer
    nl_us: str  # NL -> US, nothing of DE's or FR's
    ask: str  # FR asks DE (the origin) to pass de_fr's data on to INTERPOL

    def export(self, name: str, *extra: str) -> Done:
        return cli("export", *where(self.settings), "--out", str(self.tmp / name), *extra)

    def export_for(self, who: str, name: str | None = None) -> Done:
        return self.export(name or who, "--with-personal-data", "--api-key-file", str(self.keys[who]))

    def verify(self, name: str) -> Done:
        return cli("verify-export", str(self.tmp / name), "--vkey", str(self.vkey))

    def app(self) -> TransferLedger:
        return TransferLedger(eventsourcing_env(self.settings))


def openings(bundle: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (bundle / "openings.jsonl").read_bytes().splitlines()]


def events(bundle: Path) -> list[dict[str, Any]]:
    return [json.loads(line)["event"] for line in (bundle / "events.jsonl").read_bytes().splitlines()]


def all_bytes(bundle: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(bundle.rglob("*")) if p.is_file())


@pytest.fixture
def world(settings: Settings, tmp_path: Path) -> Iterator[World]:
    assert cli("init", *where(settings)).status == 0
    app = TransferLedger(eventsourcing_env(settings))
    keys: dict[str, Path] = {}
    try:
        assert app.event_format == 2
        de_fr = app.record_transfer(transfer(
            "DE", "FR", subjects=[DE_SUBJECT], justification=DE_JUSTIFICATION, sender=actor("DE", DE_OFFICER),
            retention_until="2031-03-31"))
        nl_us = app.record_transfer(transfer("NL", "US", subjects=[NL_SUBJECT], sender=actor("NL", NL_OFFICER)))
        ask = app.request_authorization(request("FR", "INTERPOL", de_fr, justification=ASK_JUSTIFICATION))
        principals = principals_of(app)
        for who, party, roles in (("auditor", "*", "auditor"), ("fr-recorder", "FR", "recorder"),
                                  ("nl-auditor", "NL", "auditor"), ("us-authority", "US", "authority"),
                                  ("verifier", "*", "verifier"), ("admin", "*", "admin"),
                                  ("revoked", "*", "auditor")):
            principal, key = principals.add(party, roles, name=who)
            keys[who] = tmp_path / f"{who}.key"
            keys[who].write_text(key + "\n")
            if who == "revoked":
                principals.revoke(principal.id)
    finally:
        app.close()
    keys["unknown"] = tmp_path / "unknown.key"
    keys["unknown"].write_text("tl_" + "A" * 43 + "\n")
    yield World(settings, tmp_path, settings.data_dir / "ledger.vkey", keys, de_fr["id"], nl_us["id"], ask["id"])


def opened_values(bundle: Path) -> dict[tuple[str, str], Any]:
    return {(o["originator_id"], o["path"]): o["value"] for o in openings(bundle)}


# -- an auditor of the whole ledger ------------------------------------------------------


def test_an_auditor_of_the_whole_ledger_gets_every_opening_and_they_verify(world: World) -> None:
    plain = world.export("plain")
    assert plain.status == 0, plain.stderr
    done = world.export_for("auditor")
    assert done.status == 0, done.stderr
    bundle = world.tmp / "auditor"
    assert sorted(p.name for p in bundle.iterdir()) == ["bundle.json", "checkpoint", "events.jsonl", "openings.jsonl"]
    # the events are the plain export's, byte for byte: the leaves verify as before
    assert (bundle / "events.jsonl").read_bytes() == (world.tmp / "plain" / "events.jsonl").read_bytes()
    values = opened_values(bundle)
    assert values[(world.de_fr, "subjects")] == [DE_SUBJECT]
    assert values[(world.de_fr, "justification")] == DE_JUSTIFICATION
    assert values[(world.de_fr, "sender.officer")] == DE_OFFICER
    assert values[(world.nl_us, "subjects")] == [NL_SUBJECT]
    assert values[(world.ask, "justification")] == ASK_JUSTIFICATION
    # one line per commitment in the leaves, in leaf order then path, each opening its commitment
    lines = openings(bundle)
    leaves = events(bundle)
    committed = sorted((i, path) for i, e in enumerate(leaves) if e["data"] and "personal_data" in e["data"]
                       for path in e["data"]["personal_data"]["fields"])
    assert [(o["leaf_index"], o["path"]) for o in lines] == committed
    for o in lines:
        assert list(o) == list(OPENING_KEYS)
        event = leaves[o["leaf_index"]]
        assert (event["originator_id"], event["originator_version"]) == (o["originator_id"], o["originator_version"])
        holder: Any = event["data"]
        for step in o["path"].split("."):
            holder = holder[step]
        assert holder == commit(bytes.fromhex(o["salt"]), o["originator_id"], o["originator_version"], o["path"],
                                o["value"])
    # the manifest lists the file and says who read it, which share, and what is absent
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert manifest["personal_data"] == "commitments"
    listed = {f["name"]: f for f in manifest["files"]}
    data = (bundle / "openings.jsonl").read_bytes()
    assert listed["openings.jsonl"] == {"name": "openings.jsonl", "size": len(data),
                                        "sha256": hashlib.sha256(data).hexdigest()}
    assert [f["name"] for f in manifest["files"]] == ["checkpoint", "events.jsonl", "openings.jsonl"]
    read_by = manifest["openings"].pop("read_by")
    assert read_by["name"] == "auditor" and read_by["party"] == "*" and read_by["roles"] == ["auditor"]
    assert re.fullmatch(r"p_[a-z2-7]{10}", read_by["principal"])
    assert manifest["openings"] == {"file": "openings.jsonl", "share": "all", "values": len(lines), "erased": 0,
                                    "unavailable": 0}
    assert f"opened {len(lines)} personal value(s) of every event" in done.stdout
    # verify-export checks every opening against its leaf
    ok = world.verify("auditor")
    assert ok.status == 0, ok.stdout
    assert ok.stdout.startswith("OK: ") and f"{len(lines)} opening(s) verified" in ok.stdout
    report = verify_bundle(bundle, _vkey(world))
    assert report.ok and report.openings_checked == len(lines)


def _vkey(world: World) -> Any:
    from ledger.audit.bundles import load_vkey

    return load_vkey(world.vkey)


def test_a_plain_export_has_no_openings_and_no_clear_value(world: World) -> None:
    assert world.export("plain").status == 0
    bundle = world.tmp / "plain"
    assert not (bundle / "openings.jsonl").exists()
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert "openings" not in manifest and manifest["personal_data"] == "commitments"
    everything = all_bytes(bundle)
    for value in (DE_SUBJECT, DE_JUSTIFICATION, DE_OFFICER, NL_SUBJECT, NL_OFFICER, ASK_JUSTIFICATION):
        assert value.encode() not in everything, value
    done = world.verify("plain")
    assert done.status == 0 and "opening" not in done.stdout
    report = json.loads(cli("verify-export", str(bundle), "--vkey", str(world.vkey), "--json").stdout)
    assert report["ok"] is True and report["openings_checked"] is None


# -- a Party's share -----------------------------------------------------------------------


def test_a_party_key_gets_its_share_only(world: World) -> None:
    assert world.export("plain").status == 0
    done = world.export_for("fr-recorder")
    assert done.status == 0, done.stderr
    bundle = world.tmp / "fr-recorder"
    assert (bundle / "events.jsonl").read_bytes() == (world.tmp / "plain" / "events.jsonl").read_bytes()
    values = opened_values(bundle)
    # FR received de_fr and asked about it: both are its share; NL -> US is not
    assert values[(world.de_fr, "subjects")] == [DE_SUBJECT]
    assert values[(world.ask, "justification")] == ASK_JUSTIFICATION
    assert {oid for oid, _ in values} == {world.de_fr, world.ask}
    everything = all_bytes(bundle)
    assert NL_SUBJECT.encode() not in everything and NL_OFFICER.encode() not in everything
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert manifest["openings"]["share"] == "party"
    assert manifest["openings"]["read_by"]["party"] == "FR"
    assert manifest["openings"]["values"] == len(values)
    assert "the share of party FR" in done.stdout
    assert world.verify("fr-recorder").status == 0
    # NL's auditor reads NL's transfer and nothing of DE's; US (its recipient) the same transfer
    for who in ("nl-auditor", "us-authority"):
        assert world.export_for(who).status == 0
        theirs = opened_values(world.tmp / who)
        assert {oid for oid, _ in theirs} == {world.nl_us}, who
        assert theirs[(world.nl_us, "subjects")] == [NL_SUBJECT]
        assert DE_SUBJECT.encode() not in all_bytes(world.tmp / who)
        assert world.verify(who).status == 0


# -- refusals: nothing written -------------------------------------------------------------


@pytest.mark.parametrize(("who", "message"), [
    ("verifier", r"may not read personal data: .*a verifier nothing"),
    ("admin", r"roles admin\) may not read personal data"),
    ("unknown", r"the API key is unknown or was revoked"),
    ("revoked", r"the API key is unknown or was revoked"),
])
def test_a_key_that_reads_no_personal_data_is_refused_and_nothing_is_written(
        world: World, who: str, message: str) -> None:
    done = world.export_for(who)
    assert done.status == 2
    assert re.search(message, done.one_line_error()), done.stderr
    assert not (world.tmp / who).exists()
    # an empty directory given stays empty
    (world.tmp / "empty").mkdir()
    again = world.export_for(who, "empty")
    assert again.status == 2 and list((world.tmp / "empty").iterdir()) == []


def test_usage_errors_of_the_options_are_one_line_exit_2(world: World) -> None:
    done = world.export("a", "--with-personal-data")
    assert done.status == 2 and "needs --api-key-file FILE" in done.one_line_error()
    done = world.export("b", "--api-key-file", str(world.keys["auditor"]))
    assert done.status == 2 and "only with --with-personal-data" in done.one_line_error()
    done = world.export("c", "--with-personal-data", "--api-key-file", str(world.tmp / "none.key"))
    assert done.status == 2 and "cannot read API key file" in done.one_line_error()
    two = world.tmp / "two.key"
    two.write_text(world.keys["auditor"].read_text() + world.keys["auditor"].read_text())
    done = world.export("d", "--with-personal-data", "--api-key-file", str(two))
    assert done.status == 2 and "alone on one line" in done.one_line_error()
    assert not any((world.tmp / name).exists() for name in "abcd")
    # the key on standard input
    done = cli("export", *where(world.settings), "--out", str(world.tmp / "stdin"), "--with-personal-data",
               "--api-key-file", "-", stdin=world.keys["auditor"].read_text())
    assert done.status == 0, done.stderr
    assert (world.tmp / "stdin" / "openings.jsonl").stat().st_size > 0


def test_as_a_real_process(world: World) -> None:
    """The whole path as an operator runs it: export with the key in a file, verify offline."""
    out = world.tmp / "process"
    done = run("export", "--out", str(out), "--with-personal-data", "--api-key-file", str(world.keys["auditor"]),
               "--transfer", world.de_fr, settings=world.settings)
    assert "personal value(s) of every event" in done.stdout
    checked = run("verify-export", str(out), "--vkey", str(world.vkey), "--json")
    report = json.loads(checked.stdout)
    assert report["ok"] and report["proofs_checked"] == 1 and report["openings_checked"] == len(openings(out))
    refused = run("export", "--out", str(world.tmp / "refused"), "--with-personal-data", "--api-key-file",
                  str(world.keys["verifier"]), settings=world.settings, check=2)
    assert "may not read personal data" in one_line_error(refused)
    assert not (world.tmp / "refused").exists()


# -- erasure ----------------------------------------------------------------------------------


def test_erased_values_are_in_no_file_of_the_bundle(world: World) -> None:
    app = world.app()
    try:
        app.erase_personal_data(world.de_fr, {"erased_by": actor("FR"), "ground": "purpose-achieved",
                                              "reasons": "proceeding closed by judgment"})
    finally:
        app.close()
    done = world.export_for("auditor")
    assert done.status == 0, done.stderr
    bundle = world.tmp / "auditor"
    everything = all_bytes(bundle)
    for value in (DE_SUBJECT, DE_JUSTIFICATION, ASK_JUSTIFICATION):  # the ask's texts were about de_fr's data
        assert value.encode() not in everything, value
        assert json.dumps(value)[1:-1].encode() not in everything, value
    values = opened_values(bundle)
    assert (world.de_fr, "subjects") not in values and (world.ask, "justification") not in values
    assert values[(world.de_fr, "sender.officer")] == DE_OFFICER  # who acted is kept (its own period)
    assert values[(world.nl_us, "subjects")] == [NL_SUBJECT]
    manifest = json.loads((bundle / "bundle.json").read_text())
    # subjects, justification and purpose.description of the transfer, and the ask's two subject texts
    assert manifest["openings"]["erased"] == 5 and manifest["openings"]["unavailable"] == 0
    assert manifest["openings"]["values"] == len(values)
    assert "5 erased (absent: destroyed)" in done.stdout
    assert world.verify("auditor").status == 0


# -- verify-export on changed openings ----------------------------------------------------------


@pytest.fixture
def exported(world: World) -> Path:
    assert world.export_for("auditor").status == 0
    return world.tmp / "auditor"


def first_bad(bundle: Path, vkey: Path) -> tuple[int, dict[str, Any]]:
    done = cli("verify-export", str(bundle), "--vkey", str(vkey), "--json")
    return done.status, json.loads(done.stdout)


def rewrite(bundle: Path, number: int, change: Any, *, manifest_too: bool = True) -> None:
    """Change line ``number`` of openings.jsonl (a dict, written in the exporter's form) and, by
    default, the manifest's digest with it: only the commitment check can catch it then."""
    path = bundle / "openings.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    obj = json.loads(lines[number - 1])
    change(obj)
    lines[number - 1] = openings_line(*(obj[k] if k != "salt" else bytes.fromhex(obj[k]) for k in OPENING_KEYS))
    path.write_bytes(b"".join(lines))
    if manifest_too:
        manifest_path = bundle / "bundle.json"
        manifest = json.loads(manifest_path.read_text())
        data = path.read_bytes()
        for entry in manifest["files"]:
            if entry["name"] == "openings.jsonl":
                entry.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
        manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


def _line_of(bundle: Path, originator_id: str, path: str) -> int:
    return next(n for n, o in enumerate(openings(bundle), 1) if (o["originator_id"], o["path"]) == (originator_id, path))


def test_an_altered_opening_fails_verify_export_at_its_line(world: World, exported: Path) -> None:
    number = _line_of(exported, world.de_fr, "subjects")

    def other_value(o: dict[str, Any]) -> None:
        o["value"] = ["Someone Else"]

    rewrite(exported, number, other_value)
    status, report = first_bad(exported, world.vkey)
    assert status == 1 and (report["first_bad_file"], report["first_bad_line"]) == ("openings.jsonl", number)
    assert "do not open the commitment at 'subjects'" in report["problems"][0]
    assert report["problem_count"] == 1, report["problems"]
    human = world.verify("auditor")
    assert human.status == 1 and human.stdout.startswith(f"FAILED: openings.jsonl:{number}: the salt and value")


@pytest.mark.parametrize(("change", "message"), [
    (lambda o: o.update(salt="00" * 32), "do not open the commitment"),
    (lambda o: o.update(path="transferred_at"), "has no commitment at 'transferred_at'"),  # a clear field
    (lambda o: o.update(path="zzz"), "has no commitment at 'zzz'"),
    (lambda o: o.update(originator_version=2), "not .* version 2"),
    (lambda o: o.update(leaf_index=o["leaf_index"] + 1), "comes after|not .* version|no commitment"),
    (lambda o: o.update(leaf_index=10_000), "not below the tree size|comes after"),
])
def test_an_opening_naming_the_wrong_leaf_path_or_salt_fails(world: World, exported: Path, change: Any,
                                                            message: str) -> None:
    number = _line_of(exported, world.de_fr, "subjects")  # the last path of its leaf: a later one keeps the order
    rewrite(exported, number, change)
    status, report = first_bad(exported, world.vkey)
    assert status == 1 and report["first_bad_file"] == "openings.jsonl", report["problems"]
    assert re.search(message, report["problems"][0]), report["problems"]


def test_an_opening_changed_without_the_manifest_fails_twice(world: World, exported: Path) -> None:
    number = _line_of(exported, world.nl_us, "subjects")
    rewrite(exported, number, lambda o: o.update(value=["x"]), manifest_too=False)
    status, report = first_bad(exported, world.vkey)
    assert status == 1 and report["first_bad_line"] == number
    assert any(p.startswith("bundle.json:") and "openings.jsonl has" in p for p in report["problems"])


def test_malformed_or_unlisted_openings_are_named(world: World, exported: Path) -> None:
    path = exported / "openings.jsonl"
    original = path.read_bytes()
    for raw, message in [
        (original.replace(b'"salt":"', b'"salt": "', 1), "not in the exporter's form"),
        (original.replace(b'"salt":"', b'"salt":"G', 1), "is not 32 bytes in lowercase hex"),
        (original.replace(b'{"leaf_index"', b'{"x":1,"leaf_index"', 1), "members are"),
        (original[:-1], "no newline at its end"),
        (b"\n" + original, "empty line"),
    ]:
        path.write_bytes(raw)
        report = verify_bundle(exported, _vkey(world))
        assert not report.ok and report.first_bad_file == "openings.jsonl", (message, report.problems)
        assert re.search(message, report.problems[0]), (message, report.problems)
    path.write_bytes(original)
    assert verify_bundle(exported, _vkey(world)).ok
    # two lines swapped: out of order
    lines = original.splitlines(keepends=True)
    path.write_bytes(b"".join([lines[1], lines[0], *lines[2:]]))
    assert "comes after" in verify_bundle(exported, _vkey(world)).problems[0]
    path.write_bytes(original)
    # the manifest's member: strict
    manifest_path = exported / "bundle.json"
    manifest_text = manifest_path.read_text()
    manifest = json.loads(manifest_text)
    for changed, message in [
        ({**manifest, "openings": {**manifest["openings"], "share": "some"}}, "openings.share is \"some\""),
        ({**manifest, "openings": {**manifest["openings"], "extra": 1}}, "openings is not an object with members"),
        ({**manifest, "openings": {**manifest["openings"], "file": "x.jsonl"}}, "openings.file is"),
        ({**manifest, "openings": {**manifest["openings"], "erased": -1}}, "openings.erased is -1"),
        ({**manifest, "openings": {**manifest["openings"], "values": 1}}, "openings.values is 1, but openings.jsonl"),
        ({**manifest, "personal_data": "in-leaves"}, "personal_data is \"in-leaves\""),
        ({k: v for k, v in manifest.items() if k != "openings"}, "bundle.json has no openings member"),
    ]:
        manifest_path.write_text(json.dumps(changed, indent=2, ensure_ascii=False) + "\n")
        report = verify_bundle(exported, _vkey(world))
        assert not report.ok and any(re.search(message, p) for p in report.problems), (message, report.problems)
    manifest_path.write_text(manifest_text)
    # an openings.jsonl the manifest does not list at all (added to a plain bundle)
    assert world.export("plain").status == 0
    (world.tmp / "plain" / "openings.jsonl").write_bytes(original)
    report = verify_bundle(world.tmp / "plain", _vkey(world))
    assert report.problems[0] == "openings.jsonl: is in the bundle but not listed in bundle.json"


def test_openings_after_a_bad_events_line_are_not_checked(world: World, exported: Path) -> None:
    events_path = exported / "events.jsonl"
    lines = events_path.read_bytes().splitlines(keepends=True)
    lines[0] = lines[0].replace(b'"leaf_index":0', b'"leaf_index":7', 1)
    events_path.write_bytes(b"".join(lines))
    report = verify_bundle(exported, _vkey(world))
    assert report.first_bad_file == "events.jsonl"
    assert any(p.startswith("openings.jsonl:1: this line and those after it cannot be checked") for p in report.problems)


# -- format 1, the documented line ------------------------------------------------------------------


def test_a_format_1_ledger_refuses_with_personal_data(backend: Backend, tmp_path: Path) -> None:
    env = {k: v for k, v in eventsourcing_env(backend.settings).items() if k != "DATA_KEYS_DIR"}
    old = TransferLedger(env)
    try:
        assert old.event_format == 1
        old.record_transfer(transfer("DE", "FR", subjects=[DE_SUBJECT]))
        _, key = principals_of(old).add("*", "auditor")
        signer = Signer.generate("transfer-ledger.example/ledger")
        with pytest.raises(Exception, match="event format 1: its personal values are in the leaves") as refused:
            export_bundle(old, signer, tmp_path / "bundle", reader=principals_of(old).authenticate(key))
        assert getattr(refused.value, "status", None) == 2
        assert not (tmp_path / "bundle").exists()
        plain = export_bundle(old, signer, tmp_path / "plain")
        assert plain.openings is None
        assert json.loads((tmp_path / "plain" / "bundle.json").read_text())["personal_data"] == "in-leaves"
    finally:
        old.close()


def test_format_md_openings_line_is_what_the_code_writes() -> None:
    """FORMAT.md section 14's example line: the worked example of section 17.6, at leaf 0."""
    text = FORMAT_MD.read_text("utf-8")
    [block] = re.findall(r"^```json example=openings-line\n(.*?)\n```$", text, re.M | re.S)
    salt = bytes(range(32))
    oid = "3f1c0c1e-0000-4000-8000-000000000001"
    assert block.encode() + b"\n" == openings_line(0, oid, 1, "subjects", salt, ["Ivan Petrov"])
    assert commit(salt, oid, 1, "subjects", ["Ivan Petrov"]) in text  # 17.6's commitment, which it opens


# -- the consultation log (LED art. 25) ----------------------------------------------------------


def consultations(world: World) -> list[dict[str, Any]]:
    app = world.app()
    try:
        items, _ = app.consultations.page(limit=1000)
        return items
    finally:
        app.close()


def test_an_export_with_personal_data_is_logged_with_its_justification(world: World) -> None:
    done = world.export("fr", "--with-personal-data", "--api-key-file", str(world.keys["fr-recorder"]),
                        "--justification", "request 17/2026 of the prosecutor")
    assert done.status == 0, done.stderr
    [entry] = consultations(world)
    assert (entry["via"], entry["route"], entry["party"]) == ("cli", "transfer-ledger export --with-personal-data",
                                                              "FR")
    assert entry["objects"] == ["leaves:0-2"] and entry["reader"]["justification"].startswith("request 17")
    assert world.export("plain").status == 0  # without personal data: nothing read, nothing logged
    assert len(consultations(world)) == 1


def test_a_partys_policy_can_require_the_exports_justification(world: World) -> None:
    set_policy = cli("policy", *where(world.settings), "--party", "FR", "--authority", "FR/DPO", "--officer",
                     "Dr. Roth", "--justification-required")
    assert set_policy.status == 0 and json.loads(set_policy.stdout)["justification_required"] is True
    done = world.export_for("fr-recorder")
    assert done.status == 2 and "--justification" in done.one_line_error()
    assert not (world.tmp / "fr-recorder").exists() or not any((world.tmp / "fr-recorder").iterdir())
    assert consultations(world) == []
    bad = world.export("x", "--justification", "why")
    assert bad.status == 2 and "only with --with-personal-data" in bad.one_line_error()
