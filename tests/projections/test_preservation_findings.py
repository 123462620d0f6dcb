"""Art. 42 through the application and the read models: each rule allowed, refused, and found
when the events were written around the application (on the suite's backend)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from domain.errors import InvalidInput, RuleViolation
from ledger.service.application import TransferLedger
from projections import queries
from projections.events import norm_time, now_time
from projections.preservation import expiring
from projections.runner import ProjectionRunner
from tests.support import preservation as p


def findings(runner: ProjectionRunner, rule: str | None = None, **options: Any) -> list[dict[str, Any]]:
    runner.catch_up()
    return queries.findings(runner.db, rule=rule, now=options.pop("now", now_time()), **options)["items"]  # type: ignore[no-any-return]


def refused(error: type[Exception], rule: str, call: Any, *args: Any) -> Exception:
    with pytest.raises(error) as caught:
        call(*args)
    assert caught.value.rule == rule, caught.value  # type: ignore[attr-defined]
    return caught.value


def test_the_application_alone_raises_no_preservation_finding(ledger: TransferLedger, runner: ProjectionRunner) -> None:
    made = ledger.request_preservation(p.preservation())
    ledger.extend_preservation(made["id"], p.extension())
    ledger.file_follow_up(made["id"], p.follow_up())
    ledger.decide_follow_up(made["id"], p.decision())
    done = ledger.release_preservation(made["id"], p.release())
    assert done["status"] == "released" and done["release"]["leaf_index"] == made["leaf_index"] + 4
    assert findings(runner) == []


def test_a_period_under_60_days_is_refused_and_found(ledger: TransferLedger, runner: ProjectionRunner) -> None:
    assert ledger.request_preservation(p.preservation(period_days=60))["days_left"] == 60
    error = refused(InvalidInput, "preservation-period-too-short", ledger.request_preservation,
                    p.preservation(period_days=59))
    assert error.field == "period_days"  # type: ignore[attr-defined]
    size = ledger.store.head().size
    forged = p.around_request(ledger, period_days=30)
    assert ledger.store.head().size == size + 1
    found = [f for f in findings(runner) if f["rule"] == "preservation-period-too-short"]
    assert len(found) == 1 and found[0]["article"] == "art. 42 §8" and forged in found[0]["detail"]


def test_an_extension_before_expiry_moves_the_end(ledger: TransferLedger) -> None:
    made = ledger.request_preservation(p.preservation(requested_at=p.days_ago(50)))
    assert made["days_left"] == 10
    extended = ledger.extend_preservation(made["id"], p.extension(days=30))
    assert extended["days_left"] == 40 and extended["status"] == "preserved"
    assert extended["extensions"][0]["leaf_index"] == made["leaf_index"] + 1


def test_an_extension_after_expiry_is_refused_and_found(ledger: TransferLedger, runner: ProjectionRunner) -> None:
    made = ledger.request_preservation(p.preservation(requested_at=p.days_ago(61)))
    assert (made["status"], made["days_left"]) == ("expired", 0)
    size = ledger.store.head().size
    refused(RuleViolation, "preservation-expired", ledger.extend_preservation, made["id"], p.extension())
    refused(RuleViolation, "preservation-expired", ledger.file_follow_up, made["id"], p.follow_up())
    assert ledger.store.head().size == size  # nothing recorded
    p.around(ledger, made["id"], "extend", "DE")
    late = [f for f in findings(runner) if f["rule"] == "preservation-extended-after-expiry"]
    assert len(late) == 1 and late[0]["reason"] == "preservation-expired" and late[0]["article"] == "art. 42 §9"
    assert {e["leaf_index"] for e in late[0]["evidence"]} == {made["leaf_index"], size}
    # it had expired unattended, whatever the extension written afterwards says
    unattended = [f for f in findings(runner) if f["rule"] == "preservation-expired-unattended"]
    assert [f["reason"] for f in unattended] == ["late-event-after-expiry"]


def test_expired_without_follow_up_or_extension_is_found(ledger: TransferLedger, runner: ProjectionRunner) -> None:
    lapsed = ledger.request_preservation(p.preservation(requested_at=p.days_ago(65)))
    kept = ledger.request_preservation(p.preservation(requested_at=p.days_ago(65), period_days=90))
    followed = ledger.request_preservation(p.preservation(requested_at=p.days_ago(65)))
    ledger.file_follow_up(followed["id"], p.follow_up(received_at=p.days_ago(10)))
    found = findings(runner, "preservation-expired-unattended")
    assert [f["detail"].split("(")[1].split(",")[0] for f in found] == [lapsed["id"]]
    assert found[0]["parties"] == {"origin": None, "sender": "DE", "recipient": "FR"}
    assert ledger.get_preservation(followed["id"])["status"] == "awaiting-decision"
    # as of a time before the end of the period: nothing had expired yet
    assert findings(runner, "preservation-expired-unattended", now=norm_time(p.days_ago(6))) == []
    assert kept["status"] == "preserved"


def test_release_while_the_follow_up_awaits_a_decision_is_refused_and_found(
    ledger: TransferLedger, runner: ProjectionRunner
) -> None:
    made = ledger.request_preservation(p.preservation())
    ledger.file_follow_up(made["id"], p.follow_up())
    refused(RuleViolation, "follow-up-awaiting-decision", ledger.release_preservation, made["id"], p.release())
    p.around(ledger, made["id"], "release", "FR")
    early = findings(runner, "preservation-released-early")
    assert [f["reason"] for f in early] == ["follow-up-awaiting-decision"]
    assert early[0]["article"] == "art. 42 §8"


def test_release_while_the_period_runs_is_refused_and_found(ledger: TransferLedger, runner: ProjectionRunner) -> None:
    running = ledger.request_preservation(p.preservation())
    refused(RuleViolation, "preservation-period-running", ledger.release_preservation, running["id"], p.release())
    lapsed = ledger.request_preservation(p.preservation(requested_at=p.days_ago(61)))
    assert ledger.release_preservation(lapsed["id"], p.release())["status"] == "released"
    refused(RuleViolation, "preservation-released", ledger.release_preservation, lapsed["id"], p.release())
    p.around(ledger, running["id"], "release", "FR")
    assert [f["reason"] for f in findings(runner, "preservation-released-early")] == ["preservation-period-running"]


@pytest.mark.parametrize(("act", "party", "rule"), [
    ("extend", "FR", "not-requesting-party"), ("follow-up", "FR", "not-requesting-party"),
    ("decide", "DE", "not-requested-party"), ("release", "DE", "not-requested-party"),
])
def test_only_the_party_concerned_acts(ledger: TransferLedger, runner: ProjectionRunner, act: str, party: str,
                                       rule: str) -> None:
    made = ledger.request_preservation(p.preservation())
    if act in ("decide", "release"):
        ledger.file_follow_up(made["id"], p.follow_up())
    command, body = {
        "extend": (ledger.extend_preservation, p.extension(party)),
        "follow-up": (ledger.file_follow_up, p.follow_up(party)),
        "decide": (ledger.decide_follow_up, p.decision(party)),
        "release": (ledger.release_preservation, p.release(party)),
    }[act]
    refused(RuleViolation, rule, command, made["id"], body)
    p.around(ledger, made["id"], act, party)
    wrong = findings(runner, "preservation-act-by-wrong-party")
    assert [f["reason"] for f in wrong] == [rule]


def test_the_follow_up_is_decided_once_and_a_refusal_is_reasoned(ledger: TransferLedger) -> None:
    made = ledger.request_preservation(p.preservation())
    refused(RuleViolation, "follow-up-not-filed", ledger.decide_follow_up, made["id"], p.decision())
    ledger.file_follow_up(made["id"], p.follow_up())
    refused(RuleViolation, "follow-up-already-filed", ledger.file_follow_up, made["id"], p.follow_up())
    refused(RuleViolation, "follow-up-already-filed", ledger.extend_preservation, made["id"], p.extension())
    refused(InvalidInput, "refusal-without-reasons", ledger.decide_follow_up, made["id"], p.decision(outcome="refused"))
    decided = ledger.decide_follow_up(made["id"], p.decision(outcome="refused", reasons="dual criminality"))
    assert decided["status"] == "decided" and decided["decision"]["reasons"] == "dual criminality"
    refused(RuleViolation, "follow-up-already-decided", ledger.decide_follow_up, made["id"], p.decision())


def test_what_is_about_to_expire(ledger: TransferLedger, runner: ProjectionRunner) -> None:
    soon = ledger.request_preservation(p.preservation(requested_at=p.days_ago(55)))
    ledger.request_preservation(p.preservation())  # 60 days left
    followed = ledger.request_preservation(p.preservation(requested_at=p.days_ago(55)))
    ledger.file_follow_up(followed["id"], p.follow_up())
    ledger.request_preservation(p.preservation(requested_at=p.days_ago(61)))  # already expired
    runner.catch_up()
    found = expiring(runner.db, now=now_time(), within=timedelta(days=7), share=None)["items"]
    assert [(i["id"], i["days_left"]) for i in found] == [(soon["id"], 5)]
    assert expiring(runner.db, now=now_time(), within=timedelta(days=7), share="NL")["items"] == []
