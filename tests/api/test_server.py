"""A real server: ``transfer-ledger serve`` as a process on a free loopback port, driven with httpx.

The multi-hop art. 36 §3 scenario over HTTP; an idempotent retry across a
restart; a clean shutdown on SIGTERM that lets a request in flight finish.
Every wait is bounded, and every process is killed in a ``finally``.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.consultation import ConsultationLog
from ledger.config import Settings
from ledger.tlog.note import open_checkpoint
from tests.support import builders
from tests.support.api import ORIGIN_LINE, Initialized, run_init
from tests.support.server import STOP_TIMEOUT, Server, add_keys, cli

INSTRUMENT = {"reference": "BfJ-2026-0311", "sha256": "ab" * 32}










@dataclass
class Live:
    init: Initialized
    server: Server
    keys: dict[str, str]

    def client(self, who: str) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=10.0,
                            headers={"Authorization": f"Bearer {self.keys[who]}"})

    def tree_size(self) -> int:
        return int(httpx.get(f"{self.server.url}/healthz", timeout=10.0).json()["tree_size"])




@pytest.fixture
def live(settings: Settings, tmp_path: Path) -> Iterator[Live]:
    init = run_init(settings)
    keys = add_keys(settings)
    server = Server(settings, tmp_path / "server.log")
    try:
        yield Live(init, server.start(), keys)
    finally:
        server.kill()


def expect(response: httpx.Response, status: int, rule: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    if rule is not None:
        assert response.headers["content-type"].startswith("application/problem+json")
        assert body["type"] == f"/problems/{rule}" and body["detail"], body
    return body


def test_the_art_36_3_scenario_over_http(live: Live) -> None:
    with live.client("DE-recorder") as de, live.client("DE-authority") as de_authority, \
            live.client("FR-recorder") as fr, live.client("FR-authority") as fr_authority, \
            live.client("INTERPOL-recorder") as interpol, live.client("*-auditor") as auditor:
        # DE sends FR subscriber and traffic data, and requires written authorization for onward transfers.
        root = expect(de.post("/v1/transfers", json=builders.transfer(
            "DE", "FR", handling={"written_authorization_required": True})), 201)
        assert root["origin"] == "DE" and root["leaf_index"] == 0

        # FR notifies DE of its intention to pass the data to INTERPOL and asks its authorization.
        request = expect(fr.post("/v1/authorization-requests",
                                 json=builders.request("FR", "INTERPOL", root)), 201)
        assert request["status"] == "pending" and request["origin"] == "DE"
        expect(fr.post("/v1/transfers", json=builders.onward("FR", "INTERPOL", root, request)), 409,
               "authorization-pending")

        # FR holds the data but is not their origin: it cannot decide.
        expect(fr_authority.post(f"/v1/authorization-requests/{request['id']}/decision",
                                 json=builders.grant("FR")), 403, "not-origin")
        # DE must grant in writing.
        decision_path = f"/v1/authorization-requests/{request['id']}/decision"
        body = expect(de_authority.post(decision_path, json=builders.grant("DE")), 409,
                      "written-instrument-required")
        assert body["field"] == "conditions.written_instrument"
        grant = expect(de_authority.post(decision_path, json=builders.grant(
            "DE", written_instrument=INSTRUMENT)), 200)
        assert grant["status"] == "granted" and grant["id"] == request["id"]

        onward = expect(fr.post("/v1/transfers", json=builders.onward("FR", "INTERPOL", root, grant)), 201)
        assert onward["origin"] == "DE" and onward["depth"] == 1

        # INTERPOL -> BR needs DE's authorization, not FR's.
        body = expect(interpol.post("/v1/transfers", json=builders.onward("INTERPOL", "BR", onward)), 409,
                      "onward-transfer-not-authorized")
        assert body["values"]["origin"] == "DE" and body["field"] == "authorization_id"
        ask = expect(interpol.post("/v1/authorization-requests",
                                   json=builders.request("INTERPOL", "BR", onward)), 201)
        assert ask["origin"] == "DE"
        refusal = expect(de_authority.post(f"/v1/authorization-requests/{ask['id']}/decision",
                                           json=builders.refuse("DE", "BR is not party to the proceeding")), 200)
        assert refusal["status"] == "refused" and refusal["decision"]["reasons"] == "BR is not party to the proceeding"
        body = expect(interpol.post("/v1/transfers", json=builders.onward("INTERPOL", "BR", onward, refusal)), 409,
                      "authorization-refused")
        assert body["detail"].endswith("(its reasons are in the authorization's record)")
        ask = expect(interpol.post("/v1/authorization-requests",
                                   json=builders.request("INTERPOL", "BR", onward)), 201)
        grant_br = expect(de_authority.post(f"/v1/authorization-requests/{ask['id']}/decision",
                                            json=builders.grant("DE", written_instrument=INSTRUMENT)), 200)
        to_br = expect(interpol.post("/v1/transfers", json=builders.onward("INTERPOL", "BR", onward, grant_br)), 201)
        assert to_br["origin"] == "DE" and to_br["depth"] == 2

        # DE revokes its grant to FR: the next onward transfer under it is refused.
        revoked = expect(de_authority.post(f"/v1/authorizations/{grant['id']}/revocation",
                                           json=builders.revocation("DE")), 200)
        assert revoked["status"] == "revoked" and revoked["uses"] == [onward["id"]]
        expect(fr.post("/v1/transfers", json=builders.onward("FR", "INTERPOL", root, grant)), 409,
               "authorization-revoked")

        # The auditor sees the whole lineage; the signed checkpoint covers every event.
        lineage = expect(auditor.get(f"/v1/transfers/{root['id']}/lineage"), 200)
        assert [d["id"] for d in lineage["descendants"]] == [onward["id"], to_br["id"]]
        response = auditor.get("/v1/checkpoint")
        assert response.status_code == 200
        checkpoint = open_checkpoint(response.text, live.init.verifier, ORIGIN_LINE)
        assert checkpoint.size <= live.tree_size()
        feed = expect(auditor.get("/v1/events", params={"limit": 1000}), 200)
        assert [e["leaf_index"] for e in feed["items"]] == list(range(len(feed["items"])))
        # Every leaf but the scenario's own is the consultation log (of the reads above), written
        # beside the commands; the checkpoint covers every command.
        scenario = [e for e in feed["items"] if e["topic"] != ConsultationLog.Logged.TOPIC]
        assert scenario[-1]["originator_id"] == grant["id"] and "Revoked" in scenario[-1]["topic"]
        assert checkpoint.size > scenario[-1]["leaf_index"]

    live.server.assert_stopped_cleanly(live.server.stop())
    report = json.loads(cli("verify", "--json", settings=live.init.settings).stdout)
    assert report["ok"] is True and report["tree_size"] >= checkpoint.size


def test_an_idempotent_retry_across_a_restart(live: Live) -> None:
    body = builders.transfer("DE", "FR")
    headers = {"Idempotency-Key": "2026-03-01/transfer-0001"}
    with live.client("DE-recorder") as de:
        first = expect(de.post("/v1/transfers", json=body, headers=headers), 201)
    size = live.tree_size()
    live.server.assert_stopped_cleanly(live.server.stop())
    live.server.start()
    with live.client("DE-recorder") as de:
        again = de.post("/v1/transfers", json=body, headers=headers)
        assert again.status_code == 201 and again.json() == first
        assert live.tree_size() == size
        reused = de.post("/v1/transfers", json=builders.transfer("DE", "NL"), headers=headers)
        expect(reused, 422, "idempotency-key-reused")
    assert live.tree_size() == size


def test_sigterm_lets_a_request_in_flight_finish_then_exits_cleanly(live: Live) -> None:
    """A client sends half a body, the server gets SIGTERM, the client sends the rest:
    the request is answered, then the server exits cleanly and the ledger verifies."""
    raw = json.dumps(builders.transfer("DE", "FR")).encode()
    head = (f"POST /v1/transfers HTTP/1.1\r\nHost: 127.0.0.1:{live.server.port}\r\n"
            f"Authorization: Bearer {live.keys['DE-recorder']}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(raw)}\r\n\r\n").encode()
    assert live.server.process is not None
    with socket.create_connection(("127.0.0.1", live.server.port), timeout=10.0) as conn:
        conn.sendall(head + raw[:20])
        time.sleep(0.5)  # the server has the request line and headers, and waits for the body
        live.server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert live.server.process.poll() is None, "the server exited with a request in flight"
        conn.sendall(raw[20:])
        answer = b""
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and b"\r\n\r\n" not in answer:
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
        while time.monotonic() < deadline:  # the rest of the body, until the server closes
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 201"), answer[:500]
    recorded = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert recorded["leaf_index"] == 0
    live.server.assert_stopped_cleanly(live.server.wait(STOP_TIMEOUT))
    live.server.kill()
    report = json.loads(cli("verify", "--json", settings=live.init.settings).stdout)
    assert report["ok"] is True and report["tree_size"] == 1
    # Once stopped, nothing listens any more.
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{live.server.url}/healthz", timeout=2.0)
