"""The read models' logic, pure: ``apply(state, event)`` changes records and
collects the rows a batch adds.

Nothing here does I/O. :class:`State` holds the records the logic reads (a
transfer, an authorization, a Party's policy, each by its key) and collects
what the events change: new transfers, changed authorizations and policies,
uses, findings and statistics increments. The same function serves the live
runner (records from the database, changes written with the position in one
transaction), the rebuild (the same, from leaf 0) and the replay "as of"
(records in an in-memory database). A lookup that misses asks ``loader``
(the runner pre-loads each batch's records, so it rarely does).

Findings raised here are the ones an event proves on its own, at its place in
the ledger (event-driven):

``onward-transfer-not-authorized`` (art. 36 §3)
    an onward transfer that needs the origin's authorization and has no grant
    covering it *at its time*: ``domain.rules.onward_transfer_not_covered``,
    the very function the application refuses with, its rule the finding's
    reason. The application never records such a transfer, so one in the
    feed was written around it.
``lineage-inconsistent`` (art. 36 §3)
    a transfer whose recorded lineage does not hold: unknown parent, origin,
    root or depth not the parent's, sender not the parent's recipient
    (``domain.rules.holder_not_recipient``), categories the holder did not
    receive (``domain.rules.categories_not_received``).
``flow-after-revocation`` (art. 36 §3)
    data passed on (an onward transfer that needs authorization) after the
    origin revoked a grant that an earlier hop of the same data travelled
    under, unless the origin granted this hop after that revocation.
``onward-transfer-after-retention`` (Order 949 §12, §15)
    data passed on after the retention date of the transfer that brought
    them to the holder.
``referral-inconsistent`` (art. 43 §1, art. 40 §4)
    a third-country referral whose recorded transfer is unknown or does not go
    from the referring Party to the third country it names, or whose Parties
    do not hold together: ``domain.referral.referral_inconsistency``, the
    function the application refuses with.
``malformed-event`` (ledger integrity)
    an event of a known topic whose state lacks the fields of that topic.

The time-dependent findings (a request pending past a deadline, a retention
date passed) depend on "now" and are computed when asked
(``projections.queries``), from these records.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import msgspec
from msgspec.structs import astuple

from domain.custody import HANDLING, restrictions_dropped
from domain.model import party_policy_id
from domain.referral import ART_43_1, referral_inconsistency
from domain.regimes import urgent_exception_problem
from domain.rules import (
    Grant,
    OnwardTransfer,
    authorization_required,
    categories_not_received,
    holder_not_recipient,
    onward_transfer_not_covered,
)
from projections.control import CONTROL_RULES
from projections.control import HANDLERS as CONTROL_HANDLERS
from projections.custody import HANDLERS as CUSTODY_HANDLERS
from projections.custody import h2_problem
from projections.events import (
    ERASED,
    GRANTED,
    NOTICE_ACKNOWLEDGED,
    POLICY_REGISTERED,
    REFERRAL_MADE,
    REFUSED,
    REQUESTED,
    REVOKED,
    TRANSFER_RECORDED,
    USED,
    WRITTEN_FORM_SET,
    FeedEvent,
    GrantedState,
    NoticeAcknowledgedState,
    PersonalDataErasedState,
    ReferralMadeState,
    RefusedState,
    RequestedState,
    RevokedState,
    TransferRecordedState,
    Undecodable,
    evidence,
    norm_time,
    seconds_between,
    time_of,
)
from projections.preservation import HANDLERS as PRESERVATION_HANDLERS
from projections.preservation import PRESERVATION_RULES, PreservationRec

ART_36_3 = "art. 36 §3"
ART_40_19 = "art. 40 §19"
ORDER_949_RETENTION = "Order 949 §12, §15"

#: rule -> (article, title). Every finding names its rule and article.
RULES: dict[str, tuple[str, str]] = {
    "onward-transfer-not-authorized": (
        ART_36_3, "Onward transfer without a covering authorization of the first transferring Party"),
    "lineage-inconsistent": (ART_36_3, "Transfer whose recorded lineage does not hold"),
    "flow-after-revocation": (
        ART_36_3, "Data passed on after the origin revoked an authorization they travelled under"),
    "onward-transfer-after-retention": (ORDER_949_RETENTION, "Data passed on after their retention date"),
    "request-pending-too-long": (
        ART_36_3, "Authorization request left undecided longer than the audit deadline"),
    "retention-period-expired": (
        ORDER_949_RETENTION, "Retention date passed: the recipient's destruction of the data is to be confirmed"),
    "erasure-notice-unacknowledged": (
        ORDER_949_RETENTION, "A Party told of an erasure has not acknowledged it within the audit deadline"),
    "referral-inconsistent": (
        ART_43_1, "Third-country referral whose transfer or Parties do not match what it names"),
    "malformed-event": ("ledger integrity", "Event whose stored state lacks the fields of its topic"),
    "handling-restrictions-dropped": (HANDLING, "Onward transfer without the handling restrictions its parent carried"),
    "onward-transfer-without-h2-consent": (HANDLING, "Onward transfer of H2 data without the consent of the Party "
                                                     "that sent them"),
    "urgent-notice-overdue": ("LED art. 35(2)", "Urgent onward transfer whose authorizing State was not informed "
                                                "without delay"),
    "use-without-consent": (ART_40_19, "Use of received data that needed the requested Party's prior consent"),
    "use-by-other-party": (ART_40_19, "Use of received data recorded by a Party that did not receive them"),
    "exculpatory-notice-missing": (ART_40_19, "Exculpatory use in another proceeding with neither prior notice nor "
                                              "a reason why it was impossible"),
    "exculpatory-notice-overdue": (ART_40_19, "Exculpatory use whose notice after it came late or not at all"),
}
RULES.update(PRESERVATION_RULES)  # art. 42 (projections/preservation.py)
RULES.update(CONTROL_RULES)  # Order 949 annex 3 (projections/control.py)

#: How long a grant's ``valid_until`` is given, in the event's own timestamp, for the
#: moment between the application's check and the event's creation (seconds).
EXPIRY_GRACE_SECONDS = 1.0


class TransferRec(msgspec.Struct, gc=False):
    """A transfer as the read models keep it (table ``proj_transfers``).

    ``origin``, ``root_id``, ``root_leaf`` and ``depth`` are those of the
    lineage its parent links make (the values the event claims are checked
    against them). Records hold only text and numbers: no reference cycles,
    so the garbage collector need not track them (``gc=False``).
    """

    id: str
    leaf_index: int
    recorded_at: str
    transferred_at: str
    sender: str
    sender_authority: str | None
    recipient: str
    recipient_authority: str | None
    origin: str
    parent_id: str | None
    root_id: str
    root_leaf: int  # the root's leaf index: a lineage's transfers are stored together, in ledger order
    depth: int
    authorization_id: str | None
    legal_basis: str
    categories: str  # comma-separated
    proceeding: str | None
    retention_until: str | None  # YYYY-MM-DD
    written_form: int
    item_count: int | None
    restrictions: str | None = None  # handling.use_restrictions, JSON (None: none)
    regime: str = "un-cybercrime"
    urgent: int = 0  # made without prior authorization under LED art. 35(2)

    def row(self) -> tuple[Any, ...]:
        return astuple(self)

    @classmethod
    def from_row(cls, row: Iterable[Any]) -> TransferRec:
        return cls(*row)

    @property
    def restriction_list(self) -> list[str]:
        return json.loads(self.restrictions) if self.restrictions else []


class AuthRec(msgspec.Struct, gc=False):
    """An authorization request and its life (table ``proj_authorizations``)."""

    id: str
    status: str
    origin: str
    holder: str
    holder_authority: str | None
    recipient: str
    recipient_authority: str | None
    parent_id: str
    root_id: str | None
    categories: str
    proceeding: str | None
    justification: str | None
    requested_at: str
    requested_leaf: int
    decided_at: str | None = None
    decided_leaf: int | None = None
    decided_by: str | None = None
    reasons: str | None = None
    conditions: str | None = None  # JSON
    valid_until: str | None = None
    max_transfers: int | None = None
    granted_categories: str | None = None
    granted_proceeding: str | None = None
    instrument: int = 0
    signed: int = 0
    uses: int = 0  # AuthorizationUsed events
    named: int = 0  # transfers that named it
    revoked_at: str | None = None
    revoked_leaf: int | None = None
    revoked_by: str | None = None
    revocation_reasons: str | None = None
    decide_seconds: float | None = None

    def row(self) -> tuple[Any, ...]:
        return astuple(self)

    @classmethod
    def from_row(cls, row: Iterable[Any]) -> AuthRec:
        return cls(*row)

    @property
    def month(self) -> str:
        return self.requested_at[:7]


TRANSFER_COLUMNS: tuple[str, ...] = TransferRec.__struct_fields__
AUTH_COLUMNS: tuple[str, ...] = AuthRec.__struct_fields__


class PolicyRec:
    """A Party's standing policy (table ``proj_policies``)."""

    __slots__ = COLUMNS = ("party", "written_required", "leaf_index")

    def __init__(self, party: str, written_required: int, leaf_index: int) -> None:
        self.party, self.written_required, self.leaf_index = party, written_required, leaf_index

    def row(self) -> tuple[Any, ...]:
        return (self.party, self.written_required, self.leaf_index)


Loader = Callable[[str], Any]


class State:
    """The records the logic reads, and the changes of the events applied so far.

    ``transfers``, ``authorizations`` and ``policies`` map keys to records
    (the runner passes its caches); a key missing there is asked of the
    loaders once (None: it does not exist).
    """

    def __init__(
        self,
        transfers: dict[str, TransferRec | None],
        authorizations: dict[str, AuthRec | None],
        policies: dict[str, PolicyRec],
        *,
        load_transfer: Loader | None = None,
        load_authorization: Loader | None = None,
        consents: dict[str, Any] | None = None,
        load_consent: Loader | None = None,
        preservations: dict[str, PreservationRec | None] | None = None,
        load_preservation: Loader | None = None,
    ) -> None:
        self.transfers = transfers
        self.authorizations = authorizations
        self.policies = policies
        self._load_transfer = load_transfer
        self._load_authorization = load_authorization
        #: Consent requests (projections.custody.ConsentRec) by id, and their loader.
        self.consents: dict[str, Any] = consents if consents is not None else {}
        self._load_consent = load_consent
        self.preservations = preservations if preservations is not None else {}
        self._load_preservation = load_preservation
        self.misses = 0
        # changes
        self.new_transfers: list[TransferRec] = []
        self.dirty_authorizations: dict[str, AuthRec] = {}
        self.dirty_policies: dict[str, PolicyRec] = {}
        self.dirty_preservations: dict[str, PreservationRec] = {}
        self.uses: list[tuple[str, str, int]] = []
        self.erasures: list[tuple[str, str, str, int]] = []  # transfer, class, erased_at, leaf
        self.notices: list[tuple[str, str, str, str, int]] = []  # id, transfer, party, erased_at, leaf
        self.acknowledgements: list[tuple[str, str, int]] = []  # notice, acknowledged_at, leaf
        self.dirty_consents: dict[str, Any] = {}
        self.consent_uses: dict[str, str] = {}  # transfer -> the consent its H2 onward transfer was made under
        self.new_uses: list[tuple[Any, ...]] = []  # projections.custody.USE_COLUMNS
        self.use_notices: list[tuple[str, str, int]] = []  # use, notified_at, leaf
        self.urgent_notices: list[tuple[str, str, int]] = []  # transfer, notified_at, leaf (LED art. 35(2))
        self.findings: list[tuple[Any, ...]] = []
        self.stats_transfers: dict[tuple[str, ...], list[int]] = {}
        self.stats_categories: dict[tuple[str, ...], int] = {}
        self.stats_requests: dict[tuple[str, ...], list[float]] = {}
        self.referrals: list[tuple[Any, ...]] = []  # REFERRAL_COLUMNS
        self.stats_referrals: dict[tuple[str, ...], list[int]] = {}
        #: Rows of the internal control tables (projections.control.CONTROL_COLUMNS), by table.
        self.control: dict[str, list[tuple[Any, ...]]] = {}

    # -- reads -------------------------------------------------------------------

    def transfer(self, transfer_id: str | None) -> TransferRec | None:
        if transfer_id is None:
            return None
        try:
            return self.transfers[transfer_id]
        except KeyError:
            pass
        rec = None
        if self._load_transfer is not None:
            self.misses += 1
            rec = self._load_transfer(transfer_id)
        self.transfers[transfer_id] = rec
        return rec

    def authorization(self, authorization_id: str | None) -> AuthRec | None:
        if authorization_id is None:
            return None
        try:
            return self.authorizations[authorization_id]
        except KeyError:
            pass
        rec = None
        if self._load_authorization is not None:
            self.misses += 1
            rec = self._load_authorization(authorization_id)
        self.authorizations[authorization_id] = rec
        return rec

    def consent(self, consent_id: str | None) -> Any:
        if consent_id is None:
            return None
        try:
            return self.consents[consent_id]
        except KeyError:
            pass
        rec = None
        if self._load_consent is not None:
            self.misses += 1
            rec = self._load_consent(consent_id)
        self.consents[consent_id] = rec
        return rec

    def preservation(self, preservation_id: str) -> PreservationRec | None:
        try:
            return self.preservations[preservation_id]
        except KeyError:
            pass
        rec = self._load_preservation(preservation_id) if self._load_preservation is not None else None
        self.preservations[preservation_id] = rec
        return rec

    def written_required_by(self, party: str) -> bool:
        policy = self.policies.get(party)
        return bool(policy and policy.written_required)

    def ancestors(self, transfer: TransferRec) -> Iterable[TransferRec]:
        """Parent first, up to the root (as far as the parents are known)."""
        hop = self.transfer(transfer.parent_id)
        while hop is not None:
            yield hop
            hop = self.transfer(hop.parent_id) if hop.parent_id is not None else None

    # -- changes -----------------------------------------------------------------

    def add_transfer(self, rec: TransferRec) -> None:
        self.transfers[rec.id] = rec
        self.new_transfers.append(rec)

    def changed(self, rec: AuthRec) -> None:
        self.dirty_authorizations[rec.id] = rec

    def add_finding(
        self, rule: str, subject: str, ev: FeedEvent, *, reason: str, detail: str, origin: str | None,
        sender: str | None, recipient: str | None, transfer_id: str | None = None,
        authorization_id: str | None = None, evidence: list[dict[str, Any]],
    ) -> None:
        article, _ = RULES[rule]
        self.findings.append((
            f"{rule}/{subject}", rule, article, reason, ev.leaf_index, ev.recorded_at, origin, sender, recipient,
            transfer_id, authorization_id, detail, json.dumps(evidence, separators=(",", ":")),
        ))


_dumps = msgspec.json.Encoder(order="sorted").encode

FINDING_COLUMNS = (
    "id", "rule", "article", "reason", "leaf_index", "detected_at", "origin", "sender", "recipient",
    "transfer_id", "authorization_id", "detail", "evidence",
)


# -- the events --------------------------------------------------------------------


def apply(state: State, ev: FeedEvent) -> None:
    """Apply one leaf to the read models' records."""
    handler = _HANDLERS.get(ev.topic)
    if handler is None:
        return
    if isinstance(ev.data, Undecodable):
        _malformed(state, ev, ev.data.error)
        return
    try:
        handler(state, ev)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        _malformed(state, ev, f"{type(e).__name__}: {e}")


def apply_all(state: State, events: Iterable[FeedEvent]) -> None:
    handlers = _HANDLERS
    for ev in events:
        handler = handlers.get(ev.topic)
        if handler is None:
            continue
        if isinstance(ev.data, Undecodable):
            _malformed(state, ev, ev.data.error)
            continue
        try:
            handler(state, ev)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            _malformed(state, ev, f"{type(e).__name__}: {e}")


def _malformed(state: State, ev: FeedEvent, what: str) -> None:
    name = ev.topic.split(":")[1] if ev.topic.count(":") >= 2 else ev.topic
    state.add_finding(
        "malformed-event", f"{ev.leaf_index}", ev, reason="malformed-state",
        detail=f"leaf {ev.leaf_index} ({ev.topic}) cannot be read as a {name} event: {what}",
        origin=None, sender=None, recipient=None,
        evidence=[evidence(ev.leaf_index, name, ev.originator_id, version=ev.originator_version)],
    )


def _on_transfer(state: State, ev: FeedEvent) -> None:
    d: TransferRecordedState = ev.data
    sender, recipient, purpose = d.sender, d.recipient, d.purpose
    tid = ev.originator_id
    at = d.transferred_at
    if len(at) != 27:
        at = norm_time(at)
    sender_party, recipient_party = sender.party, recipient.party
    parent_id, grant_id = d.parent_transfer_id, d.authorization_id
    categories = ",".join(d.data_categories)
    # The lineage as the parent links make it (the recorded origin, root and depth are checked
    # against it): the read model follows the links, so a forged value cannot hide a hop.
    parent = state.transfer(parent_id) if parent_id is not None else None
    if parent is not None:
        origin, root_id, root_leaf, depth = parent.origin, parent.root_id, parent.root_leaf, parent.depth + 1
    else:
        origin = d.origin if parent_id is not None else sender_party
        root_id, root_leaf, depth = tid, ev.leaf_index, 0
    rec = TransferRec(
        tid, ev.leaf_index, ev.recorded_at, at, sender_party, sender.authority, recipient_party,
        recipient.authority, origin, parent_id, root_id, root_leaf, depth, grant_id, d.legal_basis, categories,
        purpose.proceeding if purpose is not None else None, d.retention_until,
        1 if d.origin_requires_written_form else 0, d.item_count,
        _dumps(d.handling.use_restrictions).decode() if d.handling and d.handling.use_restrictions else None,
        d.regime, 0,
    )
    # LED art. 35(2): an urgent onward transfer needs no prior authorization where the regime the
    # holder received the data under has the exception (domain.regimes.urgent_exception_problem).
    urgent = d.urgent is not None and parent is not None and urgent_exception_problem(parent.regime) is None
    rec.urgent = 1 if urgent else 0
    if parent is None or d.origin != origin or parent.recipient != sender_party or (
        (d.root_transfer_id or tid) != rec.root_id or d.depth != rec.depth
        or not _within(categories, parent.categories)
    ):
        _check_lineage(state, ev, rec, d, parent)
    grant = state.authorization(grant_id) if grant_id is not None else None
    if parent_id is not None and not urgent and authorization_required(origin, sender_party, recipient_party):
        timestamp = time_of(d.timestamp) or ev.recorded_at
        written = bool(rec.written_form or (parent is not None and parent.written_form)) or (
            state.written_required_by(origin)
        )
        problem = coverage_problem(rec, origin, grant, written, timestamp)
        if problem is not None:
            reason, detail = problem
            proof = [evidence(rec.leaf_index, "TransferRecorded", tid)]
            if parent is not None:
                proof.append(evidence(parent.leaf_index, "TransferRecorded", parent.id, role="parent"))
            if grant is not None:
                proof.extend(_grant_evidence(grant))
            state.add_finding(
                "onward-transfer-not-authorized", tid, ev, reason=reason,
                detail=f"transfer {tid} from {sender_party} to {recipient_party} of data originating with "
                f"{origin}: {detail}",
                origin=origin, sender=sender_party, recipient=recipient_party, transfer_id=tid,
                authorization_id=grant_id, evidence=proof,
            )
        if parent is not None:
            _check_flow_after_revocation(state, ev, rec, parent, origin, grant if problem is None else None)
    if parent is not None and parent.restrictions is not None and parent.restrictions != rec.restrictions:
        dropped = restrictions_dropped(parent.restriction_list, rec.restriction_list, tid, parent.id)
        if dropped is not None:
            state.add_finding(
                "handling-restrictions-dropped", tid, ev, reason=dropped.rule, detail=dropped.detail,
                origin=origin, sender=sender_party, recipient=recipient_party, transfer_id=tid,
                authorization_id=grant_id,
                evidence=[evidence(rec.leaf_index, "TransferRecorded", tid),
                          evidence(parent.leaf_index, "TransferRecorded", parent.id, role="parent",
                                   use_restrictions=parent.restriction_list)],
            )
    if parent is not None:
        h2_problem(state, ev, rec, parent)
    if parent is not None and parent.retention_until and at[:10] > parent.retention_until:
        state.add_finding(
            "onward-transfer-after-retention", tid, ev, reason="parent-retention-passed",
            detail=f"{sender_party} passed on data on {at[:10]} that it was to keep only until "
            f"{parent.retention_until} (transfer {parent.id})",
            origin=origin, sender=sender_party, recipient=recipient_party, transfer_id=tid,
            authorization_id=grant_id,
            evidence=[evidence(rec.leaf_index, "TransferRecorded", tid),
                      evidence(parent.leaf_index, "TransferRecorded", parent.id, role="parent",
                               retention_until=parent.retention_until)],
        )
    if grant is not None:
        grant.named += 1
        state.dirty_authorizations[grant.id] = grant
    state.transfers[tid] = rec
    state.new_transfers.append(rec)

    month = at[:7]
    key = (month, origin, sender_party, recipient_party, rec.legal_basis)
    counts = state.stats_transfers.get(key)
    if counts is None:
        state.stats_transfers[key] = counts = [0, 0]
    counts[0] += 1
    if parent_id is not None:
        counts[1] += 1
    cats = state.stats_categories
    for category in d.data_categories:
        ckey = (month, origin, sender_party, recipient_party, category)
        cats[ckey] = cats.get(ckey, 0) + 1


def _within(categories: str, received: str) -> bool:
    return categories == received or set(categories.split(",")) <= set(received.split(","))


def _check_lineage(
    state: State, ev: FeedEvent, rec: TransferRec, d: TransferRecordedState, parent: TransferRec | None
) -> None:
    """The recorded origin, root and depth against the lineage the parent links make."""
    problem: tuple[str, str] | None = None
    claimed_root = d.root_transfer_id or rec.id
    if rec.parent_id is not None and parent is None:
        problem = ("parent-not-found", f"its parent transfer {rec.parent_id} is not in the ledger before it")
    elif d.origin != rec.origin:
        problem = ("origin-mismatch", f"the origin recorded is {d.origin}, but its lineage originates with "
                   f"{rec.origin}" + ("" if parent is not None else " (a first transfer's origin is its sender)"))
    elif claimed_root != rec.root_id:
        problem = ("root-mismatch", f"the root recorded is {claimed_root}, but its lineage's root is {rec.root_id}")
    elif d.depth != rec.depth:
        problem = ("depth-mismatch", f"the depth recorded is {d.depth}, but it is {rec.depth} hops from its root")
    elif parent is not None:
        # The rules of point 1 and 6 (art. 36 §3) that the application refuses with.
        violation = holder_not_recipient(rec.sender, parent.id, parent.sender, parent.recipient, "sender.party")
        if violation is None and not _within(rec.categories, parent.categories):
            violation = categories_not_received(rec.categories.split(","), parent.id, parent.categories.split(","))
        if violation is not None:
            problem = (violation.rule, violation.detail)
    if problem is None:
        return
    reason, detail = problem
    proof = [evidence(rec.leaf_index, "TransferRecorded", rec.id)]
    if parent is not None:
        proof.append(evidence(parent.leaf_index, "TransferRecorded", parent.id, role="parent"))
    state.add_finding(
        "lineage-inconsistent", rec.id, ev, reason=reason, detail=f"transfer {rec.id}: {detail}",
        origin=rec.origin, sender=rec.sender, recipient=rec.recipient,
        transfer_id=rec.id, authorization_id=rec.authorization_id, evidence=proof,
    )


def coverage_problem(
    rec: TransferRec, origin: str, grant: AuthRec | None, written_required: bool, timestamp: str
) -> tuple[str, str] | None:
    """Why ``grant`` does not cover the onward transfer ``rec`` at its time, or None.

    ``domain.rules.onward_transfer_not_covered`` on the records as they stood
    when the transfer was recorded (its event's ``timestamp``, less the grace
    of :data:`EXPIRY_GRACE_SECONDS`): ``reason`` is the rule it names and the
    detail its text, as the application would have refused. Naming a grant
    that is not in the ledger before the transfer is ``authorization-not-found``.
    """
    if rec.authorization_id is not None and grant is None:
        return ("authorization-not-found",
                f"it names authorization {rec.authorization_id}, which is not in the ledger before it")
    transfer = OnwardTransfer(
        parent_transfer_id=rec.parent_id or "",
        holder=rec.sender,
        recipient=rec.recipient,
        data_categories=tuple(rec.categories.split(",")),
        proceeding=rec.proceeding or "",
        transferred_at=datetime.fromisoformat(rec.transferred_at),
    )
    facts = None if grant is None else Grant(
        id=grant.id,
        parent_transfer_id=grant.parent_id,
        holder=grant.holder,
        recipient=grant.recipient,
        status=grant.status,
        granted_by=grant.decided_by if grant.status in ("granted", "revoked") else None,
        valid_until=datetime.fromisoformat(grant.valid_until) if grant.valid_until is not None else None,
        max_transfers=grant.max_transfers,
        uses=grant.named,
        categories=tuple((grant.granted_categories or grant.categories).split(",")),
        proceeding=(grant.granted_proceeding or grant.proceeding) or "",
        in_writing=bool(grant.instrument or grant.signed),
        refusal_reasons=grant.reasons if grant.status == "refused" else None,
        revocation_reasons=grant.revocation_reasons,
    )
    now = datetime.fromisoformat(timestamp) - timedelta(seconds=EXPIRY_GRACE_SECONDS)
    violation = onward_transfer_not_covered(transfer, origin, facts, written_required=written_required, now=now)
    return None if violation is None else (violation.rule, violation.detail)


def _grant_evidence(grant: AuthRec) -> list[dict[str, Any]]:
    out = [evidence(grant.requested_leaf, "AuthorizationRequested", grant.id)]
    if grant.decided_leaf is not None:
        name = "AuthorizationGranted" if grant.status in ("granted", "revoked") else "AuthorizationRefused"
        out.append(evidence(grant.decided_leaf, name, grant.id))
    if grant.revoked_leaf is not None:
        out.append(evidence(grant.revoked_leaf, "AuthorizationRevoked", grant.id))
    return out


def _check_flow_after_revocation(
    state: State, ev: FeedEvent, rec: TransferRec, parent: TransferRec, origin: str, own: AuthRec | None
) -> None:
    revoked: list[tuple[TransferRec, AuthRec]] = []
    for hop in (parent, *state.ancestors(parent)):
        if hop.authorization_id is None:
            continue
        grant = state.authorization(hop.authorization_id)
        if grant is not None and grant.revoked_leaf is not None and grant.revoked_leaf < ev.leaf_index:
            revoked.append((hop, grant))
    if not revoked:
        return
    last_revocation = max(grant.revoked_leaf or 0 for _, grant in revoked)
    if own is not None and own.decided_leaf is not None and own.decided_leaf > last_revocation:
        return  # the origin authorized this hop knowing of the revocation
    proof = [evidence(rec.leaf_index, "TransferRecorded", rec.id)]
    for hop, grant in revoked:
        proof.append(evidence(hop.leaf_index, "TransferRecorded", hop.id, role="earlier hop"))
        proof.append(evidence(grant.revoked_leaf, "AuthorizationRevoked", grant.id, reasons=grant.revocation_reasons))
    names = ", ".join(f"{grant.id} (revoked at leaf {grant.revoked_leaf})" for _, grant in revoked)
    state.add_finding(
        "flow-after-revocation", rec.id, ev, reason="ancestor-authorization-revoked",
        detail=f"{rec.sender} passed on to {rec.recipient} data of {origin} that reached it under "
        f"authorization(s) {origin} had revoked: {names}",
        origin=origin, sender=rec.sender, recipient=rec.recipient, transfer_id=rec.id,
        authorization_id=rec.authorization_id, evidence=proof,
    )


def _request_stats(state: State, grant: AuthRec) -> list[float]:
    key = (grant.month, grant.origin, grant.holder, grant.recipient)
    counts = state.stats_requests.get(key)
    if counts is None:
        # requested, granted, refused, revoked, decided_seconds
        state.stats_requests[key] = counts = [0, 0, 0, 0, 0.0]
    return counts


def _on_requested(state: State, ev: FeedEvent) -> None:
    d: RequestedState = ev.data
    by, to, purpose = d.requested_by, d.recipient, d.purpose
    rec = AuthRec(
        ev.originator_id, "pending", d.origin, by.party, by.authority, to.party, to.authority,
        d.parent_transfer_id, d.root_transfer_id, ",".join(d.data_categories),
        purpose.proceeding if purpose is not None else None, d.justification,
        time_of(d.timestamp) or ev.recorded_at, ev.leaf_index,
    )
    state.authorizations[rec.id] = rec
    state.dirty_authorizations[rec.id] = rec
    _request_stats(state, rec)[0] += 1


def _decided(state: State, ev: FeedEvent) -> AuthRec | None:
    rec = state.authorization(ev.originator_id)
    if rec is None:
        return None
    d: GrantedState | RefusedState = ev.data
    rec.decided_at = time_of(d.timestamp) or ev.recorded_at
    rec.decided_leaf = ev.leaf_index
    rec.decided_by = d.decided_by.party if d.decided_by is not None else None
    rec.reasons = d.reasons
    rec.signed = 1 if d.signature else 0
    rec.decide_seconds = seconds_between(rec.requested_at, rec.decided_at)
    state.dirty_authorizations[rec.id] = rec
    return rec


def _on_granted(state: State, ev: FeedEvent) -> None:
    conditions = ev.data.conditions or {}
    rec = _decided(state, ev)
    if rec is None:
        return
    rec.status = "granted"
    rec.conditions = _dumps(conditions).decode()
    valid_until = conditions.get("valid_until")
    rec.valid_until = norm_time(valid_until) if isinstance(valid_until, str) else None
    max_transfers = conditions.get("max_transfers")
    rec.max_transfers = max_transfers if type(max_transfers) is int else None
    categories = conditions.get("data_categories")
    rec.granted_categories = ",".join(map(str, categories)) if isinstance(categories, list) and categories else None
    purpose = conditions.get("purpose")
    rec.granted_proceeding = purpose.get("proceeding") if isinstance(purpose, dict) else None
    rec.instrument = 1 if conditions.get("written_instrument") else 0
    counts = _request_stats(state, rec)
    counts[1] += 1
    counts[4] += rec.decide_seconds or 0.0


def _on_refused(state: State, ev: FeedEvent) -> None:
    rec = _decided(state, ev)
    if rec is None:
        return
    rec.status = "refused"
    counts = _request_stats(state, rec)
    counts[2] += 1
    counts[4] += rec.decide_seconds or 0.0


def _on_revoked(state: State, ev: FeedEvent) -> None:
    rec = state.authorization(ev.originator_id)
    if rec is None:
        return
    d: RevokedState = ev.data
    rec.status = "revoked"
    rec.revoked_at = time_of(d.timestamp) or ev.recorded_at
    rec.revoked_leaf = ev.leaf_index
    rec.revoked_by = d.revoked_by.party if d.revoked_by is not None else None
    rec.revocation_reasons = d.reasons
    state.dirty_authorizations[rec.id] = rec
    _request_stats(state, rec)[3] += 1


def _on_used(state: State, ev: FeedEvent) -> None:
    rec = state.authorization(ev.originator_id)
    if rec is None:
        return
    rec.uses += 1
    state.dirty_authorizations[rec.id] = rec
    state.uses.append((rec.id, ev.data.transfer_id, ev.leaf_index))


def _on_policy_registered(state: State, ev: FeedEvent) -> None:
    party = ev.data.party
    if str(party_policy_id(party)) != ev.originator_id:
        raise ValueError(f"the policy of {party} has another id")
    policy = state.policies.get(party)
    if policy is None:  # registered once; a second Registered changes nothing
        policy = state.policies[party] = PolicyRec(party, 0, ev.leaf_index)
        state.dirty_policies[party] = policy


def _on_written_form_set(state: State, ev: FeedEvent) -> None:
    policy = next((p for party, p in state.policies.items() if str(party_policy_id(party)) == ev.originator_id),
                  None)
    if policy is None:
        return
    policy.written_required = 1 if ev.data.required else 0
    policy.leaf_index = ev.leaf_index
    state.dirty_policies[policy.party] = policy


def _on_erased(state: State, ev: FeedEvent) -> None:
    d: PersonalDataErasedState = ev.data
    at = time_of(d.timestamp) or ev.recorded_at
    state.erasures.append((ev.originator_id, d.retention_class, at, ev.leaf_index))
    for notice in d.notices:
        state.notices.append((notice["notice_id"], ev.originator_id, notice["party"], at, ev.leaf_index))


def _on_notice_acknowledged(state: State, ev: FeedEvent) -> None:
    d: NoticeAcknowledgedState = ev.data
    state.acknowledgements.append((d.notice_id, time_of(d.timestamp) or ev.recorded_at, ev.leaf_index))


#: A referral as the lineage read model keeps it (table ``proj_referrals``).
REFERRAL_COLUMNS = ("id", "transfer_id", "leaf_index", "recorded_at", "requesting_party", "referring_party",
                    "third_party", "onward")


def _on_referral(state: State, ev: FeedEvent) -> None:
    """A third-country referral: kept beside its transfer, counted, and checked against the
    transfer it names (which the application recorded in the same transaction)."""
    d: ReferralMadeState = ev.data
    rec = state.transfer(d.transfer_id)
    rid = ev.originator_id
    proof = [evidence(ev.leaf_index, "ReferralMade", rid)]
    parties = {"origin": rec.origin if rec else None, "sender": d.referring_party, "recipient": d.third_party}
    if rec is None:
        state.add_finding(
            "referral-inconsistent", rid, ev, reason="referral-transfer-unknown",
            detail=f"referral {rid} names transfer {d.transfer_id}, which the ledger does not hold before it",
            **parties, transfer_id=d.transfer_id, evidence=proof)
    else:
        proof.append(evidence(rec.leaf_index, "TransferRecorded", rec.id, role="transfer"))
        problem = referral_inconsistency(d.requesting_party, d.third_party, rec.sender, rec.recipient,
                                         d.notice.notified_by.party, d.notice.recipient.party)
        if problem is None and d.referring_party != rec.sender:
            problem = referral_inconsistency(d.requesting_party, d.third_party, d.referring_party, rec.recipient,
                                             rec.sender, d.notice.recipient.party)
        if problem is not None:
            state.add_finding("referral-inconsistent", rid, ev, reason=problem.rule,
                              detail=f"referral {rid}: {problem.detail}", **parties, transfer_id=rec.id,
                              evidence=proof)
    onward = 1 if d.parent_transfer_id is not None else 0
    state.referrals.append((rid, d.transfer_id, ev.leaf_index, ev.recorded_at, d.requesting_party,
                            d.referring_party, d.third_party, onward))
    month = (rec.transferred_at if rec is not None else ev.recorded_at)[:7]
    key = (month, d.requesting_party, d.referring_party, d.third_party)
    counts = state.stats_referrals.setdefault(key, [0, 0])
    counts[0] += 1
    counts[1] += onward


_HANDLERS: dict[str, Callable[[State, FeedEvent], None]] = {
    TRANSFER_RECORDED: _on_transfer,
    REQUESTED: _on_requested,
    GRANTED: _on_granted,
    REFUSED: _on_refused,
    REVOKED: _on_revoked,
    USED: _on_used,
    POLICY_REGISTERED: _on_policy_registered,
    WRITTEN_FORM_SET: _on_written_form_set,
    ERASED: _on_erased,
    NOTICE_ACKNOWLEDGED: _on_notice_acknowledged,
    **CUSTODY_HANDLERS,
    **PRESERVATION_HANDLERS,
    **CONTROL_HANDLERS,
    REFERRAL_MADE: _on_referral,
}
