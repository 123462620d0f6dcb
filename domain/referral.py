"""The third-country referral: executing a request, the requested Party finds that the data
lead to a third country.

The Ministry's letter (docs/DOMAIN.md, "The letter"): when executing a foreign
request reveals IP addresses in a *third* country, that country's police is
informed, and the requesting country is told where to turn. The Convention's
matching rules: art. 43 §1 (the requested Party discloses to the *requesting*
Party enough to identify the provider in another State and the path) and
art. 40 §4 (information sent without a prior request, here to the third
country). One referral records both, in one transaction:

- the **transfer** from the referring Party R to the third Party C, a transfer
  like any other, with its own lineage: R's own finding is a first transfer
  (R is its origin); data R received (``parent_transfer_id``) are an onward
  transfer, and art. 36 §3 applies to them exactly as to any other
  (``domain.rules``: the origin's authorization, or the referral is refused);
- the **notice** from R to the requesting Party A naming C. It carries no
  personal data of its own but its free text and its officers (sealed in
  event format 2).

Each consistency check below is named after what it checks, cites its article,
and returns its violation (or None), so that the application refuses with it
and the read models report a referral written around the application as a
finding with the same text (:func:`domain.rules.refuse`).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Self
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate
from pydantic import AfterValidator, Field

from domain.errors import InvalidInput
from domain.parties import Actor, Official, parse_party, party_name
from domain.personal import ACTOR_LOG, SUBJECT_DATA
from domain.validation import Value, checked
from domain.values import (
    DateTimeText,
    OptionalText,
    Text,
    TransferDraft,
    check_not_in_future,
    format_datetime,
)

ART_43_1 = "art. 43 §1"
ART_40_4 = "art. 40 §4"

_PREFIX = "transfer-ledger:"


def _known_party(value: str) -> str:
    if party_name(value) is None:
        checked(parse_party)(value)
    return value


#: A Party code: ISO 3166-1 alpha-2 or a known international organization.
PartyCode = Annotated[str, Field(min_length=1, max_length=16), AfterValidator(_known_party)]


# -- the input -------------------------------------------------------------------------


class ReferralNoticeDraft(Value):
    """The notice to the requesting Party naming the country to address (art. 43 §1)."""

    NOUN = "notice"

    notified_by: Official = Field(description="Who told the requesting Party: the referring Party's officer")
    recipient: Actor = Field(description="The requesting Party's authority told")
    notified_at: DateTimeText | None = Field(
        default=None, description="RFC 3339 date-time; defaults to the time of recording",
        json_schema_extra={"format": "date-time"})
    text: OptionalText = Field(default=None, max_length=2000, description="What the requesting Party was told")


class ReferralDraft(Value):
    """A referral as the referring Party's recording system submits it (``POST /v1/referrals``)."""

    NOUN = "referral"

    request_reference: Text = Field(min_length=1, max_length=200,
                                    description="The requesting Party's request being executed")
    requesting_party: PartyCode = Field(description="The Party whose request was executed (A)")
    third_party: PartyCode = Field(description="The third country the data lead to (C)")
    finding: Text = Field(min_length=1, max_length=2000,
                          description="What showed that the data lead there (e.g. IP addresses, a provider)")
    transfer: TransferDraft = Field(description="The information given to the third Party: a transfer from the "
                                    "referring Party to it, as POST /v1/transfers takes it")
    notice: ReferralNoticeDraft

    def as_of(self, now: datetime) -> Self:
        """The referral as recorded at ``now``: its transfer and notice made then unless they say when."""
        notice = self.notice
        if notice.notified_at is None:
            notice = notice.model_copy(update={"notified_at": now})
        else:
            check_not_in_future(notice.notified_at, now, "notice.notified_at")
        return self.model_copy(update={"transfer": self.transfer.as_of(now), "notice": notice})


# -- the rules -------------------------------------------------------------------------


def referral_parties_not_distinct(requesting: str, referring: str, third: str) -> InvalidInput | None:
    """Art. 43 §1: a referral names three Parties: the requesting Party A, the requested Party R
    that executed A's request, and the third country C in which the data lead to a provider."""
    values = {"requesting_party": requesting, "referring_party": referring, "third_party": third}
    if requesting == referring:
        return InvalidInput(
            f"{referring} cannot refer a request of its own: the requesting Party is the one whose request "
            "another Party executed", rule="referral-of-own-request", field="requesting_party",
            article=ART_43_1, values=values)
    if third == requesting:
        return InvalidInput(
            f"{third} is the requesting Party, not a third country: data leading back to it are sent to it "
            "(POST /v1/transfers)", rule="third-party-is-requesting-party", field="third_party",
            article=ART_43_1, values=values)
    if third == referring:
        return InvalidInput(
            f"{third} is the referring Party itself, not a third country", rule="third-party-is-referring-party",
            field="third_party", article=ART_43_1, values=values)
    return None


def referral_transfer_not_to_third_party(recipient: str, third: str) -> InvalidInput | None:
    """Art. 40 §4: the information given under a referral goes to the third country it names."""
    if recipient == third:
        return None
    return InvalidInput(
        f"the referral's transfer goes to {recipient}, but the referral names {third} as the third country: "
        "it informs that country's authorities", rule="referral-transfer-not-to-third-party",
        field="transfer.recipient.party", article=ART_40_4, values={"recipient": recipient, "third_party": third})


def referral_not_by_one_party(transfer_sender: str, notified_by: str) -> InvalidInput | None:
    """Art. 43 §1: the Party that executed the request both informs the third country and tells the
    requesting Party: the transfer's sender and the notice's author are one Party."""
    if transfer_sender == notified_by:
        return None
    return InvalidInput(
        f"the notice is given by {notified_by} but the transfer is sent by {transfer_sender}: the referring "
        "Party does both", rule="referral-not-by-one-party", field="notice.notified_by.party",
        article=ART_43_1, values={"sender": transfer_sender, "notified_by": notified_by})


def notice_not_to_requesting_party(notice_recipient: str, requesting: str) -> InvalidInput | None:
    """Art. 43 §1: the notice naming the country to address goes to the requesting Party."""
    if notice_recipient == requesting:
        return None
    return InvalidInput(
        f"the notice goes to {notice_recipient}, but the request was {requesting}'s: the requesting Party is "
        "told where to turn", rule="notice-not-to-requesting-party", field="notice.recipient.party",
        article=ART_43_1, values={"recipient": notice_recipient, "requesting_party": requesting})


def referral_inconsistency(requesting: str, third: str, transfer_sender: str, transfer_recipient: str,
                           notified_by: str, notice_recipient: str) -> InvalidInput | None:
    """The first consistency rule a referral breaks (None: it holds together). The referring Party
    is the transfer's sender; every rule above, in the order a reader checks them."""
    return (referral_parties_not_distinct(requesting, transfer_sender, third)
            or referral_not_by_one_party(transfer_sender, notified_by)
            or referral_transfer_not_to_third_party(transfer_recipient, third)
            or notice_not_to_requesting_party(notice_recipient, requesting))


def check_referral_consistent(draft: ReferralDraft) -> None:
    """Refuse a referral whose Parties do not hold together (before anything is loaded)."""
    violation = referral_inconsistency(
        draft.requesting_party, draft.third_party, draft.transfer.sender.party, draft.transfer.recipient.party,
        draft.notice.notified_by.party, draft.notice.recipient.party)
    if violation is not None:
        raise violation


# -- the aggregate ---------------------------------------------------------------------


def referral_id(transfer_id: UUID | str) -> UUID:
    """The id of the referral a transfer was made under: derived from the transfer's, so the
    transfer names its referral without a lookup, and a transfer has at most one."""
    return uuid5(NAMESPACE_URL, f"urn:transfer-ledger:referral:{transfer_id}")


class Referral(Aggregate):
    """A third-country referral: the transfer to the third Party and the notice to the requesting
    Party, recorded together. Immutable once recorded."""

    TOPIC = _PREFIX + "Referral"

    if TYPE_CHECKING:  # the state its events apply (see domain.model.Transfer)
        _data: dict[str, Any]

    class Event(Aggregate.Event):
        TOPIC = _PREFIX + "Referral.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = _PREFIX + "Referral.Created"

    class Made(Created):
        TOPIC = _PREFIX + "ReferralMade:v1"
        ACTING = "notice.notified_by"
        PERSONAL = {"finding": SUBJECT_DATA, "notice.text": SUBJECT_DATA,
                    "notice.notified_by.officer": ACTOR_LOG, "notice.recipient.officer": ACTOR_LOG}
        request_reference: str
        requesting_party: str
        referring_party: str
        third_party: str
        finding: str
        transfer_id: str
        #: The transfer's lineage as recorded: its parent (None: the referring Party's own finding),
        #: its origin and the origin's grant it was made under.
        parent_transfer_id: str | None
        origin: str
        authorization_id: str | None
        notice: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate._data = {name: getattr(self, name) for name in type(self).__annotations__
                               if not name.startswith("_")}

    @classmethod
    def made(cls, draft: ReferralDraft, transfer_id: UUID, origin: str) -> Referral:
        """The referral ``draft`` describes, made with the transfer ``transfer_id`` (of ``origin``)."""
        notice = draft.notice
        assert notice.notified_at is not None, "a draft as of a time (ReferralDraft.as_of)"
        stored_notice: dict[str, Any] = {"notified_by": notice.notified_by.as_dict(),
                                         "recipient": notice.recipient.as_dict(),
                                         "notified_at": format_datetime(notice.notified_at), "text": notice.text}
        return cls._create(
            cls.Made, id=referral_id(transfer_id), request_reference=draft.request_reference,
            requesting_party=draft.requesting_party, referring_party=draft.transfer.sender.party,
            third_party=draft.third_party, finding=draft.finding, transfer_id=str(transfer_id),
            parent_transfer_id=str(draft.transfer.parent_transfer_id) if draft.transfer.parent_transfer_id else None,
            origin=origin,
            authorization_id=str(draft.transfer.authorization_id) if draft.transfer.authorization_id else None,
            notice=stored_notice,
        )

    @property
    def data(self) -> dict[str, Any]:
        """The recorded fields, as stored."""
        return dict(self._data)

    @property
    def transfer_id(self) -> UUID:
        return UUID(self._data["transfer_id"])

    @property
    def parties(self) -> set[str]:
        """The Parties to the referral: the requesting, the referring and the third."""
        return {self._data["requesting_party"], self._data["referring_party"], self._data["third_party"]}

    @property
    def subject_scope(self) -> UUID:
        """Whose subject data this aggregate's events hold: its transfer's (the finding is about the
        same persons; erasing the transfer's subject data erases it too)."""
        return self.transfer_id
