"""The commands and queries of internal control checks (Order 949, annex 3), mixed into ``TransferLedger``.

Each command parses its input (``domain.control``), applies the rules that need only the input,
then prepares: it loads what the command acts on, applies the named rules of ``domain.control``
and triggers the event, as the other commands of ``ledger.service.application`` do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import StoredEvent

from domain.control import (
    CompletionDraft,
    ConclusionDraft,
    ControlCheck,
    ControlCheckDraft,
    ControlPlan,
    ControlPlanDraft,
    check_conclusion,
    check_kind_problem,
    check_plan,
    check_too_long,
    check_unit_of_party,
    check_working_set,
    interested_participant,
    measure_problem,
    organized_late,
    refuse,
)
from domain.errors import InvalidInput, NotFound
from domain.values import parse_uuid
from ledger.storage.idempotency import IdempotencyClaim
from ledger.tlog.leaf import AppendedLeaf

if TYPE_CHECKING:
    from ledger.service.application import Prepare, Prepared

Leaves = dict[tuple[str, int], AppendedLeaf]


def control_parties(view: dict[str, Any]) -> set[str]:
    """The Parties a plan or check concerns: the Party whose unit it is."""
    return {view["party"]}


class ControlCommands:
    """Order 949 annex 3: yearly plans, checks, conclusions, measures; read and list."""

    # provided by TransferLedger
    clock: Callable[[], datetime]
    _run: Callable[..., dict[str, Any]]
    _prepared: Callable[..., Prepared]
    _load: Callable[[UUID], Any]
    _leaf: Callable[[UUID, int], dict[str, Any]]
    _scan: Callable[..., tuple[list[dict[str, Any]], int | None]]
    open_personal: Callable[..., dict[str, Any]]
    store: Any
    mapper: Any

    # -- commands --------------------------------------------------------------------

    def approve_control_plan(self, data: Any, *, idempotency: IdempotencyClaim | None = None) -> dict[str, Any]:
        """Record a unit's yearly plan of checks, approved by its head (§5-§7)."""
        return self._run(self.plan_approve_control_plan(data, idempotency=idempotency))

    def plan_approve_control_plan(self, data: Any, *, idempotency: IdempotencyClaim | None = None) -> Prepare:
        draft = ControlPlanDraft.parse(data)
        check_plan(draft)
        today = self.clock().date()

        def prepare() -> Prepared:
            plan = ControlPlan.approved(draft, today)
            view = self._plan_fields(plan)

            def respond(leaves: Leaves) -> dict[str, Any]:
                return {**view, **self._placed_leaf(leaves, plan.id, 1)}

            return self._prepared(plan, resource=plan, kind="control-plan", idempotency=idempotency,
                                  respond=respond)

        return prepare

    def open_control_check(self, data: Any, *, idempotency: IdempotencyClaim | None = None) -> dict[str, Any]:
        """Open a check: unplanned on a ground (§8, organized within five working days, §9), or one
        of a plan; no participant interested in the result (§4)."""
        return self._run(self.plan_open_control_check(data, idempotency=idempotency))

    def plan_open_control_check(self, data: Any, *, idempotency: IdempotencyClaim | None = None) -> Prepare:
        draft = ControlCheckDraft.parse(data)
        refuse(check_kind_problem(draft))
        check_unit_of_party(draft.unit, draft.party)
        if draft.decided_by.party != draft.party:
            raise InvalidInput(f"a check of a unit of {draft.party} is decided by an official of {draft.party}",
                               rule="decider-not-of-party", field="decided_by.party")
        decided_on = draft.decided_on or self.clock().date()
        if decided_on > self.clock().date():
            raise InvalidInput(f"decided_on {decided_on.isoformat()} lies in the future", rule="time-in-future",
                               field="decided_on")

        def prepare() -> Prepared:
            objects = list(draft.objects)
            starts_on, ends_on = decided_on, draft.ends_on
            if draft.ground is not None:
                refuse(organized_late(draft.ground.received_on, decided_on, draft.party))
            else:
                planned = self._planned_check(draft)
                starts_on = datetime.fromisoformat(planned["starts_on"]).date()
                ends_on = ends_on or datetime.fromisoformat(planned["ends_on"]).date()
                objects = objects or list(planned["objects"])
            if ends_on is None:
                raise InvalidInput("ends_on is required of an unplanned check", rule="missing-field",
                                   field="ends_on")
            refuse(check_too_long(starts_on, ends_on, "ends_on"))
            head = self.store.head().size
            tree_size = head if draft.tree_size is None else draft.tree_size
            check_working_set(tree_size, head, draft.events)
            refuse(interested_participant(draft.participants, self._event_states(draft.events)))
            check = ControlCheck.opened(draft, decided_on=decided_on, starts_on=starts_on, ends_on=ends_on,
                                        tree_size=tree_size, objects=objects)
            return self._check_prepared(check, idempotency)

        return prepare

    def conclude_control_check(self, check_id: Any, data: Any, *,
                               idempotency: IdempotencyClaim | None = None) -> dict[str, Any]:
        """The written conclusion of a check: violations found, remedial measures (§10-§12)."""
        return self._run(self.plan_conclude_control_check(check_id, data, idempotency=idempotency))

    def plan_conclude_control_check(self, check_id: Any, data: Any, *,
                                    idempotency: IdempotencyClaim | None = None) -> Prepare:
        cid = parse_uuid(check_id, "check_id")
        draft = ConclusionDraft.parse(data).as_of(self.clock())

        def prepare() -> Prepared:
            check = self._get_check(cid)
            check_conclusion(check.facts, draft)
            check.conclude(draft)
            return self._check_prepared(check, idempotency)

        return prepare

    def complete_control_measure(self, check_id: Any, measure_id: str, data: Any, *,
                                 idempotency: IdempotencyClaim | None = None) -> dict[str, Any]:
        """A remedial measure was carried out (§11)."""
        return self._run(self.plan_complete_control_measure(check_id, measure_id, data, idempotency=idempotency))

    def plan_complete_control_measure(self, check_id: Any, measure_id: str, data: Any, *,
                                      idempotency: IdempotencyClaim | None = None) -> Prepare:
        cid = parse_uuid(check_id, "check_id")
        draft = CompletionDraft.parse(data).as_of(self.clock())

        def prepare() -> Prepared:
            check = self._get_check(cid)
            facts = check.facts
            if draft.completed_by.party != facts.party:
                raise InvalidInput(f"a measure of a check of {facts.party} is completed by an official of "
                                   f"{facts.party}", rule="completer-not-of-party", field="completed_by.party")
            refuse(measure_problem(facts, measure_id))
            check.complete_measure(measure_id, draft)
            return self._check_prepared(check, idempotency)

        return prepare

    def _check_prepared(self, check: ControlCheck, idempotency: IdempotencyClaim | None) -> Prepared:
        view = self._check_fields(check, self.clock())

        def respond(leaves: Leaves) -> dict[str, Any]:
            return self._check_placed(view, check.id, leaves)

        return self._prepared(check, resource=check, kind="control-check", idempotency=idempotency,
                              respond=respond)

    def _planned_check(self, draft: ControlCheckDraft) -> dict[str, Any]:
        assert draft.plan_id is not None and draft.check_number is not None
        plan = self._get_plan(parse_uuid(draft.plan_id, "plan_id"))
        fields = plan.plan
        if fields["party"] != draft.party or fields["unit"] != draft.unit:
            raise InvalidInput(f"plan {plan.id} is the plan of {fields['unit']}, not of {draft.unit}",
                               rule="plan-of-another-unit", field="plan_id")
        planned = plan.planned_check(draft.check_number)
        if planned is None:
            raise NotFound(f"plan {plan.id} has no check {draft.check_number}", rule="planned-check-not-found",
                           field="check_number", values={"check_number": draft.check_number})
        return planned

    def _event_states(self, leaves: Sequence[int]) -> dict[int, dict[str, Any]]:
        """The events at these leaves, their personal values opened: whom they name (§4)."""
        out: dict[int, dict[str, Any]] = {}
        for leaf_index in sorted(set(leaves)):
            rows = self.store.read_feed(leaf_index, 1)
            if not rows or rows[0][0].leaf_index != leaf_index:
                continue
            leaf, event = rows[0]
            domain_event = self.mapper.to_domain_event(
                StoredEvent(UUID(leaf.originator_id), leaf.originator_version, event.topic, event.state))
            state = {k: v for k, v in domain_event.__dict__.items() if isinstance(k, str)}
            out[leaf_index] = self.open_personal(state, leaf.originator_id)
        return out

    # -- queries -------------------------------------------------------------------------

    def get_control_plan(self, plan_id: Any, *, version: int | None = None) -> dict[str, Any]:
        pid = parse_uuid(plan_id, "plan_id")
        plan = self._get_plan(pid, version)
        return {**self._plan_fields(plan), **self._leaf(plan.id, 1)}

    def get_control_check(self, check_id: Any, *, version: int | None = None) -> dict[str, Any]:
        cid = parse_uuid(check_id, "check_id")
        check = self._get_check(cid, version)
        return self._check_placed(self._check_fields(check, self.clock()), check.id, {})

    def control_check_party(self, check_id: Any) -> str:
        """The Party whose unit a check examines (who may act on it)."""
        return self._get_check(parse_uuid(check_id, "check_id")).facts.party

    def list_control_checks(
        self,
        *,
        visible: Callable[[dict[str, Any]], bool],
        party: str | None = None,
        after: int = 0,
        limit: int = 50,
        mentions: Sequence[str] = (),
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Checks in commit order after a cursor (``party``: the Party whose unit is checked)."""
        def keep(view: dict[str, Any]) -> bool:
            if party is not None and view["party"] != party:
                return False
            return visible(view)

        def view_of(check: ControlCheck) -> dict[str, Any]:
            return self._check_placed(self._check_fields(check, self.clock()), check.id, {})

        return self._scan(ControlCheck.Opened.TOPIC, after, limit, view_of, keep,
                          [*mentions, party] if party is not None else mentions)

    def _get_plan(self, plan_id: UUID, version: int | None = None) -> ControlPlan:
        aggregate = self._get_aggregate(plan_id, version)
        if not isinstance(aggregate, ControlPlan):
            raise NotFound(f"no control plan {plan_id}", rule="control-plan-not-found", field="plan_id",
                           values={"id": str(plan_id)})
        return aggregate

    def _get_check(self, check_id: UUID, version: int | None = None) -> ControlCheck:
        aggregate = self._get_aggregate(check_id, version)
        if not isinstance(aggregate, ControlCheck):
            raise NotFound(f"no control check {check_id}", rule="control-check-not-found", field="check_id",
                           values={"id": str(check_id)})
        return aggregate

    def _get_aggregate(self, aggregate_id: UUID, version: int | None) -> Any:
        try:
            return (self._load(aggregate_id) if version is None
                    else self.repository.get(aggregate_id, version=version))  # type: ignore[attr-defined]
        except AggregateNotFoundError:
            return None

    def _placed_leaf(self, leaves: Leaves, aggregate_id: UUID, version: int) -> dict[str, Any]:
        appended = leaves.get((str(aggregate_id), version))
        if appended is not None:
            return {"leaf_index": appended.leaf_index, "recorded_at": appended.recorded_at}
        return self._leaf(aggregate_id, version)

    def _plan_fields(self, plan: ControlPlan) -> dict[str, Any]:
        """The plan as shown: its personal values opened, each planned check with its people."""
        fields = self.open_personal(plan.plan, plan.id)
        responsible = fields.pop("responsible")
        checks = [{**c, "responsible": _part(responsible, str(c["number"]))} for c in fields["checks"]]
        return {"id": str(plan.id), **fields, "checks": checks, "version": plan.version}

    def _check_fields(self, check: ControlCheck, now: datetime) -> dict[str, Any]:
        """The check as shown: its personal values opened, its measures with their status now
        (``open``, ``overdue`` past the deadline, ``completed``)."""
        raw = {"check": check.check, "conclusion": check.conclusion, "completions": check.completions}
        opened = self.open_personal(raw, check.id)
        conclusion, completions = opened["conclusion"], opened["completions"]
        measures = []
        if conclusion is not None:
            responsible = conclusion.pop("responsible")
            for m in conclusion.pop("measures"):
                done = completions.get(m["id"])
                overdue = datetime.fromisoformat(m["deadline"]).date() < now.date()
                measures.append({**m, "responsible": _part(responsible, m["id"]),
                                 "status": "completed" if done else ("overdue" if overdue else "open"),
                                 "completion": done})
        return {"id": str(check.id), **opened["check"], "status": "concluded" if conclusion else "open",
                "conclusion": conclusion, "measures": measures, "version": check.version}

    def _check_placed(self, view: dict[str, Any], check_id: UUID, leaves: Leaves) -> dict[str, Any]:
        """``view`` with the leaf index of each of its events (just saved, or stored)."""
        out = {**view, **self._placed_leaf(leaves, check_id, 1)}
        if view["conclusion"] is not None:
            conclusion = {k: v for k, v in view["conclusion"].items() if k != "version"}
            conclusion["leaf_index"] = self._placed_leaf(leaves, check_id, view["conclusion"]["version"])["leaf_index"]
            out["conclusion"] = conclusion
        measures = []
        for m in view["measures"]:
            done = m["completion"]
            if done is not None:
                done = {k: v for k, v in done.items() if k != "version"}
                done["leaf_index"] = self._placed_leaf(leaves, check_id, m["completion"]["version"])["leaf_index"]
            measures.append({**m, "completion": done})
        out["measures"] = measures
        return out


def _part(opened: Any, key: str) -> Any:
    """One entry of an opened mapping (or what says it was erased, for all of them)."""
    return opened.get(key) if isinstance(opened, dict) and "erased" not in opened else opened
