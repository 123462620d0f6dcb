"""The auditors' endpoints over HTTP: findings, statistics, registry, lineage, state as of N.

A Party's auditor sees its Party's share; read-your-writes with ``min_index``.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from ledger.tlog.merkle import verify_inclusion
from ledger.tlog.note import open_checkpoint
from tests.support.api import ORIGIN_LINE, Api, api, problem
from tests.support.world import around

__all__ = ["api"]


def world(api: Api) -> dict[str, Any]:
    """DE -> FR; FR -> INTERPOL under DE's grant; INTERPOL -> BR under another; DE revokes the first;
    a refusal; a pending request; NL -> FR with its retention date passed."""
    w: dict[str, Any] = {}
    w["root"], w["a1"] = api.chain()
    w["t1"] = api.onward("FR", "INTERPOL", w["root"], w["a1"])
    w["a2"] = api.grant(api.request("INTERPOL", "BR", w["t1"]))
    api.revoke(w["a1"])
    w["t2"] = api.onward("INTERPOL", "BR", w["t1"], w["a2"])
    w["refused"] = api.decide(api.request("FR", "NL", w["root"]),
                              {"decision": "refused", "decided_by": {"party": "DE", "authority": "DE/BKA",
                                                                     "officer": "K"}, "reasons": "no MLA"})
    w["pending"] = api.request("FR", "BR", w["root"])
    w["nl"] = api.transfer("NL", "FR", retention_until="2020-01-31")
    return w


def test_only_auditors(api: Api) -> None:
    world(api)
    for who in ("DE-recorder", "DE-authority", "*-verifier", "*-admin"):
        problem(api.get("/v1/audit/findings", who), 403, "role-required")
    problem(api.get("/v1/audit/statistics", None), 401, "authentication-required")


def test_findings_with_articles_and_evidence(api: Api) -> None:
    w = world(api)
    forged = around(api.app.state.ledger, "FR", "INTERPOL", w["root"])  # written around the application
    body = api.ok(api.get("/v1/audit/findings"), 200)
    assert body["party"] == "*" and body["position"] == body["tree_size"] - 1
    by_rule = {f["rule"]: f for f in body["items"]}
    assert set(by_rule) == {"onward-transfer-not-authorized", "flow-after-revocation", "retention-period-expired"}
    unauthorized = by_rule["onward-transfer-not-authorized"]
    assert unauthorized["transfer_id"] == forged and unauthorized["article"] == "art. 36 §3"
    assert unauthorized["evidence"][1]["leaf_index"] == w["root"]["leaf_index"]
    assert by_rule["flow-after-revocation"]["transfer_id"] == w["t2"]["id"]
    assert by_rule["retention-period-expired"]["article"] == "Order 949 §12, §15"
    pending = api.ok(api.get("/v1/audit/findings?rule=request-pending-too-long&pending_deadline_days=0"), 200)
    assert [f["authorization_id"] for f in pending["items"] if f["reason"] == "still-pending"] == [w["pending"]["id"]]
    assert {f["reason"] for f in pending["items"]} == {"still-pending", "decided-late"}  # a deadline of 0
    problem(api.get("/v1/audit/findings?rule=no-such-rule"), 422)


def test_a_party_auditor_sees_its_share(api: Api) -> None:
    w = world(api)
    everything = api.ok(api.get("/v1/audit/findings"), 200)["items"]
    de = api.ok(api.get("/v1/audit/findings", "DE-auditor"), 200)
    assert de["party"] == "DE"
    assert de["items"] == [f for f in everything if "DE" in f["parties"].values()]
    nl = api.ok(api.get("/v1/audit/findings", "NL-auditor"), 200)["items"]
    assert [f["rule"] for f in nl] == ["retention-period-expired"]  # its own transfer only
    stats = api.ok(api.get("/v1/audit/statistics", "NL-auditor"), 200)
    assert stats["transfers"]["total"] == 1 and stats["transfers"]["by_route"][0]["sender"] == "NL"
    assert stats["requests"]["requested"] == 1  # the refused request to pass data to NL
    registry = api.ok(api.get("/v1/audit/authorizations", "NL-auditor"), 200)
    assert [a["id"] for a in registry["items"]] == [w["refused"]["id"]]
    assert registry["items"][0]["decision"]["reasons"] == "no MLA"
    lineage = api.ok(api.get(f"/v1/audit/lineage/{w['root']['id']}", "DE-auditor"), 200)
    assert [d["id"] for d in lineage["descendants"]] == [w["t1"]["id"], w["t2"]["id"]]
    problem(api.get(f"/v1/audit/lineage/{w['root']['id']}", "NL-auditor"), 404, "transfer-not-found")
    state = api.ok(api.get("/v1/audit/state", "NL-auditor"), 200)
    assert state["party"] == "NL" and state["lineage"]["transfers"] == 1
    assert state["authorizations"]["counts"]["refused"] == 1 and state["authorizations"]["counts"]["total"] == 1


def test_statistics_and_registry(api: Api) -> None:
    w = world(api)
    stats = api.ok(api.get("/v1/audit/statistics"), 200)
    transfers, requests = stats["transfers"], stats["requests"]
    assert transfers["total"] == 4 and transfers["onward"] == 2
    assert {(r["sender"], r["recipient"]) for r in transfers["by_route"]} == {
        ("DE", "FR"), ("FR", "INTERPOL"), ("INTERPOL", "BR"), ("NL", "FR")}
    assert {r["legal_basis"]: r["transfers"] for r in transfers["by_legal_basis"]} == {"art44": 2, "art47": 2}
    assert {r["data_category"] for r in transfers["by_data_category"]} == {"subscriber", "traffic"}
    assert (requests["requested"], requests["granted"], requests["refused"], requests["pending"],
            requests["revoked"]) == (4, 2, 1, 1, 1)
    assert requests["time_to_decide_seconds"]["count"] == 3
    none = api.ok(api.get("/v1/audit/statistics?month_to=2000-01"), 200)
    assert none["transfers"]["total"] == 0
    granted = api.ok(api.get("/v1/audit/authorizations?status=granted"), 200)
    assert granted["counts"] == {"pending": 1, "granted": 1, "refused": 1, "revoked": 1, "total": 4}
    [grant] = granted["items"]
    assert grant["id"] == w["a2"]["id"] and grant["uses"] == 1 and grant["expired"] is False
    revoked = api.ok(api.get("/v1/audit/authorizations?status=revoked"), 200)["items"][0]
    assert revoked["revocation"]["reasons"] and revoked["revocation"]["revoked_by"] == "DE"
    page = api.ok(api.get("/v1/audit/authorizations?limit=3"), 200)
    assert len(page["items"]) == 3 and page["next_after"] is not None
    rest = api.ok(api.get(f"/v1/audit/authorizations?limit=3&after={page['next_after']}"), 200)
    assert len(rest["items"]) == 1 and rest["next_after"] is None


def test_read_your_writes(api: Api) -> None:
    root = api.transfer("DE", "FR")
    api.ok(api.get("/v1/audit/projections"), 200)
    runner = api.app.state.projections
    for _ in range(3):  # the read models fall behind the writes
        root = api.transfer("DE", "FR")
    assert runner.position() < root["leaf_index"]
    lineage = api.ok(api.get(f"/v1/audit/lineage/{root['id']}?min_index={root['leaf_index']}"), 200)
    assert lineage["position"] >= root["leaf_index"] and lineage["transfer"]["id"] == root["id"]
    problem(api.get(f"/v1/audit/findings?min_index={root['leaf_index'] + 1}"), 422, "index-out-of-range")
    status = api.ok(api.get("/v1/audit/projections"), 200)
    assert status["up_to_date"] and {m["name"] for m in status["models"]} == {
        "lineage", "authorizations", "custody", "findings", "statistics", "preservations", "control"}


def test_projection_behind_is_503(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    root = api.transfer("DE", "FR")
    api.ok(api.get("/v1/audit/projections"), 200)
    monkeypatch.setattr(api.app.state.projections, "wait_for", lambda index, timeout: -1)
    response = api.get(f"/v1/audit/statistics?min_index={root['leaf_index']}&wait=0")
    problem(response, 503, "projection-behind")
    assert response.headers["retry-after"] == "1"


def test_state_as_of_n_with_its_checkpoint(api: Api) -> None:
    w = world(api)
    n = w["t1"]["leaf_index"]
    path = f"/v1/audit/state?at_index={n}&transfer_id={w['root']['id']}"
    state = api.ok(api.get(path), 200)
    assert state["at_index"] == n and state["tree_size"] == n + 1
    assert state["authorizations"]["counts"]["revoked"] == 0  # the revocation came later
    assert [d["id"] for d in state["lineage"]["of_transfer"]["descendants"]] == [w["t1"]["id"]]
    cover = state["checkpoint"]
    signed = open_checkpoint(cover["note"], api.init.verifier, ORIGIN_LINE)
    assert signed.size == cover["tree_size"] > n
    verify_inclusion(base64.b64decode(cover["leaf_hash"]), n, signed.size,
                     [base64.b64decode(h) for h in cover["inclusion_proof"]], signed.root_hash)
    around(api.app.state.ledger, "FR", "INTERPOL", w["root"])
    api.transfer("DE", "FR")
    assert api.ok(api.get(path), 200) == state  # later events change nothing
    by_time = api.ok(api.get(f"/v1/audit/state?at_time={state['leaf_recorded_at']}&models=lineage"), 200)
    assert by_time["at_index"] >= n and set(by_time) >= {"lineage"} and by_time.get("findings") is None
    problem(api.get("/v1/audit/state?at_index=100000"), 422, "index-out-of-range")
    problem(api.get("/v1/audit/state?at_time=tomorrow"), 422, "invalid-time")
    problem(api.get("/v1/audit/state?models=everything"), 422)
