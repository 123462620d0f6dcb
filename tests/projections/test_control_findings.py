"""Internal control checks (Order 949 annex 3) through the application and the read models: each rule
allowed, refused, and found when the events were written around the application (on the suite's backend)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from domain.errors import InvalidInput, NotFound, RuleViolation
from ledger.config import Settings, eventsourcing_env
from ledger.service.application import TransferLedger
from projections.runner import ProjectionRunner
from tests.support import builders
from tests.support import control as c
from tests.support.world import findings, make_runner

#: The ledger's time in these tests: Wednesday 15 April 2026.
NOW = datetime(2026, 4, 15, 10, 0, tzinfo=UTC)


@pytest.fixture
def ledger(settings: Settings) -> Iterator[TransferLedger]:
    app = TransferLedger(eventsourcing_env(settings), clock=lambda: NOW)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def runner(ledger: TransferLedger) -> ProjectionRunner:
    return make_runner(ledger)


def at(day: str) -> str:
    return f"{day}T12:00:00.000000Z"


def refused(error: type[Exception], rule: str, call: Any, *args: Any) -> Any:
    with pytest.raises(error) as caught:
        call(*args)
    assert caught.value.rule == rule, caught.value  # type: ignore[attr-defined]
    return caught.value


def test_a_planned_check_concluded_with_its_measure_done_raises_no_finding(
    ledger: TransferLedger, runner: ProjectionRunner
) -> None:
    transfer = ledger.record_transfer(builders.transfer("DE", "FR"))
    plan = ledger.approve_control_plan(c.plan("DE", 2026, c.planned("2026-04-13", "2026-05-12")))
    assert plan["checks"][0]["responsible"] == [c.CHAIR, "KOK Lang"] and plan["leaf_index"] == 1
    check = ledger.open_control_check(c.of_plan(plan["id"], events=[transfer["leaf_index"]]))
    assert (check["kind"], check["starts_on"], check["ends_on"], check["tree_size"]) == (
        "planned", "2026-04-13", "2026-05-12", 2)
    done = ledger.conclude_control_check(check["id"], c.conclusion("DE", c.measure("2026-05-31"), violations=[
        {"description": "the request reference is missing", "leaf_index": transfer["leaf_index"]}]))
    assert done["status"] == "concluded" and done["conclusion"]["tree_size"] == 2
    assert done["conclusion"]["reported_to"] is None  # a planned check: no notice
    assert done["measures"][0]["status"] == "open" and done["measures"][0]["responsible"] == "KOK Lang"
    completed = ledger.complete_control_measure(check["id"], "m1", c.completion())
    assert completed["measures"][0]["status"] == "completed"
    assert completed["measures"][0]["completion"]["leaf_index"] == done["conclusion"]["leaf_index"] + 1
    assert ledger.get_control_check(check["id"]) == completed
    assert findings(runner, now=at("2026-06-01")) == []
    refused(RuleViolation, "check-already-concluded", ledger.conclude_control_check, check["id"], c.conclusion())
    refused(RuleViolation, "measure-already-completed", ledger.complete_control_measure, check["id"], "m1",
            c.completion())
    refused(NotFound, "measure-not-found", ledger.complete_control_measure, check["id"], "m9", c.completion())


def test_an_unplanned_check_reports_its_results_to_the_responsible_official(ledger: TransferLedger) -> None:
    official = c.official("DE", "Präs. Müller")
    check = ledger.open_control_check(c.unplanned(received_on="2026-04-13", decided_on="2026-04-14",
                                                  ends_on="2026-05-14", responsible_official=official))
    assert check["kind"] == "unplanned" and check["ground"]["kind"] == "complaint"
    done = ledger.conclude_control_check(check["id"], c.conclusion())
    assert done["conclusion"]["reported_to"] == official


def test_a_plan_without_checks_is_refused_and_a_unit_without_one_is_found(
    ledger: TransferLedger, runner: ProjectionRunner
) -> None:
    refused(InvalidInput, "missing-field", ledger.approve_control_plan, c.plan(checks=[]))
    ledger.record_transfer(builders.transfer("DE", "FR", transferred_at="2025-06-01T10:00:00Z"))
    ledger.record_transfer(builders.transfer("FR", "DE", transferred_at="2025-06-02T10:00:00Z"))
    ledger.approve_control_plan(c.plan("FR", 2025, c.planned("2025-03-02", "2025-03-31")))
    c.around_plan(ledger, "DE", 2025, checks=[])  # written around: a plan of no check
    found = findings(runner, "control-plan-missing", now=at("2026-01-02"))
    assert [(f["reason"], f["parties"]["sender"]) for f in found] == [("plan-without-checks", "DE")]
    assert found[0]["article"] == "Order 949 annex 3 §6"
    # judged while the year runs, nothing yet
    assert findings(runner, "control-plan-missing", now=at("2025-12-30")) == []
    ledger.approve_control_plan(c.plan("DE", 2025, c.planned("2025-03-02", "2025-03-31")))
    assert findings(runner, "control-plan-missing", now=at("2026-01-02")) == []


def test_a_check_longer_than_a_month_is_refused_and_found(ledger: TransferLedger, runner: ProjectionRunner) -> None:
    refused(InvalidInput, "check-longer-than-a-month", ledger.approve_control_plan,
            c.plan("DE", 2026, c.planned("2026-03-02", "2026-04-03")))
    refused(InvalidInput, "check-longer-than-a-month", ledger.open_control_check,
            c.unplanned(received_on="2026-04-13", decided_on="2026-04-14", ends_on="2026-05-15"))
    size = ledger.store.head().size
    c.around_plan(ledger, "DE", 2026, checks=[c.planned("2026-03-02", "2026-04-03")])
    forged = c.around_check(ledger, received_on=None, decided_on="2026-04-14", ends_on="2026-06-30")
    found = findings(runner, "control-check-too-long", now=at("2026-04-15"))
    assert [f["reason"] for f in found] == ["check-longer-than-a-month"] * 2
    assert [f["leaf_index"] for f in found] == [size, size + 1] and forged in found[1]["detail"]


def test_an_unplanned_check_organized_late_is_refused_and_found(
    ledger: TransferLedger, runner: ProjectionRunner
) -> None:
    # the ground of Wednesday 1 April 2026: five German working days are 2, 7, 8, 9, 10 April (Good Friday
    # 3 April and Easter Monday 6 April are public holidays)
    on_time = ledger.open_control_check(c.unplanned(received_on="2026-04-01", decided_on="2026-04-10",
                                                    ends_on="2026-05-10"))
    assert on_time["decided_on"] == "2026-04-10"
    error = refused(RuleViolation, "check-organized-late", ledger.open_control_check,
                    c.unplanned(received_on="2026-04-01", decided_on="2026-04-13", ends_on="2026-05-10"))
    assert error.values["latest"] == "2026-04-10" and error.article == "Order 949 annex 3 §9"
    forged = c.around_check(ledger, received_on="2026-04-01", decided_on="2026-04-13", ends_on="2026-05-10")
    found = findings(runner, "control-check-organized-late", now=at("2026-04-15"))
    assert [f["detail"].split(":")[0] for f in found] == [f"unplanned check {forged} of DE/BKA"]
    assert found[0]["reason"] == "check-organized-late"


def test_an_interested_participant_is_refused(ledger: TransferLedger) -> None:
    transfer = ledger.record_transfer(builders.transfer("DE", "FR", ordered_by="OStA Kraus"))
    request = ledger.request_authorization(builders.request("FR", "US", transfer))
    ledger.decide(request["id"], {**builders.grant("DE"), "decided_by": c.official("DE", "Dr. Roth")})
    events = [transfer["leaf_index"], ledger.store.head().size - 1]
    for name, role in ((transfer["sender"]["officer"], "officer (sender)"), ("OStA Kraus", "ordering officer"),
                       ("dr.  roth", "decision-maker")):
        error = refused(RuleViolation, "interested-participant", ledger.open_control_check,
                        c.unplanned(received_on="2026-04-14", decided_on="2026-04-15", ends_on="2026-05-15",
                                    participants=[c.CHAIR, name], events=events))
        assert error.field == "participants[1]" and error.values["role"] == role
    assert ledger.open_control_check(c.unplanned(received_on="2026-04-14", decided_on="2026-04-15",
                                                 ends_on="2026-05-15", events=events))["events"] == events


def test_a_check_works_on_a_tree_size_it_pins(ledger: TransferLedger) -> None:
    ledger.record_transfer(builders.transfer("DE", "FR"))
    body = c.unplanned(received_on="2026-04-14", decided_on="2026-04-15", ends_on="2026-05-15")
    refused(InvalidInput, "tree-size-not-reached", ledger.open_control_check, {**body, "tree_size": 5})
    refused(InvalidInput, "leaf-outside-working-set", ledger.open_control_check, {**body, "tree_size": 1,
                                                                                   "events": [1]})
    check = ledger.open_control_check({**body, "tree_size": 1, "events": [0]})
    refused(InvalidInput, "leaf-outside-working-set", ledger.conclude_control_check, check["id"],
            c.conclusion(violations=[{"description": "later", "leaf_index": 1}]))


def test_overdue_checks_and_measures_are_found(ledger: TransferLedger, runner: ProjectionRunner) -> None:
    open_check = ledger.open_control_check(c.unplanned(received_on="2026-04-14", decided_on="2026-04-15",
                                                       ends_on="2026-05-15"))
    late = ledger.open_control_check(c.unplanned(received_on="2026-04-14", decided_on="2026-04-15",
                                                 ends_on="2026-04-20"))
    ledger.conclude_control_check(late["id"], c.conclusion("DE", c.measure("2026-05-01"), c.measure("2026-05-01")))
    c.around_completion(ledger, late["id"], "m2", "2026-05-20T09:00:00.000000Z")
    assert findings(runner, "control-check-overdue", now=at("2026-05-15")) == []
    overdue = findings(runner, "control-check-overdue", now=at("2026-05-16"))
    assert [f["reason"] for f in overdue] == ["not-concluded"] and open_check["id"] in overdue[0]["detail"]
    measures = findings(runner, "control-measure-overdue", now=at("2026-05-16"))
    assert sorted(f["reason"] for f in measures) == ["completed-late", "not-completed"]
    assert all(f["article"] == "Order 949 annex 3 §11" for f in measures)
    assert findings(runner, "control-measure-overdue", now=at("2026-04-30"), share="FR") == []
    view = ledger.get_control_check(late["id"])
    assert view["measures"][0]["status"] == "open"  # the ledger's clock: 15 April
