"""The command line, run as a real process: outputs, files, exit statuses."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from ledger.config import Settings
from ledger.tlog.note import Verifier, open_checkpoint
from tests.support.cli import one_line_error, run


@pytest.fixture
def initialized(settings: Settings) -> Settings:
    run("init", settings=settings)
    return settings


def test_init_creates_key_vkey_and_database_once(settings: Settings) -> None:
    first = run("init", "--origin", "ledger.example.org/transfers", settings=settings)
    vkey, admin_key = first.stdout.splitlines()  # the verifier key, then the first admin API key
    assert vkey.startswith("ledger.example.org/transfers+") and admin_key.startswith("tl_")
    verifier = Verifier.from_vkey(vkey)
    key_file = settings.data_dir / "signing.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.data_dir.stat().st_mode) == 0o700
    key_bytes = key_file.read_bytes()
    again = run("init", settings=settings)
    assert "already initialized" in again.stderr and "nothing changed" in again.stderr
    assert again.stdout.strip() == verifier.vkey()
    assert key_file.read_bytes() == key_bytes
    if settings.database_url is None:
        assert settings.database_file.exists()


def test_checkpoint_prints_a_signed_note_alone(initialized: Settings) -> None:
    run("demo", settings=initialized)
    done = run("checkpoint", settings=initialized)
    vkey = (initialized.data_dir / "ledger.vkey").read_text().strip()
    checkpoint = open_checkpoint(done.stdout, Verifier.from_vkey(vkey), "transfer-ledger.example/ledger")
    assert checkpoint.size > 10
    assert done.stdout.endswith("\n") and done.stdout.startswith("transfer-ledger.example/ledger\n")
    assert run("checkpoint", settings=initialized).stdout == done.stdout  # same tree, same bytes


def test_demo_narrates_refusals_and_the_ledger_verifies(initialized: Settings) -> None:
    done = run("demo", settings=initialized)
    for rule in ("not-origin", "written-instrument-required", "onward-transfer-not-authorized",
                 "authorization-revoked", "h2-consent-required", "specialty-consent-required",
                 "preservation-period-too-short", "preservation-period-running", "interested-participant",
                 "check-organized-late"):
        assert f"REFUSED [{rule}]" in done.stdout
    assert "INTERPOL -> BR" in done.stdout
    report = json.loads(run("verify", "--json", settings=initialized).stdout)
    assert report["ok"] is True and report["first_bad_index"] is None and report["problems"] == []
    # 25 leaves (the art. 36 §3 story, FR's H2 consent, uses, a consent and a notice, a preservation and
    # its extension) and a checkpoint of them; then (event format 2) a hold placed and lifted, the
    # erasure, an acknowledgement, and the checkpoint the erasure's certificate was made against; last,
    # a referral (its transfer and its notice); and DE's internal control: a plan, a planned check and its
    # conclusion, an unplanned check and its conclusion, a measure completed
    assert report["tree_size"] == 37 and report["checkpoints_checked"] == 2
    assert "INTERPOL asked FR; FR consented at leaf 10" in done.stdout
    assert "notice to DE recorded at leaf 22" in done.stdout
    assert "DE informed NL at leaf 29 (its own finding: origin DE) and told FR to turn to NL at leaf 30" in done.stdout
    assert "concluded at leaf 35, reported to Direktor P. Schulz (DE/BKA)" in done.stdout
    assert "the planned check's measure completed at leaf 36" in done.stdout
    human = run("verify", settings=initialized)
    assert human.stdout.startswith("OK: ")


def test_demo_erases_personal_data_and_certifies_it(initialized: Settings) -> None:
    out = run("demo", settings=initialized).stdout
    assert "REFUSED [processing-restricted]" in out and "hold lifted at leaf 26" in out
    erased = next(line for line in out.splitlines() if line.startswith("   erased at leaf "))
    assert erased.startswith("   erased at leaf 27: data key ") and "destroyed" in erased
    assert "   subjects: erased at leaf 27, commitment:" in out
    assert "   sender.officer: Kriminalhauptkommissarin A. Keller" in out
    assert "to INTERPOL" in out and "to BR" in out and "INTERPOL acknowledged at leaf 28" in out
    [certificate] = initialized.data_dir.glob("erasure-certificate-*.json")
    assert f"   written to {certificate}" in out
    assert "   Not witnessed: no witness has cosigned any checkpoint of this ledger." in out
    doc = json.loads(certificate.read_text())
    assert doc["leaf_index"] == 27 and doc["cosigned_by"] == []
    assert "MLA request FR-MLA-2026-112" not in certificate.read_text()
    vkey = initialized.data_dir / "ledger.vkey"
    assert f"transfer-ledger verify-certificate {certificate} --vkey {vkey}" in out
    checked = run("verify-certificate", str(certificate), "--vkey", str(vkey))
    assert checked.stdout.startswith(f"OK: erasure of {doc['transfer_id']} at leaf 27, in the signed tree of 29")
    # the erased transfer reads as erased from the command line's ledger too
    from ledger.bootstrap import open_ledger

    ledger = open_ledger(initialized)
    try:
        read = ledger.get_transfer(doc["transfer_id"])
    finally:
        ledger.close()
    assert set(read["subjects"]) == {"erased", "commitment"} and read["erasure"]["ground"] == "purpose-achieved"


def test_verify_of_an_empty_ledger(initialized: Settings) -> None:
    report = json.loads(run("verify", "--json", settings=initialized).stdout)
    assert report == {**report, "ok": True, "tree_size": 0, "first_bad_index": None, "problems": []}


def test_commands_on_an_uninitialized_dir_exit_2(tmp_path: Path) -> None:
    settings = Settings(tmp_path / "nothing-here")
    for command in ("verify", "checkpoint", "demo"):
        done = run(command, settings=settings, check=2)
        assert "not an initialized ledger data dir" in one_line_error(done)
    assert not settings.data_dir.exists()
    done = run("verify", "--json", settings=settings, check=2)
    assert json.loads(done.stdout)["ok"] is False


def test_bad_database_url_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    done = run("init", "--data-dir", str(data_dir), "--database-url", "mysql://u@h/db", check=2)
    assert "unsupported database URL scheme" in one_line_error(done)
    assert not data_dir.exists()


def test_a_key_file_readable_by_others_is_refused(initialized: Settings) -> None:
    key = initialized.data_dir / "signing.key"
    key.chmod(0o644)
    done = run("checkpoint", settings=initialized, check=2)
    assert "chmod 600" in one_line_error(done)


def test_a_bad_origin_name_is_refused(tmp_path: Path) -> None:
    done = run("init", "--data-dir", str(tmp_path / "d"), "--origin", "has space", check=2)
    one_line_error(done)
    assert not (tmp_path / "d").exists()


def test_wrong_verifier_key_fails_the_checkpoints(initialized: Settings, tmp_path: Path) -> None:
    run("demo", settings=initialized)
    other = Settings(tmp_path / "other")
    run("init", settings=other)
    done = run("verify", "--json", "--vkey", str(other.data_dir / "ledger.vkey"), settings=initialized, check=1)
    report = json.loads(done.stdout)
    assert report["ok"] is False
    assert any("does not verify" in p for p in report["problems"])


def test_help_lists_the_commands() -> None:
    done = run("--help")
    for command in ("init", "checkpoint", "verify", "demo"):
        assert command in done.stdout
    assert "Exit status" in run("verify", "--help").stdout
