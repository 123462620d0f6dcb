"""Witnesses and the ledger: cosignatures over HTTP, checkpoints served with them,
and ``transfer-ledger witness run`` against a real ``serve`` process and
against a malicious log (a small fake server signing with the real log key):
split view, an inconsistent larger tree, a rollback.

Both backends: PostgreSQL when ``TRANSFER_LEDGER_TEST_DATABASE_URL`` is set.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

import ledger.storage.cosignatures
from ledger.config import Settings
from ledger.storage.sql import SqlAccess
from ledger.tlog.cosignature import CosignatureVerifier, Cosigner, verify_cosignatures
from ledger.tlog.keys import load_signing_key
from ledger.tlog.note import Checkpoint, Signer, open_checkpoint, sign_checkpoint
from tests.support.api import ORIGIN_LINE, Api, problem
from tests.support.server import clean_env
from tests.support.witness import Witnessed, cli, one_line_error, witnessed_ledger

NOW = int(time.time())


def text_of(note: str) -> str:
    return note[: note.rfind("\n\n") + 1]


def witness_key(n: int = 1) -> Cosigner:
    return Cosigner.from_seed(f"witness.example/w{n}", bytes([n]) * 32)


def latest(api: Api) -> str:
    response = api.get("/v1/checkpoint", "*-verifier")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def post(api: Api, body: dict[str, Any], who: str = "*-verifier") -> httpx.Response:
    return api.post("/v1/checkpoint/cosignatures", body, who)


def cosign(api: Api, witness: Cosigner, note: str, timestamp: int = NOW, who: str = "*-verifier") -> httpx.Response:
    size = open_checkpoint(note, api.init.verifier).size
    return post(api, {"tree_size": size, "vkey": witness.vkey(),
                      "cosignature": witness.cosign(text_of(note), timestamp)}, who)


# -- the endpoints, in-process ---------------------------------------------------------------


def test_a_cosignature_is_stored_once_and_served_with_the_checkpoint(api: Api) -> None:
    api.transfer("DE", "FR")
    api.transfer("DE", "NL")
    note = latest(api)
    w1 = witness_key(1)
    line = w1.cosign(text_of(note), NOW)
    body = {"tree_size": 2, "vkey": w1.vkey(), "cosignature": line}
    created = api.ok(post(api, body), 201)
    assert created == {
        "tree_size": 2, "vkey": w1.vkey(), "key_name": "witness.example/w1", "key_id": f"{w1.key_id:08x}",
        "timestamp": NOW, "cosignature": line, "created_at": created["created_at"],
    }
    assert api.ok(post(api, body), 200) == created  # a retry records nothing twice
    later = w1.cosign(text_of(note), NOW + 5)
    assert api.ok(post(api, {**body, "cosignature": later.rstrip("\n")}), 200) == created  # the first is kept

    served = latest(api)
    assert served == note + line
    checkpoint, found = verify_cosignatures(served, api.init.verifier, [w1.verifier()], 1, ORIGIN_LINE)
    assert checkpoint.size == 2 and found[0].timestamp == NOW
    assert open_checkpoint(served, api.init.verifier, ORIGIN_LINE) == checkpoint  # plain verifiers ignore it

    w2 = witness_key(2)
    api.ok(cosign(api, w2, note, NOW + 1), 201)
    assert latest(api) == note + line + w2.cosign(text_of(note), NOW + 1)
    verify_cosignatures(latest(api), api.init.verifier, [w1.verifier(), w2.verifier()], 2, ORIGIN_LINE)


def test_an_earlier_checkpoint_is_served_with_its_own_cosignatures(api: Api) -> None:
    api.transfer("DE", "FR")
    first = latest(api)
    api.ok(cosign(api, witness_key(1), first), 201)
    api.transfer("DE", "NL")
    second = latest(api)
    assert open_checkpoint(second, api.init.verifier).size == 2 and second.count("\u2014") == 1
    earlier = api.get("/v1/checkpoint", "DE-recorder", params={"tree_size": 1})  # anyone with a key
    assert earlier.status_code == 200 and earlier.text == first + witness_key(1).cosign(text_of(first), NOW)
    assert api.get("/v1/checkpoint", "*-verifier", params={"tree_size": 2}).text == second
    body = problem(api.get("/v1/checkpoint", "*-verifier", params={"tree_size": 7}), 404, "checkpoint-not-found")
    assert body["detail"] == "no checkpoint of size 7 is stored" and body["field"] == "tree_size"
    for bad in ("-1", "x", str(2**63)):
        problem(api.get("/v1/checkpoint", "*-verifier", params={"tree_size": bad}), 422, "invalid-input")
    problem(api.get("/v1/checkpoint", None, params={"tree_size": 1}), 401)


def test_only_verifiers_post_cosignatures(api: Api) -> None:
    note = latest(api)
    for who in ("DE-recorder", "*-auditor", "*-admin"):
        problem(cosign(api, witness_key(), note, who=who), 403, "role-required")
    problem(cosign(api, witness_key(), note, who="none"), 401, "authentication-required")
    problem(cosign(api, witness_key(), note, who="revoked"), 401, "invalid-api-key")


def test_cosignatures_that_do_not_fit_are_refused_precisely(api: Api) -> None:
    api.transfer("DE", "FR")
    note = latest(api)
    w1, w2 = witness_key(1), witness_key(2)
    good = {"tree_size": 1, "vkey": w1.vkey(), "cosignature": w1.cosign(text_of(note), NOW)}

    body = problem(post(api, {**good, "tree_size": 5}), 422, "checkpoint-not-stored")
    assert body["field"] == "tree_size" and body["detail"] == "no checkpoint of size 5 is stored"
    body = problem(post(api, {**good, "vkey": api.init.vkey}), 422, "invalid-vkey")
    assert body["field"] == "vkey"
    assert body["detail"] == ("vkey: signature type 0x01 is not supported, expected 0x04 "
                              "(timestamped Ed25519 cosignature)")
    body = problem(post(api, {**good, "cosignature": good["cosignature"][:-3] + "\n"}), 422, "invalid-cosignature")
    assert body["detail"] == "cosignature: signature is not valid standard base64"
    body = problem(post(api, {**good, "vkey": w2.vkey()}), 422, "invalid-cosignature")
    assert body["detail"] == (f"the cosignature is by witness.example/w1+{w1.key_id:08x}, not by the vkey's "
                              f"witness.example/w2+{w2.key_id:08x}")
    other = text_of(note).replace("\n1\n", "\n2\n")
    body = problem(post(api, {**good, "cosignature": w1.cosign(other, NOW)}), 422, "invalid-cosignature")
    assert "does not verify over this checkpoint" in body["detail"] and body["field"] == "cosignature"
    future = NOW + 2 * ledger.storage.cosignatures.MAX_CLOCK_SKEW
    body = problem(post(api, {**good, "cosignature": w1.cosign(text_of(note), future)}), 422, "invalid-cosignature")
    assert f"dated {future}" in body["detail"]
    zero = base64.b64decode(good["cosignature"].split(" ")[2])
    zero = zero[:4] + bytes(8) + zero[12:]
    body = problem(post(api, {**good, "cosignature": f"— witness.example/w1 {base64.b64encode(zero).decode()}"}),
                   422, "invalid-cosignature")
    problem(post(api, {**good, "extra": 1}), 422, "invalid-input")
    problem(post(api, {"tree_size": 1, "vkey": w1.vkey()}), 422, "invalid-input")
    problem(post(api, {**good, "tree_size": -1}), 422, "invalid-input")
    assert latest(api) == note  # nothing was stored


def test_another_key_under_a_known_name_and_key_id_is_refused(api: Api) -> None:
    note = latest(api)
    w1 = witness_key(1)
    # A key whose name and 4-byte key id collide with w1's (found by grinding, say): stored as if
    # it had cosigned before, since a real collision is too costly to compute in a test.
    impostor = witness_key(9)
    vkey = f"witness.example/w1+{w1.key_id:08x}+" + impostor.vkey().split("+", 2)[2]
    SqlAccess(api.app.state.ledger.recorder).query(
        "INSERT INTO {ledger_cosignatures} (tree_size, key_name, key_id, vkey, cosigned_at, signature, "
        "principal_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (0, w1.name, f"{w1.key_id:08x}", vkey, NOW, "— x AAAA\n", "p_test", "2026-01-01T00:00:00.000000Z"),
        commit=True,
    )
    body = problem(cosign(api, w1, note), 409, "cosigner-key-conflict")
    assert body["field"] == "vkey" and "a verifier could not tell them apart" in body["detail"]


def test_a_checkpoint_keeps_a_bounded_number_of_cosigners(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger.storage.cosignatures, "MAX_COSIGNERS_PER_CHECKPOINT", 2)
    note = latest(api)
    api.ok(cosign(api, witness_key(1), note), 201)
    api.ok(cosign(api, witness_key(2), note), 201)
    problem(cosign(api, witness_key(3), note), 409, "too-many-cosigners")
    api.ok(cosign(api, witness_key(1), note), 200)
    assert latest(api).count("\u2014") == 3


# -- witness run against a real server --------------------------------------------------------


@pytest.fixture
def witnessed(settings: Settings, tmp_path: Path) -> Iterator[Witnessed]:
    with witnessed_ledger(settings, tmp_path) as w:
        yield w


def test_a_witness_cosigns_a_real_ledger_and_checks_each_extension(witnessed: Witnessed) -> None:
    w = witnessed
    assert w.record(3) == 3
    state, vkey = w.witness_init("witness.example/w1")
    assert (state / "witness.vkey").read_text() == vkey + "\n"

    done = w.witness_run(state)
    assert done.stdout.startswith(f"cosigned {ORIGIN_LINE} at size 3, root ")
    assert "first checkpoint seen from this ledger" in done.stdout and "stored by the ledger" in done.stdout
    served = w.checkpoint()
    witness = CosignatureVerifier.from_vkey(vkey)
    checkpoint, found = verify_cosignatures(served, w.init.verifier, [witness], 1, ORIGIN_LINE)
    assert checkpoint.size == 3 and abs(found[0].timestamp - time.time()) < 120
    accepted = state / "logs" / "transfer-ledger.example%2Fledger.checkpoint"
    assert open_checkpoint(accepted.read_text(), w.init.verifier) == checkpoint

    note_file = w.tmp / "checkpoint.note"
    note_file.write_text(served)
    ok = cli("verify-checkpoint", str(note_file), "--vkey", str(w.vkey_file), "--witness", vkey, "--quorum", "1")
    assert ok.stdout.startswith(f"OK: {ORIGIN_LINE} at size 3, root ") and "cosigned by 1 of 1" in ok.stdout

    assert w.record(4) == 7
    done = w.witness_run(state)
    assert "at size 7" in done.stdout and "extends size 3" in done.stdout
    assert open_checkpoint(accepted.read_text(), w.init.verifier).size == 7
    verify_cosignatures(w.checkpoint(), w.init.verifier, [witness], 1)
    verify_cosignatures(w.checkpoint(3), w.init.verifier, [witness], 1)  # the earlier one keeps its own

    # a second witness: now 2 of 2 cosigned size 7
    state2, vkey2 = w.witness_init("witness.example/w2")
    w.witness_run(state2)
    note_file.write_text(w.checkpoint())
    both = ["--witness", vkey, "--witness", str(state2 / "witness.vkey")]
    ok = cli("verify-checkpoint", str(note_file), "--vkey", str(w.vkey_file), *both)
    assert "cosigned by 2 of 2 known witnesses (quorum 2)" in ok.stdout
    note_file.write_text(w.checkpoint(3))  # only w1 cosigned size 3
    failed = cli("verify-checkpoint", str(note_file), "--vkey", str(w.vkey_file), *both, check=1)
    assert "cosigned by 1 of the 2 known witnesses" in one_line_error(failed)
    cli("verify-checkpoint", str(note_file), "--vkey", str(w.vkey_file), *both, "--quorum", "1")

    # the same tree again: cosigned again, the ledger keeps the first
    again = w.witness_run(state)
    assert "the ledger already had this witness's cosignature" in again.stdout
    assert not (state / "evidence").exists()
    w.server.assert_stopped_cleanly(w.server.stop())
    report = json.loads(subprocess.run(
        [sys.executable, "-m", "ledger.cli", "verify", "--json", "--data-dir", str(w.init.settings.data_dir)]
        + (["--database-url", w.init.settings.database_url] if w.init.settings.database_url else []),
        capture_output=True, text=True, env=clean_env(), timeout=120).stdout)
    assert report["ok"] is True and report["tree_size"] == 7


class MaliciousLog:
    """A log showing the witness another view: it serves ``note`` as the latest
    checkpoint, proxies proofs from the real ledger, and accepts cosignatures."""

    def __init__(self, real: Witnessed, note: str) -> None:
        self.note, self.real, self.posted = note, real, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path.startswith("/v1/checkpoint"):
                    self.answer(200, outer.note.encode(), "text/plain; charset=utf-8")
                elif self.path.startswith("/v1/proofs/consistency"):
                    with outer.real.client("verifier") as client:
                        response = client.get(self.path)
                    self.answer(response.status_code, response.content, response.headers["content-type"])
                else:
                    self.answer(404, b"{}", "application/json")

            def do_POST(self) -> None:  # noqa: N802
                outer.posted.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.answer(201, b"{}", "application/json")

            def answer(self, status: int, body: bytes, media: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", media)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> MaliciousLog:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def forge(w: Witnessed, size: int, root: bytes) -> str:
    """A checkpoint signed with the ledger's real key (taken from its data dir)."""
    signer = load_signing_key(w.init.settings.signing_key_file)
    return sign_checkpoint(Checkpoint(signer.name, size, root), signer)


def evidence_of(state: Path) -> Path:
    (directory,) = (state / "evidence").iterdir()
    return directory


def test_a_split_view_is_reported_with_both_checkpoints(witnessed: Witnessed) -> None:
    w = witnessed
    w.record(4)
    state, _ = w.witness_init("witness.example/w1")
    w.witness_run(state)
    honest = w.checkpoint()
    forged = forge(w, 4, bytes(range(32)))
    with MaliciousLog(w, forged) as log:
        done = w.witness_run(state, log.url, check=1)
        assert log.posted == []  # nothing cosigned
    line = one_line_error(done)
    assert "SPLIT VIEW: two checkpoints of size 4 with different roots" in line
    directory = evidence_of(state)
    assert str(directory) in line and "accepted.checkpoint, received.checkpoint" in line
    assert text_of((directory / "accepted.checkpoint").read_text()) == text_of(honest)
    assert (directory / "received.checkpoint").read_text() == forged
    report = json.loads((directory / "report.json").read_text())
    assert report["kind"] == "split-view" and report["ledger"] == log.url
    # both verify under the ledger's key: anyone can check the evidence offline
    check = cli("witness", "check", str(directory / "accepted.checkpoint"), str(directory / "received.checkpoint"),
                "--log-vkey", str(w.vkey_file), check=1)
    assert "SPLIT VIEW: two checkpoints of size 4" in one_line_error(check)
    # the witness still holds the honest view and goes on with the real ledger
    w.record(1)
    assert "extends size 4" in w.witness_run(state).stdout


def test_an_inconsistent_larger_checkpoint_is_a_split_view(witnessed: Witnessed) -> None:
    w = witnessed
    w.record(3)
    state, _ = w.witness_init("witness.example/w1")
    w.witness_run(state)
    w.record(3)  # the real tree has 6 leaves; the malicious log claims another tree of 6
    with MaliciousLog(w, forge(w, 6, bytes(32))) as log:
        done = w.witness_run(state, log.url, check=1)
    line = one_line_error(done)
    assert "SPLIT VIEW: the checkpoint of size 6" in line and "is not consistent with the accepted one of size 3" in line
    directory = evidence_of(state)
    assert (directory / "consistency-proof").read_text().count("\n") >= 1
    check = cli("witness", "check", str(directory / "accepted.checkpoint"), str(directory / "received.checkpoint"),
                "--proof", str(directory / "consistency-proof"), "--log-vkey", str(w.vkey_file), check=1)
    assert "are not consistent" in one_line_error(check)
    # the real size-6 checkpoint is consistent with the accepted one, under the same proof
    real = w.tmp / "real.checkpoint"
    real.write_text(w.checkpoint())
    ok = cli("witness", "check", str(directory / "accepted.checkpoint"), str(real),
             "--proof", str(directory / "consistency-proof"), "--log-vkey", str(w.vkey_file))
    assert ok.stdout.startswith("OK: consistent: size 3")


def test_a_rollback_is_refused(witnessed: Witnessed) -> None:
    w = witnessed
    w.record(2)
    state, _ = w.witness_init("witness.example/w1")
    w.witness_run(state)
    w.record(3)
    w.witness_run(state)
    with MaliciousLog(w, w.checkpoint(2)) as log:  # a real, older checkpoint served as the latest
        done = w.witness_run(state, log.url, check=1)
    line = one_line_error(done)
    assert "ROLLBACK: the ledger served a checkpoint of size 2" in line and "smaller than the accepted one of size 5" in line
    assert evidence_of(state).name.endswith("-rollback")


def test_a_checkpoint_not_signed_by_the_ledger_is_refused(witnessed: Witnessed) -> None:
    w = witnessed
    state, _ = w.witness_init("witness.example/w1")
    fake = Signer.generate(ORIGIN_LINE)  # another Ed25519 key under the ledger's name
    with MaliciousLog(w, sign_checkpoint(Checkpoint(ORIGIN_LINE, 0, bytes(32)), fake)) as log:
        done = w.witness_run(state, log.url, check=1)
    assert "does not verify under the log key" in one_line_error(done)
    assert not (state / "logs").exists()


def test_network_and_key_errors_exit_2_in_one_line(witnessed: Witnessed) -> None:
    w = witnessed
    state, _ = w.witness_init("witness.example/w1")
    done = w.witness_run(state, "http://127.0.0.1:1", check=2)  # nothing listens there
    assert "cannot reach the ledger: GET http://127.0.0.1:1/v1/checkpoint" in one_line_error(done)
    done = w.witness_run(state, "ftp://example", check=2)
    assert "is not an http:// or https:// URL" in one_line_error(done)
    done = w.witness_run(state, key="DE-recorder", check=2)  # the checkpoint is served, the cosignature refused
    assert "POST" in one_line_error(done) and "answered 403" in done.stderr and "role-required" in done.stderr
    done = cli("witness", "run", "--state", str(state), "--ledger-url", w.server.url, "--log-vkey",
               str(state / "witness.vkey"), "--api-key", w.keys["verifier"], check=2)
    assert "signature type 0x04 is not supported, expected 0x01" in one_line_error(done)
    done = cli("witness", "run", "--state", str(w.tmp / "none"), "--ledger-url", w.server.url, "--log-vkey",
               str(w.vkey_file), "--api-key", "tl_x", check=2)
    assert "is not a witness state dir" in one_line_error(done)


def test_the_latest_checkpoint_is_refused_when_the_tree_lost_a_signed_root(api: Api, backend: Any) -> None:
    """A rewritten subtree hash under a signed checkpoint: GET /v1/checkpoint signs nothing (503)."""
    api.transfer("DE", "FR")
    api.transfer("DE", "NL")
    signed = api.checkpoint()
    assert signed.size == 2
    backend.execute("UPDATE ledger_nodes SET hash = ? WHERE level = 1 AND idx = 0", (b"\x01" * 32,))
    api.transfer("DE", "BR")
    body = problem(api.get("/v1/checkpoint", "*-verifier"), 503, "tree-inconsistent")
    assert "no longer has the root signed there" in body["detail"]
    stored = api.app.state.ledger.store.checkpoints()
    assert [c.tree_size for c in stored] == [2]  # nothing new was signed
