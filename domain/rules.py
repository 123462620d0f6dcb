"""The rules of art. 36 §3 and its neighbours, one named check each.

This module is the one place where a newcomer finds every rule the ledger
enforces (docs/DOMAIN.md, points 1-7 of art. 36 §3). Each check
is a function named after what it checks, citing its article, and raises a
:class:`~domain.errors.RuleViolation` (or :class:`~domain.errors.InvalidInput`)
whose ``rule`` is the stable name clients see, with the values that failed.

Point 7 (the check and the recording are one atomic step) is kept by the
application: an onward transfer is saved together with the grant's ``Used``
event, so the grant's version orders every use and its revocation, and a
revocation that commits first makes the transfer's save fail and be checked
again (see ``ledger.service.application``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from domain.errors import DomainError, InvalidInput, RuleViolation
from domain.model import Authorization, Transfer
from domain.parties import Actor
from domain.personal import quotable
from domain.values import (
    AuthorizationRequestDraft,
    GrantConditions,
    TransferDraft,
    format_datetime,
)

ART_36_3 = "art. 36 §3"


def _because(reasons: str | None) -> str:
    """The reasons quoted after a colon; where the ledger holds only their commitment (event
    format 2, domain/personal.py), a pointer to the record that opens them."""
    text = quotable(reasons)
    if text is None and reasons is not None:
        return " (its reasons are in the authorization's record)"
    return f": {text}"


def refuse(violation: DomainError | None) -> None:
    """Raise what a rule found, if it found anything.

    Each rule is a function that returns its violation (or None), so that the
    application refuses with it and the read models report it as a finding:
    one rule, one text, whichever finds it.
    """
    if violation is not None:
        raise violation


# -- point 1: lineage and origin ---------------------------------------------


def origin_of(sender_party: str, parent: Transfer | None) -> str:
    """Point 1 (art. 36 §3): the origin is the sender of the lineage's root.

    A first transfer's origin is its sender; an onward transfer inherits its
    parent's origin, so the origin never changes along a lineage.
    """
    return parent.origin if parent is not None else sender_party


def check_not_to_self(sender: Actor, recipient: Actor) -> None:
    """A transfer goes from one Party to another (art. 36: "transfer")."""
    if sender.party == recipient.party:
        raise InvalidInput(
            f"a transfer from {sender.party} to itself is not a transfer between Parties",
            rule="transfer-to-self",
            field="recipient.party",
            values={"sender": sender.party, "recipient": recipient.party},
        )


def holder_not_recipient(
    holder: str, parent_id: str, parent_sender: str, parent_recipient: str, field: str
) -> RuleViolation | None:
    """Point 1 (art. 36 §3): only the Party that received the data passes them on.

    An onward transfer (or a request to make one) names its parent transfer;
    the sender must be that transfer's recipient. The violation, or None.
    """
    if parent_recipient == holder:
        return None
    return RuleViolation(
        f"{holder} did not receive transfer {parent_id}: it went from "
        f"{parent_sender} to {parent_recipient}, so {holder} cannot pass it on",
        rule="not-holder",
        field=field,
        article=ART_36_3,
        values={"holder": holder, "parent_transfer_id": parent_id, "parent_recipient": parent_recipient},
    )


def check_holder_received_parent(holder: str, parent: Transfer, field: str) -> None:
    """Point 1 (art. 36 §3): :func:`holder_not_recipient`, refused."""
    refuse(holder_not_recipient(holder, str(parent.id), parent.sender.party, parent.recipient.party, field))


def categories_not_received(
    categories: Iterable[str], parent_id: str, received: Sequence[str]
) -> RuleViolation | None:
    """Point 6 (art. 36 §3): an onward transfer carries only categories the holder received."""
    extra = sorted(set(categories) - set(received))
    if not extra:
        return None
    return RuleViolation(
        f"data categories {extra} were not received in parent transfer {parent_id} "
        f"(it carried {list(received)})",
        rule="category-not-received",
        field="data_categories",
        article=ART_36_3,
        values={"not_received": extra, "received": list(received)},
    )


def check_categories_received(categories: tuple[str, ...], parent: Transfer) -> None:
    """Point 6 (art. 36 §3): :func:`categories_not_received`, refused."""
    refuse(categories_not_received(categories, str(parent.id), parent.data_categories))


# -- point 2: who must authorize ---------------------------------------------


def authorization_required(origin: str, holder: str, recipient: str) -> bool:
    """Point 2 (art. 36 §3): an onward transfer needs the origin's authorization.

    Needed for a transfer to any Party other than the origin. Returning data
    to the origin needs none, and neither does the origin passing on its own
    data again.
    """
    return recipient != origin and holder != origin


def check_request_needed(origin: str, holder: str, recipient: str) -> None:
    """Point 3 (art. 36 §3): a request is made only where authorization is needed."""
    if not authorization_required(origin, holder, recipient):
        raise RuleViolation(
            f"no authorization is needed for {holder} to pass data of origin {origin} "
            f"to {recipient}: art. 36 §3 requires it only for transfers to a third "
            "country or organization",
            rule="authorization-not-needed",
            field="recipient.party",
            article=ART_36_3,
            values={"origin": origin, "holder": holder, "recipient": recipient},
        )


def not_origin(party: str, origin: str, field: str) -> RuleViolation | None:
    """Points 2 and 4 (art. 36 §3): only the first transferring Party decides or revokes.

    Not the intermediate Party that holds the data and passes them on. The
    violation when ``party`` is not the ``origin``, or None.
    """
    if party == origin:
        return None
    return RuleViolation(
        f"{party} is not the origin of the data: only {origin}, "
        "the first transferring Party, may decide on or revoke this authorization",
        rule="not-origin",
        field=field,
        article=ART_36_3,
        values={"party": party, "origin": origin},
    )


def check_decided_by_origin(actor: Actor, authorization: Authorization, field: str) -> None:
    """Points 2 and 4 (art. 36 §3): :func:`not_origin`, refused."""
    refuse(not_origin(actor.party, authorization.origin, f"{field}.party"))


# -- point 4: decisions ------------------------------------------------------


def check_pending(authorization: Authorization) -> None:
    """Point 4: a request is decided once; a decision is never overwritten."""
    if authorization.status != "pending":
        raise RuleViolation(
            f"authorization request {authorization.id} was already decided: it is "
            f"{authorization.status}",
            rule="authorization-already-decided",
            article=ART_36_3,
            values={"status": authorization.status},
        )


class _Decision(Protocol):
    @property
    def decision(self) -> str: ...
    @property
    def reasons(self) -> str | None: ...


def check_refusal_reasoned(decision: _Decision) -> None:
    """Point 4 (art. 40 §25): "any refusal ... shall be reasoned" (of an authorization or a
    consent to another use, domain/custody.py)."""
    if decision.decision == "refused" and not decision.reasons:
        raise InvalidInput(
            "a refusal must state its reasons (art. 40 §25)",
            rule="refusal-without-reasons",
            field="reasons",
            article="art. 40 §25",
        )


def check_conditions_within_request(conditions: GrantConditions, authorization: Authorization) -> None:
    """Point 4: a grant may narrow the request (a subset of its categories), not widen it."""
    if conditions.data_categories is None:
        return
    extra = sorted(set(conditions.data_categories) - set(authorization.requested_categories))
    if extra:
        raise InvalidInput(
            f"conditions grant categories {extra} that were not requested "
            f"(requested {list(authorization.requested_categories)})",
            rule="category-not-requested",
            field="conditions.data_categories",
            article=ART_36_3,
            values={"not_requested": extra},
        )


def check_revocable(authorization: Authorization) -> None:
    """Point 4: the origin may revoke a grant; there is nothing else to revoke."""
    if authorization.status != "granted":
        raise RuleViolation(
            f"authorization {authorization.id} is {authorization.status}; only a granted "
            "authorization can be revoked",
            rule="authorization-not-granted",
            article=ART_36_3,
            values={"status": authorization.status},
        )


# -- point 5: written form ---------------------------------------------------


def written_form_required(lineage_requires: bool, origin_policy_requires: bool) -> bool:
    """Point 5 (art. 36 §3): the origin "may require the authorization in writing".

    It does so by a handling condition on a transfer it sent in the lineage,
    or by its standing policy.
    """
    return lineage_requires or origin_policy_requires


def written_instrument_missing(in_writing: bool, required: bool, origin: str) -> RuleViolation | None:
    """Point 5 (art. 36 §3): where written form is required, a grant needs an instrument.

    The instrument is a document reference with the document's SHA-256 digest,
    or the decision itself signed with the origin's registered key: either
    makes the grant ``in_writing``.
    """
    if not required or in_writing:
        return None
    return RuleViolation(
        f"{origin} requires authorization in writing: the grant needs a written "
        "instrument (conditions.written_instrument: reference and sha256) or the "
        "decision signed with a key registered to the origin",
        rule="written-instrument-required",
        field="conditions.written_instrument",
        article=ART_36_3,
        values={"origin": origin},
    )


def check_written_instrument(
    conditions: GrantConditions | None, required: bool, origin: str, *, signed: bool = False
) -> None:
    """Point 5 (art. 36 §3): :func:`written_instrument_missing`, refused."""
    has_document = conditions is not None and conditions.written_instrument is not None
    refuse(written_instrument_missing(has_document or signed, required, origin))


# -- point 6: the onward transfer against its authorization --------------------


@dataclass(frozen=True)
class OnwardTransfer:
    """What the rules of point 6 look at in an onward transfer: as requested
    (the application, to refuse) or as recorded (the read models, to find)."""

    parent_transfer_id: str
    holder: str
    recipient: str
    data_categories: tuple[str, ...]
    proceeding: str
    transferred_at: datetime


@dataclass(frozen=True)
class Grant:
    """What the rules of point 6 look at in an authorization, as it stood when
    the transfer was made: its request, its decision, its revocation and the
    transfers made under it before."""

    id: str
    parent_transfer_id: str
    holder: str
    recipient: str
    #: ``pending``, ``granted``, ``refused`` or ``revoked``.
    status: str
    #: The Party that granted it (None unless granted, or granted then revoked).
    granted_by: str | None
    valid_until: datetime | None
    max_transfers: int | None
    #: Transfers made under it before this one.
    uses: int
    #: The categories it covers: those its conditions grant, else those requested.
    categories: tuple[str, ...]
    #: The proceeding it covers: its conditions' purpose, else the request's.
    proceeding: str
    #: A written instrument, or the decision signed with the origin's key.
    in_writing: bool
    refusal_reasons: str | None = None
    revocation_reasons: str | None = None

    @classmethod
    def of(cls, authorization: Authorization) -> Grant:
        conditions = authorization.conditions or GrantConditions()
        purpose = conditions.purpose or authorization.requested_purpose
        return cls(
            id=str(authorization.id),
            parent_transfer_id=str(authorization.parent_transfer_id),
            holder=authorization.holder,
            recipient=authorization.recipient.party,
            status=authorization.status,
            granted_by=authorization.granted_by,
            valid_until=conditions.valid_until,
            max_transfers=conditions.max_transfers,
            uses=len(authorization.uses),
            categories=tuple(conditions.data_categories or authorization.requested_categories),
            proceeding=purpose.proceeding,
            in_writing=conditions.written_instrument is not None or authorization.decision_signed,
            refusal_reasons=(authorization.decision or {}).get("reasons"),
            revocation_reasons=(authorization.revocation or {}).get("reasons"),
        )


def onward_transfer_not_covered(
    transfer: OnwardTransfer,
    origin: str,
    grant: Grant | None,
    *,
    written_required: bool,
    now: datetime,
) -> RuleViolation | None:
    """Points 2, 5 and 6 (art. 36 §3): why the origin's grant does not cover
    the onward transfer, or None when it does.

    Not covered when there is no grant, when the grant answers another request
    (other parent, holder or recipient), when it was refused, is still
    pending, was revoked, has expired (at ``now`` or at the transfer's time)
    or is used up, when the transfer carries categories or serves a proceeding
    the grant does not cover, when it was granted by anyone but the origin, or
    when written form is required and the grant is not in writing. The
    application refuses with it; the read models report it as the reason of
    an ``onward-transfer-not-authorized`` finding.
    """
    holder, recipient = transfer.holder, transfer.recipient
    if grant is None:
        return RuleViolation(
            f"onward transfer of {origin}'s data from {holder} to {recipient} needs the "
            f"authorization of {origin}, the first transferring Party (authorization_id "
            "is missing)",
            rule="onward-transfer-not-authorized",
            field="authorization_id",
            article=ART_36_3,
            values={"origin": origin, "holder": holder, "recipient": recipient},
        )
    auth_id = grant.id
    if grant.parent_transfer_id != transfer.parent_transfer_id or grant.holder != holder:
        return RuleViolation(
            f"authorization {auth_id} answers a request by {grant.holder} about "
            f"transfer {grant.parent_transfer_id}, not this transfer by {holder} "
            f"of transfer {transfer.parent_transfer_id}",
            rule="authorization-not-for-this-transfer",
            field="authorization_id",
            article=ART_36_3,
            values={"authorization_parent": grant.parent_transfer_id, "authorization_holder": grant.holder},
        )
    if grant.recipient != recipient:
        return RuleViolation(
            f"authorization {auth_id} covers a transfer to {grant.recipient}, not to {recipient}",
            rule="recipient-not-authorized",
            field="recipient.party",
            article=ART_36_3,
            values={"authorized": grant.recipient, "recipient": recipient},
        )
    if grant.status == "revoked":
        return RuleViolation(
            f"authorization {auth_id} was revoked by {origin}{_because(grant.revocation_reasons)}",
            rule="authorization-revoked",
            field="authorization_id",
            article=ART_36_3,
            values={"status": "revoked", "reasons": grant.revocation_reasons},
        )
    if grant.status == "refused":
        return RuleViolation(
            f"{origin} refused authorization {auth_id}{_because(grant.refusal_reasons)}",
            rule="authorization-refused",
            field="authorization_id",
            article=ART_36_3,
            values={"status": "refused", "reasons": grant.refusal_reasons},
        )
    if grant.status != "granted":
        return RuleViolation(
            f"authorization request {auth_id} is still pending: {origin} has not decided",
            rule="authorization-pending",
            field="authorization_id",
            article=ART_36_3,
            values={"status": grant.status},
        )
    if grant.granted_by != origin:
        return RuleViolation(
            f"authorization {auth_id} was granted by {grant.granted_by}, not by the origin {origin}",
            rule="not-origin",
            field="authorization_id",
            article=ART_36_3,
            values={"granted_by": grant.granted_by, "origin": origin},
        )
    if grant.valid_until is not None and (now > grant.valid_until or transfer.transferred_at > grant.valid_until):
        return RuleViolation(
            f"authorization {auth_id} expired at {format_datetime(grant.valid_until)}",
            rule="authorization-expired",
            field="authorization_id",
            article=ART_36_3,
            values={"valid_until": format_datetime(grant.valid_until)},
        )
    if grant.max_transfers is not None and grant.uses >= grant.max_transfers:
        return RuleViolation(
            f"authorization {auth_id} allows {grant.max_transfers} transfer(s) and {grant.uses} were made",
            rule="authorization-exhausted",
            field="authorization_id",
            article=ART_36_3,
            values={"max_transfers": grant.max_transfers, "uses": grant.uses},
        )
    extra = sorted(set(transfer.data_categories) - set(grant.categories))
    if extra:
        return RuleViolation(
            f"authorization {auth_id} does not cover data categories {extra} "
            f"(it covers {list(grant.categories)})",
            rule="category-not-authorized",
            field="data_categories",
            article=ART_36_3,
            values={"not_authorized": extra, "authorized": list(grant.categories)},
        )
    if grant.proceeding != transfer.proceeding:
        return RuleViolation(
            f"authorization {auth_id} is for proceeding {grant.proceeding!r}, "
            f"not {transfer.proceeding!r} (specialty, art. 40 §19)",
            rule="purpose-not-authorized",
            field="purpose.proceeding",
            article="art. 36 §3; art. 40 §19",
            values={"authorized": grant.proceeding, "purpose": transfer.proceeding},
        )
    return written_instrument_missing(grant.in_writing, written_required, origin)


def check_onward_transfer_authorized(
    draft: TransferDraft,
    origin: str,
    authorization: Authorization | None,
    *,
    written_required: bool,
    now: datetime,
) -> None:
    """Points 2, 5 and 6 (art. 36 §3): :func:`onward_transfer_not_covered`, refused."""
    transfer = OnwardTransfer(
        parent_transfer_id=str(draft.parent_transfer_id),
        holder=draft.sender.party,
        recipient=draft.recipient.party,
        data_categories=draft.data_categories,
        proceeding=draft.purpose.proceeding,
        transferred_at=draft.transferred_at or now,  # made now unless it says when (TransferDraft.as_of)
    )
    grant = Grant.of(authorization) if authorization is not None else None
    refuse(onward_transfer_not_covered(transfer, origin, grant, written_required=written_required, now=now))


def check_request_consistent(draft: AuthorizationRequestDraft, parent: Transfer) -> None:
    """Point 3 (art. 36 §3): the request comes from the holder, for data it received."""
    check_not_to_self(draft.requested_by, draft.recipient)
    check_holder_received_parent(draft.requested_by.party, parent, "requested_by.party")
    check_categories_received(draft.data_categories, parent)
    check_request_needed(parent.origin, draft.requested_by.party, draft.recipient.party)


# -- point 5: decisions signed by the origin -----------------------------------

DECISION_FORMAT = "transfer-ledger/decision/v1"


def decision_document(
    authorization_id: str,
    origin: str,
    decision: str,
    decided_by: dict[str, str],
    reasons: str | None,
    conditions: dict[str, object] | None,
) -> dict[str, object]:
    """Point 5 (art. 36 §3): what the origin signs when it decides in writing.

    ``decided_by`` and ``conditions`` in the ledger's normalized form (as the
    decision event stores them); its RFC 8785 serialization is the signed
    message (docs/FORMAT.md).
    """
    return {
        "format": DECISION_FORMAT,
        "authorization_id": authorization_id,
        "origin": origin,
        "decision": decision,
        "decided_by": decided_by,
        "reasons": reasons,
        "conditions": conditions if decision == "granted" else None,
    }


def check_decision_signature(
    signature_key: str, origin: str, origin_keys: list[str], valid: bool
) -> None:
    """Point 5 (art. 36 §3): a signed decision counts only if the origin signed it.

    ``origin_keys`` are the key references (``name+id``) registered to the
    origin; ``valid`` says whether the signature verifies under the named key.
    A decision signed by anyone but the origin is refused.
    """
    if signature_key not in origin_keys:
        raise RuleViolation(
            f"the decision is signed with key {signature_key}, which is not registered to "
            f"{origin}, the origin: only the first transferring Party's signature counts",
            rule="decision-signature-invalid",
            field="signature.key",
            article=ART_36_3,
            values={"key": signature_key, "origin": origin},
        )
    if not valid:
        raise RuleViolation(
            f"the signature does not verify under {origin}'s key {signature_key} over the "
            "canonical decision document (docs/FORMAT.md)",
            rule="decision-signature-invalid",
            field="signature.value",
            article=ART_36_3,
            values={"key": signature_key, "origin": origin},
        )
