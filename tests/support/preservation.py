"""Preservation requests (art. 42) as the tests make them: bodies, and events written around the application."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from domain.parties import Actor
from domain.preservation import DAY, Preservation
from domain.values import format_datetime
from tests.support.builders import actor


def preservation(requesting: str = "DE", requested: str = "FR", /, **overrides: Any) -> dict[str, Any]:
    """A request of ``requesting`` to ``requested``, with every field of art. 42 §3."""
    body: dict[str, Any] = {
        "requesting_authority": actor(requesting),
        "requested_party": requested,
        "request_reference": f"{requesting}-PRES-1",
        "offence": "illegal access (art. 7)",
        "facts": "servers encrypted; the ransom note names a mailbox",
        "data": {"description": "mailbox ops@example.org, content and traffic", "data_categories": ["content"]},
        "relation_to_offence": "the ransom negotiations go through it",
        "custodian": "Example Mail SAS",
        "location": "Paris data centre",
        "necessity": "inactive mailboxes are deleted after 30 days",
        "mla_request_intended": True,
        "confidential": True,
        "no_user_notice": True,
        "period_days": 60,
    }
    body.update(overrides)
    return body


def days_ago(days: float) -> str:
    return format_datetime(datetime.now().astimezone() - timedelta(days=days))


def extension(party: str = "DE", days: int = 30) -> dict[str, Any]:
    return {"extended_by": actor(party), "period_days": days, "reasons": "the MLA request is being translated"}


def follow_up(party: str = "DE", **overrides: Any) -> dict[str, Any]:
    return {"filed_by": actor(party), "mla_request_reference": f"{party}-MLA-1", **overrides}


def decision(party: str = "FR", outcome: str = "granted", reasons: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"decided_by": actor(party), "decision": outcome}
    if reasons is not None:
        out["reasons"] = reasons
    return out


def release(party: str = "FR") -> dict[str, Any]:
    return {"released_by": actor(party), "reasons": "no longer needed"}


def around(ledger: Any, preservation_id: str, act: str, party: str, **fields: Any) -> None:
    """Trigger an event on a preservation and save it straight through eventsourcing, bypassing every rule."""
    aggregate: Preservation = ledger.repository.get(UUID(preservation_id))
    who = Actor.from_dict(actor(party))
    if act == "extend":
        aggregate.extend(who, fields.get("days", 30), "late")
    elif act == "follow-up":
        aggregate.file_follow_up(who, "MLA-1", fields.get("received_at") or ledger.clock())
    elif act == "decide":
        aggregate.decide_follow_up(who, "granted", None)
    elif act == "release":
        aggregate.release_data(who, "released")
    ledger.save(aggregate)


def around_request(ledger: Any, requesting: str = "DE", requested: str = "FR", *, period_days: int = 60,
                   requested_at: str | None = None) -> str:
    """A PreservationRequested saved straight through eventsourcing (any period, any time), its id."""
    at = datetime.fromisoformat(requested_at) if requested_at else ledger.clock()
    body = preservation(requesting, requested)
    fields = {name: body.get(name) for name in Preservation.Requested.__annotations__}
    fields.update(period_days=period_days, requested_at=format_datetime(at),
                  expires_at=format_datetime(at + period_days * DAY))
    aggregate = Preservation._create(Preservation.Requested, id=uuid4(), **fields)
    ledger.save(aggregate)
    return str(aggregate.id)
