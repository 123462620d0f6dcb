"""The internal control read model (Order 949, annex 3): plans, checks, conclusions, measures, and findings.

Event-driven findings, raised at the event that proves them, with the rule functions of
``domain.control`` (the ones the application refuses with, so one in the feed was written
around it):

``control-check-too-long`` (annex 3 §6)
    a planned check, or an opened check, set to last more than one month:
    ``domain.control.check_too_long`` (its rule is the finding's reason).
``control-check-organized-late`` (annex 3 §9)
    an unplanned check decided more than five working days (the Party's calendar) after its
    ground: ``domain.control.organized_late``.

The time-dependent ones, judged when asked (``projections.queries.findings``):

``control-plan-missing`` (annex 3 §6)
    a unit that recorded transfers in a year that has ended, with no plan of at least one check
    for that year (``no-plan``, or ``plan-without-checks`` for a plan written without any).
``control-check-overdue`` (annex 3 §6, §9)
    a check not concluded by its last day (``not-concluded``), or concluded after it (``concluded-late``).
``control-measure-overdue`` (annex 3 §11)
    a remedial measure not completed by its deadline (``not-completed``), or completed after it
    (``completed-late``).

Participants interested in the result (§4) are refused by the ledger, which can read their
names; the read models cannot: in event format 2 names are salted commitments in the leaves.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

from domain.control import ART_6, ART_9, check_too_long, end_of_day, organized_late
from domain.errors import DomainError
from projections.db import Db
from projections.events import (
    CONTROL_CHECK_CONCLUDED,
    CONTROL_CHECK_OPENED,
    CONTROL_MEASURE_COMPLETED,
    CONTROL_PLAN_APPROVED,
    ControlCheckConcludedState,
    ControlCheckOpenedState,
    ControlMeasureCompletedState,
    ControlPlanApprovedState,
    FeedEvent,
    norm_time,
    time_of,
)

ART_6_9 = "Order 949 annex 3 §6, §9"
ART_11 = "Order 949 annex 3 §11"

#: rule -> (article, title), merged into ``projections.model.RULES``.
CONTROL_RULES: dict[str, tuple[str, str]] = {
    "control-check-too-long": (ART_6, "Internal control check set to last more than one month"),
    "control-check-organized-late": (
        ART_9, "Unplanned internal control check organized more than five working days after its ground"),
    "control-plan-missing": (ART_6, "Unit without a planned internal control check in a year"),
    "control-check-overdue": (ART_6_9, "Internal control check not concluded by its last day"),
    "control-measure-overdue": (ART_11, "Remedial measure of an internal control check not completed by its "
                                        "deadline"),
}
#: The findings judged at ``now`` rather than at an event.
TIME_DEPENDENT = ("control-plan-missing", "control-check-overdue", "control-measure-overdue")

#: table -> its columns: rows are only ever added (``ON CONFLICT DO NOTHING``).
CONTROL_COLUMNS: dict[str, tuple[str, ...]] = {
    "proj_control_plans": ("id", "party", "unit", "year", "planned_checks", "leaf_index"),
    "proj_control_checks": ("id", "party", "unit", "kind", "decided_on", "ends_on", "leaf_index"),
    "proj_control_conclusions": ("check_id", "concluded_at", "leaf_index"),
    "proj_control_measures": ("id", "check_id", "measure_id", "deadline", "leaf_index"),
    "proj_control_completions": ("id", "completed_at", "leaf_index"),
}
_TYPES = {"year": "INTEGER", "planned_checks": "INTEGER", "leaf_index": "BIGINT"}
_KEYS = {"proj_control_conclusions": "check_id"}
#: The tables' statements (``projections.schema.TABLES``): the same SQL on SQLite and PostgreSQL.
CONTROL_TABLES = {
    table: [f"CREATE TABLE IF NOT EXISTS {{{table}}} ("
            + ", ".join(f"{c} {_TYPES.get(c, 'TEXT')}" + (" PRIMARY KEY" if c == _KEYS.get(table, "id") else
                                                          (" NOT NULL" if c == "leaf_index" else ""))
                        for c in columns) + ")"]
    for table, columns in CONTROL_COLUMNS.items()
}


def _add(state: Any, table: str, row: tuple[Any, ...]) -> None:
    state.control.setdefault(table, []).append(row)


def _finding(state: Any, rule: str, subject: str, ev: FeedEvent, party: str, violation: DomainError,
             name: str, what: str) -> None:
    state.add_finding(
        rule, subject, ev, reason=violation.rule, detail=f"{what}: {violation.detail}",
        origin=None, sender=party, recipient=None,
        evidence=[{"leaf_index": ev.leaf_index, "event": name, "id": ev.originator_id}],
    )


def on_plan(state: Any, ev: FeedEvent) -> None:
    d: ControlPlanApprovedState = ev.data
    _add(state, "proj_control_plans", (ev.originator_id, d.party, d.unit, d.year, len(d.checks), ev.leaf_index))
    for check in d.checks:
        violation = check_too_long(date.fromisoformat(check.starts_on), date.fromisoformat(check.ends_on),
                                   f"checks[{check.number - 1}].ends_on")
        if violation is not None:
            _finding(state, "control-check-too-long", f"{ev.originator_id}/{check.number}", ev, d.party, violation,
                     "ControlPlanApproved", f"planned check {check.number} of the {d.year} plan of {d.unit}")


def on_opened(state: Any, ev: FeedEvent) -> None:
    d: ControlCheckOpenedState = ev.data
    _add(state, "proj_control_checks", (ev.originator_id, d.party, d.unit, d.kind, d.decided_on, d.ends_on,
                                        ev.leaf_index))
    what = f"{d.kind} check {ev.originator_id} of {d.unit}"
    violation: DomainError | None = check_too_long(date.fromisoformat(d.starts_on), date.fromisoformat(d.ends_on),
                                                   "ends_on")
    if violation is not None:
        _finding(state, "control-check-too-long", ev.originator_id, ev, d.party, violation, "ControlCheckOpened",
                 what)
    if d.ground is not None:
        violation = organized_late(date.fromisoformat(d.ground.received_on), date.fromisoformat(d.decided_on),
                                   d.party)
        if violation is not None:
            _finding(state, "control-check-organized-late", ev.originator_id, ev, d.party, violation,
                     "ControlCheckOpened", what)


def on_concluded(state: Any, ev: FeedEvent) -> None:
    d: ControlCheckConcludedState = ev.data
    _add(state, "proj_control_conclusions", (ev.originator_id, norm_time(d.concluded_at), ev.leaf_index))
    for m in d.measures:
        _add(state, "proj_control_measures", (f"{ev.originator_id}/{m.id}", ev.originator_id, m.id, m.deadline,
                                              ev.leaf_index))


def on_completed(state: Any, ev: FeedEvent) -> None:
    d: ControlMeasureCompletedState = ev.data
    at = norm_time(d.completed_at) if d.completed_at else (time_of(d.timestamp) or ev.recorded_at)
    _add(state, "proj_control_completions", (f"{ev.originator_id}/{d.measure_id}", at, ev.leaf_index))


HANDLERS = {
    CONTROL_PLAN_APPROVED: on_plan,
    CONTROL_CHECK_OPENED: on_opened,
    CONTROL_CHECK_CONCLUDED: on_concluded,
    CONTROL_MEASURE_COMPLETED: on_completed,
}


# -- the time-dependent findings ----------------------------------------------------------------


def time_dependent(db: Db, *, now: str, share: str | None, rule: str | None) -> Iterator[tuple[Any, ...]]:
    """The time-dependent findings at ``now``, as the arguments of ``projections.queries._finding``
    (id, rule, reason, leaf, detected_at, origin, sender, recipient, transfer, authorization, detail, evidence)."""
    if rule in (None, "control-plan-missing"):
        yield from _plans_missing(db, now, share)
    if rule in (None, "control-check-overdue"):
        yield from _checks_overdue(db, now, share)
    if rule in (None, "control-measure-overdue"):
        yield from _measures_overdue(db, now, share)


def _plans_missing(db: Db, now: str, share: str | None) -> Iterator[tuple[Any, ...]]:
    this_year = now[:4]
    plans: dict[tuple[str, str, int], list[Any]] = {}
    for r in db.query("SELECT id, party, unit, year, planned_checks, leaf_index FROM {proj_control_plans}"):
        plans.setdefault((r["party"], r["unit"], int(r["year"])), []).append(r)
    units = db.query(
        "SELECT sender, sender_authority, substr(transferred_at, 1, 4) AS year, MIN(leaf_index) AS first_leaf "
        "FROM {proj_transfers} WHERE sender_authority IS NOT NULL AND substr(transferred_at, 1, 4) < ? "
        "GROUP BY sender, sender_authority, substr(transferred_at, 1, 4)", (this_year,))
    for r in units:
        party, unit, year = r["sender"], r["sender_authority"], int(r["year"])
        if share is not None and share != party:
            continue
        made = plans.get((party, unit, year), [])
        if any(int(p["planned_checks"]) >= 1 for p in made):
            continue
        first = db.query("SELECT id FROM {proj_transfers} WHERE leaf_index = ?", (int(r["first_leaf"]),))
        proof = [{"leaf_index": int(r["first_leaf"]), "event": "TransferRecorded",
                  "id": first[0]["id"] if first else None, "unit": unit, "year": year}]
        proof += [{"leaf_index": int(p["leaf_index"]), "event": "ControlPlanApproved", "id": p["id"],
                   "planned_checks": 0} for p in made]
        reason = "plan-without-checks" if made else "no-plan"
        detail = (f"{unit} ({party}) recorded transfers in {year} and had no planned internal control check that "
                  "year: at least one planned check a year (Order 949 annex 3 §6)")
        yield (f"control-plan-missing/{unit}/{year}", "control-plan-missing", reason, int(r["first_leaf"]),
               f"{year}-12-31T23:59:59.999999Z", None, party, None, None, None, detail, proof)


def _checks_overdue(db: Db, now: str, share: str | None) -> Iterator[tuple[Any, ...]]:
    today = now[:10]
    rows = db.query(
        "SELECT c.id, c.party, c.unit, c.kind, c.ends_on, c.leaf_index, k.concluded_at, k.leaf_index AS done_leaf "
        "FROM {proj_control_checks} c LEFT JOIN {proj_control_conclusions} k ON k.check_id = c.id "
        "WHERE c.ends_on < ? OR k.concluded_at IS NOT NULL", (today,))
    for r in rows:
        if share is not None and share != r["party"]:
            continue
        due = end_of_day(date.fromisoformat(r["ends_on"]))
        late = r["concluded_at"] is not None
        if late and r["concluded_at"] <= due:
            continue
        if not late and r["ends_on"] >= today:
            continue
        proof = [{"leaf_index": int(r["leaf_index"]), "event": "ControlCheckOpened", "id": r["id"],
                  "ends_on": r["ends_on"]}]
        if late:
            proof.append({"leaf_index": int(r["done_leaf"]), "event": "ControlCheckConcluded", "id": r["id"],
                          "concluded_at": r["concluded_at"]})
        detail = (f"the {r['kind']} check {r['id']} of {r['unit']} was to be concluded by {r['ends_on']}; it "
                  + (f"was concluded only at {r['concluded_at']}" if late else "has no conclusion")
                  + ": a check lasts at most one month (Order 949 annex 3 §6, §9)")
        yield (f"control-check-overdue/{r['id']}", "control-check-overdue",
               "concluded-late" if late else "not-concluded", int(r["leaf_index"]), due, None, r["party"], None,
               None, None, detail, proof)


def _measures_overdue(db: Db, now: str, share: str | None) -> Iterator[tuple[Any, ...]]:
    today = now[:10]
    rows = db.query(
        "SELECT m.id, m.check_id, m.measure_id, m.deadline, m.leaf_index, c.party, c.unit, d.completed_at, "
        "d.leaf_index AS done_leaf FROM {proj_control_measures} m "
        "JOIN {proj_control_checks} c ON c.id = m.check_id "
        "LEFT JOIN {proj_control_completions} d ON d.id = m.id "
        "WHERE m.deadline < ? OR d.completed_at IS NOT NULL", (today,))
    for r in rows:
        if share is not None and share != r["party"]:
            continue
        due = end_of_day(date.fromisoformat(r["deadline"]))
        late = r["completed_at"] is not None
        if late and r["completed_at"] <= due:
            continue
        if not late and r["deadline"] >= today:
            continue
        proof = [{"leaf_index": int(r["leaf_index"]), "event": "ControlCheckConcluded", "id": r["check_id"],
                  "measure_id": r["measure_id"], "deadline": r["deadline"]}]
        if late:
            proof.append({"leaf_index": int(r["done_leaf"]), "event": "ControlMeasureCompleted",
                          "id": r["check_id"], "measure_id": r["measure_id"]})
        detail = (f"measure {r['measure_id']} of check {r['check_id']} ({r['unit']}) was due by {r['deadline']}; it "
                  + (f"was completed only at {r['completed_at']}" if late else "is not completed")
                  + " (Order 949 annex 3 §11)")
        yield (f"control-measure-overdue/{r['id']}", "control-measure-overdue",
               "completed-late" if late else "not-completed", int(r["leaf_index"]), due, None, r["party"], None,
               None, None, detail, proof)
