"""Histories for the read models: a small world of transfers, and events written around the application."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from domain.model import Authorization, Transfer
from domain.parties import Actor
from domain.values import format_datetime
from ledger.service.application import TransferLedger
from ledger.storage.sql import SqlAccess
from projections import queries, runner_for
from projections.db import Db
from projections.events import now_time
from projections.runner import ProjectionRunner
from projections.schema import MODEL_TABLES
from tests.support import builders


def make_runner(ledger: TransferLedger, **options: Any) -> ProjectionRunner:
    return runner_for(ledger, SqlAccess(ledger.recorder), **options)


def dump(db: Db) -> dict[str, list[tuple[Any, ...]]]:
    """Every read-model row, table by table, in a canonical order (floats rounded)."""
    out = {}
    for table in MODEL_TABLES:
        rows = [
            tuple(round(v, 6) if isinstance(v, float) else v for v in row.values())
            for row in db.query(f"SELECT * FROM {{{table}}}")
        ]
        out[table] = sorted(rows, key=lambda r: tuple((v is None, str(v)) for v in r))
    return out


def build_world(ledger: TransferLedger) -> dict[str, Any]:
    """A ledger with every kind of event: chains, a refusal, a pending request,
    a revocation with a flow after it, a policy, a retention date passed."""
    w: dict[str, Any] = {}
    w["root"], w["a1"] = builders.granted_chain(ledger, max_transfers=2)
    w["t1"] = ledger.record_transfer(builders.onward("FR", "INTERPOL", w["root"], w["a1"]))
    w["a2"] = ledger.request_authorization(builders.request("INTERPOL", "BR", w["t1"]))
    w["a2"] = ledger.decide(w["a2"]["id"], builders.grant("DE"))
    w["refused"] = ledger.request_authorization(builders.request("FR", "US", w["root"]))
    w["refused"] = ledger.decide(w["refused"]["id"], builders.refuse("DE", "no proceeding in US"))
    w["pending"] = ledger.request_authorization(builders.request("FR", "NL", w["root"]))
    ledger.revoke(w["a1"]["id"], builders.revocation("DE", "proceeding closed"))
    w["t2"] = ledger.record_transfer(builders.onward("INTERPOL", "BR", w["t1"], w["a2"]))  # after the revocation
    w["back"] = ledger.record_transfer(builders.onward("BR", "DE", w["t2"]))  # back to the origin: no grant needed
    ledger.set_party_policy("NL", written_authorization_required=True, set_by=builders.actor("NL"))
    w["nl"] = ledger.record_transfer(builders.transfer("NL", "FR", retention_until="2020-01-31",
                                                       legal_basis="art41", data_categories=["content"]))
    return w


def around(ledger: TransferLedger, sender: str, recipient: str, parent: dict[str, Any] | None = None,
           grant_id: str | None = None, *, use: bool = True, **overrides: Any) -> str:
    """Save a TransferRecorded straight through eventsourcing, bypassing every rule
    (as a writer around the application would); with ``grant_id``, also its use."""
    transfer_id = uuid4()
    fields = {
        "sender": builders.actor(sender), "recipient": {"party": recipient, "authority": f"{recipient}/POLICE"},
        "legal_basis": "art47", "request_reference": None, "purpose": dict(builders.PURPOSE),
        "data_categories": ["traffic"], "subjects": [], "dataset_sha256": builders.DIGEST, "item_count": None,
        "handling": {"confidential": False, "written_authorization_required": False, "use_restrictions": []},
        "retention_until": None, "transferred_at": format_datetime(ledger.clock()), "justification": None,
        "ordered_by": None, "parent_transfer_id": parent["id"] if parent else None, "authorization_id": grant_id,
        "origin": parent["origin"] if parent else sender,
        "root_transfer_id": parent["root_transfer_id"] if parent else str(transfer_id),
        "depth": parent["depth"] + 1 if parent else 0, "origin_requires_written_form": False,
    }
    fields.update(overrides)
    transfer = Transfer._create(Transfer.Recorded, id=transfer_id, **fields)
    aggregates: list[Any] = [transfer]
    if grant_id is not None and use:
        grant = ledger.repository.get(UUID(grant_id))
        grant.record_use(transfer_id)
        aggregates.append(grant)
    ledger.save(*aggregates)
    return str(transfer_id)


def around_grant(ledger: TransferLedger, request_id: str, by: str) -> None:
    """Grant a request in the name of any Party, bypassing the rules."""
    grant: Authorization = ledger.repository.get(UUID(request_id))
    from domain.values import GrantConditions

    grant.grant(Actor.from_dict(builders.actor(by)), GrantConditions(), None)
    ledger.save(grant)


#: A moment after every deadline: the time-dependent findings judged then.
FAR_FUTURE = "2999-01-01T00:00:00.000000Z"


def findings(runner: ProjectionRunner, rule: str | None = None, **options: Any) -> list[dict[str, Any]]:
    """The findings, after the runner caught up, judged now (or at ``now=``)."""
    runner.catch_up()
    options.setdefault("now", now_time())
    return queries.findings(runner.db, rule=rule, **options)["items"]  # type: ignore[no-any-return]


def one(items: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    """The one item matching every ``match``."""
    found = [f for f in items if all(f.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (match, items)
    return found[0]
