"""Each compliance finding: its rule, article, reason and the leaves it cites.

The application refuses an onward transfer without a covering grant, so the
event-driven findings about grants come from events written around it:
aggregates saved straight through eventsourcing, bypassing every rule. The
replay must still catch them.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from domain.model import Transfer
from ledger.service.application import TransferLedger
from projections import queries
from projections.replay import replay
from projections.runner import ProjectionRunner
from tests.support import builders
from tests.support.world import FAR_FUTURE, around, around_grant, build_world, dump, findings, one


def leaf_of(ledger: TransferLedger, transfer_id: str) -> int:
    return int(ledger.get_transfer(transfer_id)["leaf_index"])


def test_the_application_alone_raises_no_grant_finding(ledger: TransferLedger, runner: ProjectionRunner) -> None:
    root, a1 = builders.granted_chain(ledger, max_transfers=1)
    ledger.record_transfer(builders.onward("FR", "INTERPOL", root, a1))
    ledger.record_transfer(builders.onward("FR", "DE", root))  # back to the origin: no grant needed
    assert findings(runner) == []


def test_onward_transfer_without_any_grant_written_around_the_application(
    ledger: TransferLedger, runner: ProjectionRunner
) -> None:
    root = ledger.record_transfer(builders.transfer("DE", "FR"))
    forged = around(ledger, "FR", "INTERPOL", root)
    f = one(findings(runner), rule="onward-transfer-not-authorized")
    assert f["article"] == "art. 36 §3" and f["reason"] == "onward-transfer-not-authorized"
    assert f["transfer_id"] == forged and f["parties"] == {"origin": "DE", "sender": "FR", "recipient": "INTERPOL"}
    assert [e["leaf_index"] for e in f["evidence"]] == [leaf_of(ledger, forged), root["leaf_index"]]
    assert f["leaf_index"] == leaf_of(ledger, forged)
    assert "needs the authorization of DE" in f["detail"]


@pytest.mark.parametrize("case", ["revoked", "refused", "pending", "exhausted", "expired", "category",
                                  "purpose", "other-recipient", "other-parent", "not-origin", "unknown",
                                  "written"])
def test_each_way_a_grant_fails_to_cover(ledger: TransferLedger, runner: ProjectionRunner, case: str) -> None:
    root = ledger.record_transfer(builders.transfer("DE", "FR"))
    request = ledger.request_authorization(builders.request("FR", "INTERPOL", root))
    grant_id = request["id"]
    extra: dict[str, Any] = {}
    expected = {
        "revoked": "authorization-revoked", "refused": "authorization-refused", "pending": "authorization-pending",
        "exhausted": "authorization-exhausted", "expired": "authorization-expired",
        "category": "category-not-authorized", "purpose": "purpose-not-authorized",
        "other-recipient": "recipient-not-authorized", "other-parent": "authorization-not-for-this-transfer",
        "not-origin": "not-origin", "unknown": "authorization-not-found", "written": "written-instrument-required",
    }[case]
    recipient, parent = "INTERPOL", root
    if case == "revoked":
        ledger.decide(grant_id, builders.grant("DE"))
        ledger.revoke(grant_id, builders.revocation("DE"))
    elif case == "refused":
        ledger.decide(grant_id, builders.refuse("DE"))
    elif case == "exhausted":
        ledger.decide(grant_id, builders.grant("DE", max_transfers=1))
        ledger.record_transfer(builders.onward("FR", "INTERPOL", root, request))
    elif case == "expired":
        ledger.decide(grant_id, builders.grant("DE", valid_until="2020-01-01T00:00:00Z"))
    elif case == "category":
        ledger.decide(grant_id, builders.grant("DE"))
        extra["data_categories"] = ["traffic", "subscriber"]
    elif case == "purpose":
        ledger.decide(grant_id, builders.grant("DE"))
        extra["purpose"] = {"proceeding": "another proceeding"}
    elif case == "other-recipient":
        ledger.decide(grant_id, builders.grant("DE"))
        recipient = "BR"
    elif case == "other-parent":
        ledger.decide(grant_id, builders.grant("DE"))
        parent = ledger.record_transfer(builders.transfer("DE", "FR"))
    elif case == "not-origin":
        around_grant(ledger, grant_id, "FR")  # the holder grants itself
    elif case == "unknown":
        grant_id = str(uuid4())
    elif case == "written":
        ledger.set_party_policy("DE", written_authorization_required=True, set_by=builders.actor("DE"))
        around_grant(ledger, grant_id, "DE")  # a grant without a written instrument
    forged = around(ledger, "FR", recipient, parent, grant_id, use=case != "unknown", **extra)
    f = one(findings(runner, "onward-transfer-not-authorized"), transfer_id=forged)
    assert f["reason"] == expected, f
    assert f["article"] == "art. 36 §3"
    cited = {e["leaf_index"] for e in f["evidence"]}
    assert leaf_of(ledger, forged) in cited and parent["leaf_index"] in cited
    if case != "unknown":
        requested_leaf = runner.db.query("SELECT requested_leaf FROM {proj_authorizations} WHERE id = ?",
                                         (request["id"],))[0]["requested_leaf"]
        assert int(requested_leaf) in cited


def test_lineage_that_does_not_hold(ledger: TransferLedger, runner: ProjectionRunner) -> None:
    root = ledger.record_transfer(builders.transfer("DE", "FR"))
    not_holder = around(ledger, "NL", "DE", root)  # NL never received it
    wrong_origin = around(ledger, "FR", "DE", root, origin="FR")
    dangling = around(ledger, "FR", "DE", {"id": str(uuid4()), "origin": "DE", "root_transfer_id": root["id"],
                                           "depth": 0})
    more = around(ledger, "FR", "DE", root, data_categories=["content"])
    items = findings(runner, "lineage-inconsistent")
    reasons = {f["transfer_id"]: f["reason"] for f in items}
    assert reasons == {not_holder: "not-holder", wrong_origin: "origin-mismatch", dangling: "parent-not-found",
                       more: "category-not-received"}
    assert all(f["article"] == "art. 36 §3" for f in items)
    # The read model follows the parent links, not what a forged event claims.
    lineage = queries.lineage(runner.db, root["id"])
    assert lineage is not None
    assert {d["id"]: d["origin"] for d in lineage["descendants"]}[wrong_origin] == "DE"


def test_flow_after_a_revocation(ledger: TransferLedger, runner: ProjectionRunner) -> None:
    w = build_world(ledger)
    f = one(findings(runner), rule="flow-after-revocation")
    assert f["transfer_id"] == w["t2"]["id"] and f["article"] == "art. 36 §3"
    assert f["parties"] == {"origin": "DE", "sender": "INTERPOL", "recipient": "BR"}
    revoked_leaf = int(runner.db.query("SELECT revoked_leaf FROM {proj_authorizations} WHERE id = ?",
                                       (w["a1"]["id"],))[0]["revoked_leaf"])
    assert [e["leaf_index"] for e in f["evidence"]] == [w["t2"]["leaf_index"], w["t1"]["leaf_index"], revoked_leaf]
    # Returning the data to the origin afterwards is no finding.
    assert not [x for x in findings(runner) if x["transfer_id"] == w["back"]["id"]]


def test_no_flow_finding_when_the_origin_grants_the_hop_after_the_revocation(
    ledger: TransferLedger, runner: ProjectionRunner
) -> None:
    root, a1 = builders.granted_chain(ledger)
    t1 = ledger.record_transfer(builders.onward("FR", "INTERPOL", root, a1))
    ledger.revoke(a1["id"], builders.revocation("DE"))
    a2 = ledger.request_authorization(builders.request("INTERPOL", "BR", t1))
    a2 = ledger.decide(a2["id"], builders.grant("DE"))  # DE knows, and still allows it
    ledger.record_transfer(builders.onward("INTERPOL", "BR", t1, a2))
    assert findings(runner, "flow-after-revocation") == []


def test_passed_on_after_the_retention_date(ledger: TransferLedger, runner: ProjectionRunner) -> None:
    root, a1 = builders.granted_chain(ledger)
    ledger.record_transfer(builders.transfer("DE", "FR"))  # unrelated
    kept = ledger.record_transfer(builders.transfer("DE", "FR", retention_until="2020-01-31"))
    a = ledger.request_authorization(builders.request("FR", "INTERPOL", kept))
    a = ledger.decide(a["id"], builders.grant("DE"))
    late = ledger.record_transfer(builders.onward("FR", "INTERPOL", kept, a))
    f = one(findings(runner), rule="onward-transfer-after-retention")
    assert f["article"] == "Order 949 §12, §15" and f["transfer_id"] == late["id"]
    assert [e["leaf_index"] for e in f["evidence"]] == [late["leaf_index"], kept["leaf_index"]]
    assert f["evidence"][1]["retention_until"] == "2020-01-31"
    expired = one(findings(runner), rule="retention-period-expired")
    assert expired["transfer_id"] == kept["id"] and expired["reason"] == "retention-date-passed"
    assert expired["parties"]["recipient"] == "FR"
    # As of a time before the retention date, that finding did not exist yet.
    assert findings(runner, "retention-period-expired", now="2020-01-31T12:00:00.000000Z") == []


def test_requests_pending_past_the_deadline(ledger: TransferLedger, runner: ProjectionRunner) -> None:
    root = ledger.record_transfer(builders.transfer("DE", "FR"))
    pending = ledger.request_authorization(builders.request("FR", "INTERPOL", root))
    decided = ledger.request_authorization(builders.request("FR", "BR", root))
    ledger.decide(decided["id"], builders.refuse("DE"))
    assert findings(runner, "request-pending-too-long") == []  # 30 days by default
    items = findings(runner, "request-pending-too-long", now=FAR_FUTURE)
    f = one(items, authorization_id=pending["id"])
    assert f["reason"] == "still-pending" and f["article"] == "art. 36 §3"
    assert f["parties"] == {"origin": "DE", "sender": "FR", "recipient": "INTERPOL"}
    assert [e["leaf_index"] for e in f["evidence"]] == [root["leaf_index"] + 1]
    assert "30 days" in f["detail"]
    # A decision that took longer than the deadline is reported too (here: a deadline of 0).
    late = one(findings(runner, "request-pending-too-long", pending_deadline_days=0.0), authorization_id=decided["id"])
    assert late["reason"] == "decided-late" and len(late["evidence"]) == 2


def test_malformed_events(ledger: TransferLedger, runner: ProjectionRunner) -> None:
    ledger.record_transfer(builders.transfer("DE", "FR"))
    ledger.recorder.insert_events([
        StoredEvent(uuid4(), 1, Transfer.Recorded.TOPIC, b'{"sender": "DE"}'),
        StoredEvent(uuid4(), 1, Transfer.Recorded.TOPIC, b"not json"),
        StoredEvent(uuid4(), 1, "someone-else:Event:v1", b"whatever"),
    ])
    items = findings(runner, "malformed-event")
    assert [(f["leaf_index"], f["reason"]) for f in items] == [(1, "malformed-state"), (2, "malformed-state")]
    assert items[0]["article"] == "ledger integrity"
    assert runner.position() == 3


def test_findings_are_the_same_live_rebuilt_and_replayed(ledger: TransferLedger, runner: ProjectionRunner) -> None:
    w = build_world(ledger)
    around(ledger, "FR", "INTERPOL", w["root"])
    live = findings(runner, now=FAR_FUTURE)
    # (judged far in the future: no unit that sent transfers had a control plan for their year)
    assert {f["rule"] for f in live} == {"onward-transfer-not-authorized", "flow-after-revocation",
                                          "request-pending-too-long", "retention-period-expired",
                                          "control-plan-missing"}
    runner.rebuild()
    assert findings(runner, now=FAR_FUTURE) == live
    replayed = replay(ledger.store)
    try:
        assert queries.findings(replayed.db, now=FAR_FUTURE)["items"] == live
        assert dump(replayed.db) == dump(runner.db)
    finally:
        replayed.close()


def test_a_party_sees_only_findings_about_its_share(ledger: TransferLedger, runner: ProjectionRunner) -> None:
    build_world(ledger)
    runner.catch_up()
    everything = queries.findings(runner.db, now=FAR_FUTURE)["items"]
    for party in ("DE", "FR", "INTERPOL", "BR", "NL", "US"):
        mine = queries.findings(runner.db, now=FAR_FUTURE, share=party)["items"]
        assert mine == [f for f in everything if party in f["parties"].values()]
    assert queries.findings(runner.db, now=FAR_FUTURE, share="JP")["items"] == []
