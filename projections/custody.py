"""The read models of the chain of custody: consent requests and uses of received data.

Findings raised here, each by the very function the application refuses with
(``domain.custody``), so a refusal and a finding say one thing:

``use-without-consent`` (art. 40 §19)
    a use in another proceeding, or as evidence of H1 data, without a granted
    consent of the requested Party covering it at its time
    (``domain.custody.use_not_consented``);
``use-by-other-party`` (art. 40 §19)
    a use recorded by a Party that is not the transfer's recipient
    (``domain.custody.use_not_by_recipient``);
``onward-transfer-without-h2-consent`` (handling code H2)
    an onward transfer of data carrying H2, by a holder that did not get them
    from their origin, without a granted consent of the Party that sent them
    (``domain.custody.onward_transfer_not_consented``);
``exculpatory-notice-missing`` (art. 40 §19)
    an exculpatory use in another proceeding with neither prior notice nor
    the reason it was impossible (``domain.custody.exculpatory_notice_problem``).

The time-dependent ``exculpatory-notice-overdue`` (a notice after the use
that came, or has not come, within the deadline) is judged when asked
(``projections.queries``), from the table of uses (``proj_uses``) and their
notices (``proj_use_notices``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec.structs import astuple

from domain.custody import (
    Consent,
    Use,
    exculpatory_notice_problem,
    handling_codes,
    onward_transfer_not_consented,
    use_not_by_recipient,
    use_not_consented,
)
from projections.events import (
    CONSENT_DECIDED,
    CONSENT_REQUESTED,
    CONSENT_USED,
    DATA_USED,
    URGENT_NOTIFIED,
    USE_NOTICE_GIVEN,
    ConsentDecidedState,
    ConsentRequestedState,
    ConsentUsedState,
    DataUsedState,
    FeedEvent,
    UrgentNotifiedState,
    UseNoticeGivenState,
    evidence,
    norm_time,
)

if TYPE_CHECKING:
    from projections.model import State, TransferRec


class ConsentRec(msgspec.Struct, gc=False):
    """A consent request and its decision (table ``proj_consents``)."""

    id: str
    transfer_id: str
    sender: str
    requester: str
    status: str
    proceeding: str
    kinds: str  # comma-separated kinds of use (not "uses": that column name is a count elsewhere)
    requested_leaf: int
    decided_leaf: int | None = None
    recipient: str | None = None  # H2: a consent to pass the data on to this Party

    def row(self) -> tuple[Any, ...]:
        return astuple(self)

    @classmethod
    def from_row(cls, row: Iterable[Any]) -> ConsentRec:
        return cls(*row)

    def as_rule_input(self) -> Consent:
        return Consent(self.id, self.transfer_id, self.status, self.proceeding, tuple(self.kinds.split(",")),
                       self.recipient)


CONSENT_COLUMNS: tuple[str, ...] = ConsentRec.__struct_fields__
#: A use as the time-dependent finding needs it (table ``proj_uses``).
USE_COLUMNS = ("id", "transfer_id", "used_by", "proceeding", "kind", "exculpatory", "consent_id", "awaits_notice",
               "used_at", "leaf_index")


def _parties(transfer: TransferRec | None) -> dict[str, str | None]:
    if transfer is None:
        return {"origin": None, "sender": None, "recipient": None}
    return {"origin": transfer.origin, "sender": transfer.sender, "recipient": transfer.recipient}


def _on_consent_requested(state: State, ev: FeedEvent) -> None:
    d: ConsentRequestedState = ev.data
    rec = ConsentRec(ev.originator_id, d.transfer_id, d.sender, d.requested_by.party, "pending", d.proceeding,
                     ",".join(d.uses), ev.leaf_index, None, d.recipient.party if d.recipient else None)
    state.consents[rec.id] = rec
    state.dirty_consents[rec.id] = rec


def _on_consent_decided(state: State, ev: FeedEvent) -> None:
    d: ConsentDecidedState = ev.data
    rec = state.consent(ev.originator_id)
    if rec is None or rec.status != "pending":
        return  # a decision of nothing known, or a second one: the first decision stands
    rec.status = d.decision
    rec.decided_leaf = ev.leaf_index
    state.dirty_consents[rec.id] = rec


def _on_data_used(state: State, ev: FeedEvent) -> None:
    d: DataUsedState = ev.data
    tid = ev.originator_id
    transfer = state.transfer(tid)
    used_at = datetime.fromisoformat(norm_time(d.used_at))
    notice = d.notice or {}
    prior = notice.get("notified_at")
    awaits = bool(d.exculpatory and notice.get("prior_impossible") and not prior)
    state.new_uses.append((d.use_id, tid, d.used_by.party, d.proceeding, d.kind, 1 if d.exculpatory else 0,
                           d.consent_id, 1 if awaits else 0, norm_time(d.used_at), ev.leaf_index))
    if transfer is None:
        return  # a use of an unknown transfer: its TransferRecorded is what is missing
    use = Use(tid, d.proceeding, d.kind, d.exculpatory, d.consent_id)
    proof = [evidence(ev.leaf_index, "TransferDataUsed", tid, use_id=d.use_id),
             evidence(transfer.leaf_index, "TransferRecorded", tid, role="transfer")]
    consent = state.consent(d.consent_id)
    found: list[tuple[str, Any]] = [
        ("use-by-other-party", use_not_by_recipient(d.used_by.party, transfer.recipient, tid, "used_by.party")),
        ("use-without-consent", use_not_consented(
            use, transfer.proceeding or "", handling_codes(transfer.restriction_list), transfer.sender,
            consent.as_rule_input() if consent is not None else None)),
        ("exculpatory-notice-missing", exculpatory_notice_problem(
            use, transfer.proceeding or "", datetime.fromisoformat(norm_time(prior)) if prior else None,
            notice.get("prior_impossible"), used_at)),
    ]
    for rule, violation in found:
        if violation is None:
            continue
        extra = [evidence(consent.requested_leaf, "ConsentRequested", consent.id, role="consent",
                          status=consent.status)] if consent is not None and rule == "use-without-consent" else []
        state.add_finding(rule, d.use_id, ev, reason=violation.rule, detail=violation.detail,
                          **_parties(transfer), transfer_id=tid, evidence=proof + extra)


def _on_consent_used(state: State, ev: FeedEvent) -> None:
    """The consent an onward transfer of H2 data is made under: its leaf comes just before the
    transfer's (saved together), which :func:`h2_problem` reads."""
    d: ConsentUsedState = ev.data
    state.consent_uses[d.transfer_id] = ev.originator_id


def h2_problem(state: State, ev: FeedEvent, rec: TransferRec, parent: TransferRec) -> None:
    """H2: an onward transfer of H2 data without the consent of the Party that sent them to the holder
    (``domain.custody.onward_transfer_not_consented``), as a finding."""
    codes = handling_codes(parent.restriction_list)
    if "H2" not in codes:
        return
    consent = state.consent(state.consent_uses.pop(rec.id, None))
    violation = onward_transfer_not_consented(codes, parent.sender, rec.origin, rec.recipient, rec.proceeding or "",
                                              parent.id, consent.as_rule_input() if consent is not None else None)
    if violation is None:
        return
    proof = [evidence(rec.leaf_index, "TransferRecorded", rec.id),
             evidence(parent.leaf_index, "TransferRecorded", parent.id, role="parent", use_restrictions=codes)]
    if consent is not None:
        proof.append(evidence(consent.requested_leaf, "ConsentRequested", consent.id, role="consent",
                              status=consent.status))
    state.add_finding("onward-transfer-without-h2-consent", rec.id, ev, reason=violation.rule,
                      detail=violation.detail, **_parties(rec), transfer_id=rec.id,
                      authorization_id=rec.authorization_id, evidence=proof)


def _on_urgent_notified(state: State, ev: FeedEvent) -> None:
    d: UrgentNotifiedState = ev.data
    state.urgent_notices.append((ev.originator_id, norm_time(d.notified_at), ev.leaf_index))


def _on_use_notice(state: State, ev: FeedEvent) -> None:
    d: UseNoticeGivenState = ev.data
    state.use_notices.append((d.use_id, norm_time(d.notified_at), ev.leaf_index))


HANDLERS: dict[str, Callable[[State, FeedEvent], None]] = {
    CONSENT_REQUESTED: _on_consent_requested,
    CONSENT_DECIDED: _on_consent_decided,
    CONSENT_USED: _on_consent_used,
    DATA_USED: _on_data_used,
    USE_NOTICE_GIVEN: _on_use_notice,
    URGENT_NOTIFIED: _on_urgent_notified,
}
