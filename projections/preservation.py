"""The preservations read model (art. 42): one record per request, and its findings.

Event-driven findings, raised at the event that proves them, with the rule functions of
``domain.preservation`` (the ones the application refuses with, so one in the feed was
written around it):

``preservation-period-too-short`` (art. 42 §8)
    a request for a period under 60 days: ``domain.preservation.period_too_short``.
``preservation-extended-after-expiry`` (art. 42 §9)
    an extension recorded after the period had ended: ``domain.preservation.preservation_expired``.
``preservation-released-early`` (art. 42 §8)
    the data released while the follow-up request awaits a decision, or while the period runs:
    ``domain.preservation.released_too_early`` (its rule is the finding's reason).
``preservation-act-by-wrong-party`` (art. 42)
    an extension or follow-up not by the requesting Party, a decision or release not by the
    requested Party: ``domain.preservation.not_requesting_party``, ``not_requested_party``.

The time-dependent one, judged when asked (``projections.queries.findings``):

``preservation-expired-unattended`` (art. 42 §8, §9)
    a period that ended with neither an extension nor a follow-up request received before it
    (``domain.preservation.preservation_expired`` at ``now``, or at the late event that came after).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

import msgspec
from msgspec.structs import astuple

from domain.errors import DomainError
from domain.preservation import (
    DAY,
    PreservationFacts,
    days_left,
    not_requested_party,
    not_requesting_party,
    period_too_short,
    preservation_expired,
    released_too_early,
)
from projections.db import Db
from projections.events import (
    PRESERVATION_DECIDED,
    PRESERVATION_EXTENDED,
    PRESERVATION_FOLLOW_UP,
    PRESERVATION_RELEASED,
    PRESERVATION_REQUESTED,
    FeedEvent,
    PreservationDecidedState,
    PreservationExtendedState,
    PreservationFollowUpState,
    PreservationReleasedState,
    PreservationRequestedState,
    norm_time,
    time_of,
)

ART_42_8 = "art. 42 §8"

#: rule -> (article, title), merged into ``projections.model.RULES``.
PRESERVATION_RULES: dict[str, tuple[str, str]] = {
    "preservation-period-too-short": (ART_42_8, "Preservation requested for less than 60 days"),
    "preservation-extended-after-expiry": ("art. 42 §9", "Preservation extended after its period had expired"),
    "preservation-released-early": (
        ART_42_8, "Preserved data released while the follow-up request awaits a decision, or the period runs"),
    "preservation-act-by-wrong-party": ("art. 42", "Preservation extended, followed up, decided or released by "
                                        "a Party that may not"),
    "preservation-expired-unattended": (
        "art. 42 §8, §9", "Preservation expired with neither an extension nor a follow-up request"),
}
#: The findings judged at ``now`` rather than at an event.
TIME_DEPENDENT = ("preservation-expired-unattended",)


class PreservationRec(msgspec.Struct, gc=False):
    """A preservation as the read model keeps it (table ``proj_preservations``); times normalized."""

    id: str
    requesting_party: str
    requesting_authority: str | None
    requested_party: str
    offence: str | None
    period_days: int
    requested_at: str
    requested_leaf: int
    #: The end of the period, as extended.
    expires_at: str
    extensions: int = 0
    follow_up_at: str | None = None
    follow_up_leaf: int | None = None
    decision: str | None = None
    decided_leaf: int | None = None
    released_at: str | None = None
    released_leaf: int | None = None
    #: The end of the period it passed unattended, when a later event shows it (an extension or
    #: a follow-up that came too late).
    lapsed_at: str | None = None
    lapsed_leaf: int | None = None

    def row(self) -> tuple[Any, ...]:
        return astuple(self)

    @classmethod
    def from_row(cls, row: Iterable[Any]) -> PreservationRec:
        return cls(*row)

    @property
    def facts(self) -> PreservationFacts:
        return PreservationFacts(
            id=self.id, requesting_party=self.requesting_party, requested_party=self.requested_party,
            requested_at=datetime.fromisoformat(self.requested_at), expires_at=datetime.fromisoformat(self.expires_at),
            follow_up_at=datetime.fromisoformat(self.follow_up_at) if self.follow_up_at else None,
            decided=self.decided_leaf is not None, released=self.released_leaf is not None,
        )


PRESERVATION_COLUMNS: tuple[str, ...] = PreservationRec.__struct_fields__
_INTEGER = {"period_days": "INTEGER", "extensions": "INTEGER"}
TABLE = "proj_preservations"
#: The table's statements (``projections.schema.TABLES``): the same SQL on SQLite and PostgreSQL.
PRESERVATION_TABLES = {TABLE: [
    f"CREATE TABLE IF NOT EXISTS {{{TABLE}}} ("
    + ", ".join(f"{c} {'BIGINT' if c.endswith('_leaf') else _INTEGER.get(c, 'TEXT')}"
                + (" PRIMARY KEY" if c == "id" else "") for c in PRESERVATION_COLUMNS) + ")",
    f"CREATE INDEX IF NOT EXISTS proj_preservations_expiry ON {{{TABLE}}} (expires_at)",
]}


def _at(ev: FeedEvent) -> str:
    return time_of(ev.data.timestamp) or ev.recorded_at


def _evidence(rec: PreservationRec, ev: FeedEvent, name: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"leaf_index": ev.leaf_index, "event": name, "id": rec.id, **extra},
            {"leaf_index": rec.requested_leaf, "event": "PreservationRequested", "id": rec.id,
             "expires_at": rec.expires_at}]


def _finding(state: Any, rule: str, rec: PreservationRec, ev: FeedEvent, violation: DomainError, name: str) -> None:
    state.add_finding(
        rule, f"{rec.id}/{ev.leaf_index}", ev, reason=violation.rule,
        detail=f"preservation {rec.id}: {violation.detail}",
        origin=None, sender=rec.requesting_party, recipient=rec.requested_party,
        evidence=_evidence(rec, ev, name),
    )


def _record(state: Any, ev: FeedEvent) -> PreservationRec | None:
    rec: PreservationRec | None = state.preservation(ev.originator_id)
    if rec is not None:
        state.dirty_preservations[rec.id] = rec
    return rec


def _wrong_party(state: Any, rec: PreservationRec, ev: FeedEvent, violation: DomainError | None, name: str) -> None:
    if violation is not None:
        _finding(state, "preservation-act-by-wrong-party", rec, ev, violation, name)


def _lapsed(rec: PreservationRec, ev: FeedEvent, at: str) -> DomainError | None:
    """The period had ended unattended by ``at``: noted on the record (the expired-unattended finding)."""
    violation = preservation_expired(rec.facts, datetime.fromisoformat(at))
    if violation is not None and rec.lapsed_at is None:
        rec.lapsed_at, rec.lapsed_leaf = rec.expires_at, ev.leaf_index
    return violation


def on_requested(state: Any, ev: FeedEvent) -> None:
    d: PreservationRequestedState = ev.data
    requested_at = norm_time(d.requested_at)
    expires_at = norm_time((datetime.fromisoformat(requested_at) + d.period_days * DAY).isoformat())
    rec = PreservationRec(ev.originator_id, d.requesting_authority.party, d.requesting_authority.authority,
                          d.requested_party, d.offence, d.period_days, requested_at, ev.leaf_index, expires_at)
    state.preservations[rec.id] = rec
    state.dirty_preservations[rec.id] = rec
    violation = period_too_short(d.period_days)
    if violation is not None:
        _finding(state, "preservation-period-too-short", rec, ev, violation, "PreservationRequested")


def on_extended(state: Any, ev: FeedEvent) -> None:
    d: PreservationExtendedState = ev.data
    rec = _record(state, ev)
    if rec is None:
        return
    _wrong_party(state, rec, ev, not_requesting_party(d.extended_by.party, rec.facts, "extended_by.party"),
                 "PreservationExtended")
    violation = _lapsed(rec, ev, _at(ev))
    if violation is not None:
        _finding(state, "preservation-extended-after-expiry", rec, ev, violation, "PreservationExtended")
    rec.expires_at = norm_time((datetime.fromisoformat(rec.expires_at) + d.period_days * DAY).isoformat())
    rec.extensions += 1


def on_follow_up(state: Any, ev: FeedEvent) -> None:
    d: PreservationFollowUpState = ev.data
    rec = _record(state, ev)
    if rec is None:
        return
    _wrong_party(state, rec, ev, not_requesting_party(d.filed_by.party, rec.facts, "filed_by.party"),
                 "PreservationFollowUpFiled")
    received_at = norm_time(d.received_at)
    _lapsed(rec, ev, received_at)
    rec.follow_up_at, rec.follow_up_leaf = received_at, ev.leaf_index


def on_decided(state: Any, ev: FeedEvent) -> None:
    d: PreservationDecidedState = ev.data
    rec = _record(state, ev)
    if rec is None:
        return
    _wrong_party(state, rec, ev, not_requested_party(d.decided_by.party, rec.facts, "decided_by.party"),
                 "PreservationFollowUpDecided")
    rec.decision, rec.decided_leaf = d.decision, ev.leaf_index


def on_released(state: Any, ev: FeedEvent) -> None:
    d: PreservationReleasedState = ev.data
    rec = _record(state, ev)
    if rec is None:
        return
    _wrong_party(state, rec, ev, not_requested_party(d.released_by.party, rec.facts, "released_by.party"),
                 "PreservationReleased")
    at = _at(ev)
    violation = released_too_early(rec.facts, datetime.fromisoformat(at))
    if violation is not None:
        _finding(state, "preservation-released-early", rec, ev, violation, "PreservationReleased")
    rec.released_at, rec.released_leaf = at, ev.leaf_index


HANDLERS = {
    PRESERVATION_REQUESTED: on_requested,
    PRESERVATION_EXTENDED: on_extended,
    PRESERVATION_FOLLOW_UP: on_follow_up,
    PRESERVATION_DECIDED: on_decided,
    PRESERVATION_RELEASED: on_released,
}


# -- queries ----------------------------------------------------------------------------------

_SELECT = f"SELECT {', '.join(PRESERVATION_COLUMNS)} FROM {{{TABLE}}}"


def _records(db: Db, where: str, params: list[Any], share: str | None) -> list[PreservationRec]:
    if share is not None:
        where += " AND (requesting_party = ? OR requested_party = ?)"
        params = [*params, share, share]
    return [PreservationRec.from_row(row) for row in db.rows(f"{_SELECT} WHERE {where}", params)]


def expired_unattended(db: Db, *, now: str, share: str | None) -> Iterator[tuple[Any, ...]]:
    """The ``preservation-expired-unattended`` findings at ``now``, as the arguments of
    ``projections.queries._finding`` (id, rule, reason, leaf, detected_at, parties, ids, detail, evidence)."""
    moment = datetime.fromisoformat(now)
    for rec in _records(db, "(lapsed_at IS NOT NULL OR expires_at <= ?)", [now], share):
        lapsed = rec.lapsed_at is not None
        if not lapsed and preservation_expired(rec.facts, moment) is None:
            continue  # a follow-up arrived in time: kept until decided (§8)
        expired_at = rec.lapsed_at if lapsed else rec.expires_at
        proof = [{"leaf_index": rec.requested_leaf, "event": "PreservationRequested", "id": rec.id,
                  "expires_at": expired_at}]
        if lapsed:
            proof.append({"leaf_index": rec.lapsed_leaf, "event": "late", "id": rec.id})
        detail = (f"the preservation {rec.requesting_party} asked of {rec.requested_party} ({rec.id}, "
                  f"{rec.offence}) expired at {expired_at} with neither an extension nor a follow-up request "
                  "received before it (art. 42 §8, §9)")
        yield (f"preservation-expired-unattended/{rec.id}", "preservation-expired-unattended",
               "late-event-after-expiry" if lapsed else "period-ended", rec.requested_leaf, expired_at, None,
               rec.requesting_party, rec.requested_party, None, None, detail, proof)


def expiring(db: Db, *, now: str, within: timedelta, share: str | None) -> dict[str, Any]:
    """Preservations whose period runs and ends within ``within`` of ``now``, soonest first:
    the ones to extend (§9) or follow up (§8)."""
    moment = datetime.fromisoformat(now)
    until = norm_time((moment + within).isoformat())
    items = []
    for rec in _records(db, "expires_at > ? AND expires_at <= ? AND released_leaf IS NULL AND decided_leaf IS NULL",
                        [now, until], share):
        left = days_left(rec.facts, moment)
        if left is None:
            continue  # the follow-up arrived in time
        items.append({"id": rec.id, "requesting_party": rec.requesting_party, "requested_party": rec.requested_party,
                      "offence": rec.offence, "requested_at": rec.requested_at, "expires_at": rec.expires_at,
                      "days_left": left, "leaf_index": rec.requested_leaf, "extensions": rec.extensions})
    items.sort(key=lambda item: (item["expires_at"], item["id"]))
    return {"now": now, "until": until, "items": items}
