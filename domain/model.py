"""Aggregates: Transfer, Authorization, PartyPolicy.

Events are named in the past tense and carry plain JSON-ready values (str,
int, bool, lists and dicts of them): their stored form is part of the audit
record, so it is kept explicit and stable. Every event class has an explicit
``TOPIC`` (``transfer-ledger:<Name>:v<N>``): renaming a Python class never
changes what is stored, and a new shape gets a new version.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.domain import Aggregate

from domain.custody import Consent, inherited_restrictions
from domain.parties import Actor
from domain.personal import ACTOR_LOG, SUBJECT_DATA
from domain.regimes import DEFAULT_REGIME
from domain.values import (
    AuthorizationRequestDraft,
    ConsentDecisionDraft,
    ConsentRequestDraft,
    GrantConditions,
    Handling,
    Purpose,
    TransferDraft,
    UseDraft,
    format_datetime,
)

_PREFIX = "transfer-ledger:"


class Transfer(Aggregate):
    """One disclosure of personal data from a sender to a recipient.

    A transfer is immutable once recorded. Its lineage is fixed at recording:
    ``parent_transfer_id`` (None for a first transfer), ``root_transfer_id``,
    ``depth`` (0 at the root) and ``origin``, the sender of the root: the first
    transferring Party of art. 36 §3, which never changes along the lineage.
    """

    TOPIC = _PREFIX + "Transfer"

    if TYPE_CHECKING:  # the state its events apply (declared for type checkers only:
        # annotations on an aggregate class would make eventsourcing derive a constructor)
        _data: dict[str, Any]

    class Event(Aggregate.Event):
        TOPIC = _PREFIX + "Transfer.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = _PREFIX + "Transfer.Created"

    class Recorded(Created):
        TOPIC = _PREFIX + "TransferRecorded:v1"
        #: Who acted (the actor log's Party) and which fields are personal, in which class
        #: (domain/personal.py; stored as commitments in event format 2).
        ACTING = "sender"
        PERSONAL = {
            "subjects": SUBJECT_DATA, "justification": SUBJECT_DATA, "purpose.description": SUBJECT_DATA,
            "sender.officer": ACTOR_LOG, "recipient.officer": ACTOR_LOG, "ordered_by": ACTOR_LOG,
            "urgent.grounds": SUBJECT_DATA, "urgent.why_no_prior_authorization": SUBJECT_DATA,
        }
        sender: dict[str, str]
        recipient: dict[str, str]
        legal_basis: str
        request_reference: str | None
        purpose: dict[str, Any]
        data_categories: list[str]
        subjects: list[str]
        dataset_sha256: str
        item_count: int | None
        handling: dict[str, Any]
        retention_until: str | None
        transferred_at: str
        justification: str | None
        ordered_by: str | None
        parent_transfer_id: str | None
        authorization_id: str | None
        origin: str
        root_transfer_id: str
        depth: int
        origin_requires_written_form: bool
        #: The legal regime (domain/regimes.py); events recorded before regimes read as the Convention's.
        regime: str = DEFAULT_REGIME
        #: LED art. 35(2): the grounds of an onward transfer made without prior authorization.
        urgent: dict[str, Any] | None = None

        def apply(self, aggregate: Any) -> None:
            aggregate._data = {
                name: getattr(self, name)
                for name in type(self).__annotations__
                if not name.startswith("_")
            }
            aggregate._erasure = None
            aggregate._restriction = None
            aggregate._uses = []
            aggregate._urgent_notice = None

    class UrgentTransferNotified(Event):
        """The authorizing State was informed of an onward transfer made without its prior
        authorization under LED art. 35(2)."""

        TOPIC = _PREFIX + "UrgentTransferNotified:v1"
        ACTING = "notified_by"
        PERSONAL = {"notified_by.officer": ACTOR_LOG}
        notified_by: dict[str, str]
        notified_party: str
        notified_at: str

        def apply(self, aggregate: Any) -> None:
            aggregate._urgent_notice = {"notified_by": self.notified_by, "notified_party": self.notified_party,
                                        "notified_at": self.notified_at, "version": self.originator_version}

    class DataUsed(Event):
        """The recipient used the data received (art. 40 §19): in which proceeding, how, under
        which consent of the requested Party, with which notice of an exculpatory use."""

        TOPIC = _PREFIX + "TransferDataUsed:v1"
        ACTING = "used_by"
        PERSONAL = {"description": SUBJECT_DATA, "used_by.officer": ACTOR_LOG,
                    "notice.prior_impossible": SUBJECT_DATA}
        use_id: str
        proceeding: str
        kind: str
        used_by: dict[str, str]
        description: str
        exculpatory: bool
        consent_id: str | None
        notice: dict[str, Any] | None
        used_at: str

        def apply(self, aggregate: Any) -> None:
            aggregate._uses = [*getattr(aggregate, "_uses", []), {
                "id": self.use_id, "proceeding": self.proceeding, "kind": self.kind, "used_by": self.used_by,
                "description": self.description, "exculpatory": self.exculpatory, "consent_id": self.consent_id,
                "notice": self.notice, "used_at": self.used_at, "version": self.originator_version,
            }]

    class UseNoticeGiven(Event):
        """The requested Party was told of an exculpatory use after it (art. 40 §19)."""

        TOPIC = _PREFIX + "UseNoticeGiven:v1"
        ACTING = "notified_by"
        PERSONAL = {"notified_by.officer": ACTOR_LOG}
        use_id: str
        notified_by: dict[str, str]
        notified_at: str

        def apply(self, aggregate: Any) -> None:
            aggregate._uses = [
                {**use, "notice": {**(use["notice"] or {}), "notified_at": self.notified_at,
                                   "notified_by": self.notified_by, "after_version": self.originator_version}}
                if use["id"] == self.use_id else use
                for use in getattr(aggregate, "_uses", [])
            ]

    class PersonalDataErased(Event):
        """The transfer's personal data of one retention class were destroyed (Order 949 §15):
        the data keys named were destroyed with this event's commit; the commitments stay."""

        TOPIC = _PREFIX + "PersonalDataErased:v1"
        ACTING = "erased_by"
        PERSONAL = {"erased_by.officer": ACTOR_LOG, "reasons": ACTOR_LOG}
        retention_class: str
        ground: str
        erased_by: dict[str, str]
        reasons: str
        key_ids: list[str]
        erased: list[dict[str, Any]]
        #: The Parties told of the erasure, each with its notice's id (domain.personal.notice_parties).
        notices: list[dict[str, str]]

        def apply(self, aggregate: Any) -> None:
            if self.retention_class == SUBJECT_DATA:
                aggregate._erasure = {
                    "ground": self.ground, "erased_by": self.erased_by, "reasons": self.reasons,
                    "key_ids": list(self.key_ids), "erased_at": self.timestamp, "version": self.originator_version,
                    "notices": [dict(n) for n in self.notices],
                }
                aggregate._acknowledged = {}

    class NoticeAcknowledged(Event):
        """A Party told of an erasure says it received the notice (and erases its own copies)."""

        TOPIC = _PREFIX + "ErasureNoticeAcknowledged:v1"
        ACTING = "acknowledged_by"
        PERSONAL = {"acknowledged_by.officer": ACTOR_LOG}
        notice_id: str
        acknowledged_by: dict[str, str]

        def apply(self, aggregate: Any) -> None:
            aggregate._acknowledged = {**getattr(aggregate, "_acknowledged", {}), self.notice_id: {
                "acknowledged_by": self.acknowledged_by, "acknowledged_at": self.timestamp,
                "version": self.originator_version}}

    class ProcessingRestricted(Event):
        """An evidence hold: the transfer's personal data are kept, not erased (LED art. 16(3))."""

        TOPIC = _PREFIX + "ProcessingRestricted:v1"
        ACTING = "restricted_by"
        PERSONAL = {"restricted_by.officer": ACTOR_LOG, "reasons": ACTOR_LOG}
        restricted_by: dict[str, str]
        reasons: str

        def apply(self, aggregate: Any) -> None:
            aggregate._restriction = {
                "restricted_by": self.restricted_by, "reasons": self.reasons,
                "restricted_at": self.timestamp, "version": self.originator_version,
            }

    class RestrictionLifted(Event):
        TOPIC = _PREFIX + "RestrictionLifted:v1"
        ACTING = "lifted_by"
        PERSONAL = {"lifted_by.officer": ACTOR_LOG, "reasons": ACTOR_LOG}
        lifted_by: dict[str, str]
        reasons: str

        def apply(self, aggregate: Any) -> None:
            aggregate._restriction = None

    @classmethod
    def record(cls, draft: TransferDraft, parent: Transfer | None, origin: str,
               transfer_id: UUID | None = None) -> Transfer:
        """The transfer ``draft`` describes (as of its ``transferred_at``), with its lineage:
        ``parent`` (None for a first transfer) and ``origin``, as the art. 36 §3 rules found them."""
        transfer_id = transfer_id or uuid4()
        handling = draft.handling or Handling()
        if parent is not None:  # restrictions and confidentiality are inherited, never dropped (domain/custody.py)
            handling = handling.model_copy(update={
                "use_restrictions": inherited_restrictions(parent.handling.use_restrictions, handling.use_restrictions),
                "confidential": handling.confidential or parent.handling.confidential,
            })
        assert draft.transferred_at is not None, "a draft as of a time (TransferDraft.as_of)"
        return cls._create(
            cls.Recorded,
            id=transfer_id,
            sender=draft.sender.as_dict(),
            recipient=draft.recipient.as_dict(),
            legal_basis=draft.legal_basis,
            request_reference=draft.request_reference,
            purpose=draft.purpose.as_dict(),
            data_categories=list(draft.data_categories),
            subjects=list(draft.subjects),
            dataset_sha256=draft.dataset_sha256,
            item_count=draft.item_count,
            handling=handling.as_dict(),
            retention_until=draft.retention_until.isoformat() if draft.retention_until else None,
            transferred_at=format_datetime(draft.transferred_at),
            justification=draft.justification,
            ordered_by=draft.ordered_by,
            parent_transfer_id=str(parent.id) if parent else None,
            authorization_id=str(draft.authorization_id) if draft.authorization_id else None,
            origin=origin,
            root_transfer_id=str(parent.root_transfer_id if parent else transfer_id),
            depth=parent.depth + 1 if parent else 0,
            origin_requires_written_form=(
                (parent.origin_requires_written_form if parent else False)
                or (draft.sender.party == origin and handling.written_authorization_required)
            ),
            regime=draft.regime,
            urgent=draft.urgent.model_dump(mode="json") if draft.urgent else None,
        )

    @property
    def data(self) -> dict[str, Any]:
        """The recorded fields, as stored."""
        return dict(self._data)

    @property
    def sender(self) -> Actor:
        return Actor.from_dict(self._data["sender"])

    @property
    def recipient(self) -> Actor:
        return Actor.from_dict(self._data["recipient"])

    @property
    def data_categories(self) -> tuple[str, ...]:
        return tuple(self._data["data_categories"])

    @property
    def purpose(self) -> Purpose:
        return Purpose.from_dict(self._data["purpose"])

    @property
    def handling(self) -> Handling:
        return Handling.from_dict(self._data["handling"])

    @property
    def origin(self) -> str:
        return str(self._data["origin"])

    @property
    def parent_transfer_id(self) -> UUID | None:
        parent = self._data["parent_transfer_id"]
        return UUID(parent) if parent else None

    @property
    def root_transfer_id(self) -> UUID:
        return UUID(self._data["root_transfer_id"])

    @property
    def depth(self) -> int:
        return int(self._data["depth"])

    @property
    def authorization_id(self) -> UUID | None:
        auth = self._data["authorization_id"]
        return UUID(auth) if auth else None

    @property
    def origin_requires_written_form(self) -> bool:
        return bool(self._data["origin_requires_written_form"])

    @property
    def recorded_at(self) -> datetime:
        return self.created_on

    @property
    def subject_scope(self) -> UUID:
        """Whose subject data this aggregate's events hold: the transfer's own."""
        return self.id

    @property
    def erasure(self) -> dict[str, Any] | None:
        """The erasure of the transfer's subject data, if any."""
        erasure = getattr(self, "_erasure", None)
        return dict(erasure) if erasure else None

    @property
    def restriction(self) -> dict[str, Any] | None:
        """The evidence hold on the transfer's data, if any."""
        restriction = getattr(self, "_restriction", None)
        return dict(restriction) if restriction else None

    @property
    def urgent_notice(self) -> dict[str, Any] | None:
        """LED art. 35(2): when and by whom the authorizing State was informed of this urgent transfer."""
        notice = getattr(self, "_urgent_notice", None)
        return dict(notice) if notice else None

    def notify_urgent_transfer(self, notified_by: Actor, notified_at: datetime) -> None:
        self.trigger_event(self.UrgentTransferNotified, notified_by=notified_by.as_dict(), notified_party=self.origin,
                           notified_at=format_datetime(notified_at))

    @property
    def uses(self) -> list[dict[str, Any]]:
        """The recorded uses of the data, in order (art. 40 §19)."""
        return [dict(use) for use in getattr(self, "_uses", [])]

    def record_use(self, draft: UseDraft) -> str:
        """Record a use the rules allowed; its id."""
        assert draft.used_at is not None, "a draft as of a time (UseDraft.as_of)"
        use_id = str(uuid4())
        self.trigger_event(
            self.DataUsed, use_id=use_id, proceeding=draft.proceeding, kind=draft.kind,
            used_by=draft.used_by.as_dict(), description=draft.description, exculpatory=draft.exculpatory,
            consent_id=str(draft.consent_id) if draft.consent_id else None,
            notice=draft.notice.model_dump(mode="json") if draft.notice else None,
            used_at=format_datetime(draft.used_at),
        )
        return use_id

    def give_use_notice(self, use_id: str, notified_by: Actor, notified_at: datetime) -> None:
        self.trigger_event(self.UseNoticeGiven, use_id=use_id, notified_by=notified_by.as_dict(),
                           notified_at=format_datetime(notified_at))

    def erase(self, retention_class: str, ground: str, erased_by: Actor, reasons: str,
              key_ids: list[str], erased: list[dict[str, Any]], notify: list[str]) -> None:
        """Record the erasure; ``notify``: the Parties to tell (each gets a notice id)."""
        self.trigger_event(
            self.PersonalDataErased, retention_class=retention_class, ground=ground,
            erased_by=erased_by.as_dict(), reasons=reasons, key_ids=list(key_ids), erased=erased,
            notices=[{"notice_id": str(notice_id(self.id, party)), "party": party} for party in notify],
        )

    @property
    def acknowledged(self) -> dict[str, dict[str, Any]]:
        """The erasure notices acknowledged, by notice id."""
        return dict(getattr(self, "_acknowledged", {}))

    def acknowledge_notice(self, notice: str, acknowledged_by: Actor) -> None:
        self.trigger_event(self.NoticeAcknowledged, notice_id=notice, acknowledged_by=acknowledged_by.as_dict())

    def restrict(self, restricted_by: Actor, reasons: str) -> None:
        self.trigger_event(self.ProcessingRestricted, restricted_by=restricted_by.as_dict(), reasons=reasons)

    def lift_restriction(self, lifted_by: Actor, reasons: str) -> None:
        self.trigger_event(self.RestrictionLifted, lifted_by=lifted_by.as_dict(), reasons=reasons)


class Authorization(Aggregate):
    """The origin's authorization of an onward transfer (art. 36 §3).

    Its life: a request is recorded first (``pending``: the holder's
    notification of intention); the origin grants it with conditions or
    refuses it with reasons; a grant may be revoked. Each onward transfer made
    under a grant is a ``Used`` event, saved atomically with the transfer, so
    that the grant's version orders uses and revocation: whichever commits
    first wins. The grant's id is the request's id.
    """

    TOPIC = _PREFIX + "Authorization"

    if TYPE_CHECKING:  # the state its events apply (see Transfer)
        status: str
        uses: list[str]
        _request: dict[str, Any]
        _decision: dict[str, Any] | None
        _revocation: dict[str, Any] | None

    class Event(Aggregate.Event):
        TOPIC = _PREFIX + "Authorization.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = _PREFIX + "Authorization.Created"

    class Requested(Created):
        TOPIC = _PREFIX + "AuthorizationRequested:v1"
        ACTING = "requested_by"
        PERSONAL = {
            "justification": SUBJECT_DATA, "purpose.description": SUBJECT_DATA,
            "requested_by.officer": ACTOR_LOG, "recipient.officer": ACTOR_LOG,
        }
        parent_transfer_id: str
        requested_by: dict[str, str]
        recipient: dict[str, str]
        purpose: dict[str, Any]
        data_categories: list[str]
        justification: str
        origin: str
        root_transfer_id: str

        def apply(self, aggregate: Any) -> None:
            aggregate._request = {
                name: getattr(self, name) for name in type(self).__annotations__
            }
            aggregate.status = "pending"
            aggregate._decision = None
            aggregate._revocation = None
            aggregate.uses = []

    class Granted(Event):
        TOPIC = _PREFIX + "AuthorizationGranted:v1"
        ACTING = "decided_by"
        PERSONAL = {"reasons": SUBJECT_DATA, "conditions.purpose.description": SUBJECT_DATA,
                    "decided_by.officer": ACTOR_LOG}
        origin: str
        decided_by: dict[str, str]
        conditions: dict[str, Any]
        reasons: str | None
        signature: dict[str, str] | None

        def apply(self, aggregate: Any) -> None:
            aggregate.status = "granted"
            aggregate._decision = {
                "decision": "granted",
                "decided_by": self.decided_by,
                "conditions": self.conditions,
                "reasons": self.reasons,
                "signature": self.signature,
                "decided_at": self.timestamp,
            }

    class Refused(Event):
        TOPIC = _PREFIX + "AuthorizationRefused:v1"
        ACTING = "decided_by"
        PERSONAL = {"reasons": SUBJECT_DATA, "decided_by.officer": ACTOR_LOG}
        origin: str
        decided_by: dict[str, str]
        reasons: str
        signature: dict[str, str] | None

        def apply(self, aggregate: Any) -> None:
            aggregate.status = "refused"
            aggregate._decision = {
                "decision": "refused",
                "decided_by": self.decided_by,
                "conditions": None,
                "reasons": self.reasons,
                "signature": self.signature,
                "decided_at": self.timestamp,
            }

    class Revoked(Event):
        TOPIC = _PREFIX + "AuthorizationRevoked:v1"
        ACTING = "revoked_by"
        PERSONAL = {"reasons": SUBJECT_DATA, "revoked_by.officer": ACTOR_LOG}
        revoked_by: dict[str, str]
        reasons: str

        def apply(self, aggregate: Any) -> None:
            aggregate.status = "revoked"
            aggregate._revocation = {
                "revoked_by": self.revoked_by,
                "reasons": self.reasons,
                "revoked_at": self.timestamp,
            }

    class Used(Event):
        TOPIC = _PREFIX + "AuthorizationUsed:v1"
        transfer_id: str

        def apply(self, aggregate: Any) -> None:
            aggregate.uses.append(self.transfer_id)

    @classmethod
    def requested(cls, draft: AuthorizationRequestDraft, parent: Transfer) -> Authorization:
        """The holder's request ``draft`` to pass ``parent``'s data on, addressed to its origin."""
        return cls._create(
            cls.Requested,
            id=uuid4(),
            parent_transfer_id=str(parent.id),
            requested_by=draft.requested_by.as_dict(),
            recipient=draft.recipient.as_dict(),
            purpose=draft.purpose.as_dict(),
            data_categories=list(draft.data_categories),
            justification=draft.justification,
            origin=parent.origin,
            root_transfer_id=str(parent.root_transfer_id),
        )

    @property
    def subject_scope(self) -> UUID:
        """Whose subject data this aggregate's events hold: the transfer whose data it would pass on."""
        return self.parent_transfer_id

    @property
    def request(self) -> dict[str, Any]:
        return dict(self._request)

    @property
    def decision(self) -> dict[str, Any] | None:
        return dict(self._decision) if self._decision else None

    @property
    def revocation(self) -> dict[str, Any] | None:
        return dict(self._revocation) if self._revocation else None

    @property
    def origin(self) -> str:
        return str(self._request["origin"])

    @property
    def holder(self) -> str:
        return str(self._request["requested_by"]["party"])

    @property
    def recipient(self) -> Actor:
        return Actor.from_dict(self._request["recipient"])

    @property
    def parent_transfer_id(self) -> UUID:
        return UUID(self._request["parent_transfer_id"])

    @property
    def requested_categories(self) -> tuple[str, ...]:
        return tuple(self._request["data_categories"])

    @property
    def requested_purpose(self) -> Purpose:
        return Purpose.from_dict(self._request["purpose"])

    @property
    def granted_by(self) -> str | None:
        if self._decision is None or self._decision["decision"] != "granted":
            return None
        return str(self._decision["decided_by"]["party"])

    @property
    def conditions(self) -> GrantConditions | None:
        if self._decision is None or self._decision["conditions"] is None:
            return None
        return GrantConditions.from_dict(self._decision["conditions"])

    @property
    def decision_signed(self) -> bool:
        """Whether the decision carries the origin's verified signature."""
        return bool(self._decision and self._decision.get("signature"))

    def grant(
        self, decided_by: Actor, conditions: GrantConditions, reasons: str | None,
        signature: dict[str, str] | None = None,
    ) -> None:
        self.trigger_event(
            self.Granted,
            origin=self.origin,
            decided_by=decided_by.as_dict(),
            conditions=conditions.as_dict(),
            reasons=reasons,
            signature=signature,
        )

    def refuse(self, decided_by: Actor, reasons: str, signature: dict[str, str] | None = None) -> None:
        self.trigger_event(
            self.Refused, origin=self.origin, decided_by=decided_by.as_dict(), reasons=reasons,
            signature=signature,
        )

    def revoke(self, revoked_by: Actor, reasons: str) -> None:
        self.trigger_event(self.Revoked, revoked_by=revoked_by.as_dict(), reasons=reasons)

    def record_use(self, transfer_id: UUID) -> None:
        self.trigger_event(self.Used, transfer_id=str(transfer_id))


class ConsentRequest(Aggregate):
    """The recipient's request for the requested Party's consent to use received data in another
    proceeding, or as evidence under H1 (art. 40 §19); decided once by the transfer's sender,
    granted with conditions or refused with reasons (art. 40 §25). A consent covers its transfer,
    its proceeding and the kinds of use it names, nothing else."""

    TOPIC = _PREFIX + "ConsentRequest"

    if TYPE_CHECKING:  # the state its events apply (see Transfer)
        status: str
        transfers: list[str]
        _request: dict[str, Any]
        _decision: dict[str, Any] | None

    class Event(Aggregate.Event):
        TOPIC = _PREFIX + "ConsentRequest.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = _PREFIX + "ConsentRequest.Created"

    class Requested(Created):
        TOPIC = _PREFIX + "ConsentRequested:v1"
        ACTING = "requested_by"
        PERSONAL = {"reasons": SUBJECT_DATA, "requested_by.officer": ACTOR_LOG}
        transfer_id: str
        sender: str
        proceeding: str
        uses: list[str]
        recipient: dict[str, str] | None
        requested_by: dict[str, str]
        reasons: str

        def apply(self, aggregate: Any) -> None:
            aggregate._request = {name: getattr(self, name) for name in type(self).__annotations__}
            aggregate.status = "pending"
            aggregate._decision = None
            aggregate.transfers = []

    class Decided(Event):
        TOPIC = _PREFIX + "ConsentDecided:v1"
        ACTING = "decided_by"
        PERSONAL = {"reasons": SUBJECT_DATA, "conditions": SUBJECT_DATA, "decided_by.officer": ACTOR_LOG}
        decision: str
        decided_by: dict[str, str]
        conditions: list[str]
        reasons: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.status = self.decision
            aggregate._decision = {"decision": self.decision, "decided_by": self.decided_by,
                                   "conditions": self.conditions, "reasons": self.reasons,
                                   "decided_at": self.timestamp, "version": self.originator_version}

    class Used(Event):
        """An onward transfer of H2 data was made under the consent (saved with it, before it)."""

        TOPIC = _PREFIX + "ConsentUsed:v1"
        transfer_id: str

        def apply(self, aggregate: Any) -> None:
            aggregate.transfers = [*getattr(aggregate, "transfers", []), self.transfer_id]

    @classmethod
    def requested(cls, draft: ConsentRequestDraft, transfer: Transfer) -> ConsentRequest:
        return cls._create(
            cls.Requested, id=uuid4(), transfer_id=str(transfer.id), sender=transfer.sender.party,
            proceeding=draft.proceeding, uses=list(draft.uses),
            recipient=draft.recipient.as_dict() if draft.recipient else None,
            requested_by=draft.requested_by.as_dict(), reasons=draft.reasons,
        )

    def record_use(self, transfer_id: UUID) -> None:
        self.trigger_event(self.Used, transfer_id=str(transfer_id))

    def decide(self, draft: ConsentDecisionDraft) -> None:
        self.trigger_event(self.Decided, decision=draft.decision, decided_by=draft.decided_by.as_dict(),
                           conditions=list(draft.conditions) if draft.decision == "granted" else [],
                           reasons=draft.reasons)

    @property
    def subject_scope(self) -> UUID:
        """Whose subject data this aggregate's events hold: the transfer whose use it asks."""
        return self.transfer_id

    @property
    def transfer_id(self) -> UUID:
        return UUID(self._request["transfer_id"])

    @property
    def sender(self) -> str:
        return str(self._request["sender"])

    @property
    def request(self) -> dict[str, Any]:
        return dict(self._request)

    @property
    def decision(self) -> dict[str, Any] | None:
        return dict(self._decision) if self._decision else None

    def as_rule_input(self) -> Consent:
        recipient = self._request.get("recipient")
        return Consent(str(self.id), self._request["transfer_id"], self.status, self._request["proceeding"],
                       tuple(self._request["uses"]), recipient["party"] if recipient else None)


class PartyPolicy(Aggregate):
    """A Party's standing policy, e.g. that it requires authorizations in writing.

    One aggregate per Party, with a deterministic id (:func:`party_policy_id`).
    """

    TOPIC = _PREFIX + "PartyPolicy"

    if TYPE_CHECKING:  # the state its events apply (see Transfer)
        party: str
        written_authorization_required: bool
        justification_required: bool
        keys: dict[str, str]

    class Event(Aggregate.Event):
        TOPIC = _PREFIX + "PartyPolicy.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = _PREFIX + "PartyPolicy.Created"

    class Registered(Created):
        TOPIC = _PREFIX + "PartyPolicyRegistered:v1"
        party: str

        def apply(self, aggregate: Any) -> None:
            aggregate.party = self.party
            aggregate.written_authorization_required = False
            aggregate.justification_required = False
            aggregate.keys = {}

    class WrittenFormRequirementSet(Event):
        TOPIC = _PREFIX + "WrittenFormRequirementSet:v1"
        ACTING = "set_by"
        PERSONAL = {"set_by.officer": ACTOR_LOG}
        required: bool
        set_by: dict[str, str]

        def apply(self, aggregate: Any) -> None:
            aggregate.written_authorization_required = self.required

    class JustificationRequirementSet(Event):
        """Whether every read of personal data by the Party's principals must give its
        justification (LED 2016/680 art. 25(1); ``domain.consultation``)."""

        TOPIC = _PREFIX + "JustificationRequirementSet:v1"
        ACTING = "set_by"
        PERSONAL = {"set_by.officer": ACTOR_LOG}
        required: bool
        set_by: dict[str, str]

        def apply(self, aggregate: Any) -> None:
            aggregate.justification_required = self.required

    class KeyRegistered(Event):
        """The Party registers an Ed25519 verifier key (C2SP vkey) for signed decisions."""

        TOPIC = _PREFIX + "PartyKeyRegistered:v1"
        ACTING = "registered_by"
        PERSONAL = {"registered_by.officer": ACTOR_LOG}
        party: str
        vkey: str
        key: str
        registered_by: dict[str, str]

        def apply(self, aggregate: Any) -> None:
            aggregate.keys = {**getattr(aggregate, "keys", {}), self.key: self.vkey}

    @property
    def subject_scope(self) -> None:
        """A policy holds no data subject's data."""
        return None

    def register_key(self, vkey: str, key: str, registered_by: Actor) -> None:
        """``key`` is the vkey's ``name+id`` reference, under which signatures name it."""
        self.trigger_event(
            self.KeyRegistered, party=self.party, vkey=vkey, key=key, registered_by=registered_by.as_dict()
        )

    def set_written_form_requirement(self, required: bool, set_by: Actor) -> None:
        self.trigger_event(
            self.WrittenFormRequirementSet, required=required, set_by=set_by.as_dict()
        )

    def set_justification_requirement(self, required: bool, set_by: Actor) -> None:
        self.trigger_event(self.JustificationRequirementSet, required=required, set_by=set_by.as_dict())


class ActorLog(Aggregate):
    """The log of who acted (officers, ``ordered_by``) of every event due on one day (LED art. 25).

    One aggregate per day, with a deterministic id (:func:`actor_log_id`): its one event records
    the destruction of that day's actor-log data key when the period has ended.
    """

    TOPIC = _PREFIX + "ActorLog"

    class Event(Aggregate.Event):
        TOPIC = _PREFIX + "ActorLog.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = _PREFIX + "ActorLog.Created"

    class Erased(Created):
        """The actor log due on ``until`` was destroyed (LED art. 25 period ended; Order 949 §15):
        ``key_ids`` destroyed, ``erased`` the commitments by event; ``kept`` the events under an
        evidence hold, whose openings were sealed again under a key of their own first."""

        TOPIC = _PREFIX + "ActorLogErased:v1"
        until: str
        ground: str
        key_ids: list[str]
        erased: list[dict[str, Any]]
        kept: list[dict[str, Any]]

        def apply(self, aggregate: Any) -> None:
            aggregate.until = self.until

    @classmethod
    def erased(cls, until: str, key_ids: list[str], erased: list[dict[str, Any]],
               kept: list[dict[str, Any]]) -> ActorLog:
        return cls._create(cls.Erased, id=actor_log_id(until), until=until, ground="retention-expired",
                           key_ids=key_ids, erased=erased, kept=kept)


def actor_log_id(until: str) -> UUID:
    """The id of the actor log due on a day."""
    return uuid5(NAMESPACE_URL, f"urn:transfer-ledger:actor-log:{until}")


def notice_id(transfer_id: UUID, party: str) -> UUID:
    """The id of the notice of a transfer's erasure to a Party: stable, derived from both."""
    return uuid5(NAMESPACE_URL, f"urn:transfer-ledger:erasure-notice:{transfer_id}:{party}")


def party_policy_id(party: str) -> UUID:
    """The id of a Party's policy aggregate: stable, derived from the code."""
    return uuid5(NAMESPACE_URL, f"urn:transfer-ledger:party-policy:{party}")
