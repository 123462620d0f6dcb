"""domain/regimes.py: each regime's rules, and the urgent exception of LED art. 35(2) alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import InvalidInput, RuleViolation
from domain.model import Transfer
from domain.regimes import (
    REGIMES,
    check_urgent_notice_by_sender,
    check_urgent_notice_possible,
    parse_regime,
    regime_rules,
    urgent_exception_problem,
    urgent_notice_overdue,
)
from tests.support.builders import record

AT = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize("regime", ["un-cybercrime", "eu-led", "budapest-p2", "treaty:MLAT DE-FR (1961)"])
def test_the_regimes(regime: str) -> None:
    assert parse_regime(regime) == regime


@pytest.mark.parametrize("regime", ["", "UN", "treaty:", "treaty: spaced", 7, None])
def test_an_unknown_regime_is_refused(regime: object) -> None:
    with pytest.raises(InvalidInput) as error:
        parse_regime(regime)
    assert error.value.rule == "unknown-regime"


def test_only_led_has_an_urgent_exception() -> None:
    assert [name for name, rules in REGIMES.items() if rules.urgent_article] == ["eu-led"]
    assert regime_rules("treaty:X").urgent_article is None and regime_rules("treaty:X").onward_article == "art. 36 §3"
    assert urgent_exception_problem("eu-led") is None
    for regime in ("un-cybercrime", "budapest-p2", "treaty:X"):
        violation = urgent_exception_problem(regime)
        assert isinstance(violation, RuleViolation) and violation.rule == "no-urgent-exception"
    first = urgent_exception_problem(None)
    assert isinstance(first, InvalidInput) and first.rule == "urgent-not-onward"


def test_the_notice_rules() -> None:
    check_urgent_notice_by_sender("FR", "FR", "t", "notified_by.party")
    with pytest.raises(RuleViolation, match="urgent-notice-by-sender"):
        check_urgent_notice_by_sender("NL", "FR", "t", "notified_by.party")
    check_urgent_notice_possible(True, False, "t")
    for urgent, notified, rule in ((False, False, "not-urgent"), (True, True, "urgent-notice-already-given")):
        with pytest.raises(RuleViolation) as error:
            check_urgent_notice_possible(urgent, notified, "t")
        assert error.value.rule == rule
    assert not urgent_notice_overdue(AT, AT + timedelta(hours=23), AT + timedelta(days=5))
    assert urgent_notice_overdue(AT, AT + timedelta(hours=25), AT + timedelta(days=5))
    assert urgent_notice_overdue(AT, None, AT + timedelta(hours=25))
    assert not urgent_notice_overdue(AT, None, AT + timedelta(hours=1))


def test_a_transfer_recorded_before_regimes_reads_as_the_conventions() -> None:
    transfer = record("DE", "FR")
    state = {k: v for k, v in transfer.data.items() if k not in ("regime", "urgent")}
    old = object.__new__(Transfer.Recorded)
    old.__dict__.update(state)
    assert old.regime == "un-cybercrime" and old.urgent is None
