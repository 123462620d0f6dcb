"""The state "as of" a leaf index or a time: replayed from leaves 0..N, stable forever."""

from __future__ import annotations

import pytest

from ledger.service.application import TransferLedger
from projections import queries
from projections.replay import ReplayError, covering_checkpoint, replay
from projections.runner import ProjectionRunner
from tests.support import builders
from tests.support.world import around, build_world, dump


def test_the_state_as_of_n_does_not_change_when_later_events_arrive(
    ledger: TransferLedger, runner: ProjectionRunner
) -> None:
    w = build_world(ledger)
    n = w["t1"]["leaf_index"]
    before = replay(ledger.store, at_index=n)
    try:
        state = before.state()
        rows = dump(before.db)
    finally:
        before.close()
    assert state["authorizations"]["counts"] == {"pending": 0, "granted": 1, "refused": 0, "revoked": 0, "total": 1}
    assert state["lineage"]["transfers"] == 2
    # Later: the grant is used again, a pending request is decided, a forged transfer, a revocation.
    ledger.decide(w["pending"]["id"], builders.grant("DE"))
    around(ledger, "FR", "INTERPOL", w["root"])
    ledger.record_transfer(builders.onward("FR", "NL", w["root"], w["pending"]))
    ledger.revoke(w["a2"]["id"], builders.revocation("DE"))
    after = replay(ledger.store, at_index=n)
    try:
        assert after.at_index == n and after.tree_size == n + 1
        assert after.state() == state
        assert dump(after.db) == rows
    finally:
        after.close()
    runner.catch_up()  # the live read models did change
    assert queries.authorizations(runner.db, now=state["findings"]["now"])["counts"]["revoked"] == 2


def test_as_of_a_time(ledger: TransferLedger) -> None:
    w = build_world(ledger)
    leaves = ledger.store.read_leaves(0, 100)
    k = w["t1"]["leaf_index"] + 3
    at = leaves[k].recorded_at
    replayed = replay(ledger.store, at_time=at)
    try:
        # Every leaf recorded at or before that time (leaves may share a record time).
        expected = max(i for i, leaf in enumerate(leaves) if leaf.recorded_at <= at)
        assert replayed.at_index == expected >= k
        assert replayed.now == replayed.at_time
    finally:
        replayed.close()
    early = replay(ledger.store, at_time="2000-01-01T00:00:00Z")
    try:
        assert early.at_index == -1 and early.tree_size == 0
        assert early.state()["lineage"]["transfers"] == 0
    finally:
        early.close()
    both = replay(ledger.store, at_index=2, at_time=leaves[-1].recorded_at)
    try:
        assert both.at_index == 2  # whichever comes first
    finally:
        both.close()


def test_time_dependent_findings_are_judged_at_leaf_n(ledger: TransferLedger) -> None:
    root = ledger.record_transfer(builders.transfer("DE", "FR", retention_until="2020-01-31"))
    ledger.request_authorization(builders.request("FR", "INTERPOL", root))
    replayed = replay(ledger.store, at_index=1)
    try:
        found = replayed.state(models=("findings",), pending_deadline_days=1.0)["findings"]
        assert found["now"] == replayed.leaf_time
        # Retention passed long before leaf 1; the request is only milliseconds old at leaf 1.
        assert found["counts"] == {"retention-period-expired": 1}
    finally:
        replayed.close()


def test_replay_at_head_equals_the_live_models(ledger: TransferLedger, runner: ProjectionRunner) -> None:
    build_world(ledger)
    runner.catch_up()
    replayed = replay(ledger.store)
    try:
        assert dump(replayed.db) == dump(runner.db)
        now = replayed.now
        live = queries.audit_state(runner.db, now=now, transfer_id=None)
        assert replayed.state() == live
    finally:
        replayed.close()


def test_points_outside_the_ledger(ledger: TransferLedger) -> None:
    ledger.record_transfer(builders.transfer("DE", "FR"))
    for index in (-1, 1, 10**9):
        with pytest.raises(ReplayError, match="not a leaf"):
            replay(ledger.store, at_index=index)
    with pytest.raises(ReplayError, match="RFC 3339"):
        replay(ledger.store, at_time="yesterday")


def test_the_checkpoint_that_covers_a_leaf(ledger: TransferLedger) -> None:
    for _ in range(3):
        ledger.record_transfer(builders.transfer("DE", "FR"))
    ledger.store.save_checkpoint(2, b"\x00" * 32, "note at 2\n")
    ledger.store.save_checkpoint(3, b"\x01" * 32, "note at 3\n")
    first = covering_checkpoint(ledger.store, 0)
    assert first is not None and first.tree_size == 2
    assert covering_checkpoint(ledger.store, 2).tree_size == 3  # type: ignore[union-attr]
    ledger.record_transfer(builders.transfer("DE", "FR"))
    assert covering_checkpoint(ledger.store, 3) is None


def test_lineage_as_of_n(ledger: TransferLedger) -> None:
    w = build_world(ledger)
    replayed = replay(ledger.store, at_index=w["t1"]["leaf_index"])
    try:
        lineage = replayed.state(models=("lineage",), transfer_id=w["root"]["id"])["lineage"]["of_transfer"]
        assert [d["id"] for d in lineage["descendants"]] == [w["t1"]["id"]]
        assert replayed.state(models=("lineage",), transfer_id=w["t2"]["id"])["lineage"]["of_transfer"] is None
    finally:
        replayed.close()
