"""A stopping server answers every request it received (docs/OPERATIONS.md, "Stopping").

32 clients record transfers over HTTP, half over kept-alive connections and
half over a fresh connection per request; the server gets SIGTERM in the
middle of it. Every request must end in a complete answer, or in a refused
connection (a request the server never read a byte of). None may end in a
reset or a closed connection without an answer. After a restart, every
transfer answered 201 is there, nothing else was recorded, and the ledger
verifies.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from ledger.config import Settings
from tests.support.api import run_init
from tests.support.load import Load, Outcome
from tests.support.server import STOP_TIMEOUT, Server, add_keys, cli, consultation_leaves

pytestmark = pytest.mark.slow


def dropped(outcomes: list[Outcome], signalled: float) -> list[str]:
    """The requests that got neither an answer nor a refused connection."""
    return [f"client {o.client} {o.key}, sent {o.sent_at - signalled:+.3f}s after the signal: "
            f"{type(o.error).__name__}: {o.error}"
            for o in outcomes if o.status is None and not o.never_received]


def stop_under_load(settings: Settings, tmp_path: Path, workers: int, rounds: int) -> list[str]:
    """``rounds`` times: serve, load, SIGTERM, wait for a clean exit. Then every 201 must be there,
    nothing else recorded (a request not answered recorded nothing), and the ledger verify.
    Returns the requests that were neither answered nor refused."""
    run_init(settings)
    keys = add_keys(settings)
    server = Server(settings, tmp_path / "server.log", extra_args=("--workers", str(workers)))
    recorded: dict[str, int] = {}
    cut: list[str] = []
    try:
        for round_ in range(rounds):
            server.start()
            before = len(recorded)
            load = Load(server.url, keys["DE-recorder"], clients=32).start()
            load.wait_for_answers(50 + 30 * round_)  # vary the moment of the signal
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            outcomes = load.join()
            server.assert_stopped_cleanly(server.wait(STOP_TIMEOUT))
            server.kill()

            cut += [f"round {round_}: {line}" for line in dropped(outcomes, signalled)]
            statuses = Counter(o.status for o in outcomes if o.status is not None)
            assert set(statuses) <= {201, 503}, statuses  # 503: the queue was full, and said so
            for o in outcomes:
                if o.status == 201:
                    recorded[o.body["id"]] = o.body["leaf_index"]
            assert len(recorded) - before == statuses[201] > 0

        server.start()
        with httpx.Client(base_url=server.url, timeout=10.0,
                          headers={"Authorization": f"Bearer {keys['*-auditor']}"}) as auditor:
            assert auditor.get("/healthz").json()["tree_size"] == len(recorded)  # nothing read yet
            for transfer_id, leaf_index in recorded.items():
                got = auditor.get(f"/v1/transfers/{transfer_id}")
                assert got.status_code == 200 and got.json()["leaf_index"] == leaf_index, got.text
        server.assert_stopped_cleanly(server.stop())
    finally:
        server.kill()
    report = json.loads(cli("verify", "--json", settings=settings).stdout)
    # besides the transfers, the consultation log of the auditor's reads above
    assert report["ok"] is True and report["tree_size"] == len(recorded) + consultation_leaves(settings)
    return cut


def test_sigterm_under_load_answers_every_request_it_received(settings: Settings, tmp_path: Path) -> None:
    """One server process (serve's default): not one request cut, in three stops."""
    cut = stop_under_load(settings, tmp_path, workers=1, rounds=3)
    assert not cut, cut


def test_sigterm_under_load_with_two_workers_loses_nothing(settings: Settings, tmp_path: Path) -> None:
    """``--workers 2``: every 201 is kept and the stop is clean. A request may still, rarely, end
    without an answer (about one stop in twenty, docs/OPERATIONS.md "Stopping"): it recorded
    nothing (the tree holds exactly the 201s), so a retry is safe."""
    cut = stop_under_load(settings, tmp_path, workers=2, rounds=2)
    # closed or reset, never a wait: the stop did not hang on a request
    assert all(any(kind in line for kind in ("RemoteProtocolError", "ReadError", "WriteError")) for line in cut), cut
