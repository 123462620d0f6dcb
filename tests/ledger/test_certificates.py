"""Erasure certificates against a witnessed ledger: a real ``serve`` process, a real witness key made
by ``transfer-ledger witness init`` and cosigning with ``witness run``; the certificate over HTTP
and from the command line carries the cosignature, ``verify-certificate --witness`` checks it, and a
tampered cosignature fails. Without a witness, the certificate says so in words."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.audit.certificates import NOT_WITNESSED, NOT_YET_WITNESSED
from ledger.config import Settings
from ledger.tlog.cosignature import CosignatureVerifier
from tests.support import builders
from tests.support.witness import Witnessed, cli, one_line_error, witnessed_ledger

SUBJECT = "Yevgenia Arkadyevna Lobacheva"


@pytest.fixture
def w(settings: Settings, tmp_path: Path) -> Iterator[Witnessed]:
    with witnessed_ledger(settings, tmp_path) as witnessed:
        yield witnessed


def erased_transfer(w: Witnessed) -> dict[str, Any]:
    """A transfer DE -> FR with a subject, then erased by FR: its view after the erasure."""
    with w.client("DE-recorder") as de:
        made = de.post("/v1/transfers", json=builders.transfer("DE", "FR", subjects=[SUBJECT]))
    assert made.status_code == 201, made.text
    with w.client("FR-authority") as fr:
        erased = fr.post(f"/v1/transfers/{made.json()['id']}/erasure",
                         json={"erased_by": builders.actor("FR"), "ground": "purpose-achieved",
                               "reasons": "proceeding closed"})
    assert erased.status_code == 200, erased.text
    return erased.json()  # type: ignore[no-any-return]


def certificate_over_http(w: Witnessed, transfer_id: str) -> dict[str, Any]:
    with w.client("DE-recorder") as de:
        got = de.get(f"/v1/transfers/{transfer_id}/erasure-certificate")
    assert got.status_code == 200, got.text
    return got.json()  # type: ignore[no-any-return]


def certificate_from_cli(w: Witnessed, transfer_id: str, out: Path) -> dict[str, Any]:
    settings = w.init.settings
    args = ["erasure-certificate", transfer_id, "--out", str(out), "--data-dir", str(settings.data_dir)]
    if settings.database_url:
        args += ["--database-url", settings.database_url]
    done = cli(*args)
    assert "written to" in done.stdout
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def verify(w: Witnessed, path: Path, *args: str, check: int = 0) -> subprocess.CompletedProcess[str]:
    return cli("verify-certificate", str(path), "--vkey", str(w.vkey_file), *args, check=check)


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc))
    return path


def test_a_certificate_carries_the_witness_cosignature_and_verify_certificate_checks_it(w: Witnessed) -> None:
    erased = erased_transfer(w)
    tid, leaf_index = erased["id"], erased["erasure"]["leaf_index"]

    # not witnessed yet: the certificate says so in words, and names no cosigner
    plain = certificate_over_http(w, tid)
    assert plain["cosigned_by"] == [] and plain["witnessing"] == NOT_WITNESSED
    assert plain["witnessing"].startswith("Not witnessed: no witness has cosigned any checkpoint")
    plain_file = write(w.tmp / "plain.json", plain)
    ok = verify(w, plain_file)
    assert "0 cosignature(s)" in ok.stdout and "Witnessing: Not witnessed" in ok.stdout

    # a witness with a real key on disk cosigns the ledger's latest checkpoint, which covers the erasure
    state, vkey = w.witness_init("witness.example/w1")
    witness = CosignatureVerifier.from_vkey(vkey)
    # (at the erasure's size, or past it by the consultation log of the certificate's read)
    cosigned = re.search(rf"cosigned {re.escape(w.init.verifier.name)} at size (\d+),", w.witness_run(state).stdout)
    assert cosigned is not None and int(cosigned.group(1)) > leaf_index
    served = w.checkpoint()
    assert served.count("\n\u2014 ") == 2  # the ledger's signature and the witness's cosignature

    # over HTTP and from the command line: the same certificate, the cosigned checkpoint inside it
    certificate = certificate_over_http(w, tid)
    assert certificate["tlog_proof"].endswith("\n\n" + served)
    assert certificate["cosigned_by"] == [witness.describe()]
    assert certificate["witnessing"].startswith(f"Cosigned by 1 witness(es): {witness.describe()}.")
    assert certificate["leaf_index"] == leaf_index and SUBJECT not in json.dumps(certificate)
    from_cli = certificate_from_cli(w, tid, w.tmp / "cli.json")
    assert from_cli == certificate

    # the ledger's key alone: holds, and counts the cosignature without claiming to have checked it
    path = w.tmp / "cli.json"
    ok = verify(w, path)
    assert ok.stdout.startswith(f"OK: erasure of {tid} at leaf {leaf_index}")
    assert "1 cosignature(s)" in ok.stdout and "Witnesses:" not in ok.stdout
    # with the witness's vkey (its file, as witness init wrote it): checked, and said so
    ok = verify(w, path, "--witness", str(state / "witness.vkey"))
    assert (f"Witnesses: 1 of the 1 given cosigned (quorum 1), each verified: {witness.describe()}"
            in ok.stdout), ok.stdout
    report = json.loads(verify(w, path, "--witness", vkey, "--json").stdout)
    assert report["ok"] and report["cosignatures"] == 1 and report["quorum"] == 1
    assert report["cosigned_by"] == [witness.describe()]
    [checked] = report["witnesses_verified"]
    assert checked["witness"] == witness.describe() and abs(checked["timestamp"] - time.time()) < 300

    # a witness that did not cosign: the quorum of all given is not reached, a quorum of 1 is
    _, other = w.witness_init("witness.example/w2")
    failed = verify(w, path, "--witness", vkey, "--witness", other, check=1)
    assert failed.stdout.startswith("FAILED: cosignatures: checkpoint of ") and "1 of the 2 known" in failed.stdout
    verify(w, path, "--witness", vkey, "--witness", other, "--quorum", "1")
    verify(w, plain_file, "--witness", vkey, check=1)  # the earlier certificate has no cosignature

    # one bit of the cosignature changed: fails under the witness's key, names the line
    line = served.splitlines()[-1]
    name, blob = line.removeprefix("\u2014 ").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 0x01
    forged_line = f"\u2014 {name} {base64.b64encode(bytes(raw)).decode()}"
    tampered = {**certificate, "tlog_proof": certificate["tlog_proof"].replace(line, forged_line)}
    assert tampered["tlog_proof"] != certificate["tlog_proof"]
    bad = write(w.tmp / "tampered.json", tampered)
    failed = verify(w, bad, "--witness", vkey, check=1)
    assert failed.stdout.startswith("FAILED: cosignatures: signature line 2: cosignature by "
                                    f"{witness.describe()}"), failed.stdout
    assert "does not verify over this checkpoint" in failed.stdout
    # a cosignature dropped, or claimed where there is none, does not match what the certificate says
    dropped = {**certificate, "tlog_proof": certificate["tlog_proof"].replace(line + "\n", "")}
    failed = verify(w, write(w.tmp / "dropped.json", dropped), check=1)
    assert failed.stdout.startswith("FAILED: cosigned_by says ['witness.example/w1+"), failed.stdout
    boasting = {**plain, "witnessing": certificate["witnessing"]}
    failed = verify(w, write(w.tmp / "boasting.json", boasting), check=1)
    assert failed.stdout.startswith("FAILED: witnessing claims witnesses"), failed.stdout

    # a later erasure, not yet seen by the witness: the ledger is witnessed, this checkpoint is not
    later = erased_transfer(w)
    pending = certificate_over_http(w, later["id"])
    assert pending["cosigned_by"] == [] and pending["witnessing"] == NOT_YET_WITNESSED
    verify(w, write(w.tmp / "pending.json", pending))
    w.witness_run(state)
    assert certificate_over_http(w, later["id"])["cosigned_by"] == [witness.describe()]


def test_witness_options_that_cannot_be_used_exit_2_in_one_line(w: Witnessed) -> None:
    erased = erased_transfer(w)
    path = write(w.tmp / "c.json", certificate_over_http(w, erased["id"]))
    done = verify(w, path, "--witness", "not-a-vkey", check=2)
    assert "--witness not-a-vkey: no such file" in one_line_error(done)
    done = verify(w, path, "--witness", str(w.vkey_file), check=2)  # the ledger's vkey is not a witness's
    assert "signature type 0x01 is not supported, expected 0x04" in one_line_error(done)
    _, vkey = w.witness_init("witness.example/w1")
    done = verify(w, path, "--witness", vkey, "--quorum", "2", check=2)
    assert "--quorum 2 exceeds the 1 distinct --witness keys given" in one_line_error(done)
    done = verify(w, path, "--quorum", "1", check=2)
    assert "--quorum 1 exceeds the 0 distinct --witness keys given" in one_line_error(done)
    assert "--witness" in cli("verify-certificate", "--help").stdout


def test_the_certificate_endpoint_answers_only_for_erased_transfers(w: Witnessed) -> None:
    with httpx.Client(base_url=w.server.url, timeout=10.0,
                      headers={"Authorization": f"Bearer {w.keys['DE-recorder']}"}) as de:
        made = de.post("/v1/transfers", json=builders.transfer("DE", "FR", subjects=[SUBJECT])).json()
        got = de.get(f"/v1/transfers/{made['id']}/erasure-certificate")
    assert got.status_code == 404 and got.json()["rule"] == "erasure-not-found"
