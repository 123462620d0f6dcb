"""The rules of internal control checks (Order 949 annex 3), as pure functions: the Party's calendar, a
month, who is interested in a check, and the drafts."""

from __future__ import annotations

from datetime import date

import pytest

from domain.control import (
    ControlCheckDraft,
    ControlPlanDraft,
    add_working_days,
    calendar_known,
    check_kind_problem,
    check_plan,
    check_too_long,
    interested_participant,
    interested_people,
    is_working_day,
    one_month_after,
    organized_late,
    plan_without_checks,
)
from domain.errors import InvalidInput, RuleViolation
from tests.support import control as c


def test_working_days_are_the_partys_weekdays_less_its_public_holidays() -> None:
    assert not is_working_day(date(2026, 12, 26), "DE")  # a Saturday
    assert not is_working_day(date(2026, 10, 3), "DE")  # German Unity Day (a Saturday too)
    assert not is_working_day(date(2026, 5, 1), "FR") and is_working_day(date(2026, 5, 4), "FR")
    assert not is_working_day(date(2026, 7, 14), "FR") and is_working_day(date(2026, 7, 14), "DE")
    # from Wednesday 23 December: 24, (25 a holiday, 26-27 the weekend), 28, 29, 30, 31
    assert add_working_days(date(2026, 12, 23), 5, "DE") == date(2026, 12, 31)


def test_a_party_whose_calendar_is_unknown_has_weekends_only() -> None:
    assert calendar_known("DE") and not calendar_known("INTERPOL")
    assert is_working_day(date(2026, 12, 25), "INTERPOL")
    assert add_working_days(date(2026, 12, 23), 5, "INTERPOL") == date(2026, 12, 30)
    late = organized_late(date(2026, 12, 23), date(2026, 12, 31), "INTERPOL")
    assert late is not None and "weekends only" in late.detail and late.values["calendar"] == "weekends only"


def test_organized_within_five_working_days_of_the_ground() -> None:
    assert organized_late(date(2026, 12, 23), date(2026, 12, 31), "DE") is None
    late = organized_late(date(2026, 12, 23), date(2027, 1, 4), "DE")
    assert isinstance(late, RuleViolation) and late.rule == "check-organized-late"
    assert late.article == "Order 949 annex 3 §9" and late.values["latest"] == "2026-12-31"


def test_a_check_lasts_at_most_one_month() -> None:
    assert one_month_after(date(2026, 1, 31)) == date(2026, 2, 28)
    assert one_month_after(date(2026, 12, 15)) == date(2027, 1, 15)
    assert check_too_long(date(2026, 3, 2), date(2026, 4, 2), "ends_on") is None
    too_long = check_too_long(date(2026, 3, 2), date(2026, 4, 3), "ends_on")
    assert too_long is not None and too_long.rule == "check-longer-than-a-month" and too_long.article.endswith("§6")
    backwards = check_too_long(date(2026, 3, 2), date(2026, 3, 1), "ends_on")
    assert backwards is not None and backwards.rule == "check-ends-before-it-starts"


def test_a_plan_has_at_least_one_check_held_in_its_year() -> None:
    assert plan_without_checks(0) is not None and plan_without_checks(1) is None
    check_plan(ControlPlanDraft.parse(c.plan()))
    with pytest.raises(InvalidInput) as caught:
        ControlPlanDraft.parse(c.plan(checks=[]))
    assert caught.value.field == "checks"
    for body, rule in ((c.plan("DE", 2026, c.planned("2026-03-02", "2026-04-20")), "check-longer-than-a-month"),
                       (c.plan("DE", 2027), "check-outside-plan-year"),
                       (c.plan(unit="FR/POLICE"), "authority-not-of-party"),
                       (c.plan(approved_by=c.official("FR")), "approver-not-of-party")):
        with pytest.raises(InvalidInput) as caught:
            check_plan(ControlPlanDraft.parse(body))
        assert caught.value.rule == rule


def test_a_check_is_planned_or_unplanned() -> None:
    draft = ControlCheckDraft.parse(c.unplanned(received_on="2026-04-01", decided_on="2026-04-02",
                                                ends_on="2026-04-30"))
    assert check_kind_problem(draft) is None
    both = ControlCheckDraft.parse({**c.of_plan("00000000-0000-4000-8000-000000000000"), "ground": draft.ground})
    problem = check_kind_problem(both)
    assert problem is not None and problem.rule == "check-kind-unclear"
    with pytest.raises(InvalidInput):
        ControlCheckDraft.parse(c.unplanned(received_on="2026-04-01", decided_on="2026-04-02", ends_on="2026-04-30",
                                            ground={"kind": "rumour", "reference": "x", "received_on": "2026-04-01"}))


def test_who_is_interested_in_a_check_of_an_event() -> None:
    transfer = {"sender": {"party": "DE", "officer": "Insp. K. Weber"}, "recipient": {"party": "FR"},
                "ordered_by": "OStA Kraus"}
    decision = {"decided_by": {"party": "DE", "officer": "Dr. Roth"}}
    assert interested_people(transfer) == {"insp. k. weber": "officer (sender)", "osta kraus": "ordering officer"}
    assert interested_people(decision) == {"dr. roth": "decision-maker"}
    events = {4: transfer, 7: decision}
    assert interested_participant(["ORR Braun"], events) is None
    for name, leaf, role in (("insp.  k. WEBER", 4, "officer (sender)"), ("OStA Kraus", 4, "ordering officer"),
                             ("Dr. Roth", 7, "decision-maker")):
        found = interested_participant(["ORR Braun", name], events)
        assert found is not None and found.rule == "interested-participant" and found.field == "participants[1]"
        assert found.values == {"leaf_index": leaf, "role": role} and found.article == "Order 949 annex 3 §4"
