"""Expedited preservation of stored computer data (art. 42): the request, its life, its rules.

The requesting Party asks the requested Party to preserve stored data while it prepares a
request for mutual legal assistance (§1). The request states what §3 lists; the data are
kept for **at least 60 days** (§8); the requesting Party may ask for an extension **before
the period expires** (§9); once the follow-up request for assistance is received, the data
stay preserved **until a decision on it** is taken (§8).

Each rule is one function named after what it checks, citing its paragraph, returning its
violation (or None) so that the application refuses with it and the read models
(``projections.preservation``) report it as a finding: one rule, one text, whichever finds it.
A ``check_*`` function raises the violation.

A :class:`Preservation` aggregate records the life: ``PreservationRequested``, then any of
``PreservationExtended``, ``PreservationFollowUpFiled``, ``PreservationFollowUpDecided`` and
``PreservationReleased``. :class:`PreservationFacts` is what the rules look at, made from the
aggregate (the application) or from the read model's record (the findings).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate
from pydantic import AfterValidator, Field

from domain.errors import DomainError, InvalidInput, RuleViolation
from domain.parties import Actor, Official, parse_party
from domain.personal import ACTOR_LOG, SUBJECT_DATA
from domain.rules import check_refusal_reasoned
from domain.validation import Value, checked
from domain.values import (
    Categories,
    DateTimeText,
    DecisionDraft,
    OptionalText,
    Text,
    check_not_in_future,
    format_datetime,
)

ART_42_1 = "art. 42 §1"
ART_42_3 = "art. 42 §3"
ART_42_8 = "art. 42 §8"
ART_42_9 = "art. 42 §9"

#: Art. 42 §8: preservation lasts "not less than 60 days".
MIN_PERIOD_DAYS = 60
#: The longest period (or extension) one command may set: ten years, a bound on input only.
MAX_PERIOD_DAYS = 3650

_PREFIX = "transfer-ledger:"
DAY = timedelta(days=1)


def refuse(violation: DomainError | None) -> None:
    """Raise what a rule found, if it found anything."""
    if violation is not None:
        raise violation


# -- the request's fields (§3) ----------------------------------------------------------


def period_too_short(days: int, field: str = "period_days") -> InvalidInput | None:
    """Art. 42 §8: the preservation lasts not less than 60 days. The violation, or None."""
    if days >= MIN_PERIOD_DAYS:
        return None
    return InvalidInput(
        f"{field} is {days}: a preservation lasts not less than {MIN_PERIOD_DAYS} days (art. 42 §8)",
        rule="preservation-period-too-short",
        field=field,
        article=ART_42_8,
        values={"period_days": days, "minimum": MIN_PERIOD_DAYS},
    )


def check_period_long_enough(days: int, field: str) -> int:
    """Art. 42 §8: :func:`period_too_short`, refused (the validator of ``period_days``)."""
    refuse(period_too_short(days, field))
    return days


def mla_request_not_intended(intended: bool, field: str = "mla_request_intended") -> InvalidInput | None:
    """Art. 42 §1, §3(f): preservation is asked for data about which the requesting Party
    intends to submit a request for mutual legal assistance, and the request says so."""
    if intended:
        return None
    return InvalidInput(
        f"{field} must be true: art. 42 preserves data about which the requesting Party intends "
        "to submit a request for mutual legal assistance (§1, §3(f))",
        rule="mla-request-not-intended",
        field=field,
        article="art. 42 §1, §3(f)",
    )


def check_mla_request_intended(intended: bool, field: str) -> bool:
    """Art. 42 §1, §3(f): :func:`mla_request_not_intended`, refused."""
    refuse(mla_request_not_intended(intended, field))
    return intended


def preservation_to_self(requesting: str, requested: str) -> InvalidInput | None:
    """Art. 42 §1: a Party asks *another* Party to preserve data stored in its territory."""
    if requesting != requested:
        return None
    return InvalidInput(
        f"{requesting} cannot ask itself to preserve data: art. 42 is cooperation between Parties",
        rule="preservation-to-self",
        field="requested_party",
        article=ART_42_1,
        values={"requesting_party": requesting, "requested_party": requested},
    )


def _party(value: str) -> str:
    return checked(parse_party)(value)


PartyCode = Annotated[str, AfterValidator(_party)]
_Days = Annotated[int, AfterValidator(checked(check_period_long_enough))]
_Intended = Annotated[bool, AfterValidator(checked(check_mla_request_intended))]


class StoredData(Value):
    """The stored data to be preserved (art. 42 §3(c))."""

    NOUN = "stored data"

    description: Text = Field(min_length=1, max_length=2000, description="What is to be preserved")
    data_categories: Categories = Field(description="Art. 2 categories: subscriber, traffic, content, "
                                        "other_personal")

    def as_dict(self) -> dict[str, Any]:
        return {"description": self.description, "data_categories": list(self.data_categories)}


class PreservationDraft(Value):
    """A request to preserve stored data (``POST /v1/preservations``), with the fields of art. 42 §3."""

    NOUN = "preservation request"

    requesting_authority: Official = Field(description="The authority seeking preservation (§3(a))")
    requested_party: PartyCode = Field(min_length=1, max_length=16,
                                       description="The Party asked to preserve the data")
    request_reference: OptionalText = Field(default=None, max_length=200,
                                            description="The requesting Party's own reference")
    offence: Text = Field(min_length=1, max_length=500, description="The offence under investigation (§3(b))")
    facts: Text = Field(min_length=1, max_length=2000, description="A brief summary of the facts (§3(b))")
    data: StoredData = Field(description="The stored data to be preserved (§3(c))")
    relation_to_offence: Text = Field(min_length=1, max_length=2000,
                                      description="How the data relate to the offence (§3(c))")
    custodian: OptionalText = Field(default=None, max_length=500,
                                    description="Any information identifying the custodian of the data (§3(d))")
    location: OptionalText = Field(default=None, max_length=500,
                                   description="The location of the computer system (§3(d))")
    necessity: Text = Field(min_length=1, max_length=2000, description="Why preservation is necessary (§3(e))")
    mla_request_intended: _Intended = Field(
        description="The requesting Party intends to submit a request for mutual legal assistance (§3(f)): "
        "must be true")
    confidential: bool = Field(default=False, description="Keep the request confidential (§3(g))")
    no_user_notice: bool = Field(default=False, description="Do not notify the user (§3(g))")
    period_days: _Days = Field(default=MIN_PERIOD_DAYS, le=MAX_PERIOD_DAYS,
                               json_schema_extra={"minimum": MIN_PERIOD_DAYS},
                               description="How long the data are preserved: at least 60 days (§8)")
    requested_at: DateTimeText | None = Field(
        default=None, description="RFC 3339 date-time the request was made, when the period starts; "
        "defaults to the time of recording", json_schema_extra={"format": "date-time"})

    def as_of(self, now: datetime) -> PreservationDraft:
        """The request as recorded at ``now``: made then unless it says when, and not later."""
        if self.requested_at is None:
            return self.model_copy(update={"requested_at": now})
        check_not_in_future(self.requested_at, now, "requested_at")
        return self


class ExtensionDraft(Value):
    """The requesting Party asks for a longer preservation, before it expires (art. 42 §9)."""

    NOUN = "extension"

    extended_by: Official
    period_days: int = Field(ge=1, le=MAX_PERIOD_DAYS, description="Days added to the period")
    reasons: Text = Field(min_length=1, max_length=2000)


class FollowUpDraft(Value):
    """The request for mutual legal assistance about the preserved data was submitted (art. 42 §8)."""

    NOUN = "follow-up"

    filed_by: Official
    mla_request_reference: Text = Field(min_length=1, max_length=200,
                                        description="The reference of the request for mutual legal assistance")
    received_at: DateTimeText | None = Field(
        default=None, description="RFC 3339 date-time the requested Party received it; defaults to the time "
        "of recording", json_schema_extra={"format": "date-time"})

    def as_of(self, now: datetime) -> FollowUpDraft:
        if self.received_at is None:
            return self.model_copy(update={"received_at": now})
        check_not_in_future(self.received_at, now, "received_at")
        return self


class FollowUpDecisionDraft(Value):
    """The requested Party's decision on the follow-up request (art. 42 §8): the end of the hold."""

    NOUN = "decision"

    decided_by: Official
    decision: Literal["granted", "refused"]
    reasons: OptionalText = Field(default=None, max_length=2000, description="Required to refuse (art. 40 §25)")


class ReleaseDraft(Value):
    """The requested Party no longer preserves the data."""

    NOUN = "release"

    released_by: Official
    reasons: Text = Field(min_length=1, max_length=2000)


# -- the aggregate ------------------------------------------------------------------------


class Preservation(Aggregate):
    """One preservation request and its life (art. 42). Its events hold plain JSON values."""

    TOPIC = _PREFIX + "Preservation"

    if TYPE_CHECKING:  # the state its events apply (see domain.model.Transfer)
        _request: dict[str, Any]
        _extensions: list[dict[str, Any]]
        _follow_up: dict[str, Any] | None
        _decision: dict[str, Any] | None
        _release: dict[str, Any] | None

    class Event(Aggregate.Event):
        TOPIC = _PREFIX + "Preservation.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = _PREFIX + "Preservation.Created"

    class Requested(Created):
        TOPIC = _PREFIX + "PreservationRequested:v1"
        ACTING = "requesting_authority"
        PERSONAL = {
            "facts": SUBJECT_DATA, "data.description": SUBJECT_DATA, "relation_to_offence": SUBJECT_DATA,
            "custodian": SUBJECT_DATA, "location": SUBJECT_DATA, "necessity": SUBJECT_DATA,
            "requesting_authority.officer": ACTOR_LOG,
        }
        requesting_authority: dict[str, str]
        requested_party: str
        request_reference: str | None
        offence: str
        facts: str
        data: dict[str, Any]
        relation_to_offence: str
        custodian: str | None
        location: str | None
        necessity: str
        mla_request_intended: bool
        confidential: bool
        no_user_notice: bool
        period_days: int
        requested_at: str
        expires_at: str

        def apply(self, aggregate: Any) -> None:
            aggregate._request = {name: getattr(self, name) for name in type(self).__annotations__}
            aggregate._extensions = []
            aggregate._follow_up = None
            aggregate._decision = None
            aggregate._release = None

    class Extended(Event):
        TOPIC = _PREFIX + "PreservationExtended:v1"
        ACTING = "extended_by"
        PERSONAL = {"extended_by.officer": ACTOR_LOG, "reasons": SUBJECT_DATA}
        extended_by: dict[str, str]
        period_days: int
        reasons: str
        expires_at: str

        def apply(self, aggregate: Any) -> None:
            aggregate._extensions.append({
                "extended_by": self.extended_by, "period_days": self.period_days, "reasons": self.reasons,
                "expires_at": self.expires_at, "extended_at": format_datetime(self.timestamp),
                "version": self.originator_version})

    class FollowUpFiled(Event):
        TOPIC = _PREFIX + "PreservationFollowUpFiled:v1"
        ACTING = "filed_by"
        PERSONAL = {"filed_by.officer": ACTOR_LOG}
        filed_by: dict[str, str]
        mla_request_reference: str
        received_at: str

        def apply(self, aggregate: Any) -> None:
            aggregate._follow_up = {
                "filed_by": self.filed_by, "mla_request_reference": self.mla_request_reference,
                "received_at": self.received_at, "filed_at": format_datetime(self.timestamp),
                "version": self.originator_version}

    class FollowUpDecided(Event):
        TOPIC = _PREFIX + "PreservationFollowUpDecided:v1"
        ACTING = "decided_by"
        PERSONAL = {"decided_by.officer": ACTOR_LOG, "reasons": SUBJECT_DATA}
        decided_by: dict[str, str]
        decision: str
        reasons: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate._decision = {
                "decided_by": self.decided_by, "decision": self.decision, "reasons": self.reasons,
                "decided_at": format_datetime(self.timestamp), "version": self.originator_version}

    class Released(Event):
        TOPIC = _PREFIX + "PreservationReleased:v1"
        ACTING = "released_by"
        PERSONAL = {"released_by.officer": ACTOR_LOG, "reasons": SUBJECT_DATA}
        released_by: dict[str, str]
        reasons: str

        def apply(self, aggregate: Any) -> None:
            aggregate._release = {
                "released_by": self.released_by, "reasons": self.reasons,
                "released_at": format_datetime(self.timestamp), "version": self.originator_version}

    @classmethod
    def requested(cls, draft: PreservationDraft) -> Preservation:
        """The request ``draft`` describes, as of its ``requested_at`` (``PreservationDraft.as_of``)."""
        assert draft.requested_at is not None, "a draft as of a time (PreservationDraft.as_of)"
        return cls._create(
            cls.Requested,
            id=uuid4(),
            requesting_authority=draft.requesting_authority.as_dict(),
            requested_party=draft.requested_party,
            request_reference=draft.request_reference,
            offence=draft.offence,
            facts=draft.facts,
            data=draft.data.as_dict(),
            relation_to_offence=draft.relation_to_offence,
            custodian=draft.custodian,
            location=draft.location,
            necessity=draft.necessity,
            mla_request_intended=draft.mla_request_intended,
            confidential=draft.confidential,
            no_user_notice=draft.no_user_notice,
            period_days=draft.period_days,
            requested_at=format_datetime(draft.requested_at),
            expires_at=format_datetime(draft.requested_at + draft.period_days * DAY),
        )

    @property
    def subject_scope(self) -> UUID:
        """Whose subject data this aggregate's events hold: the request's own."""
        return self.id

    @property
    def request(self) -> dict[str, Any]:
        return dict(self._request)

    @property
    def extensions(self) -> list[dict[str, Any]]:
        return [dict(e) for e in self._extensions]

    @property
    def follow_up(self) -> dict[str, Any] | None:
        return dict(self._follow_up) if self._follow_up else None

    @property
    def decision(self) -> dict[str, Any] | None:
        return dict(self._decision) if self._decision else None

    @property
    def release(self) -> dict[str, Any] | None:
        return dict(self._release) if self._release else None

    @property
    def facts(self) -> PreservationFacts:
        """What the rules look at."""
        expires_at = self._extensions[-1]["expires_at"] if self._extensions else self._request["expires_at"]
        follow_up, decision, release = self._follow_up, self._decision, self._release
        return PreservationFacts(
            id=str(self.id),
            requesting_party=self._request["requesting_authority"]["party"],
            requested_party=self._request["requested_party"],
            requested_at=datetime.fromisoformat(self._request["requested_at"]),
            expires_at=datetime.fromisoformat(expires_at),
            follow_up_at=datetime.fromisoformat(follow_up["received_at"]) if follow_up else None,
            decided=decision is not None,
            released=release is not None,
        )

    def extend(self, extended_by: Actor, days: int, reasons: str) -> None:
        expires_at = self.facts.expires_at + days * DAY
        self.trigger_event(self.Extended, extended_by=extended_by.as_dict(), period_days=days, reasons=reasons,
                           expires_at=format_datetime(expires_at))

    def file_follow_up(self, filed_by: Actor, reference: str, received_at: datetime) -> None:
        self.trigger_event(self.FollowUpFiled, filed_by=filed_by.as_dict(), mla_request_reference=reference,
                           received_at=format_datetime(received_at))

    def decide_follow_up(self, decided_by: Actor, decision: str, reasons: str | None) -> None:
        self.trigger_event(self.FollowUpDecided, decided_by=decided_by.as_dict(), decision=decision,
                           reasons=reasons)

    def release_data(self, released_by: Actor, reasons: str) -> None:
        self.trigger_event(self.Released, released_by=released_by.as_dict(), reasons=reasons)


# -- what the rules look at -----------------------------------------------------------------


@dataclass(frozen=True)
class PreservationFacts:
    """A preservation as it stands: who asked whom, its period, whether the follow-up request
    arrived (when), was decided, and whether the data were released."""

    id: str
    requesting_party: str
    requested_party: str
    requested_at: datetime
    #: The end of the period (§8), as extended (§9).
    expires_at: datetime
    #: When the follow-up request for mutual legal assistance was received, if it was.
    follow_up_at: datetime | None
    decided: bool
    released: bool


def follow_up_in_time(facts: PreservationFacts) -> bool:
    """Art. 42 §8: the follow-up request arrived within the period (the data are then kept
    until the decision on it, whatever the period)."""
    return facts.follow_up_at is not None and facts.follow_up_at < facts.expires_at


def preservation_status(facts: PreservationFacts, now: datetime) -> str:
    """``released``; ``decided`` (the follow-up was decided); ``awaiting-decision`` (the follow-up
    arrived in time: kept until decided, §8); ``expired`` (the period ended without a follow-up);
    ``preserved`` (the period runs)."""
    if facts.released:
        return "released"
    if facts.decided:
        return "decided"
    if follow_up_in_time(facts):
        return "awaiting-decision"
    return "expired" if now >= facts.expires_at else "preserved"


def days_left(facts: PreservationFacts, now: datetime) -> int | None:
    """Whole days (rounded up) until the period ends while it runs; 0 once expired; None when
    the period no longer governs (awaiting a decision, decided, released)."""
    status = preservation_status(facts, now)
    if status == "expired":
        return 0
    if status != "preserved":
        return None
    return math.ceil((facts.expires_at - now) / DAY)


# -- who acts --------------------------------------------------------------------------------


def not_requesting_party(party: str, facts: PreservationFacts, field: str) -> RuleViolation | None:
    """Art. 42 §1, §9: the requesting Party asks for preservation, its extension, and submits the
    follow-up request. The violation when ``party`` is another, or None."""
    if party == facts.requesting_party:
        return None
    return RuleViolation(
        f"{party} is not the requesting Party of preservation {facts.id}: only {facts.requesting_party} "
        "extends it or files its follow-up request (art. 42 §1, §9)",
        rule="not-requesting-party",
        field=field,
        article="art. 42 §1, §9",
        values={"party": party, "requesting_party": facts.requesting_party},
    )


def not_requested_party(party: str, facts: PreservationFacts, field: str) -> RuleViolation | None:
    """Art. 42 §4, §8: the requested Party preserves the data, decides on the follow-up and
    releases the data. The violation when ``party`` is another, or None."""
    if party == facts.requested_party:
        return None
    return RuleViolation(
        f"{party} is not the requested Party of preservation {facts.id}: only {facts.requested_party}, "
        "which preserves the data, decides on the follow-up or releases them (art. 42 §4, §8)",
        rule="not-requested-party",
        field=field,
        article="art. 42 §4, §8",
        values={"party": party, "requested_party": facts.requested_party},
    )


def check_requesting_party(party: str, facts: PreservationFacts, field: str) -> None:
    """Art. 42 §1, §9: :func:`not_requesting_party`, refused."""
    refuse(not_requesting_party(party, facts, field))


def check_requested_party(party: str, facts: PreservationFacts, field: str) -> None:
    """Art. 42 §4, §8: :func:`not_requested_party`, refused."""
    refuse(not_requested_party(party, facts, field))


# -- the period and its end ------------------------------------------------------------------


def preservation_expired(facts: PreservationFacts, at: datetime) -> RuleViolation | None:
    """Art. 42 §9: an extension is asked "before the expiry" of the period (and a follow-up
    request keeps the data only if it arrives within it, §8). The violation when the period
    had ended at ``at`` with no follow-up received in time, or None."""
    if at < facts.expires_at or follow_up_in_time(facts):
        return None
    return RuleViolation(
        f"preservation {facts.id} expired at {format_datetime(facts.expires_at)}: an extension is asked "
        "before the period expires (art. 42 §9)",
        rule="preservation-expired",
        article=ART_42_9,
        values={"expires_at": format_datetime(facts.expires_at), "at": format_datetime(at)},
    )


def check_not_expired(facts: PreservationFacts, at: datetime) -> None:
    """Art. 42 §9: :func:`preservation_expired`, refused."""
    refuse(preservation_expired(facts, at))


def preservation_released(facts: PreservationFacts) -> RuleViolation | None:
    """Art. 42 §8: once released, the data are no longer preserved: nothing more is done to the request."""
    if not facts.released:
        return None
    return RuleViolation(
        f"the data of preservation {facts.id} were released: it can no longer be extended, followed up, "
        "decided or released again",
        rule="preservation-released",
        article=ART_42_8,
        values={"preservation_id": facts.id},
    )


def check_not_released(facts: PreservationFacts) -> None:
    """Art. 42 §8: :func:`preservation_released`, refused."""
    refuse(preservation_released(facts))


def follow_up_already_filed(facts: PreservationFacts) -> RuleViolation | None:
    """Art. 42 §8: one follow-up request per preservation; once it is received, the data stay
    preserved until the decision on it, so no extension is needed either."""
    if facts.follow_up_at is None:
        return None
    return RuleViolation(
        f"the follow-up request of preservation {facts.id} was already received "
        f"({format_datetime(facts.follow_up_at)}): the data stay preserved until it is decided (art. 42 §8)",
        rule="follow-up-already-filed",
        article=ART_42_8,
        values={"received_at": format_datetime(facts.follow_up_at)},
    )


def check_no_follow_up_yet(facts: PreservationFacts) -> None:
    """Art. 42 §8: :func:`follow_up_already_filed`, refused."""
    refuse(follow_up_already_filed(facts))


def follow_up_not_filed(facts: PreservationFacts) -> RuleViolation | None:
    """Art. 42 §8: the decision is one on the follow-up request: there must be one, received in time."""
    if follow_up_in_time(facts):
        return None
    return RuleViolation(
        f"preservation {facts.id} has no follow-up request received within its period to decide on",
        rule="follow-up-not-filed",
        article=ART_42_8,
        values={"preservation_id": facts.id},
    )


def follow_up_already_decided(facts: PreservationFacts) -> RuleViolation | None:
    """Art. 42 §8: the follow-up request is decided once."""
    if not facts.decided:
        return None
    return RuleViolation(
        f"the follow-up request of preservation {facts.id} was already decided",
        rule="follow-up-already-decided",
        article=ART_42_8,
        values={"preservation_id": facts.id},
    )


def check_follow_up_decidable(facts: PreservationFacts) -> None:
    """Art. 42 §8: :func:`follow_up_not_filed` and :func:`follow_up_already_decided`, refused."""
    refuse(follow_up_not_filed(facts))
    refuse(follow_up_already_decided(facts))


def check_follow_up_refusal_reasoned(draft: FollowUpDecisionDraft) -> None:
    """Art. 40 §25: a refusal of mutual legal assistance is reasoned: ``domain.rules.check_refusal_reasoned``."""
    check_refusal_reasoned(DecisionDraft.model_construct(decision=draft.decision, reasons=draft.reasons))


def released_too_early(facts: PreservationFacts, at: datetime) -> RuleViolation | None:
    """Art. 42 §8: the data are preserved for the whole period, and once the follow-up request
    arrived, until the decision on it. The violation when released at ``at`` before that, or None."""
    if facts.decided:
        return None
    if follow_up_in_time(facts):
        return RuleViolation(
            f"the follow-up request of preservation {facts.id} awaits a decision: the data stay "
            "preserved until it is decided (art. 42 §8)",
            rule="follow-up-awaiting-decision",
            article=ART_42_8,
            values={"received_at": format_datetime(facts.follow_up_at) if facts.follow_up_at else None},
        )
    if at < facts.expires_at:
        return RuleViolation(
            f"the period of preservation {facts.id} runs until {format_datetime(facts.expires_at)}: the data "
            f"are preserved for at least {MIN_PERIOD_DAYS} days, and as extended (art. 42 §8)",
            rule="preservation-period-running",
            article=ART_42_8,
            values={"expires_at": format_datetime(facts.expires_at), "at": format_datetime(at)},
        )
    return None


def check_release_allowed(facts: PreservationFacts, at: datetime) -> None:
    """Art. 42 §8: :func:`released_too_early`, refused."""
    refuse(released_too_early(facts, at))


# -- audit queries -----------------------------------------------------------------------------

_DURATION = re.compile(r"([0-9]{1,5})([dh])\Z")


def parse_duration(value: Any, field: str) -> timedelta:
    """A duration as auditors write it: a number of days or hours, ``7d`` or ``24h``."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidInput(
            f"{field} must be a number of days or hours, e.g. 7d or 24h; got {value!r}",
            rule="invalid-duration",
            field=field,
            values={"value": value},
        )
    amount = int(match.group(1))
    return timedelta(days=amount) if match.group(2) == "d" else timedelta(hours=amount)
