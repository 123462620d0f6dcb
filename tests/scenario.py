"""Builders for the requests the tests send: realistic, and easy to vary."""

from __future__ import annotations

from typing import Any

from ledger.service.application import TransferLedger

DIGEST = "5d" * 32
PURPOSE = {"proceeding": "FR-PNC-2026-0417", "description": "ransomware"}

AUTHORITIES = {
    "DE": "DE/BKA",
    "FR": "FR/OFAC",
    "INTERPOL": "INTERPOL/IPSG",
    "BR": "BR/PF",
    "US": "US/FBI",
    "NL": "NL/NHTCU",
}


def actor(party: str, officer: str | None = "Officer on duty") -> dict[str, str]:
    out = {"party": party, "authority": AUTHORITIES.get(party, f"{party}/POLICE")}
    if officer:
        out["officer"] = officer
    return out


def transfer(sender: str, recipient: str, /, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sender": actor(sender),
        "recipient": actor(recipient, officer=None),
        "legal_basis": "art44",
        "purpose": dict(PURPOSE),
        "data_categories": ["subscriber", "traffic"],
        "dataset_sha256": DIGEST,
    }
    body.update(overrides)
    return body


def onward(sender: str, recipient: str, parent: dict[str, Any], auth: dict[str, Any] | None = None,
           /, **overrides: Any) -> dict[str, Any]:
    fields = {"parent_transfer_id": parent["id"], "legal_basis": "art47", "data_categories": ["traffic"]}
    body = transfer(sender, recipient, **{**fields, **overrides})
    if auth is not None:
        body["authorization_id"] = auth["id"]
    return body


def request(holder: str, recipient: str, parent: dict[str, Any], /, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "parent_transfer_id": parent["id"],
        "requested_by": actor(holder),
        "recipient": actor(recipient, officer=None),
        "purpose": dict(PURPOSE),
        "data_categories": ["traffic"],
        "justification": "cross-match against databases",
    }
    body.update(overrides)
    return body


def grant(by: str, **conditions: Any) -> dict[str, Any]:
    return {"decision": "granted", "decided_by": actor(by), "conditions": conditions}


def refuse(by: str, reasons: str = "no proceeding named") -> dict[str, Any]:
    return {"decision": "refused", "decided_by": actor(by), "reasons": reasons}


def revocation(by: str, reasons: str = "proceeding closed") -> dict[str, Any]:
    return {"revoked_by": actor(by), "reasons": reasons}


def granted_chain(ledger: TransferLedger, **conditions: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """DE -> FR recorded, FR asked DE to pass it to INTERPOL, DE granted."""
    root = ledger.record_transfer(transfer("DE", "FR"))
    auth = ledger.request_authorization(request("FR", "INTERPOL", root))
    auth = ledger.decide(auth["id"], grant("DE", **conditions))
    return root, auth
