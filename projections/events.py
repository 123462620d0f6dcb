"""The ledger feed as the read models see it: one :class:`FeedEvent` per leaf.

Decoding is kept cheap: the stored state is eventsourcing's JSON (after any
cipher or compressor, undone by ``decode``), decoded by ``msgspec`` straight
into a small struct per topic that names only the fields the read models use
(the rest is skipped unparsed). A state that lacks a field or has one of the
wrong type decodes as :class:`Undecodable` (the findings report it).
Datetimes appear as ``{"_type_": "datetime_iso", "_data_": "..."}``.

Time values in the read models are normalized to one fixed-width form,
``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (:func:`norm_time`), so that text order is
time order on both backends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from domain.control import ControlCheck, ControlPlan
from domain.model import Authorization, ConsentRequest, PartyPolicy, Transfer
from domain.preservation import Preservation
from domain.referral import Referral

TRANSFER_RECORDED = Transfer.Recorded.TOPIC
REQUESTED = Authorization.Requested.TOPIC
GRANTED = Authorization.Granted.TOPIC
REFUSED = Authorization.Refused.TOPIC
REVOKED = Authorization.Revoked.TOPIC
USED = Authorization.Used.TOPIC
POLICY_REGISTERED = PartyPolicy.Registered.TOPIC
WRITTEN_FORM_SET = PartyPolicy.WrittenFormRequirementSet.TOPIC
KEY_REGISTERED = PartyPolicy.KeyRegistered.TOPIC
ERASED = Transfer.PersonalDataErased.TOPIC
NOTICE_ACKNOWLEDGED = Transfer.NoticeAcknowledged.TOPIC
URGENT_NOTIFIED = Transfer.UrgentTransferNotified.TOPIC
DATA_USED = Transfer.DataUsed.TOPIC
USE_NOTICE_GIVEN = Transfer.UseNoticeGiven.TOPIC
CONSENT_REQUESTED = ConsentRequest.Requested.TOPIC
CONSENT_DECIDED = ConsentRequest.Decided.TOPIC
CONSENT_USED = ConsentRequest.Used.TOPIC
PRESERVATION_REQUESTED = Preservation.Requested.TOPIC
PRESERVATION_EXTENDED = Preservation.Extended.TOPIC
PRESERVATION_FOLLOW_UP = Preservation.FollowUpFiled.TOPIC
PRESERVATION_DECIDED = Preservation.FollowUpDecided.TOPIC
PRESERVATION_RELEASED = Preservation.Released.TOPIC
REFERRAL_MADE = Referral.Made.TOPIC
CONTROL_PLAN_APPROVED = ControlPlan.Approved.TOPIC
CONTROL_CHECK_OPENED = ControlCheck.Opened.TOPIC
CONTROL_CHECK_CONCLUDED = ControlCheck.Concluded.TOPIC
CONTROL_MEASURE_COMPLETED = ControlCheck.MeasureCompleted.TOPIC

Decode = Callable[[bytes], bytes]


class Actor(msgspec.Struct, gc=False):
    party: str
    authority: str | None = None


class Purpose(msgspec.Struct, gc=False):
    proceeding: str | None = None


class Stamp(msgspec.Struct, gc=False):
    """eventsourcing's transcoding of a datetime."""

    data: str = msgspec.field(name="_data_")


class HandlingState(msgspec.Struct, gc=False):
    use_restrictions: list[str] = []


class TransferRecordedState(msgspec.Struct, gc=False):
    sender: Actor
    recipient: Actor
    legal_basis: str
    data_categories: list[str]
    transferred_at: str
    origin: str
    timestamp: Stamp | None = None
    purpose: Purpose | None = None
    retention_until: str | None = None
    parent_transfer_id: str | None = None
    authorization_id: str | None = None
    root_transfer_id: str | None = None
    depth: int = 0
    origin_requires_written_form: bool = False
    item_count: int | None = None
    handling: HandlingState | None = None
    regime: str = "un-cybercrime"
    urgent: dict[str, Any] | None = None


class RequestedState(msgspec.Struct, gc=False):
    parent_transfer_id: str
    requested_by: Actor
    recipient: Actor
    data_categories: list[str]
    origin: str
    timestamp: Stamp | None = None
    purpose: Purpose | None = None
    justification: str | None = None
    root_transfer_id: str | None = None


class GrantedState(msgspec.Struct, gc=False):
    timestamp: Stamp | None = None
    decided_by: Actor | None = None
    conditions: dict[str, Any] | None = None
    reasons: str | None = None
    signature: Any = None


class RefusedState(msgspec.Struct, gc=False):
    timestamp: Stamp | None = None
    decided_by: Actor | None = None
    reasons: str | None = None
    signature: Any = None


class RevokedState(msgspec.Struct, gc=False):
    timestamp: Stamp | None = None
    revoked_by: Actor | None = None
    reasons: str | None = None


class UsedState(msgspec.Struct, gc=False):
    transfer_id: str
    timestamp: Stamp | None = None


class PolicyRegisteredState(msgspec.Struct, gc=False):
    party: str


class WrittenFormSetState(msgspec.Struct, gc=False):
    required: bool


class PersonalDataErasedState(msgspec.Struct, gc=False):
    retention_class: str
    notices: list[dict[str, str]]  # {"notice_id", "party"}
    timestamp: Stamp | None = None


class NoticeAcknowledgedState(msgspec.Struct, gc=False):
    notice_id: str
    timestamp: Stamp | None = None


class UrgentNotifiedState(msgspec.Struct, gc=False):
    notified_party: str
    notified_at: str


class DataUsedState(msgspec.Struct, gc=False):
    use_id: str
    proceeding: str
    kind: str
    used_by: Actor
    used_at: str
    exculpatory: bool = False
    consent_id: str | None = None
    notice: dict[str, Any] | None = None  # notified_at, prior_impossible (a commitment in event format 2)
    timestamp: Stamp | None = None


class UseNoticeGivenState(msgspec.Struct, gc=False):
    use_id: str
    notified_at: str
    timestamp: Stamp | None = None


class ConsentRequestedState(msgspec.Struct, gc=False):
    transfer_id: str
    sender: str
    proceeding: str
    uses: list[str]
    requested_by: Actor
    recipient: Actor | None = None
    timestamp: Stamp | None = None


class ConsentUsedState(msgspec.Struct, gc=False):
    transfer_id: str


class ConsentDecidedState(msgspec.Struct, gc=False):
    decision: str
    decided_by: Actor | None = None
    timestamp: Stamp | None = None


class PreservationRequestedState(msgspec.Struct, gc=False):
    requesting_authority: Actor
    requested_party: str
    period_days: int
    requested_at: str
    offence: str | None = None
    timestamp: Stamp | None = None


class PreservationExtendedState(msgspec.Struct, gc=False):
    extended_by: Actor
    period_days: int
    timestamp: Stamp | None = None


class PreservationFollowUpState(msgspec.Struct, gc=False):
    filed_by: Actor
    received_at: str
    timestamp: Stamp | None = None


class PreservationDecidedState(msgspec.Struct, gc=False):
    decided_by: Actor
    decision: str
    timestamp: Stamp | None = None


class PreservationReleasedState(msgspec.Struct, gc=False):
    released_by: Actor
    timestamp: Stamp | None = None


class ReferralNoticeState(msgspec.Struct, gc=False):
    notified_by: Actor
    recipient: Actor


class ReferralMadeState(msgspec.Struct, gc=False):
    transfer_id: str
    requesting_party: str
    referring_party: str
    third_party: str
    notice: ReferralNoticeState
    parent_transfer_id: str | None = None
    timestamp: Stamp | None = None


class PlannedCheckState(msgspec.Struct, gc=False):
    number: int
    starts_on: str
    ends_on: str


class ControlPlanApprovedState(msgspec.Struct, gc=False):
    party: str
    unit: str
    year: int
    checks: list[PlannedCheckState]


class ControlGroundState(msgspec.Struct, gc=False):
    kind: str
    received_on: str


class ControlCheckOpenedState(msgspec.Struct, gc=False):
    party: str
    unit: str
    kind: str
    decided_on: str
    starts_on: str
    ends_on: str
    ground: ControlGroundState | None = None


class ControlMeasureState(msgspec.Struct, gc=False):
    id: str
    deadline: str


class ControlCheckConcludedState(msgspec.Struct, gc=False):
    concluded_at: str
    measures: list[ControlMeasureState]


class ControlMeasureCompletedState(msgspec.Struct, gc=False):
    measure_id: str
    completed_at: str | None = None
    timestamp: Stamp | None = None


#: The stored state's shape per topic: only the fields the read models use.
_DECODERS: dict[str, Any] = {
    topic: msgspec.json.Decoder(kind)
    for topic, kind in (
        (TRANSFER_RECORDED, TransferRecordedState), (REQUESTED, RequestedState), (GRANTED, GrantedState),
        (REFUSED, RefusedState), (REVOKED, RevokedState), (USED, UsedState),
        (POLICY_REGISTERED, PolicyRegisteredState), (WRITTEN_FORM_SET, WrittenFormSetState),
        (ERASED, PersonalDataErasedState), (NOTICE_ACKNOWLEDGED, NoticeAcknowledgedState),
        (DATA_USED, DataUsedState), (USE_NOTICE_GIVEN, UseNoticeGivenState),
        (CONSENT_REQUESTED, ConsentRequestedState), (CONSENT_DECIDED, ConsentDecidedState),
        (CONSENT_USED, ConsentUsedState), (URGENT_NOTIFIED, UrgentNotifiedState),
        (PRESERVATION_REQUESTED, PreservationRequestedState), (PRESERVATION_EXTENDED, PreservationExtendedState),
        (PRESERVATION_FOLLOW_UP, PreservationFollowUpState), (PRESERVATION_DECIDED, PreservationDecidedState),
        (PRESERVATION_RELEASED, PreservationReleasedState),
        (REFERRAL_MADE, ReferralMadeState),
        (CONTROL_PLAN_APPROVED, ControlPlanApprovedState), (CONTROL_CHECK_OPENED, ControlCheckOpenedState),
        (CONTROL_CHECK_CONCLUDED, ControlCheckConcludedState),
        (CONTROL_MEASURE_COMPLETED, ControlMeasureCompletedState),
    )
}

#: The topics the read models decode; other leaves only advance the position.
KNOWN_TOPICS = frozenset(_DECODERS)


class Undecodable:
    """The state of a leaf of a known topic that does not have that topic's shape."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error


class FeedEvent:
    """One leaf of the ledger with its decoded event state (``data``; None for other topics)."""

    __slots__ = ("leaf_index", "recorded_at", "originator_id", "originator_version", "topic", "data")

    def __init__(self, leaf_index: int, recorded_at: str, originator_id: str, originator_version: int,
                 topic: str, data: Any) -> None:
        self.leaf_index = leaf_index
        self.recorded_at = recorded_at
        self.originator_id = originator_id
        self.originator_version = originator_version
        self.topic = topic
        self.data = data


def evidence(leaf_index: int | None, event: str, ident: str | None, **extra: Any) -> dict[str, Any]:
    """One leaf a finding rests on."""
    out: dict[str, Any] = {"leaf_index": leaf_index, "event": event, "id": ident}
    out.update(extra)
    return out


def norm_time(text: str) -> str:
    """An RFC 3339 time (``Z`` or ``+00:00``, any precision) as ``...ss.ffffffZ`` in UTC."""
    n = len(text)
    if n == 27 and text[26] == "Z" and text[19] == ".":
        return text
    if n == 32 and text.endswith("+00:00") and text[19] == ".":
        return text[:26] + "Z"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return f"{moment.year:04d}" + moment.strftime("-%m-%dT%H:%M:%S.%fZ")


def time_of(stamp: Stamp | None) -> str | None:
    """A transcoded datetime as a normalized time, or None."""
    return None if stamp is None else norm_time(stamp.data)


def now_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def seconds_between(earlier: str, later: str) -> float:
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds()


def decoder_for(mapper: Any) -> Decode | None:
    """Undo an application mapper's cipher and compressor (None when it has neither)."""
    cipher = getattr(mapper, "cipher", None)
    compressor = getattr(mapper, "compressor", None)
    if cipher is None and compressor is None:
        return None

    def decode(state: bytes) -> bytes:
        if cipher is not None:
            state = cipher.decrypt(state)
        if compressor is not None:
            state = compressor.decompress(state)
        return state

    return decode


def feed_events(rows: Sequence[Sequence[Any]], decode: Decode | None = None) -> list[FeedEvent]:
    """Decode plain feed rows (leaf_index, recorded_at, originator_id, version, topic, state)."""
    out: list[FeedEvent] = []
    decoders = _DECODERS
    append = out.append
    for leaf_index, recorded_at, originator_id, version, topic, state in rows:
        decoder = decoders.get(topic)
        data: Any = None
        if decoder is not None:
            try:
                data = decoder.decode(state if decode is None else decode(state))
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                data = Undecodable(str(e))
        if len(recorded_at) != 27:
            recorded_at = norm_time(recorded_at)
        append(FeedEvent(leaf_index, recorded_at, originator_id, version, topic, data))
    return out


def feed_rows(store: Any, start: int, limit: int) -> list[Sequence[Any]]:
    """Plain feed rows from a store: ``read_feed_rows`` if it has it, else ``read_feed``."""
    reader = getattr(store, "read_feed_rows", None)
    if reader is not None:
        return reader(start, limit)  # type: ignore[no-any-return]
    return [
        (leaf.leaf_index, leaf.recorded_at, leaf.originator_id, leaf.originator_version, event.topic, event.state)
        for leaf, event in store.read_feed(start, limit)
    ]
