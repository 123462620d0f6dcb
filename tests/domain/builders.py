"""Request bodies and aggregates for the domain tests, built as the ledger builds them.

Bodies are realistic and easy to vary (``MISSING`` drops a field). Aggregates
are made with the domain's own event classes, their lineage fields filled the
way ``ledger.service.application`` fills them, without any store.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from domain.errors import DomainError
from domain.model import Authorization, Transfer
from domain.parties import Actor
from domain.rules import origin_of
from domain.values import (
    AuthorizationRequestDraft,
    GrantConditions,
    TransferDraft,
    format_datetime,
)

#: The ledger's clock in these tests.
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DIGEST = "5d" * 32
PURPOSE = {"proceeding": "FR-PNC-2026-0417", "description": "ransomware"}
INSTRUMENT = {"reference": "DE-BfJ-2026-114", "sha256": "ab" * 32}

AUTHORITIES = {
    "DE": "DE/BKA",
    "FR": "FR/OFAC",
    "BR": "BR/PF",
    "US": "US/FBI",
    "NL": "NL/NHTCU",
    "INTERPOL": "INTERPOL/IPSG",
}

#: Put as an override's value to leave the field out of the body.
MISSING: Any = object()


def _apply(body: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    for name, value in overrides.items():
        if value is MISSING:
            body.pop(name, None)
        else:
            body[name] = value
    return body


def actor(party: str, officer: str | None = "Insp. K. Weber") -> dict[str, str]:
    out = {"party": party, "authority": AUTHORITIES.get(party, f"{party}/POLICE")}
    if officer is not None:
        out["officer"] = officer
    return out


def transfer_body(sender: str = "DE", recipient: str = "FR", /, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sender": actor(sender),
        "recipient": actor(recipient, officer=None),
        "legal_basis": "art44",
        "purpose": dict(PURPOSE),
        "data_categories": ["subscriber", "traffic"],
        "dataset_sha256": DIGEST,
    }
    return _apply(body, overrides)


def request_body(holder: str, recipient: str, parent: Transfer, /, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "parent_transfer_id": str(parent.id),
        "requested_by": actor(holder),
        "recipient": actor(recipient, officer=None),
        "purpose": dict(PURPOSE),
        "data_categories": ["traffic"],
        "justification": "cross-match against national databases",
    }
    return _apply(body, overrides)


def draft(sender: str = "DE", recipient: str = "FR", /, *, parent: Transfer | None = None,
          authorization: Authorization | None = None, now: datetime = NOW,
          **overrides: Any) -> TransferDraft:
    """A parsed transfer; with ``parent``, an onward transfer of it."""
    if parent is not None:
        overrides.setdefault("parent_transfer_id", str(parent.id))
        overrides.setdefault("data_categories", ["traffic"])
    if authorization is not None:
        overrides.setdefault("authorization_id", str(authorization.id))
    return TransferDraft.parse(transfer_body(sender, recipient, **overrides), now=now)


def recorded(transfer: TransferDraft, parent: Transfer | None = None) -> Transfer:
    """A Transfer aggregate for ``transfer``, its lineage fields derived from ``parent``."""
    transfer_id = uuid4()
    origin = origin_of(transfer.sender.party, parent)
    return Transfer._create(
        Transfer.Recorded,
        id=transfer_id,
        sender=transfer.sender.as_dict(),
        recipient=transfer.recipient.as_dict(),
        legal_basis=transfer.legal_basis,
        request_reference=transfer.request_reference,
        purpose=transfer.purpose.as_dict(),
        data_categories=list(transfer.data_categories),
        subjects=list(transfer.subjects),
        dataset_sha256=transfer.dataset_sha256,
        item_count=transfer.item_count,
        handling=transfer.handling.as_dict(),
        retention_until=transfer.retention_until.isoformat() if transfer.retention_until else None,
        transferred_at=format_datetime(transfer.transferred_at),
        justification=transfer.justification,
        ordered_by=transfer.ordered_by,
        parent_transfer_id=str(parent.id) if parent else None,
        authorization_id=str(transfer.authorization_id) if transfer.authorization_id else None,
        origin=origin,
        root_transfer_id=str(parent.root_transfer_id if parent else transfer_id),
        depth=parent.depth + 1 if parent else 0,
        origin_requires_written_form=(
            (parent.origin_requires_written_form if parent else False)
            or (transfer.sender.party == origin and transfer.handling.written_authorization_required)
        ),
    )


def record(sender: str = "DE", recipient: str = "FR", /, *, parent: Transfer | None = None,
           **overrides: Any) -> Transfer:
    """A recorded transfer; with ``parent``, an onward transfer of it."""
    return recorded(draft(sender, recipient, parent=parent, **overrides), parent)


def request(holder: str, recipient: str, parent: Transfer, /, **overrides: Any) -> Authorization:
    """A pending authorization request by ``holder`` to pass ``parent``'s data on."""
    parsed = AuthorizationRequestDraft.parse(request_body(holder, recipient, parent, **overrides))
    return Authorization._create(
        Authorization.Requested,
        id=uuid4(),
        parent_transfer_id=str(parent.id),
        requested_by=parsed.requested_by.as_dict(),
        recipient=parsed.recipient.as_dict(),
        purpose=parsed.purpose.as_dict(),
        data_categories=list(parsed.data_categories),
        justification=parsed.justification,
        origin=parent.origin,
        root_transfer_id=str(parent.root_transfer_id),
    )


def decider(party: str) -> Actor:
    return Actor.parse(actor(party), "decided_by", officer_required=True)


def grant(authorization: Authorization, *, by: str | None = None, reasons: str | None = None,
          **conditions: Any) -> Authorization:
    """Grant ``authorization`` (by its origin unless ``by`` says otherwise)."""
    authorization.grant(decider(by or authorization.origin), GrantConditions.parse(conditions), reasons)
    return authorization


def refuse(authorization: Authorization, reasons: str = "proceeding closed") -> Authorization:
    authorization.refuse(decider(authorization.origin), reasons)
    return authorization


def revoke(authorization: Authorization, reasons: str = "data found inaccurate") -> Authorization:
    authorization.revoke(decider(authorization.origin), reasons)
    return authorization


def assert_error(
    error: DomainError,
    *,
    rule: str,
    field: str | None,
    values: dict[str, Any] | None = None,
    article: str | None = None,
) -> None:
    """The error names ``rule`` and ``field``, in its attributes and in its text."""
    assert error.rule == rule
    assert error.field == field
    assert f"[{rule}]" in str(error)
    if field is not None:
        assert str(error).startswith(f"{field}: ")
    if values is not None:
        assert error.values == values
    if article is not None:
        assert error.article == article
        assert f"({article})" in str(error)
