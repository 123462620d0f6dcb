"""The commands and queries of preservation requests (art. 42), mixed into ``TransferLedger``.

Each command parses its input (``domain.preservation``), then prepares: it loads the
preservation, applies the named rules of ``domain.preservation`` and triggers the event, as
the other commands of ``ledger.service.application`` do (alone, or in a group-commit batch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from domain.errors import NotFound
from domain.preservation import (
    ExtensionDraft,
    FollowUpDecisionDraft,
    FollowUpDraft,
    Preservation,
    PreservationDraft,
    PreservationFacts,
    ReleaseDraft,
    check_follow_up_decidable,
    check_follow_up_refusal_reasoned,
    check_no_follow_up_yet,
    check_not_expired,
    check_not_released,
    check_release_allowed,
    check_requested_party,
    check_requesting_party,
    days_left,
    preservation_status,
    preservation_to_self,
    refuse,
)
from domain.values import format_datetime, parse_uuid
from ledger.storage.idempotency import IdempotencyClaim
from ledger.tlog.leaf import AppendedLeaf

if TYPE_CHECKING:
    from ledger.service.application import Prepare, Prepared

#: The statuses a preservation can be in (``domain.preservation.preservation_status``).
PRESERVATION_STATUSES = ("preserved", "expired", "awaiting-decision", "decided", "released")

Leaves = dict[tuple[str, int], AppendedLeaf]


def preservation_parties(view: dict[str, Any]) -> set[str]:
    """The Parties a preservation involves: the requesting and the requested Party."""
    return {view["requesting_party"], view["requested_party"]}


class PreservationCommands:
    """Art. 42: request, extend, follow up, decide on the follow-up, release; read and list."""

    # provided by TransferLedger
    clock: Callable[[], datetime]
    _run: Callable[..., dict[str, Any]]
    _prepared: Callable[..., Prepared]
    _load: Callable[[UUID], Any]
    _leaf: Callable[[UUID, int], dict[str, Any]]
    _scan: Callable[..., tuple[list[dict[str, Any]], int | None]]
    open_personal: Callable[..., dict[str, Any]]

    # -- commands --------------------------------------------------------------------

    def request_preservation(self, data: Any, *, idempotency: IdempotencyClaim | None = None) -> dict[str, Any]:
        """Record a request to preserve stored data (art. 42 §1, §3), for its period (§8)."""
        return self._run(self.plan_request_preservation(data, idempotency=idempotency))

    def plan_request_preservation(self, data: Any, *, idempotency: IdempotencyClaim | None = None) -> Prepare:
        draft = PreservationDraft.parse(data).as_of(self.clock())
        refuse(preservation_to_self(draft.requesting_authority.party, draft.requested_party))
        return lambda: self._preservation_prepared(Preservation.requested(draft), idempotency)

    def extend_preservation(self, preservation_id: Any, data: Any, *,
                            idempotency: IdempotencyClaim | None = None) -> dict[str, Any]:
        """The requesting Party extends the period, before it expires (art. 42 §9)."""
        return self._run(self.plan_extend_preservation(preservation_id, data, idempotency=idempotency))

    def plan_extend_preservation(self, preservation_id: Any, data: Any, *,
                                 idempotency: IdempotencyClaim | None = None) -> Prepare:
        pid = parse_uuid(preservation_id, "preservation_id")
        draft = ExtensionDraft.parse(data)

        def prepare() -> Prepared:
            preservation = self._get_preservation(pid)
            facts = preservation.facts
            check_requesting_party(draft.extended_by.party, facts, "extended_by.party")
            check_not_released(facts)
            check_no_follow_up_yet(facts)
            check_not_expired(facts, self.clock())
            preservation.extend(draft.extended_by, draft.period_days, draft.reasons)
            return self._preservation_prepared(preservation, idempotency)

        return prepare

    def file_follow_up(self, preservation_id: Any, data: Any, *,
                       idempotency: IdempotencyClaim | None = None) -> dict[str, Any]:
        """The requesting Party's request for mutual legal assistance arrived (art. 42 §8)."""
        return self._run(self.plan_file_follow_up(preservation_id, data, idempotency=idempotency))

    def plan_file_follow_up(self, preservation_id: Any, data: Any, *,
                            idempotency: IdempotencyClaim | None = None) -> Prepare:
        pid = parse_uuid(preservation_id, "preservation_id")
        draft = FollowUpDraft.parse(data).as_of(self.clock())
        received_at = draft.received_at
        assert received_at is not None

        def prepare() -> Prepared:
            preservation = self._get_preservation(pid)
            facts = preservation.facts
            check_requesting_party(draft.filed_by.party, facts, "filed_by.party")
            check_not_released(facts)
            check_no_follow_up_yet(facts)
            check_not_expired(facts, received_at)
            preservation.file_follow_up(draft.filed_by, draft.mla_request_reference, received_at)
            return self._preservation_prepared(preservation, idempotency)

        return prepare

    def decide_follow_up(self, preservation_id: Any, data: Any, *,
                         idempotency: IdempotencyClaim | None = None) -> dict[str, Any]:
        """The requested Party's decision on the follow-up request: the hold of §8 ends."""
        return self._run(self.plan_decide_follow_up(preservation_id, data, idempotency=idempotency))

    def plan_decide_follow_up(self, preservation_id: Any, data: Any, *,
                              idempotency: IdempotencyClaim | None = None) -> Prepare:
        pid = parse_uuid(preservation_id, "preservation_id")
        draft = FollowUpDecisionDraft.parse(data)
        check_follow_up_refusal_reasoned(draft)

        def prepare() -> Prepared:
            preservation = self._get_preservation(pid)
            facts = preservation.facts
            check_requested_party(draft.decided_by.party, facts, "decided_by.party")
            check_not_released(facts)
            check_follow_up_decidable(facts)
            preservation.decide_follow_up(draft.decided_by, draft.decision, draft.reasons)
            return self._preservation_prepared(preservation, idempotency)

        return prepare

    def release_preservation(self, preservation_id: Any, data: Any, *,
                             idempotency: IdempotencyClaim | None = None) -> dict[str, Any]:
        """The requested Party stops preserving the data: after the period, or after the decision (§8)."""
        return self._run(self.plan_release_preservation(preservation_id, data, idempotency=idempotency))

    def plan_release_preservation(self, preservation_id: Any, data: Any, *,
                                  idempotency: IdempotencyClaim | None = None) -> Prepare:
        pid = parse_uuid(preservation_id, "preservation_id")
        draft = ReleaseDraft.parse(data)

        def prepare() -> Prepared:
            preservation = self._get_preservation(pid)
            facts = preservation.facts
            check_requested_party(draft.released_by.party, facts, "released_by.party")
            check_not_released(facts)
            check_release_allowed(facts, self.clock())
            preservation.release_data(draft.released_by, draft.reasons)
            return self._preservation_prepared(preservation, idempotency)

        return prepare

    def _preservation_prepared(self, preservation: Preservation, idempotency: IdempotencyClaim | None) -> Prepared:
        # The answer shows the preservation as this command left it (a later command of the same
        # batch may change it again); the leaves of its new events are known once they are saved.
        view = self.open_personal(self._preservation_fields(preservation, self.clock()), preservation.id)

        def respond(leaves: Leaves) -> dict[str, Any]:
            return _with_leaves(view, str(preservation.id), leaves,
                                lambda version: self._leaf(preservation.id, version))

        return self._prepared(preservation, resource=preservation, kind="preservation",
                              idempotency=idempotency, respond=respond)

    # -- queries -------------------------------------------------------------------------

    def get_preservation(self, preservation_id: Any, *, version: int | None = None) -> dict[str, Any]:
        """A preservation with its ``status`` and ``days_left`` now, its extensions, follow-up,
        decision and release, each with its leaf index."""
        pid = parse_uuid(preservation_id, "preservation_id")
        preservation = self._get_preservation(pid, version)
        return self._preservation_view(preservation)

    def preservation_facts(self, preservation_id: Any) -> PreservationFacts:
        """What the rules of ``domain.preservation`` look at, as the preservation stands."""
        return self._get_preservation(parse_uuid(preservation_id, "preservation_id")).facts

    def list_preservations(
        self,
        *,
        visible: Callable[[dict[str, Any]], bool],
        party: str | None = None,
        status: str | None = None,
        after: int = 0,
        limit: int = 50,
        mentions: Sequence[str] = (),
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Preservations in commit order after a cursor (``party``: requesting or requested;
        ``status`` now), those ``visible`` keeps; and the next cursor."""
        def keep(view: dict[str, Any]) -> bool:
            if party is not None and party not in preservation_parties(view):
                return False
            if status is not None and view["status"] != status:
                return False
            return visible(view)

        return self._scan(Preservation.Requested.TOPIC, after, limit, self._preservation_view, keep,
                          [*mentions, party] if party is not None else mentions)

    def _get_preservation(self, preservation_id: UUID, version: int | None = None) -> Preservation:
        try:
            aggregate = (self._load(preservation_id) if version is None
                         else self.repository.get(preservation_id, version=version))  # type: ignore[attr-defined]
        except AggregateNotFoundError:
            aggregate = None
        if not isinstance(aggregate, Preservation):
            raise NotFound(f"no preservation {preservation_id}", rule="preservation-not-found",
                           field="preservation_id", values={"id": str(preservation_id)})
        return aggregate

    def _preservation_view(self, preservation: Preservation) -> dict[str, Any]:
        view = _with_leaves(self._preservation_fields(preservation, self.clock()), str(preservation.id), {},
                            lambda version: self._leaf(preservation.id, version))
        return self.open_personal(view, preservation.id)

    def _preservation_fields(self, preservation: Preservation, now: datetime) -> dict[str, Any]:
        facts = preservation.facts
        request = preservation.request
        return {
            "id": str(preservation.id),
            "status": preservation_status(facts, now),
            "days_left": days_left(facts, now),
            "requesting_party": facts.requesting_party,
            **request,
            "expires_at": format_datetime(facts.expires_at),
            "extensions": preservation.extensions,
            "follow_up": preservation.follow_up,
            "decision": preservation.decision,
            "release": preservation.release,
            "version": preservation.version,
        }


def _with_leaves(view: dict[str, Any], preservation_id: str, leaves: Leaves,
                 stored: Callable[[int], dict[str, Any]] | None = None) -> dict[str, Any]:
    """``view`` with the leaf index of each of its events, from ``leaves`` (just saved) or ``stored``;
    the request's own leaf and record time at the top, as a transfer's."""

    def leaf(version: int) -> dict[str, Any]:
        appended = leaves.get((preservation_id, version))
        if appended is not None:
            return {"leaf_index": appended.leaf_index, "recorded_at": appended.recorded_at}
        return stored(version) if stored is not None else {"leaf_index": None, "recorded_at": None}

    out = {**view, **leaf(1)}
    out["extensions"] = [_placed(e, leaf) for e in view["extensions"]]
    for name in ("follow_up", "decision", "release"):
        out[name] = _placed(view[name], leaf) if view[name] is not None else None
    return out


def _placed(record: dict[str, Any], leaf: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k != "version"}
    out["leaf_index"] = leaf(record["version"])["leaf_index"]
    return out
