"""The consultation log's rules (LED 2016/680 art. 25), without a ledger."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from domain.consultation import (
    LOG_PURPOSES,
    ConsultationLog,
    consultation_log_until,
    justification_missing,
    log_purpose_problem,
)
from domain.personal import ACTOR_LOG


def test_a_justification_is_missing_only_where_the_policy_requires_one() -> None:
    assert justification_missing(False, None, "FR") is None
    assert justification_missing(True, "case 17", "FR") is None
    for given in (None, "", "   "):
        violation = justification_missing(True, given, "FR")
        assert violation is not None and violation.rule == "justification-required"
        assert violation.article == "LED 2016/680 art. 25(1)" and "FR" in violation.detail


def test_the_logs_are_read_only_for_the_purposes_of_art_25_2() -> None:
    assert LOG_PURPOSES == ("lawfulness", "self-monitoring", "integrity", "criminal-proceedings")
    assert all(log_purpose_problem(p) is None for p in LOG_PURPOSES)
    missing, wrong = log_purpose_problem(None), log_purpose_problem("curiosity")
    assert missing is not None and missing.rule == "purpose-required" and missing.field == "purpose"
    assert wrong is not None and wrong.rule == "unknown-log-purpose" and "curiosity" in wrong.detail


def test_a_log_is_kept_its_own_years_after_the_read() -> None:
    assert consultation_log_until(datetime(2026, 12, 7, 23, 59, tzinfo=UTC), 3) == date(2029, 12, 7)
    assert consultation_log_until(datetime(2028, 2, 29, tzinfo=UTC), 1) == date(2029, 2, 28)


def test_a_log_event_seals_who_read_as_an_actor_log_until_its_own_date() -> None:
    assert ConsultationLog.Logged.PERSONAL == {"readers": ACTOR_LOG}
    log = ConsultationLog.logged([{"at": "x"}], [{"officer": None, "justification": None}], date(2029, 12, 7))
    assert log.log_until == "2029-12-07" and log.entries == [{"at": "x"}]
    with pytest.raises(ValueError):
        ConsultationLog.logged([{"at": "x"}], [], date(2029, 12, 7))
