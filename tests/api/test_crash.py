"""kill -9 under load loses nothing acknowledged, and idempotent retries record once.

32 clients record transfers with an ``Idempotency-Key`` each; the server is
killed with SIGKILL in the middle, three times. After each restart every
transfer answered 201 is readable; every request is then retried with its key
and body: an answered one returns its first answer, one the kill cut is
recorded now or was already (never twice). The tree holds exactly one leaf per
key, and the ledger verifies. On the suite's backend (CI runs it on SQLite and
on PostgreSQL).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from ledger.config import Settings
from tests.support.api import run_init
from tests.support.load import Load, Outcome, transfer_for
from tests.support.server import Server, add_keys, cli, consultation_leaves

pytestmark = pytest.mark.slow

ROUNDS = 3


def test_kill_9_under_load_loses_nothing_acknowledged(settings: Settings, tmp_path: Path) -> None:
    run_init(settings)
    keys = add_keys(settings)
    server = Server(settings, tmp_path / "server.log")
    acknowledged: dict[str, dict[str, object]] = {}  # key -> the 201's body
    sent: list[Outcome] = []
    try:
        for round_ in range(ROUNDS):
            server.start()
            load = Load(server.url, keys["DE-recorder"], clients=32, idempotent=True).start()
            load.wait_for_answers(60 + 40 * round_)
            assert server.process is not None
            server.process.kill()
            server.process.wait(timeout=10)
            outcomes = load.join()
            server.kill()
            sent += outcomes
            acknowledged |= {o.key: o.body for o in outcomes if o.status == 201}
            cut = [o for o in outcomes if o.status is None]
            assert len(cut) == load.clients  # each client's last request met the kill

            server.start()
            with httpx.Client(base_url=server.url, timeout=10.0,
                              headers={"Authorization": f"Bearer {keys['*-auditor']}"}) as auditor:
                for key, body in acknowledged.items():
                    got = auditor.get(f"/v1/transfers/{body['id']}")
                    assert got.status_code == 200, (key, got.text)
                    assert got.json()["leaf_index"] == body["leaf_index"]
            server.stop()

        server.start()
        recorded: dict[str, str] = {}
        with httpx.Client(base_url=server.url, timeout=30.0,
                          headers={"Authorization": f"Bearer {keys['DE-recorder']}"}) as recorder:
            for o in sent:
                again = recorder.post("/v1/transfers", json=transfer_for(o.key),
                                      headers={"Idempotency-Key": o.key})
                assert again.status_code == 201, (o.key, again.text)
                if o.status == 201:
                    assert again.json() == o.body, o.key  # the first answer, not a second transfer
                recorded[o.key] = again.json()["id"]
            tree_size = int(recorder.get("/healthz").json()["tree_size"])
        server.assert_stopped_cleanly(server.stop())
    finally:
        server.kill()
    # One leaf per key, whether its first attempt was answered, refused for load, or cut.
    # (besides the leaves of the consultation log, for the auditor's reads)
    assert len(set(recorded.values())) == len(recorded) == tree_size - consultation_leaves(settings)
    report = json.loads(cli("verify", "--json", settings=settings).stdout)
    assert report["ok"] is True and report["tree_size"] == tree_size
