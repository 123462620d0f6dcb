"""What a key may see of the ledger and name in a command (docs/API.md, "Keys, roles and
access"), for the routes of ``api.routers``.

Another Party's transfers and authorizations answer 404, as if they did not exist.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from api.deps import (
    READER_ROLES,
    authorization_parties,
    can_read,
    not_found,
    require_party,
    require_role,
    transfer_parties,
)
from api.errors import ApiProblem
from domain.errors import DomainError, NotFound
from domain.rules import not_origin
from ledger.service.application import TransferLedger
from ledger.storage.principals import Principal


def path_id(value: str, what: str) -> str:
    """The canonical form of an id in a path, or 404: one that is not a UUID names nothing."""
    try:
        return str(UUID(value))
    except ValueError:
        raise not_found(what, value) from None


# -- commands ---------------------------------------------------------------------


def may_record_transfer(ledger: TransferLedger, principal: Principal, body: Any) -> None:
    """Only a recorder of the sender's Party records a transfer, naming only what it may read."""
    require_role(principal, "recorder")
    require_party(principal, body.sender.party, "sender.party", "record transfers it does not send")
    refer_only_to_readable(ledger, principal, body.parent_transfer_id, body.authorization_id)


def may_request_authorization(ledger: TransferLedger, principal: Principal, body: Any) -> None:
    """Only a recorder of the holder's Party requests authorization, for a transfer it may read."""
    require_role(principal, "recorder")
    require_party(principal, body.requested_by.party, "requested_by.party",
                  "request authorization for data held by another Party")
    refer_only_to_readable(ledger, principal, body.parent_transfer_id)


def refer_only_to_readable(ledger: TransferLedger, principal: Principal, parent_transfer_id: UUID | str | None,
                           authorization_id: UUID | str | None = None) -> None:
    """A command naming another Party's transfer or authorization is told it does not exist.

    Answered exactly as for an unknown id, so that a refusal (e.g. ``not-holder``) does not
    reveal who sent what to whom. Malformed and unknown ids are left to the command.
    """
    if parent_transfer_id is not None:
        try:
            parent = ledger.get_transfer(parent_transfer_id)
        except DomainError:
            pass
        else:
            if not can_read(principal, transfer_parties(parent)):
                raise NotFound(f"no transfer {parent['id']}", rule="transfer-not-found",
                               field="parent_transfer_id", values={"id": parent["id"]})
    if authorization_id is not None:
        try:
            authorization = ledger.get_authorization(authorization_id)
        except DomainError:
            pass
        else:
            if not can_read(principal, authorization_parties(authorization)):
                raise NotFound(f"no authorization request {authorization['id']}", rule="authorization-not-found",
                               field="authorization_id", values={"id": authorization["id"]})


def authorization_for_origin(ledger: TransferLedger, principal: Principal, path: str,
                             actor_party: str, field: str) -> str:
    """Only an authority of the origin decides or revokes; others are told why, or nothing.

    Returns the authorization's id (``path``) in canonical form.
    """
    require_role(principal, "authority")
    authorization_id = path_id(path, "authorization")
    try:
        view = ledger.get_authorization(authorization_id)
    except NotFound:
        raise not_found("authorization", authorization_id) from None
    violation = not_origin(principal.party, view["origin"], field)
    if violation is not None:
        if not can_read(principal, authorization_parties(view)):
            raise not_found("authorization", authorization_id)
        raise ApiProblem(403, violation.rule, f"{violation.detail} ({violation.article}); "
                         f"this key belongs to {principal.party}")
    require_party(principal, actor_party, field, "act")
    return authorization_id


def transfer_for_party(ledger: TransferLedger, principal: Principal, path: str, actor_party: str,
                       field: str) -> str:
    """Only an authority of the transfer's sender or recipient erases or restricts its data
    (Order 949 §15); others are told why, or nothing. Returns the transfer's id in canonical form."""
    require_role(principal, "authority")
    transfer_id = path_id(path, "transfer")
    try:
        view = ledger.get_transfer(transfer_id)
    except NotFound:
        raise not_found("transfer", transfer_id) from None
    parties = (view["sender"]["party"], view["recipient"]["party"])
    if principal.party not in parties:
        if not can_read(principal, transfer_parties(view)):
            raise not_found("transfer", transfer_id)
        raise ApiProblem(403, "not-a-party-to-transfer",
                         f"only the sender ({parties[0]}) or the recipient ({parties[1]}) of the transfer "
                         f"erases or restricts its data (Order 949 §15); this key belongs to {principal.party}")
    require_party(principal, actor_party, field, "act")
    return transfer_id


# -- reads ------------------------------------------------------------------------


def readable_transfer(ledger: TransferLedger, principal: Principal, transfer_id: str) -> dict[str, Any]:
    """The transfer, with only the ancestors the principal may read (parent first)."""
    view = _readable(principal, "transfer", transfer_id, ledger.get_transfer, transfer_parties)
    view["ancestors"] = [a for a in view["ancestors"] if can_read(principal, transfer_parties(a))]
    return view


def lineage(ledger: TransferLedger, principal: Principal, transfer_id: str) -> dict[str, Any]:
    """A transfer's origin, the ancestors and the descendants (commit order) the principal may read."""
    view = readable_transfer(ledger, principal, transfer_id)
    root = view["root_transfer_id"]
    below, descendants = {view["id"]}, []
    after: int | None = 0
    while after is not None:  # the lineage in commit order: a parent is recorded before its children
        page, after = ledger.list_transfers(visible=lambda v: v["root_transfer_id"] == root, after=after,
                                            limit=500, mentions=(root,))
        for item in page:
            if item["parent_transfer_id"] in below:
                below.add(item["id"])
                if can_read(principal, transfer_parties(item)):
                    descendants.append(item)
    transfer = {k: v for k, v in view.items() if k != "ancestors"}
    return {"id": view["id"], "origin": view["origin"], "root_transfer_id": root, "transfer": transfer,
            "ancestors": view["ancestors"], "descendants": descendants}


def readable_authorization(ledger: TransferLedger, principal: Principal, authorization_id: str) -> dict[str, Any]:
    return _readable(principal, "authorization", authorization_id, ledger.get_authorization,
                     authorization_parties)


def _readable(principal: Principal, what: str, object_id: str, get: Callable[[str], dict[str, Any]],
              parties: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """The object, if the principal may read it; otherwise 404, exactly as for an unknown id."""
    require_role(principal, *READER_ROLES)
    try:
        view = get(object_id)
    except NotFound:
        raise not_found(what, object_id) from None
    if not can_read(principal, parties(view)):
        raise not_found(what, object_id)
    return view


def readable_share(principal: Principal) -> tuple[str, ...]:
    """What every object the principal may read mentions: its Party, unless it reads everything."""
    return () if principal.reads_everything else (principal.party,)


# -- the feed ---------------------------------------------------------------------


def require_whole_ledger_auditor(principal: Principal) -> None:
    require_role(principal, "auditor")
    if not principal.is_global:
        raise ApiProblem(403, "not-your-party",
                         "the whole feed is for auditors of the whole ledger (party *); "
                         "a Party's auditor reads its share through /v1/transfers")


def feed(ledger: TransferLedger, after: int, limit: int) -> dict[str, Any]:
    """Up to ``limit`` leaves after leaf ``after``, each with its event as JSON values."""
    rows = ledger.store.read_feed(after + 1, limit)
    items = []
    for leaf, event in rows:
        domain_event = ledger.mapper.to_domain_event(
            StoredEvent(UUID(leaf.originator_id), leaf.originator_version, event.topic, event.state)
        )
        items.append({
            "leaf_index": leaf.leaf_index,
            "leaf_hash": base64.b64encode(leaf.leaf_hash).decode(),
            "recorded_at": leaf.recorded_at,
            "originator_id": leaf.originator_id,
            "originator_version": leaf.originator_version,
            "topic": event.topic,
            "event": _json_safe(dict(domain_event.__dict__)),
        })
    next_after = rows[-1][0].leaf_index if len(rows) == limit else None
    return {"items": items, "next_after": next_after}


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (UUID, datetime)):
        return str(value) if isinstance(value, UUID) else value.isoformat()
    return value
