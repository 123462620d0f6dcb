"""Reading the read models: lineage, registry, findings, statistics.

One implementation for the live read models (the ledger's database) and for
a replay "as of" a leaf (an in-memory database): both hold the same tables.

``share`` limits an answer to one Party's share (docs/API.md, "Keys, roles and access"):
transfers it sent, received or originated; requests it made, received or
must decide on; findings and statistics about those. ``None`` is the whole
ledger.

``now`` (a normalized time, ``projections.events.norm_time``) is the moment
the time-dependent findings are judged at: the wall clock for the live
models, the time of leaf N for the state as of N.
"""

from __future__ import annotations

import json
import statistics as stats_lib
from datetime import datetime, timedelta
from typing import Any

from domain.custody import EXCULPATORY_NOTICE_DEADLINE, after_notice_overdue
from domain.regimes import URGENT_NOTICE_DEADLINE, urgent_notice_overdue
from projections import control, preservation
from projections.db import Db
from projections.model import AUTH_COLUMNS, FINDING_COLUMNS, RULES, TRANSFER_COLUMNS

#: The default deadline for deciding on an authorization request (days): an
#: audit policy, not a rule of the Convention; every query can set its own.
DEFAULT_PENDING_DEADLINE_DAYS = 30.0
#: How long a Party told of an erasure has to acknowledge it before it is a finding.
DEFAULT_NOTICE_DEADLINE_DAYS = 30.0
#: How long after the last day of its period an erasure still counts as on time (the retention
#: job runs daily: docs/OPERATIONS.md).
RETENTION_GRACE_SECONDS = 86400.0

_T_COLUMNS = ", ".join(TRANSFER_COLUMNS)
_A_COLUMNS = ", ".join(AUTH_COLUMNS)


def _share(columns: tuple[str, ...], share: str | None) -> tuple[str, list[Any]]:
    if share is None:
        return "", []
    return "(" + " OR ".join(f"{c} = ?" for c in columns) + ")", [share] * len(columns)


def _where(*parts: tuple[str, list[Any]]) -> tuple[str, list[Any]]:
    text = [p for p, _ in parts if p]
    params = [v for _, values in parts for v in values]
    return (" WHERE " + " AND ".join(text)) if text else "", params


def _split(value: str | None) -> list[str]:
    return value.split(",") if value else []


# -- lineage -------------------------------------------------------------------------


def transfer_node(row: Any) -> dict[str, Any]:
    """A hop of a lineage (``row``: the columns of :data:`NODE_COLUMNS`). Parties, not
    authorities: a transfer's full record is ``GET /v1/transfers/{id}``."""
    (ident, leaf_index, transferred_at, sender, recipient, origin, parent_id, depth, authorization_id,
     legal_basis, categories, _) = row
    return {
        "id": ident,
        "leaf_index": leaf_index,
        "transferred_at": transferred_at,
        "sender": sender,
        "recipient": recipient,
        "origin": origin,
        "parent_transfer_id": parent_id,
        "depth": depth,
        "authorization_id": authorization_id,
        "legal_basis": legal_basis,
        "data_categories": categories.split(","),
    }


NODE_COLUMNS = (
    "id", "leaf_index", "transferred_at", "sender", "recipient", "origin", "parent_id", "depth",
    "authorization_id", "legal_basis", "categories", "root_id",
)
_NODE_SELECT = ", ".join(NODE_COLUMNS)
_T_NODE_SELECT = ", ".join(f"t.{c}" for c in NODE_COLUMNS)
_SENDER, _RECIPIENT, _ORIGIN, _PARENT, _ROOT = 3, 4, 5, 6, 11


def lineage(db: Db, transfer_id: str, share: str | None = None) -> dict[str, Any] | None:
    """The transfer, its origin, its ancestors (parent first) and every descendant (leaf order).

    The tree is the one the recorded parent links make, hop by hop: the read
    model derives each transfer's root from its parent's and keeps a tree's
    transfers together (index on the root's leaf index and the parent). A
    first transfer's descendants are its whole tree, one range scan; another
    transfer's are followed link by link. None if the transfer is unknown or
    outside ``share``.
    """
    found = db.rows(f"SELECT {_NODE_SELECT}, root_leaf FROM {{proj_transfers}} WHERE id = ?", (transfer_id,))
    if not found:
        return None
    row, root_leaf = tuple(found[0][:-1]), found[0][-1]

    def visible(r: Any) -> bool:
        return share is None or share in (r[_SENDER], r[_RECIPIENT], r[_ORIGIN])

    if not visible(row):
        return None
    if row[_PARENT] is None:
        ancestors: list[Any] = []
        descendants = db.rows(
            f"SELECT {_NODE_SELECT} FROM {{proj_transfers}} WHERE root_leaf = ? AND id <> ? ORDER BY leaf_index",
            (root_leaf, transfer_id),
        )
    else:
        ancestors = db.rows(
            "WITH RECURSIVE up(id, n) AS ("
            " SELECT parent_id, 1 FROM {proj_transfers} WHERE id = ?"
            " UNION ALL SELECT p.parent_id, up.n + 1 FROM up JOIN {proj_transfers} p ON p.id = up.id"
            " WHERE p.parent_id IS NOT NULL)"
            f" SELECT {_T_NODE_SELECT} FROM up JOIN {{proj_transfers}} t ON t.id = up.id ORDER BY up.n",
            (transfer_id,),
        )
        descendants = db.rows(
            "WITH RECURSIVE down(id) AS ("
            " SELECT id FROM {proj_transfers} WHERE root_leaf = ? AND parent_id = ?"
            " UNION ALL SELECT c.id FROM down JOIN {proj_transfers} c ON c.root_leaf = ? AND c.parent_id = down.id)"
            f" SELECT {_T_NODE_SELECT} FROM down JOIN {{proj_transfers}} t ON t.id = down.id ORDER BY t.leaf_index",
            (root_leaf, transfer_id, root_leaf),
        )
    out = {
        "id": row[0],
        "origin": row[_ORIGIN],
        "root_transfer_id": row[_ROOT],
        "transfer": transfer_node(row),
        "ancestors": [transfer_node(a) for a in ancestors if visible(a)],
        "descendants": [transfer_node(d) for d in descendants if visible(d)],
    }
    _mark_referrals(db, [out["transfer"], *out["ancestors"], *out["descendants"]])
    return out


def _mark_referrals(db: Db, nodes: list[dict[str, Any]]) -> None:
    """Each hop's ``referral_id``: the third-country referral it was made under, or None."""
    ids = [node["id"] for node in nodes]
    referrals: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ", ".join("?" * len(chunk))
        referrals.update(db.rows(f"SELECT transfer_id, id FROM {{proj_referrals}} WHERE transfer_id IN ({marks})",
                                 tuple(chunk)))
    for node in nodes:
        node["referral_id"] = referrals.get(node["id"])


def lineage_summary(db: Db, share: str | None = None) -> dict[str, Any]:
    where, params = _where(_share(("sender", "recipient", "origin"), share))
    row = db.query(
        "SELECT COUNT(*) AS transfers, SUM(CASE WHEN parent_id IS NULL THEN 1 ELSE 0 END) AS roots, "
        f"MAX(depth) AS max_depth FROM {{proj_transfers}}{where}",
        params,
    )[0]
    transfers = int(row["transfers"] or 0)
    roots = int(row["roots"] or 0)
    return {"transfers": transfers, "first_transfers": roots, "onward_transfers": transfers - roots,
            "max_depth": int(row["max_depth"]) if row["max_depth"] is not None else None}


# -- the authorization registry -------------------------------------------------------


def authorization_item(row: dict[str, Any], now: str) -> dict[str, Any]:
    conditions = json.loads(row["conditions"]) if row["conditions"] else None
    max_transfers = row["max_transfers"]
    uses = int(row["uses"] or 0)
    valid_until = row["valid_until"]
    decided = row["decided_leaf"] is not None
    return {
        "id": row["id"],
        "status": row["status"],
        "origin": row["origin"],
        "holder": {"party": row["holder"], "authority": row["holder_authority"]},
        "recipient": {"party": row["recipient"], "authority": row["recipient_authority"]},
        "parent_transfer_id": row["parent_id"],
        "root_transfer_id": row["root_id"],
        "data_categories": _split(row["categories"]),
        "proceeding": row["proceeding"],
        "justification": row["justification"],
        "requested_at": row["requested_at"],
        "requested_leaf": int(row["requested_leaf"]),
        "decision": {
            "decision": "refused" if row["status"] == "refused" else "granted",
            "decided_by": row["decided_by"],
            "decided_at": row["decided_at"],
            "decided_leaf": int(row["decided_leaf"]),
            "reasons": row["reasons"],
            "signed": bool(row["signed"]),
            "time_to_decide_seconds": row["decide_seconds"],
        } if decided else None,
        "conditions": conditions,
        "valid_until": valid_until,
        "expired": (valid_until < now) if valid_until else (False if row["status"] == "granted" else None),
        "max_transfers": int(max_transfers) if max_transfers is not None else None,
        "uses": uses,
        "remaining_transfers": max(0, int(max_transfers) - uses) if max_transfers is not None else None,
        "transfers_naming_it": int(row["named"] or 0),
        "revocation": {
            "revoked_by": row["revoked_by"],
            "revoked_at": row["revoked_at"],
            "revoked_leaf": int(row["revoked_leaf"]),
            "reasons": row["revocation_reasons"],
        } if row["revoked_leaf"] is not None else None,
    }


def authorizations(
    db: Db, *, now: str, share: str | None = None, status: str | None = None, after: int = -1,
    limit: int = 100, parent_id: str | None = None, root_id: str | None = None,
) -> dict[str, Any]:
    """Requests by status (counts, then items in request order after ``after``); the items only of
    the requests about ``parent_id``'s data, or of ``root_id``'s lineage, when given."""
    share_clause = _share(("origin", "holder", "recipient"), share)
    where, params = _where(share_clause)
    counts = {"pending": 0, "granted": 0, "refused": 0, "revoked": 0}
    for r in db.query(f"SELECT status, COUNT(*) AS n FROM {{proj_authorizations}}{where} GROUP BY status", params):
        counts[r["status"]] = int(r["n"])
    where, params = _where(share_clause, ("status = ?" if status else "", [status] if status else []),
                           ("parent_id = ?" if parent_id else "", [parent_id] if parent_id else []),
                           ("root_id = ?" if root_id else "", [root_id] if root_id else []),
                           ("requested_leaf > ?", [after]))
    rows = db.query(
        f"SELECT {_A_COLUMNS} FROM {{proj_authorizations}}{where} ORDER BY requested_leaf LIMIT ?",
        [*params, limit + 1],
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "counts": {**counts, "total": sum(counts.values())},
        "items": [authorization_item(r, now) for r in rows],
        "next_after": int(rows[-1]["requested_leaf"]) if more else None,
    }


# -- findings ------------------------------------------------------------------------------


def _finding(
    fid: str, rule: str, reason: str, leaf_index: int, detected_at: str, origin: str | None, sender: str | None,
    recipient: str | None, transfer_id: str | None, authorization_id: str | None, detail: str,
    proof: list[dict[str, Any]],
) -> dict[str, Any]:
    article, title = RULES[rule]
    return {
        "id": fid, "rule": rule, "article": article, "title": title, "reason": reason,
        "leaf_index": leaf_index, "detected_at": detected_at,
        "parties": {"origin": origin, "sender": sender, "recipient": recipient},
        "transfer_id": transfer_id, "authorization_id": authorization_id, "detail": detail, "evidence": proof,
    }


def _shift(moment: str, seconds: float) -> str:
    try:
        shifted = datetime.fromisoformat(moment) + timedelta(seconds=seconds)
    except OverflowError:
        return "0001-01-01T00:00:00.000000Z" if seconds < 0 else "9999-12-31T23:59:59.999999Z"
    return f"{shifted.year:04d}" + shifted.strftime("-%m-%dT%H:%M:%S.%fZ")


def _exculpatory_notices_overdue(db: Db, now: str, share: str | None) -> list[dict[str, Any]]:
    """Art. 40 §19: exculpatory uses whose notice after the use came late, or has not come by ``now``
    (``domain.custody.after_notice_overdue``, the deadline ``EXCULPATORY_NOTICE_DEADLINE``)."""
    hours = EXCULPATORY_NOTICE_DEADLINE.total_seconds() / 3600
    out = []
    rows = db.query(
        "SELECT u.id, u.transfer_id, u.used_by, u.proceeding, u.used_at, u.leaf_index, n.notified_at, "
        "n.leaf_index AS notice_leaf, t.origin, t.sender, t.recipient FROM {proj_uses} u "
        "JOIN {proj_transfers} t ON t.id = u.transfer_id "
        "LEFT JOIN {proj_use_notices} n ON n.use_id = u.id WHERE u.awaits_notice = 1")
    moment = datetime.fromisoformat(now)
    for r in rows:
        if share is not None and share not in (r["origin"], r["sender"], r["recipient"]):
            continue
        used_at = datetime.fromisoformat(r["used_at"])
        noticed = datetime.fromisoformat(r["notified_at"]) if r["notified_at"] else None
        if not after_notice_overdue(used_at, noticed, moment):
            continue
        proof = [{"leaf_index": int(r["leaf_index"]), "event": "TransferDataUsed", "id": r["transfer_id"],
                  "use_id": r["id"]}]
        if noticed is not None:
            proof.append({"leaf_index": int(r["notice_leaf"]), "event": "UseNoticeGiven", "id": r["transfer_id"],
                          "use_id": r["id"], "notified_at": r["notified_at"]})
        told = f"told {r['sender']} only at {r['notified_at']}" if noticed else f"has not told {r['sender']}"
        out.append(_finding(
            f"exculpatory-notice-overdue/{r['id']}", "exculpatory-notice-overdue",
            "notified-late" if noticed else "not-notified", int(r["leaf_index"]),
            _shift(r["used_at"], EXCULPATORY_NOTICE_DEADLINE.total_seconds()), r["origin"], r["sender"],
            r["recipient"], r["transfer_id"], None,
            f"{r['used_by']} used exculpatory information of transfer {r['transfer_id']} in proceeding "
            f"{r['proceeding']} at {r['used_at']} and {told}, the requested Party; notice is due without delay "
            f"(within {hours:g} hours)", proof,
        ))
    return out


def _urgent_notices_overdue(db: Db, now: str, share: str | None) -> list[dict[str, Any]]:
    """LED art. 35(2): urgent onward transfers whose authorizing State was informed late, or has not been
    by ``now`` (``domain.regimes.urgent_notice_overdue``, the deadline ``URGENT_NOTICE_DEADLINE``)."""
    seconds = URGENT_NOTICE_DEADLINE.total_seconds()
    out = []
    rows = db.query(
        "SELECT t.id, t.origin, t.sender, t.recipient, t.transferred_at, t.leaf_index, t.authorization_id, "
        "n.notified_at, n.leaf_index AS notice_leaf FROM {proj_transfers} t "
        "LEFT JOIN {proj_urgent_notices} n ON n.transfer_id = t.id WHERE t.urgent = 1")
    for r in rows:
        if share is not None and share not in (r["origin"], r["sender"], r["recipient"]):
            continue
        noticed = datetime.fromisoformat(r["notified_at"]) if r["notified_at"] else None
        if not urgent_notice_overdue(datetime.fromisoformat(r["transferred_at"]), noticed,
                                     datetime.fromisoformat(now)):
            continue
        proof = [{"leaf_index": int(r["leaf_index"]), "event": "TransferRecorded", "id": r["id"]}]
        if noticed is not None:
            proof.append({"leaf_index": int(r["notice_leaf"]), "event": "UrgentTransferNotified", "id": r["id"],
                          "notified_at": r["notified_at"]})
        told = f"informed {r['origin']} only at {r['notified_at']}" if noticed else f"has not informed {r['origin']}"
        out.append(_finding(
            f"urgent-notice-overdue/{r['id']}", "urgent-notice-overdue", "notified-late" if noticed else "not-notified",
            int(r["leaf_index"]), _shift(r["transferred_at"], seconds), r["origin"], r["sender"], r["recipient"],
            r["id"], r["authorization_id"],
            f"{r['sender']} passed data on to {r['recipient']} at {r['transferred_at']} without prior authorization, "
            f"for an immediate and serious threat (LED art. 35(2)), and {told}, the authorizing State; that is due "
            f"without delay (within {seconds / 3600:g} hours)", proof,
        ))
    return out


def findings(
    db: Db, *, now: str, pending_deadline_days: float = DEFAULT_PENDING_DEADLINE_DAYS,
    share: str | None = None, rule: str | None = None, limit: int = 1000,
    notice_deadline_days: float = DEFAULT_NOTICE_DEADLINE_DAYS,
) -> dict[str, Any]:
    """Every finding at ``now``: those the events proved, and the time-dependent ones.

    Sorted by the leaf that gives rise to each; ``counts`` per rule before ``limit``.
    """
    deadline = pending_deadline_days * 86400.0
    out: list[dict[str, Any]] = []
    party_clause = _share(("origin", "sender", "recipient"), share)
    if rule is None or rule not in ("request-pending-too-long", "retention-period-expired",
                                    "erasure-notice-unacknowledged", "exculpatory-notice-overdue",
                                    "urgent-notice-overdue", *preservation.TIME_DEPENDENT,
                                    *control.TIME_DEPENDENT):
        where, params = _where(party_clause, ("rule = ?" if rule else "", [rule] if rule else []))
        for r in db.query(
            f"SELECT {', '.join(FINDING_COLUMNS)} FROM {{proj_findings}}{where} ORDER BY leaf_index, id", params
        ):
            out.append(_finding(
                r["id"], r["rule"], r["reason"], int(r["leaf_index"]), r["detected_at"], r["origin"], r["sender"],
                r["recipient"], r["transfer_id"], r["authorization_id"], r["detail"], json.loads(r["evidence"]),
            ))
    if rule in (None, "request-pending-too-long"):
        cutoff = _shift(now, -deadline)
        where, params = _where(
            _share(("origin", "holder", "recipient"), share),
            ("((status = 'pending' AND requested_at < ?) OR decide_seconds > ?)", [cutoff, deadline]),
        )
        for r in db.query(f"SELECT {_A_COLUMNS} FROM {{proj_authorizations}}{where}", params):
            late = r["decided_leaf"] is not None
            due = _shift(r["requested_at"], deadline)
            proof = [{"leaf_index": int(r["requested_leaf"]), "event": "AuthorizationRequested", "id": r["id"]}]
            if late:
                proof.append({"leaf_index": int(r["decided_leaf"]), "event": "AuthorizationDecided", "id": r["id"],
                              "decided_at": r["decided_at"]})
                detail = (f"{r['origin']} decided on request {r['id']} by {r['holder']} (to pass data to "
                          f"{r['recipient']}) after {float(r['decide_seconds']) / 86400:.1f} days; the deadline "
                          f"is {pending_deadline_days:g} days")
            else:
                waited = (datetime.fromisoformat(now) - datetime.fromisoformat(r["requested_at"])).total_seconds()
                detail = (f"request {r['id']} by {r['holder']} to pass data to {r['recipient']} has waited "
                          f"{waited / 86400:.1f} days for {r['origin']}'s decision; the deadline is "
                          f"{pending_deadline_days:g} days")
            out.append(_finding(
                f"request-pending-too-long/{r['id']}", "request-pending-too-long",
                "decided-late" if late else "still-pending", int(r["requested_leaf"]), due, r["origin"],
                r["holder"], r["recipient"], r["parent_id"], r["id"], detail, proof,
            ))
    if rule in (None, "retention-period-expired"):
        today = now[:10]
        where, params = _where(
            party_clause, ("retention_until IS NOT NULL AND retention_until < ?", [today])
        )
        erased = {r["transfer_id"]: r for r in db.query(
            "SELECT transfer_id, erased_at, leaf_index FROM {proj_erasures} WHERE retention_class = 'subject-data'")}
        for r in db.query(f"SELECT {_T_COLUMNS} FROM {{proj_transfers}}{where}", params):
            due = f"{r['retention_until']}T23:59:59.999999Z"
            proof = [{"leaf_index": int(r["leaf_index"]), "event": "TransferRecorded", "id": r["id"],
                      "retention_until": r["retention_until"]}]
            erasure = erased.get(r["id"])
            if erasure is not None and erasure["erased_at"] <= _shift(due, RETENTION_GRACE_SECONDS):
                continue  # destroyed on time (Order 949 §15)
            if erasure is not None:
                reason = "erased-late"
                detail = (f"the personal data of transfer {r['id']} ({r['sender']} to {r['recipient']}), to be kept "
                          f"until {r['retention_until']}, were erased only at {erasure['erased_at']}")
                proof.append({"leaf_index": int(erasure["leaf_index"]), "event": "PersonalDataErased", "id": r["id"]})
            else:
                reason = "retention-date-passed"
                detail = (f"{r['recipient']} received data from {r['sender']} (transfer {r['id']}) to keep until "
                          f"{r['retention_until']}; the ledger records no destruction: confirm it (Order 949 §15)")
            out.append(_finding(
                f"retention-period-expired/{r['id']}", "retention-period-expired", reason,
                int(r["leaf_index"]), due, r["origin"], r["sender"], r["recipient"], r["id"], r["authorization_id"],
                detail, proof,
            ))
    if rule in (None, "erasure-notice-unacknowledged"):
        deadline_notice = notice_deadline_days * 86400.0
        cutoff = _shift(now, -deadline_notice)
        rows = db.query(
            "SELECT n.id, n.transfer_id, n.party, n.erased_at, n.leaf_index, a.acknowledged_at, "
            "a.leaf_index AS ack_leaf, t.origin, t.sender, t.recipient FROM {proj_notices} n "
            "JOIN {proj_transfers} t ON t.id = n.transfer_id "
            "LEFT JOIN {proj_notice_acks} a ON a.notice_id = n.id "
            "WHERE n.erased_at < ?", (cutoff,))
        for r in rows:
            if share is not None and share not in (r["party"], r["origin"], r["sender"], r["recipient"]):
                continue
            due = _shift(r["erased_at"], deadline_notice)
            if r["acknowledged_at"] is not None and r["acknowledged_at"] <= due:
                continue
            proof = [{"leaf_index": int(r["leaf_index"]), "event": "PersonalDataErased", "id": r["transfer_id"],
                      "notice_id": r["id"]}]
            late = r["acknowledged_at"] is not None
            if late:
                proof.append({"leaf_index": int(r["ack_leaf"]), "event": "ErasureNoticeAcknowledged",
                              "id": r["transfer_id"], "notice_id": r["id"]})
            out.append(_finding(
                f"erasure-notice-unacknowledged/{r['id']}", "erasure-notice-unacknowledged",
                "acknowledged-late" if late else "not-acknowledged", int(r["leaf_index"]), due, r["origin"],
                r["sender"], r["recipient"], r["transfer_id"], None,
                f"{r['party']} was told on {r['erased_at'][:10]} that the data of transfer {r['transfer_id']} were "
                f"erased and {'acknowledged it late' if late else 'has not acknowledged it'}; the deadline is "
                f"{notice_deadline_days:g} days", proof,
            ))
    if rule in (None, "exculpatory-notice-overdue"):
        out.extend(_exculpatory_notices_overdue(db, now, share))
    if rule in (None, "urgent-notice-overdue"):
        out.extend(_urgent_notices_overdue(db, now, share))
    if rule in (None, "preservation-expired-unattended"):
        out.extend(_finding(*args) for args in preservation.expired_unattended(db, now=now, share=share))
    out.extend(_finding(*args) for args in control.time_dependent(db, now=now, share=share, rule=rule))
    out.sort(key=lambda f: (f["leaf_index"], f["rule"], f["id"]))
    counts: dict[str, int] = {}
    for f in out:
        counts[f["rule"]] = counts.get(f["rule"], 0) + 1
    return {"now": now, "pending_deadline_days": pending_deadline_days,
            "notice_deadline_days": notice_deadline_days, "counts": counts,
            "total": len(out), "truncated": len(out) > limit, "items": out[:limit]}


# -- statistics -------------------------------------------------------------------------------


def _add(table: dict[str, dict[str, Any]], key: str, **values: float) -> None:
    entry = table.setdefault(key, {})
    for name, value in values.items():
        entry[name] = entry.get(name, 0) + value


def statistics(
    db: Db, *, share: str | None = None, month_from: str | None = None, month_to: str | None = None
) -> dict[str, Any]:
    """Transfers by month, route, legal basis, category and origin; requests and decisions."""
    months = (
        ("month >= ?" if month_from else "", [month_from] if month_from else []),
        ("month <= ?" if month_to else "", [month_to] if month_to else []),
    )
    where, params = _where(_share(("sender", "recipient", "origin"), share), *months)
    by_month: dict[str, dict[str, Any]] = {}
    by_route: dict[str, dict[str, Any]] = {}
    by_basis: dict[str, dict[str, Any]] = {}
    by_origin: dict[str, dict[str, Any]] = {}
    total = onward = 0
    for r in db.query(
        "SELECT month, origin, sender, recipient, legal_basis, transfers, onward "
        f"FROM {{proj_stats_transfers}}{where}", params,
    ):
        n, o = int(r["transfers"]), int(r["onward"])
        total, onward = total + n, onward + o
        _add(by_month, r["month"], transfers=n, onward=o)
        _add(by_route, f"{r['sender']}->{r['recipient']}", transfers=n, onward=o)
        _add(by_basis, r["legal_basis"], transfers=n)
        _add(by_origin, r["origin"], transfers=n, onward=o)
    by_category: dict[str, dict[str, Any]] = {}
    for r in db.query(
        f"SELECT month, category, transfers FROM {{proj_stats_categories}}{where}", params
    ):
        _add(by_category, r["category"], transfers=int(r["transfers"]))
    where, params = _where(_share(("origin", "holder", "recipient"), share), *months)
    req = {"requested": 0, "granted": 0, "refused": 0, "revoked": 0}
    decided_seconds = 0.0
    req_by_month: dict[str, dict[str, Any]] = {}
    req_by_origin: dict[str, dict[str, Any]] = {}
    for r in db.query(
        "SELECT month, origin, holder, recipient, requested, granted, refused, revoked, decided_seconds "
        f"FROM {{proj_stats_requests}}{where}", params,
    ):
        values = {k: int(r[k]) for k in req}
        for k, v in values.items():
            req[k] += v
        decided_seconds += float(r["decided_seconds"])
        pending = values["requested"] - values["granted"] - values["refused"]
        _add(req_by_month, r["month"], **values, pending=pending)
        _add(req_by_origin, r["origin"], **values, pending=pending)
    decided = req["granted"] + req["refused"]
    where, params = _where(
        _share(("origin", "holder", "recipient"), share), ("decide_seconds IS NOT NULL", []),
        ("requested_at >= ?" if month_from else "", [month_from] if month_from else []),
        ("requested_at < ?" if month_to else "", [_next_month(month_to)] if month_to else []),
    )
    durations = sorted(
        float(r["decide_seconds"])
        for r in db.query(f"SELECT decide_seconds FROM {{proj_authorizations}}{where}", params)
    )

    referrals = _referral_statistics(db, share, months)

    def ordered(table: dict[str, dict[str, Any]], name: str) -> list[dict[str, Any]]:
        return [{name: key, **values} for key, values in sorted(table.items())]

    routes = []
    for key, values in sorted(by_route.items(), key=lambda kv: (-kv[1]["transfers"], kv[0])):
        sender, recipient = key.split("->", 1)
        routes.append({"sender": sender, "recipient": recipient, **values})
    return {
        "transfers": {
            "total": total, "onward": onward, "first": total - onward,
            "by_month": ordered(by_month, "month"),
            "by_route": routes,
            "by_legal_basis": ordered(by_basis, "legal_basis"),
            "by_data_category": ordered(by_category, "data_category"),
            "by_origin": ordered(by_origin, "origin"),
        },
        "requests": {
            **req, "pending": req["requested"] - decided, "decided": decided,
            "time_to_decide_seconds": {
                "count": len(durations),
                "mean": (decided_seconds / decided) if decided else None,
                "median": stats_lib.median(durations) if durations else None,
                "p90": durations[min(len(durations) - 1, int(0.9 * len(durations)))] if durations else None,
                "max": durations[-1] if durations else None,
            },
            "by_month": ordered(req_by_month, "month"),
            "by_origin": ordered(req_by_origin, "origin"),
        },
        "referrals": referrals,
    }


def _referral_statistics(db: Db, share: str | None, months: tuple[tuple[str, list[Any]], ...]) -> dict[str, Any]:
    """Third-country referrals: how many, how many passed on received data, by month and by
    requesting Party -> referring Party -> third country."""
    where, params = _where(_share(("requesting_party", "referring_party", "third_party"), share), *months)
    by_month: dict[str, dict[str, Any]] = {}
    by_route: dict[tuple[str, str, str], dict[str, Any]] = {}
    total = onward = 0
    for r in db.query("SELECT month, requesting_party, referring_party, third_party, referrals, onward "
                      f"FROM {{proj_stats_referrals}}{where}", params):
        n, o = int(r["referrals"]), int(r["onward"])
        total, onward = total + n, onward + o
        _add(by_month, r["month"], referrals=n, onward=o)
        route = by_route.setdefault((r["requesting_party"], r["referring_party"], r["third_party"]), {})
        route["referrals"] = route.get("referrals", 0) + n
        route["onward"] = route.get("onward", 0) + o
    return {
        "total": total, "onward": onward, "own_findings": total - onward,
        "by_month": [{"month": month, **values} for month, values in sorted(by_month.items())],
        "by_route": [{"requesting_party": a, "referring_party": r, "third_party": c, **values}
                     for (a, r, c), values in sorted(by_route.items(), key=lambda kv: (-kv[1]["referrals"], kv[0]))],
    }


def _next_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    return f"{year + (mon == 12):04d}-{(mon % 12) + 1:02d}"


# -- everything at once ---------------------------------------------------------------------

ALL_MODELS = ("lineage", "authorizations", "findings", "statistics")


def audit_state(
    db: Db, *, now: str, share: str | None = None, models: tuple[str, ...] = ALL_MODELS,
    transfer_id: str | None = None, pending_deadline_days: float = DEFAULT_PENDING_DEADLINE_DAYS,
    limit: int = 1000,
) -> dict[str, Any]:
    """The read models' answers in one document (as the state "as of" a leaf shows them)."""
    out: dict[str, Any] = {}
    if "lineage" in models:
        summary = lineage_summary(db, share)
        if transfer_id is not None:
            summary["of_transfer"] = lineage(db, transfer_id, share)
        out["lineage"] = summary
    if "authorizations" in models:
        out["authorizations"] = authorizations(db, now=now, share=share, limit=limit)
    if "findings" in models:
        out["findings"] = findings(db, now=now, pending_deadline_days=pending_deadline_days, share=share,
                                   limit=limit)
    if "statistics" in models:
        out["statistics"] = statistics(db, share=share)
    return out


def consents_of(db: Db, transfer_id: str) -> list[dict[str, Any]]:
    """The consent requests about one transfer's data (art. 40 §19; H1, H2), in request order: id, status,
    proceeding, the requesting Party, the Party asked, a recipient (H2), and the leaves asked and decided."""
    rows = db.query("SELECT id, status, proceeding, requester, sender, recipient, requested_leaf, decided_leaf "
                    "FROM {proj_consents} WHERE transfer_id = ? ORDER BY requested_leaf", (transfer_id,))
    return [{**r, "requested_leaf": int(r["requested_leaf"]),
             "decided_leaf": int(r["decided_leaf"]) if r["decided_leaf"] is not None else None} for r in rows]
