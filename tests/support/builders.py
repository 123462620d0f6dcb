"""The tests' inputs, realistic and easy to vary: request bodies, and domain aggregates.

**Bodies** are what the API and the application take (``transfer``, ``onward``,
``request``, ``grant``, ``refuse``, ``revocation``; ``granted_chain`` records
one on a ledger). An override replaces a field; ``MISSING`` leaves it out.

**Aggregates** are made with the domain's own event classes, their lineage
fields filled the way ``ledger.service.application`` fills them, without any
store: ``draft`` (a parsed transfer), ``record`` and ``recorded`` (a Transfer),
``pending_authorization`` (an Authorization requested), then
``grant_authorization``, ``refuse_authorization``, ``revoke_authorization``
(by its origin). ``assert_error`` checks what a refusal says.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from domain.errors import DomainError
from domain.model import Authorization, Transfer
from domain.parties import Official
from domain.rules import origin_of
from domain.values import (
    AuthorizationRequestDraft,
    GrantConditions,
    TransferDraft,
)

if TYPE_CHECKING:
    from ledger.service.application import TransferLedger

#: The ledger's clock in the domain tests.
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DIGEST = "5d" * 32
PURPOSE = {"proceeding": "FR-PNC-2026-0417", "description": "ransomware"}
#: A proceeding other than the one the request stated (art. 40 §19: specialty).
OTHER_PROCEEDING = "FR-PNC-2026-0999"
INSTRUMENT = {"reference": "DE-BfJ-2026-114", "sha256": "ab" * 32}

AUTHORITIES = {
    "DE": "DE/BKA",
    "FR": "FR/OFAC",
    "INTERPOL": "INTERPOL/IPSG",
    "BR": "BR/PF",
    "US": "US/FBI",
    "NL": "NL/NHTCU",
}

#: Put as an override's value to leave the field out of the body.
MISSING: Any = object()

#: A transfer as the tests hold it: the ledger's answer (a dict with its ``id``) or an aggregate.
Recorded = Mapping[str, Any] | Transfer


def _apply(body: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    for name, value in overrides.items():
        if value is MISSING:
            body.pop(name, None)
        else:
            body[name] = value
    return body


def _id_of(recorded: Recorded) -> str:
    return str(recorded.id) if isinstance(recorded, Transfer) else str(recorded["id"])


# -- bodies ------------------------------------------------------------------------


def actor(party: str, officer: str | None = "Insp. K. Weber") -> dict[str, str]:
    out = {"party": party, "authority": AUTHORITIES.get(party, f"{party}/POLICE")}
    if officer is not None:
        out["officer"] = officer
    return out


def transfer(sender: str = "DE", recipient: str = "FR", /, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sender": actor(sender),
        "recipient": actor(recipient, officer=None),
        "legal_basis": "art44",
        "purpose": dict(PURPOSE),
        "data_categories": ["subscriber", "traffic"],
        "dataset_sha256": DIGEST,
    }
    return _apply(body, overrides)


def onward(sender: str, recipient: str, parent: Recorded, auth: Mapping[str, Any] | None = None,
           /, **overrides: Any) -> dict[str, Any]:
    """An onward transfer of ``parent`` (under ``auth``, the ledger's answer for an authorization)."""
    fields = {"parent_transfer_id": _id_of(parent), "legal_basis": "art47", "data_categories": ["traffic"]}
    body = transfer(sender, recipient, **{**fields, **overrides})
    if auth is not None:
        body["authorization_id"] = auth["id"]
    return body


def request(holder: str, recipient: str, parent: Recorded, /, **overrides: Any) -> dict[str, Any]:
    """``holder`` asks ``parent``'s origin to pass its data on to ``recipient`` (art. 36 §3)."""
    body: dict[str, Any] = {
        "parent_transfer_id": _id_of(parent),
        "requested_by": actor(holder),
        "recipient": actor(recipient, officer=None),
        "purpose": dict(PURPOSE),
        "data_categories": ["traffic"],
        "justification": "cross-match against national databases",
    }
    return _apply(body, overrides)


def grant(by: str, **conditions: Any) -> dict[str, Any]:
    return {"decision": "granted", "decided_by": actor(by), "conditions": conditions}


def refuse(by: str, reasons: str = "no proceeding named") -> dict[str, Any]:
    return {"decision": "refused", "decided_by": actor(by), "reasons": reasons}


def revocation(by: str, reasons: str = "proceeding closed") -> dict[str, Any]:
    return {"revoked_by": actor(by), "reasons": reasons}


def use(by: str = "FR", /, **overrides: Any) -> dict[str, Any]:
    """``by`` (the recipient) used the data it received, in the request's proceeding (art. 40 §19)."""
    body: dict[str, Any] = {"proceeding": PURPOSE["proceeding"], "kind": "investigation", "used_by": actor(by),
                            "description": "subscriber data matched to the suspect's account"}
    return _apply(body, overrides)


def consent_request(transfer_: Recorded, by: str = "FR", /, **overrides: Any) -> dict[str, Any]:
    """``by`` (the recipient) asks the sender's consent to use ``transfer_``'s data in another proceeding."""
    body: dict[str, Any] = {"transfer_id": _id_of(transfer_), "proceeding": OTHER_PROCEEDING,
                            "requested_by": actor(by), "reasons": "the same account appears in a fraud case"}
    return _apply(body, overrides)


def referral(by: str = "FR", requesting: str = "DE", third: str = "NL", /, *, parent: Recorded | None = None,
             transfer_: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """``by``, executing ``requesting``'s request, informs ``third`` (a transfer: its own finding, or
    with ``parent`` the data it received) and tells ``requesting`` to turn to ``third``."""
    if transfer_ is None:
        transfer_ = (onward(by, third, parent, legal_basis="art40-4") if parent is not None
                     else transfer(by, third, legal_basis="art40-4", data_categories=["traffic"]))
    body: dict[str, Any] = {
        "request_reference": f"{requesting}-MLA-2026-031", "requesting_party": requesting, "third_party": third,
        "finding": f"the IP addresses of the request belong to a hosting provider in {third}",
        "transfer": transfer_,
        "notice": {"notified_by": actor(by), "recipient": actor(requesting, officer=None),
                   "text": f"address the request for the subscriber data to {third}"},
    }
    return _apply(body, overrides)


def granted_chain(ledger: TransferLedger, **conditions: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """DE -> FR recorded, FR asked DE to pass it to INTERPOL, DE granted."""
    root = ledger.record_transfer(transfer("DE", "FR"))
    auth = ledger.request_authorization(request("FR", "INTERPOL", root))
    auth = ledger.decide(auth["id"], grant("DE", **conditions))
    return root, auth


# -- aggregates --------------------------------------------------------------------


def draft(sender: str = "DE", recipient: str = "FR", /, *, parent: Transfer | None = None,
          authorization: Authorization | None = None, now: datetime = NOW,
          **overrides: Any) -> TransferDraft:
    """A parsed transfer; with ``parent``, an onward transfer of it."""
    if parent is not None:
        overrides.setdefault("parent_transfer_id", str(parent.id))
        overrides.setdefault("data_categories", ["traffic"])
    if authorization is not None:
        overrides.setdefault("authorization_id", str(authorization.id))
    return TransferDraft.parse(transfer(sender, recipient, **overrides), now=now)


def recorded(transfer: TransferDraft, parent: Transfer | None = None) -> Transfer:
    """A Transfer aggregate for ``transfer``, its lineage fields derived from ``parent``."""
    return Transfer.record(transfer, parent, origin_of(transfer.sender.party, parent))


def record(sender: str = "DE", recipient: str = "FR", /, *, parent: Transfer | None = None,
           **overrides: Any) -> Transfer:
    """A recorded transfer; with ``parent``, an onward transfer of it."""
    return recorded(draft(sender, recipient, parent=parent, **overrides), parent)


def pending_authorization(holder: str, recipient: str, parent: Transfer, /, **overrides: Any) -> Authorization:
    """A pending authorization request by ``holder`` to pass ``parent``'s data on."""
    return Authorization.requested(AuthorizationRequestDraft.parse(request(holder, recipient, parent, **overrides)),
                                   parent)


def decider(party: str) -> Official:
    return Official.parse(actor(party), "decided_by")


def grant_authorization(authorization: Authorization, *, by: str | None = None, reasons: str | None = None,
                        **conditions: Any) -> Authorization:
    """Grant ``authorization`` (by its origin unless ``by`` says otherwise)."""
    authorization.grant(decider(by or authorization.origin), GrantConditions.parse(conditions), reasons)
    return authorization


def refuse_authorization(authorization: Authorization, reasons: str = "proceeding closed") -> Authorization:
    authorization.refuse(decider(authorization.origin), reasons)
    return authorization


def revoke_authorization(authorization: Authorization, reasons: str = "data found inaccurate") -> Authorization:
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
