"""Internal control checks (Order 949, annex 3): the yearly plan, unplanned checks, conclusions.

The head of a unit approves a yearly plan of checks (§5, §7): for each planned check the objects
of control, the period checked, its dates and the people responsible. There is **at least one
planned check a year** (§6) and a check lasts **at most one month** (§6). An unplanned check
(§8) has one of four grounds: a written instruction of the responsible official, a data
subject's complaint, a supervisory check, a report of a violation; it is **organized within five
working days** of its ground (§9) and lasts at most a month from the decision to hold it.
Working days are those of the Party's calendar: weekends and the public holidays of its country
as the ``holidays`` library knows them (a Party it does not know, such as an international
organization, has weekends only). A person interested in the result takes no part (§4): not the
officer, the ordering officer or the decision-maker of an event under check. The check ends with
a written conclusion (§10-§12): the violations found, the remedial measures each with a deadline
and a responsible person; the results of an unplanned check are reported to the responsible
official.

A check names the ledger's events it examines by leaf index and pins a tree size (its working
set): every statement of its conclusion is about that tree, which anyone can verify later with a
consistency proof to a later checkpoint.

Each rule is one function named after what it checks, citing its paragraph, returning its
violation (or None) so that the application refuses with it and the read models
(``projections.control``) report it as a finding. A ``check_*`` function raises the violation.
"""

from __future__ import annotations

import calendar
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args
from uuid import UUID, uuid4

import holidays
from eventsourcing.domain import Aggregate
from pydantic import AfterValidator, Field

from domain.errors import DomainError, InvalidInput, NotFound, RuleViolation
from domain.parties import Official, parse_authority, parse_party, parse_text
from domain.personal import ACTOR_LOG, SUBJECT_DATA
from domain.validation import Value, checked
from domain.values import DateText, DateTimeText, OptionalText, Text, check_not_in_future, format_datetime

ANNEX_3 = "Order 949 annex 3"
ART_4 = f"{ANNEX_3} §4"
ART_5 = f"{ANNEX_3} §5, §7"
ART_6 = f"{ANNEX_3} §6"
ART_8 = f"{ANNEX_3} §8"
ART_9 = f"{ANNEX_3} §9"
ART_10 = f"{ANNEX_3} §10-§12"

#: Art. §9: an unplanned check is organized within five working days of its ground.
ORGANIZE_WITHIN_WORKING_DAYS = 5
#: The grounds of an unplanned check (§8).
Ground = Literal["written-instruction", "complaint", "supervisory-check", "violation-report"]
GROUNDS: tuple[str, ...] = get_args(Ground)

_PREFIX = "transfer-ledger:"
DAY = timedelta(days=1)


def refuse(violation: DomainError | None) -> None:
    """Raise what a rule found, if it found anything."""
    if violation is not None:
        raise violation


# -- the calendar ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _public_holidays(party: str) -> holidays.HolidayBase | None:
    if party not in holidays.list_supported_countries():
        return None
    return holidays.country_holidays(party)


def calendar_known(party: str) -> bool:
    """Whether the ``holidays`` library knows the public holidays of ``party``'s country; if not,
    only weekends are days off (an international organization, a country it does not cover)."""
    return _public_holidays(party) is not None


def is_working_day(day: date, party: str) -> bool:
    """Monday to Friday, and not a public holiday of the Party's country."""
    if day.weekday() >= 5:
        return False
    public = _public_holidays(party)
    return public is None or day not in public


def add_working_days(start: date, days: int, party: str) -> date:
    """The ``days``-th working day of ``party`` after ``start`` (``start`` itself not counted)."""
    day, left = start, days
    while left > 0:
        day += DAY
        if is_working_day(day, party):
            left -= 1
    return day


def one_month_after(start: date) -> date:
    """The same day of the next month (the month's last day when it has no such day): how long
    a check may last (§6)."""
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def end_of_day(day: date) -> str:
    """The last moment of a day, as the read models write times."""
    return f"{day.isoformat()}T23:59:59.999999Z"


# -- the values ---------------------------------------------------------------------------------


def _party(value: str) -> str:
    return checked(parse_party)(value)


PartyCode = Annotated[str, AfterValidator(_party)]


def _name_text(value: str, field: str) -> str:
    parsed = parse_text(value, field, max_len=200)
    assert parsed is not None
    return parsed


#: A person's name (a participant, a person responsible).
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(checked(_name_text))]


class PlannedCheck(Value):
    """One check of the yearly plan (§7): what is checked, the period checked, when, by whom."""

    NOUN = "planned check"

    objects: tuple[Annotated[str, Field(min_length=1, max_length=500)], ...] = Field(
        min_length=1, max_length=100, strict=False, description="The objects of control")
    period_from: DateText = Field(description="The first day of the period checked (YYYY-MM-DD)",
                                  json_schema_extra={"format": "date"})
    period_to: DateText = Field(description="The last day of the period checked", json_schema_extra={"format": "date"})
    starts_on: DateText = Field(description="The first day of the check", json_schema_extra={"format": "date"})
    ends_on: DateText = Field(description="The last day of the check: at most one month after it starts (§6)",
                              json_schema_extra={"format": "date"})
    responsible: tuple[Name, ...] = Field(min_length=1, max_length=50, strict=False,
                                          description="The people responsible for the check")


class ControlPlanDraft(Value):
    """The yearly plan of checks of a unit, approved by its head (``POST /v1/control/plans``, §5, §7)."""

    NOUN = "control plan"

    party: PartyCode = Field(min_length=1, max_length=16, description="The Party whose unit is checked")
    unit: str = Field(min_length=3, max_length=140, description="The unit: an authority of the Party, "
                      "<PARTY>/<NAME>")
    year: int = Field(ge=2000, le=2999, description="The year the plan is for")
    approved_by: Official = Field(description="The head of the unit, who approves the plan (§5)")
    approved_on: DateText | None = Field(default=None, description="The day of approval; defaults to today",
                                         json_schema_extra={"format": "date"})
    checks: tuple[PlannedCheck, ...] = Field(min_length=1, max_length=100, strict=False,
                                             description="The planned checks: at least one a year (§6)")


class GroundIn(Value):
    """Why an unplanned check is held (§8), and when the ground arose."""

    NOUN = "ground"

    kind: Ground = Field(description="written-instruction, complaint, supervisory-check or violation-report")
    reference: Text = Field(min_length=1, max_length=200, description="The instruction's, complaint's, "
                            "supervisory check's or report's reference")
    received_on: DateText = Field(description="The day the ground arose (the instruction, complaint or report "
                                  "was received; the supervisory check began)", json_schema_extra={"format": "date"})
    summary: OptionalText = Field(default=None, max_length=2000, description="What it says")


class ControlCheckDraft(Value):
    """A check opened (``POST /v1/control/checks``): unplanned on a ground (§8), or a check of a plan
    (``plan_id`` and ``check_number``); its participants and the events it examines."""

    NOUN = "control check"

    party: PartyCode = Field(min_length=1, max_length=16)
    unit: str = Field(min_length=3, max_length=140, description="The unit checked, <PARTY>/<NAME>")
    ground: GroundIn | None = Field(default=None, description="An unplanned check's ground (§8)")
    plan_id: Annotated[str | None, Field(default=None, max_length=64)] = Field(
        default=None, description="A planned check: its plan", json_schema_extra={"format": "uuid"})
    check_number: int | None = Field(default=None, ge=1, le=100, description="A planned check: its number in "
                                     "the plan (1 for the first)")
    decided_by: Official = Field(description="Who decided to hold the check")
    decided_on: DateText | None = Field(default=None, description="The day of the decision (the check is "
                                        "organized); defaults to today", json_schema_extra={"format": "date"})
    ends_on: DateText | None = Field(default=None, description="The last day of the check: at most a month "
                                     "after the decision (§6, §9); a planned check's defaults to its plan's",
                                     json_schema_extra={"format": "date"})
    responsible_official: Official | None = Field(
        default=None, description="The official the results of an unplanned check are reported to; defaults "
        "to decided_by")
    objects: tuple[Annotated[str, Field(min_length=1, max_length=500)], ...] = Field(
        default=(), max_length=100, strict=False, description="The objects of control")
    participants: tuple[Name, ...] = Field(min_length=1, max_length=50, strict=False,
                                           description="Who takes part: no one interested in the result (§4)")
    events: tuple[Annotated[int, Field(ge=0)], ...] = Field(
        default=(), max_length=1000, strict=False, description="The leaf indexes of the events under check")
    tree_size: int | None = Field(default=None, ge=0, description="The tree size the check works on (its "
                                  "working set); defaults to the ledger's size now")


class ViolationFound(Value):
    """One violation a conclusion states, linked to the ledger (§10)."""

    NOUN = "violation"

    description: Text = Field(min_length=1, max_length=2000)
    leaf_index: int | None = Field(default=None, ge=0, description="The event it is about (in the working set)")
    finding_id: Annotated[str | None, Field(default=None, max_length=300)] = Field(
        default=None, description="The finding of GET /v1/audit/findings it confirms")


class MeasureIn(Value):
    """A remedial measure (§11): what, by when, who answers for it."""

    NOUN = "measure"

    description: Text = Field(min_length=1, max_length=2000)
    deadline: DateText = Field(description="The last day to complete it", json_schema_extra={"format": "date"})
    responsible: Name = Field(description="The person responsible")


class ConclusionDraft(Value):
    """The written conclusion of a check (``POST /v1/control/checks/{id}/conclusion``, §10-§12)."""

    NOUN = "conclusion"

    concluded_by: Official = Field(description="The chair of the commission, who signs the conclusion")
    concluded_at: DateTimeText | None = Field(default=None, description="RFC 3339; defaults to the time of "
                                              "recording", json_schema_extra={"format": "date-time"})
    conclusion: Text = Field(min_length=1, max_length=10000, description="The written conclusion")
    violations: tuple[ViolationFound, ...] = Field(default=(), max_length=200, strict=False)
    measures: tuple[MeasureIn, ...] = Field(default=(), max_length=200, strict=False)

    def as_of(self, now: datetime) -> ConclusionDraft:
        if self.concluded_at is None:
            return self.model_copy(update={"concluded_at": now})
        check_not_in_future(self.concluded_at, now, "concluded_at")
        return self


class CompletionDraft(Value):
    """A remedial measure was carried out (``POST .../measures/{mid}/completion``)."""

    NOUN = "completion"

    completed_by: Official
    completed_at: DateTimeText | None = Field(default=None, description="RFC 3339; defaults to the time of "
                                              "recording", json_schema_extra={"format": "date-time"})
    note: OptionalText = Field(default=None, max_length=2000)

    def as_of(self, now: datetime) -> CompletionDraft:
        if self.completed_at is None:
            return self.model_copy(update={"completed_at": now})
        check_not_in_future(self.completed_at, now, "completed_at")
        return self


# -- the rules on a plan --------------------------------------------------------------------------


def check_unit_of_party(unit: str, party: str, field: str = "unit") -> None:
    """The unit is an authority of the Party, ``<PARTY>/<NAME>``."""
    parse_authority(unit, party, field)


def plan_without_checks(checks: int) -> RuleViolation | None:
    """§6: at least one planned check a year."""
    if checks >= 1:
        return None
    return RuleViolation(
        "a yearly plan has at least one planned check (Order 949 annex 3 §6)",
        rule="plan-without-checks", field="checks", article=ART_6, values={"checks": checks})


def check_too_long(starts_on: date, ends_on: date, field: str) -> InvalidInput | None:
    """§6: a check lasts at most one month, and ends no earlier than it starts."""
    if ends_on < starts_on:
        return InvalidInput(
            f"{field} {ends_on.isoformat()} is before the check starts ({starts_on.isoformat()})",
            rule="check-ends-before-it-starts", field=field, article=ART_6,
            values={"starts_on": starts_on.isoformat(), "ends_on": ends_on.isoformat()})
    latest = one_month_after(starts_on)
    if ends_on <= latest:
        return None
    return InvalidInput(
        f"{field} is {ends_on.isoformat()}: a check that starts on {starts_on.isoformat()} ends by "
        f"{latest.isoformat()}, it lasts at most one month (Order 949 annex 3 §6)",
        rule="check-longer-than-a-month", field=field, article=ART_6,
        values={"starts_on": starts_on.isoformat(), "ends_on": ends_on.isoformat(), "latest": latest.isoformat()})


def planned_check_problem(check: PlannedCheck, year: int, field: str) -> InvalidInput | None:
    """§6, §7: a planned check's period checked is in order, it is held in the plan's year, for at
    most a month."""
    if check.period_to < check.period_from:
        return InvalidInput(
            f"{field}.period_to is before {field}.period_from", rule="period-ends-before-it-starts",
            field=f"{field}.period_to", article=ART_5)
    if check.starts_on.year != year:
        return InvalidInput(
            f"{field}.starts_on {check.starts_on.isoformat()} is not in the plan's year {year}",
            rule="check-outside-plan-year", field=f"{field}.starts_on", article=ART_5,
            values={"year": year, "starts_on": check.starts_on.isoformat()})
    return check_too_long(check.starts_on, check.ends_on, f"{field}.ends_on")


def check_plan(draft: ControlPlanDraft) -> None:
    """The rules of a plan (§5-§7), refused."""
    check_unit_of_party(draft.unit, draft.party)
    if draft.approved_by.party != draft.party:
        raise InvalidInput(
            f"the plan of a unit of {draft.party} is approved by the head of that unit, "
            f"not by {draft.approved_by.party}",
            rule="approver-not-of-party", field="approved_by.party", article=ART_5)
    refuse(plan_without_checks(len(draft.checks)))
    for number, check in enumerate(draft.checks):
        refuse(planned_check_problem(check, draft.year, f"checks[{number}]"))


# -- the rules on a check ---------------------------------------------------------------------------


def organized_late(ground_on: date, decided_on: date, party: str) -> RuleViolation | None:
    """§9: an unplanned check is organized within five working days of its ground (the Party's
    calendar: :func:`is_working_day`)."""
    latest = add_working_days(ground_on, ORGANIZE_WITHIN_WORKING_DAYS, party)
    if decided_on <= latest:
        return None
    known = "" if calendar_known(party) else " (weekends only: no public holidays known for this Party)"
    return RuleViolation(
        f"the ground of {ground_on.isoformat()} called for a check organized by {latest.isoformat()}, "
        f"{ORGANIZE_WITHIN_WORKING_DAYS} working days of {party}{known}; it was decided on "
        f"{decided_on.isoformat()} (Order 949 annex 3 §9)",
        rule="check-organized-late", field="decided_on", article=ART_9,
        values={"received_on": ground_on.isoformat(), "decided_on": decided_on.isoformat(),
                "latest": latest.isoformat(), "calendar": "public holidays" if known == "" else "weekends only"})


def check_kind_problem(draft: ControlCheckDraft) -> InvalidInput | None:
    """§8: a check is either unplanned, on a ground, or one of a plan, never both nor neither."""
    if (draft.ground is None) == (draft.plan_id is None):
        return InvalidInput(
            "a check has either a ground (an unplanned check, §8) or a plan_id and check_number (a planned check)",
            rule="check-kind-unclear", field="ground", article=ART_8)
    if draft.plan_id is not None and draft.check_number is None:
        return InvalidInput("a planned check names its check_number in the plan", rule="missing-field",
                            field="check_number")
    return None


def interested_people(state: Mapping[str, Any]) -> dict[str, str]:
    """Who is interested in the result of a check of this event (§4): its officers (every actor's
    ``officer``), its ordering officer (``ordered_by``) and its decision-maker (``decided_by``);
    name (as :func:`same_person` compares them) -> role."""
    found: dict[str, str] = {}
    ordered = state.get("ordered_by")
    if isinstance(ordered, str):
        found.setdefault(_person(ordered), "ordering officer")
    for key, value in state.items():
        if isinstance(value, dict) and isinstance(value.get("officer"), str):
            role = "decision-maker" if key == "decided_by" else f"officer ({key})"
            found.setdefault(_person(value["officer"]), role)
    return found


def _person(name: str) -> str:
    return re.sub(r"\s+", " ", name).strip().casefold()


def interested_participant(participants: Iterable[str],
                           events: Mapping[int, Mapping[str, Any]]) -> RuleViolation | None:
    """§4: no one interested in the result takes part: the violation naming the first participant
    who is an officer, the ordering officer or the decision-maker of an event under check
    (``events``: leaf index -> its event's state, personal values opened)."""
    for number, participant in enumerate(participants):
        for leaf_index, state in sorted(events.items()):
            role = interested_people(state).get(_person(participant))
            if role is not None:
                return RuleViolation(
                    f"participant {participant!r} is the {role} of the event at leaf {leaf_index}, which the check "
                    "examines: a person interested in the result takes no part (Order 949 annex 3 §4)",
                    rule="interested-participant", field=f"participants[{number}]", article=ART_4,
                    values={"leaf_index": leaf_index, "role": role})
    return None


def leaf_outside_working_set(leaf_index: int, tree_size: int, field: str) -> InvalidInput | None:
    """A check states things about the tree of its size: an event it names lies in it."""
    if leaf_index < tree_size:
        return None
    return InvalidInput(
        f"{field} is leaf {leaf_index}: the check works on the tree of size {tree_size} (leaves 0 to "
        f"{tree_size - 1})", rule="leaf-outside-working-set", field=field,
        values={"leaf_index": leaf_index, "tree_size": tree_size})


def check_working_set(tree_size: int, head_size: int, events: Iterable[int]) -> None:
    """The pinned tree size is one the ledger has reached; the events under check lie in it."""
    if tree_size > head_size:
        raise InvalidInput(f"tree_size {tree_size} is larger than the ledger ({head_size} leaves)",
                           rule="tree-size-not-reached", field="tree_size",
                           values={"tree_size": tree_size, "size": head_size})
    for number, leaf_index in enumerate(events):
        refuse(leaf_outside_working_set(leaf_index, tree_size, f"events[{number}]"))


# -- the aggregates ---------------------------------------------------------------------------------


class ControlPlan(Aggregate):
    """A unit's yearly plan of checks (§5-§7)."""

    TOPIC = _PREFIX + "ControlPlan"

    if TYPE_CHECKING:
        _plan: dict[str, Any]

    class Event(Aggregate.Event):
        TOPIC = _PREFIX + "ControlPlan.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = _PREFIX + "ControlPlan.Created"

    class Approved(Created):
        TOPIC = _PREFIX + "ControlPlanApproved:v1"
        ACTING = "approved_by"
        PERSONAL = {"approved_by.officer": ACTOR_LOG, "responsible": ACTOR_LOG}
        party: str
        unit: str
        year: int
        approved_by: dict[str, str]
        approved_on: str
        #: number, objects, period_from, period_to, starts_on, ends_on (the people are in ``responsible``)
        checks: list[dict[str, Any]]
        #: check number (as text) -> the people responsible for it
        responsible: dict[str, list[str]]

        def apply(self, aggregate: Any) -> None:
            aggregate._plan = {name: getattr(self, name) for name in type(self).__annotations__}

    @classmethod
    def approved(cls, draft: ControlPlanDraft, today: date) -> ControlPlan:
        checks = [{"number": n, "objects": list(c.objects), "period_from": c.period_from.isoformat(),
                   "period_to": c.period_to.isoformat(), "starts_on": c.starts_on.isoformat(),
                   "ends_on": c.ends_on.isoformat()} for n, c in enumerate(draft.checks, 1)]
        return cls._create(
            cls.Approved, id=uuid4(), party=draft.party, unit=draft.unit, year=draft.year,
            approved_by=draft.approved_by.as_dict(), approved_on=(draft.approved_on or today).isoformat(),
            checks=checks, responsible={str(n): list(c.responsible) for n, c in enumerate(draft.checks, 1)})

    @property
    def subject_scope(self) -> UUID:
        return self.id

    @property
    def plan(self) -> dict[str, Any]:
        return dict(self._plan)

    def planned_check(self, number: int) -> dict[str, Any] | None:
        return next((c for c in self._plan["checks"] if c["number"] == number), None)


class ControlCheck(Aggregate):
    """One check (planned or unplanned), its conclusion and the completion of its measures."""

    TOPIC = _PREFIX + "ControlCheck"

    if TYPE_CHECKING:
        _check: dict[str, Any]
        _conclusion: dict[str, Any] | None
        _completions: dict[str, dict[str, Any]]

    class Event(Aggregate.Event):
        TOPIC = _PREFIX + "ControlCheck.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = _PREFIX + "ControlCheck.Created"

    class Opened(Created):
        TOPIC = _PREFIX + "ControlCheckOpened:v1"
        ACTING = "decided_by"
        PERSONAL = {"decided_by.officer": ACTOR_LOG, "responsible_official.officer": ACTOR_LOG,
                    "participants": ACTOR_LOG, "ground.summary": SUBJECT_DATA}
        party: str
        unit: str
        kind: str  # planned, unplanned
        ground: dict[str, Any] | None
        plan_id: str | None
        check_number: int | None
        decided_by: dict[str, str]
        decided_on: str
        starts_on: str
        ends_on: str
        responsible_official: dict[str, str]
        objects: list[str]
        participants: list[str]
        events: list[int]
        tree_size: int

        def apply(self, aggregate: Any) -> None:
            aggregate._check = {name: getattr(self, name) for name in type(self).__annotations__}
            aggregate._conclusion = None
            aggregate._completions = {}

    class Concluded(Event):
        TOPIC = _PREFIX + "ControlCheckConcluded:v1"
        ACTING = "concluded_by"
        PERSONAL = {"concluded_by.officer": ACTOR_LOG, "conclusion": SUBJECT_DATA, "violations": SUBJECT_DATA,
                    "responsible": ACTOR_LOG, "reported_to.officer": ACTOR_LOG}
        concluded_by: dict[str, str]
        concluded_at: str
        conclusion: str
        #: description, leaf_index, finding_id each
        violations: list[dict[str, Any]]
        #: id, description, deadline each (the people are in ``responsible``)
        measures: list[dict[str, Any]]
        #: measure id -> the person responsible
        responsible: dict[str, str]
        #: The tree size every statement is about (the check's working set).
        tree_size: int
        #: An unplanned check's results are reported to the responsible official (§12): the notice.
        reported_to: dict[str, str] | None

        def apply(self, aggregate: Any) -> None:
            aggregate._conclusion = {name: getattr(self, name) for name in type(self).__annotations__}
            aggregate._conclusion["version"] = self.originator_version

    class MeasureCompleted(Event):
        TOPIC = _PREFIX + "ControlMeasureCompleted:v1"
        ACTING = "completed_by"
        PERSONAL = {"completed_by.officer": ACTOR_LOG, "note": SUBJECT_DATA}
        measure_id: str
        completed_by: dict[str, str]
        completed_at: str
        note: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate._completions[self.measure_id] = {
                "completed_by": self.completed_by, "completed_at": self.completed_at, "note": self.note,
                "version": self.originator_version}

    @classmethod
    def opened(cls, draft: ControlCheckDraft, *, decided_on: date, starts_on: date, ends_on: date,
               tree_size: int, objects: list[str]) -> ControlCheck:
        ground = None
        if draft.ground is not None:
            g = draft.ground
            ground = {"kind": g.kind, "reference": g.reference, "received_on": g.received_on.isoformat(),
                      "summary": g.summary}
        return cls._create(
            cls.Opened, id=uuid4(), party=draft.party, unit=draft.unit,
            kind="unplanned" if draft.ground is not None else "planned", ground=ground, plan_id=draft.plan_id,
            check_number=draft.check_number, decided_by=draft.decided_by.as_dict(),
            decided_on=decided_on.isoformat(), starts_on=starts_on.isoformat(), ends_on=ends_on.isoformat(),
            responsible_official=(draft.responsible_official or draft.decided_by).as_dict(), objects=objects,
            participants=list(draft.participants), events=list(draft.events), tree_size=tree_size)

    @property
    def subject_scope(self) -> UUID:
        return self.id

    @property
    def check(self) -> dict[str, Any]:
        return dict(self._check)

    @property
    def conclusion(self) -> dict[str, Any] | None:
        return dict(self._conclusion) if self._conclusion is not None else None

    @property
    def completions(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self._completions.items()}

    @property
    def facts(self) -> CheckFacts:
        measures = self._conclusion["measures"] if self._conclusion else []
        return CheckFacts(
            id=str(self.id), party=self._check["party"], kind=self._check["kind"],
            tree_size=self._check["tree_size"], concluded=self._conclusion is not None,
            measures=frozenset(m["id"] for m in measures), completed=frozenset(self._completions))

    def conclude(self, draft: ConclusionDraft) -> None:
        assert draft.concluded_at is not None
        measures = [{"id": f"m{n}", "description": m.description, "deadline": m.deadline.isoformat()}
                    for n, m in enumerate(draft.measures, 1)]
        self.trigger_event(
            self.Concluded, concluded_by=draft.concluded_by.as_dict(),
            concluded_at=format_datetime(draft.concluded_at), conclusion=draft.conclusion,
            violations=[{"description": v.description, "leaf_index": v.leaf_index, "finding_id": v.finding_id}
                        for v in draft.violations],
            measures=measures, responsible={f"m{n}": m.responsible for n, m in enumerate(draft.measures, 1)},
            tree_size=self._check["tree_size"],
            reported_to=self._check["responsible_official"] if self._check["kind"] == "unplanned" else None)

    def complete_measure(self, measure_id: str, draft: CompletionDraft) -> None:
        assert draft.completed_at is not None
        self.trigger_event(self.MeasureCompleted, measure_id=measure_id, completed_by=draft.completed_by.as_dict(),
                           completed_at=format_datetime(draft.completed_at), note=draft.note)


@dataclass(frozen=True)
class CheckFacts:
    """A check as the rules on its conclusion and measures see it."""

    id: str
    party: str
    kind: str
    tree_size: int
    concluded: bool
    measures: frozenset[str]
    completed: frozenset[str]


def not_check_party(party: str, facts: CheckFacts, field: str) -> RuleViolation | None:
    """§10: the commission of the Party whose unit is checked concludes and records the measures."""
    if party == facts.party:
        return None
    return RuleViolation(
        f"{party} does not conclude check {facts.id} of {facts.party}'s unit", rule="not-check-party",
        field=field, article=ART_10, values={"party": party, "check_party": facts.party})


def check_already_concluded(facts: CheckFacts) -> RuleViolation | None:
    """§10: a check has one written conclusion."""
    if not facts.concluded:
        return None
    return RuleViolation(f"check {facts.id} was already concluded", rule="check-already-concluded",
                         article=ART_10, values={"check_id": facts.id})


def check_conclusion(facts: CheckFacts, draft: ConclusionDraft) -> None:
    """The rules of a conclusion (§10-§12), refused: by the check's Party, once, about its working set."""
    refuse(not_check_party(draft.concluded_by.party, facts, "concluded_by.party"))
    refuse(check_already_concluded(facts))
    for number, violation in enumerate(draft.violations):
        if violation.leaf_index is not None:
            refuse(leaf_outside_working_set(violation.leaf_index, facts.tree_size, f"violations[{number}].leaf_index"))


def measure_problem(facts: CheckFacts, measure_id: str) -> DomainError | None:
    """§11: a measure of the check's conclusion, completed once."""
    if measure_id not in facts.measures:
        return NotFound(f"check {facts.id} has no measure {measure_id}", rule="measure-not-found",
                        field="measure_id", values={"measure_id": measure_id})
    if measure_id in facts.completed:
        return RuleViolation(f"measure {measure_id} of check {facts.id} was already completed",
                             rule="measure-already-completed", article=ART_10, values={"measure_id": measure_id})
    return None
