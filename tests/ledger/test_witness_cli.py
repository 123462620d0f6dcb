"""``witness init``, ``witness check`` and ``verify-checkpoint`` as real processes:
outputs, exit statuses, and one precise line on stderr for every malformed input."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.tlog.cosignature import Cosigner
from ledger.tlog.merkle import leaf_hash, root_from_leaf_hashes
from ledger.tlog.note import Checkpoint, Signer, sign_checkpoint

ORIGIN = "ledger.example/log"
NOW = 1_780_000_000


def run(*args: str, check: int | None = 0, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRANSFER_LEDGER_")}
    done = subprocess.run([sys.executable, "-m", "ledger.cli", *args], capture_output=True, text=True, env=env,
                          input=stdin, timeout=120)
    if check is not None:
        assert done.returncode == check, (done.returncode, done.stdout, done.stderr)
    return done


def error_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("transfer-ledger: error: ") and "Traceback" not in done.stderr
    return lines[0].removeprefix("transfer-ledger: error: ")


LOG = Signer.from_seed(ORIGIN, bytes(range(32)))
W1, W2, W3 = (Cosigner.from_seed(f"witness.example/w{i}", bytes([i]) * 32) for i in (1, 2, 3))


def note_of(size: int, salt: str = "") -> str:
    hashes = [leaf_hash(f"{salt}{i}".encode()) for i in range(size)]
    return sign_checkpoint(Checkpoint(ORIGIN, size, root_from_leaf_hashes(hashes)), LOG)


def cosigned(note: str, *witnesses: Cosigner) -> str:
    text = note[: note.rfind("\n\n") + 1]
    return note + "".join(w.cosign(text, NOW) for w in witnesses)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "ledger.vkey").write_text(LOG.vkey() + "\n")
    for w in (W1, W2, W3):
        (tmp_path / f"{w.name.rsplit('/', 1)[1]}.vkey").write_text(w.vkey() + "\n")
    return tmp_path


def test_witness_init_prints_the_vkey_alone_once(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = run("witness", "init", "--state", str(state), "--name", "witness.example/w1")
    vkey = first.stdout.strip()
    assert first.stdout == vkey + "\n" and vkey.startswith("witness.example/w1+")
    assert (state / "witness.vkey").read_text() == first.stdout
    assert stat.S_IMODE((state / "witness.key").stat().st_mode) == 0o600
    again = run("witness", "init", "--state", str(state), "--name", "witness.example/w1")
    assert again.stdout == first.stdout and "already initialized" in again.stderr
    renamed = run("witness", "init", "--state", str(state), "--name", "other", check=2)
    assert "already holds the key of witness 'witness.example/w1'" in error_line(renamed)
    bad = run("witness", "init", "--state", str(tmp_path / "s2"), "--name", "a b", check=2)
    assert error_line(bad) == "witness name: key name 'a b' contains a space character U+0020"
    assert not (tmp_path / "s2").exists()


def test_verify_checkpoint_counts_known_witnesses(files: Path) -> None:
    note = files / "note"
    note.write_text(cosigned(note_of(5), W1, W2))
    base = ["verify-checkpoint", str(note), "--vkey", str(files / "ledger.vkey")]
    ok = run(*base, "--witness", str(files / "w1.vkey"), "--witness", W2.vkey())
    assert ok.stdout.startswith(f"OK: {ORIGIN} at size 5, root ")
    assert "cosigned by 2 of 2 known witnesses (quorum 2): witness.example/w1+" in ok.stdout
    assert "2026-05-28T20:26:40Z" in ok.stdout  # the timestamp NOW, in UTC
    run(*base)  # no witness asked for: the log signature alone
    failed = run(*base, "--witness", str(files / "w1.vkey"), "--witness", str(files / "w3.vkey"), check=1)
    assert "is cosigned by 1 of the 2 known witnesses (witness.example/w1+" in error_line(failed)
    run(*base, "--witness", str(files / "w1.vkey"), "--witness", str(files / "w3.vkey"), "--quorum", "1")
    piped = run("verify-checkpoint", "-", "--vkey", LOG.vkey(), "--witness", W1.vkey(), stdin=note.read_text())
    assert piped.stdout.startswith("OK:")


@pytest.mark.parametrize(("note", "message"), [
    (lambda: note_of(5)[:-2], "note's last signature line does not end in a newline"),
    (lambda: note_of(5) + "\n", "note has no signature lines after its last blank line"),
    (lambda: note_of(5).replace("\n5\n", "\n05\n"), "does not verify"),
    (lambda: "x" * 10, "note has no blank line between its text and its signatures"),
    (lambda: cosigned(note_of(5), W1) + W2.cosign(note_of(6)[: note_of(6).rfind("\n\n") + 1], NOW),
     "signature line 3: cosignature by witness.example/w2+"),
    (lambda: cosigned(note_of(5), W1)[:-10] + "AAAAAAAA=\n",
     "signature line 2: cosignature by witness.example/w1+0ad7d35e is 77 bytes, expected 76 (key id, "
     "8-byte timestamp, 64-byte Ed25519 signature)"),
    (lambda: cosigned(note_of(5), W1)[:-3] + "*=\n", "signature line 2: signature is not valid standard base64"),
    (lambda: note_of(5) + f"— witness.example/w1 {base64.b64encode(W1.key_id.to_bytes(4, 'big')).decode()}\n",
     "signature line 2: cosignature by witness.example/w1+"),
    (lambda: sign_checkpoint(Checkpoint("elsewhere", 1, bytes(32)), LOG),
     "checkpoint origin 'elsewhere' is not the expected 'ledger.example/log'"),
])
def test_malformed_or_failing_checkpoints_exit_1_naming_the_fault(files: Path, note: object, message: str) -> None:
    path = files / "note"
    path.write_text(note())  # type: ignore[operator]
    done = run("verify-checkpoint", str(path), "--vkey", str(files / "ledger.vkey"), "--witness",
               str(files / "w1.vkey"), "--witness", str(files / "w2.vkey"), "--quorum", "1", check=1)
    line = error_line(done)
    assert line.startswith(f"checkpoint {path}: ") and message in line, line


@pytest.mark.parametrize(("args", "message"), [
    (["--witness", "missing.vkey"], "witness vkey missing.vkey: no such file"),
    (["--witness", "w1+00000000+AAAA"], "witness vkey: no such file 'w1+00000000+AAAA', nor a valid vkey"),
    (["--witness", "LEDGER"], "signature type 0x01 is not supported, expected 0x04"),
    (["--witness", "TWO_LINES"], "2 lines, expected one vkey line"),
    (["--witness", "EMPTY"], "the file is empty"),
    (["--witness", "W1", "--quorum", "2"], "--quorum 2 exceeds the 1 distinct --witness keys given"),
    (["--witness", "W1", "--witness", "W1", "--quorum", "2"], "--quorum 2 exceeds the 1 distinct"),
])
def test_usage_errors_exit_2(files: Path, args: list[str], message: str) -> None:
    note = files / "note"
    note.write_text(cosigned(note_of(5), W1))
    (files / "two").write_text(W1.vkey() + "\n" + W2.vkey() + "\n")
    (files / "empty").write_text("")
    names = {"LEDGER": str(files / "ledger.vkey"), "TWO_LINES": str(files / "two"), "EMPTY": str(files / "empty"),
             "W1": str(files / "w1.vkey")}
    done = run("verify-checkpoint", str(note), "--vkey", str(files / "ledger.vkey"),
               *[names.get(a, a) for a in args], check=2)
    assert message in error_line(done)


def test_an_unreadable_note_or_log_vkey_is_a_usage_error(files: Path) -> None:
    done = run("verify-checkpoint", str(files / "nothing"), "--vkey", str(files / "ledger.vkey"), check=2)
    assert "cannot read checkpoint" in error_line(done)
    done = run("verify-checkpoint", str(files / "nothing"), "--vkey", str(files / "w1.vkey"), check=2)
    assert "log vkey" in error_line(done) and "signature type 0x04 is not supported, expected 0x01" in done.stderr
    run("verify-checkpoint", check=2)  # NOTE and --vkey are required


def test_witness_check_compares_two_checkpoints_offline(files: Path) -> None:
    a, b, c = files / "a", files / "b", files / "c"
    a.write_text(note_of(5))
    b.write_text(cosigned(note_of(5), W1))
    c.write_text(note_of(5, salt="other"))
    vkey = ["--log-vkey", str(files / "ledger.vkey")]
    assert run("witness", "check", str(a), str(b), *vkey).stdout.startswith("OK: the same tree: size 5")
    split = run("witness", "check", str(a), str(c), *vkey, check=1)
    assert error_line(split).startswith("SPLIT VIEW: two checkpoints of size 5 with different roots: ")
    larger = files / "larger"
    larger.write_text(note_of(8))
    done = run("witness", "check", str(a), str(larger), *vkey, check=2)
    assert "sizes 5 and 8: pass --proof FILE" in error_line(done)
    bad_proof = files / "proof"
    bad_proof.write_text("AAAA\n")
    done = run("witness", "check", str(a), str(larger), *vkey, "--proof", str(bad_proof), check=2)
    assert error_line(done) == f"proof {bad_proof} line 1: 3 bytes, expected 32"
    bad_proof.write_text(base64.b64encode(bytes(32)).decode() + "\n")
    done = run("witness", "check", str(a), str(larger), *vkey, "--proof", str(bad_proof), check=1)
    assert "wrong proof size" in error_line(done)
    forged = files / "forged"
    forged.write_text(sign_checkpoint(Checkpoint(ORIGIN, 5, bytes(32)), Signer.generate(ORIGIN)))
    done = run("witness", "check", str(a), str(forged), *vkey, check=1)
    assert error_line(done).startswith(f"checkpoint {forged}: note has no signature by a known key")


def test_the_largest_timestamp_is_shown_as_a_number(files: Path) -> None:
    note = note_of(2)
    text = note[: note.rfind("\n\n") + 1]
    path = files / "note"
    path.write_text(note + W1.cosign(text, 2**63 - 1))
    done = run("verify-checkpoint", str(path), "--vkey", LOG.vkey(), "--witness", W1.vkey())
    assert f"witness.example/w1+{W1.key_id:08x} at POSIX time 9223372036854775807" in done.stdout
