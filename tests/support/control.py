"""Internal control checks (Order 949 annex 3) as the tests make them: bodies, and events written around the
application."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from domain.control import ControlCheck, ControlPlan
from tests.support.builders import actor

HEAD = "Dir. Schulz"
CHAIR = "ORR Braun"


def official(party: str = "DE", officer: str = HEAD) -> dict[str, str]:
    return {**actor(party), "officer": officer}


def planned(starts_on: str = "2026-03-02", ends_on: str = "2026-03-31", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"objects": ["transfers to INTERPOL"], "period_from": "2025-07-01",
                            "period_to": "2025-12-31", "starts_on": starts_on, "ends_on": ends_on,
                            "responsible": [CHAIR, "KOK Lang"]}
    body.update(overrides)
    return body


def plan(party: str = "DE", year: int = 2026, *checks: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"party": party, "unit": actor(party)["authority"], "year": year,
                            "approved_by": official(party), "checks": list(checks) or [planned()]}
    body.update(overrides)
    return body


def unplanned(party: str = "DE", *, received_on: str, decided_on: str, ends_on: str,
              **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "party": party, "unit": actor(party)["authority"], "decided_by": official(party),
        "decided_on": decided_on, "ends_on": ends_on,
        "ground": {"kind": "complaint", "reference": "C-1", "received_on": received_on,
                   "summary": "a data subject asks who received her data"},
        "objects": ["transfers of proceeding 2026/117"], "participants": [CHAIR, "KOK Lang"],
    }
    body.update(overrides)
    return body


def of_plan(plan_id: str, party: str = "DE", number: int = 1, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"party": party, "unit": actor(party)["authority"], "plan_id": plan_id,
                            "check_number": number, "decided_by": official(party), "participants": [CHAIR]}
    body.update(overrides)
    return body


def conclusion(party: str = "DE", *measures: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"concluded_by": official(party, CHAIR), "conclusion": "the transfers were lawful",
                            "violations": [], "measures": list(measures)}
    body.update(overrides)
    return body


def measure(deadline: str, responsible: str = "KOK Lang") -> dict[str, Any]:
    return {"description": "brief the unit on art. 36 §3", "deadline": deadline, "responsible": responsible}


def completion(party: str = "DE", **overrides: Any) -> dict[str, Any]:
    return {"completed_by": official(party, CHAIR), **overrides}


def around_plan(ledger: Any, party: str = "DE", year: int = 2026, checks: list[dict[str, Any]] | None = None) -> str:
    """A ControlPlanApproved saved straight through eventsourcing (any checks, even none), its id."""
    checks = [{"number": n, **{k: v for k, v in c.items() if k != "responsible"}}
              for n, c in enumerate(checks if checks is not None else [planned()], 1)]
    aggregate = ControlPlan._create(
        ControlPlan.Approved, id=uuid4(), party=party, unit=actor(party)["authority"], year=year,
        approved_by=official(party), approved_on=f"{year}-01-05", checks=checks,
        responsible={str(c["number"]): [CHAIR] for c in checks})
    ledger.save(aggregate)
    return str(aggregate.id)


def around_check(ledger: Any, party: str = "DE", *, received_on: str | None, decided_on: str, ends_on: str,
                 starts_on: str | None = None) -> str:
    """A ControlCheckOpened saved straight through eventsourcing (any dates), its id."""
    ground = ({"kind": "complaint", "reference": "C-1", "received_on": received_on, "summary": None}
              if received_on else None)
    aggregate = ControlCheck._create(
        ControlCheck.Opened, id=uuid4(), party=party, unit=actor(party)["authority"],
        kind="unplanned" if ground else "planned", ground=ground, plan_id=None, check_number=None,
        decided_by=official(party), decided_on=decided_on, starts_on=starts_on or decided_on, ends_on=ends_on,
        responsible_official=official(party), objects=["transfers"], participants=[CHAIR], events=[],
        tree_size=ledger.store.head().size)
    ledger.save(aggregate)
    return str(aggregate.id)


def around_completion(ledger: Any, check_id: str, measure_id: str, completed_at: str) -> None:
    """A ControlMeasureCompleted saved straight through eventsourcing (any time)."""
    aggregate: ControlCheck = ledger.repository.get(UUID(check_id))
    aggregate.trigger_event(ControlCheck.MeasureCompleted, measure_id=measure_id, completed_by=official(),
                            completed_at=completed_at, note=None)
    ledger.save(aggregate)
