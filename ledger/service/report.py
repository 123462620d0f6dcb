"""The supervisory report: self-monitoring figures of a period, signed, checkable offline.

A report (docs/AUDIT.md, "The supervisory report") counts what the ledger recorded in a
period, for the whole ledger or one Party's share: transfers by Party, legal basis and
regime; onward-transfer authorizations and how long their decisions took; consents;
preservations; erasures on time and late; consultations by principal and purpose;
findings by rule; internal control checks and measures.

It is computed **as of a signed checkpoint**: the ledger's tree is signed at its head
(tree size N, as ``GET /v1/checkpoint`` does), leaves 0..N-1 are replayed into the read
models in memory (``projections.replay``, the logic the live read models run), and the
figures come from that replay only. Later events never change a report.

The report holds no personal values: counts, ids, rules, Parties, dates and times; no
names, no free texts (no officer, no justification, no reasons, no finding's detail).

It is signed as a C2SP signed note by the ledger's own key (:func:`report_note`), whose text
names the report's format, the origin, the tree size, the root hash and the SHA-256 of the
report's canonical JSON (RFC 8785) without its ``signature`` member. Its first line is the
report format, never the origin, so a report's note cannot pass for a checkpoint.
``ledger.audit.report`` checks a report offline with the ledger's verifier key, and writes it as CSV
or PDF.
"""

from __future__ import annotations

import base64
import hashlib
import json
import statistics as stats_lib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import rfc8785

from domain.consultation import ConsultationLog
from domain.errors import InvalidInput
from ledger.service.application import TransferLedger
from ledger.service.checkpoints import sign_current_checkpoint
from ledger.tlog.note import Signer, sign_note
from projections import queries
from projections.db import Db
from projections.events import (
    CONSENT_DECIDED,
    CONSENT_REQUESTED,
    PRESERVATION_DECIDED,
    decoder_for,
    norm_time,
    now_time,
)
from projections.model import RULES
from projections.replay import replay

REPORT_FORMAT = "transfer-ledger/supervisory-report/v1"
FORMATS = ("json", "csv", "pdf")
CONSULTATIONS_LOGGED = ConsultationLog.Logged.TOPIC
#: The leaves whose record time the report needs (the read models keep their leaf index only).
_TIMED_TOPICS = frozenset({CONSENT_REQUESTED, CONSENT_DECIDED, PRESERVATION_DECIDED})

#: Said in every report: what it cannot count.
NOT_COUNTED = (
    "Commands the ledger refused (an RFC 9457 problem naming the rule, e.g. an onward transfer without a "
    "covering authorization) are answered, not recorded: no event records them, so no report can count "
    "them. Refusals counted here are decisions recorded as events (an origin refusing an authorization, a "
    "requested Party refusing a consent); findings count by rule what was recorded although a rule forbids "
    "it, and what time has made a finding."
)
PERSONAL_DATA = (
    "This report holds no personal values: counts, ids, rules, Parties, dates and times only; no names, "
    "no justifications, no reasons, no finding's detail."
)


# -- the period -----------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """``start`` inclusive, ``end`` inclusive (whole days, UTC); either may be open (None)."""

    start: date | None
    end: date | None

    @property
    def low(self) -> str:
        return f"{self.start.isoformat()}T00:00:00.000000Z" if self.start else ""

    @property
    def high(self) -> str:
        """The first moment after the period (exclusive bound)."""
        if self.end is None:
            return "\uffff"
        return f"{(self.end + timedelta(days=1)).isoformat()}T00:00:00.000000Z"

    def holds(self, moment: str | None) -> bool:
        """Whether a normalized time (or a date, YYYY-MM-DD) falls in the period."""
        if not moment:
            return False
        if len(moment) == 10:
            moment = f"{moment}T00:00:00.000000Z"
        return self.low <= moment < self.high

    def as_dict(self) -> dict[str, Any]:
        return {"from": self.start.isoformat() if self.start else None,
                "to": self.end.isoformat() if self.end else None,
                "from_inclusive": True, "to_inclusive": True}


def parse_period(start: str | None, end: str | None) -> Period:
    """The period ``from``..``to`` (dates YYYY-MM-DD, both inclusive); :class:`InvalidInput` naming the field."""
    days: dict[str, date | None] = {}
    for name, value in (("from", start), ("to", end)):
        if value is None:  # absent; an empty value is not a date (422 below)
            days[name] = None
            continue
        try:
            if len(value) != 10:
                raise ValueError(value)
            days[name] = date.fromisoformat(value)
        except ValueError:
            raise InvalidInput(f"{name} must be a date, YYYY-MM-DD, not {value!r}", rule="invalid-date",
                               field=name, values={name: value[:40]}) from None
    first, last = days["from"], days["to"]
    if first is not None and last is not None and first > last:
        raise InvalidInput(f"from ({first}) is after to ({last}): the period is empty", rule="invalid-period",
                           field="from", values={"from": str(first), "to": str(last)})
    return Period(first, last)


def parse_format(value: str | None) -> str:
    fmt = (value or "json").lower()
    if fmt not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}, not {value!r}", rule="unknown-format",
                           field="format", values={"format": str(value)[:20]})
    return fmt


# -- computing it ---------------------------------------------------------------------


class _Observed:
    """What the replay shows the report beyond the read models: consultation entries, leaf times."""

    def __init__(self, decode: Callable[[bytes], bytes] | None) -> None:
        self.decode = decode
        self.entries: list[dict[str, Any]] = []
        self.leaf_times: dict[int, str] = {}

    def __call__(self, rows: Sequence[Sequence[Any]]) -> None:
        for leaf_index, recorded_at, _originator, _version, topic, state in rows:
            if topic in _TIMED_TOPICS:
                self.leaf_times[int(leaf_index)] = norm_time(recorded_at)
            elif topic == CONSULTATIONS_LOGGED:
                raw = state if self.decode is None else self.decode(state)
                try:
                    entries = json.loads(raw).get("entries") or []
                except (ValueError, AttributeError):
                    continue  # a malformed leaf: the read models' findings say so
                self.entries.extend(e for e in entries if isinstance(e, dict))


class _Empty:
    """A ledger of no leaves (a report of an empty tree)."""

    def head(self) -> Any:
        return type("Head", (), {"size": 0})()


def build_report(ledger: TransferLedger, signer: Signer, period: Period, *, party: str | None = None,
                 now: str | None = None, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """The signed report of ``period`` for ``party``'s share (None: the whole ledger), as of the
    tree signed now. ``now``: the moment the open findings are judged at (default: the clock)."""
    checkpoint = sign_current_checkpoint(ledger.store, signer)
    size = checkpoint.tree_size
    observed = _Observed(decoder_for(ledger.mapper))
    if size > 0:
        replayed = replay(ledger.store, at_index=size - 1, decode=decoder_for(ledger.mapper), observe=observed,
                          progress=progress)
    else:
        replayed = replay(_Empty())
    judged_at = norm_time(now) if now else now_time()
    try:
        body = report_body(replayed.db, observed, period, share=party, judged_at=judged_at)
    finally:
        replayed.close()
    doc = {
        "format": REPORT_FORMAT,
        "origin": signer.name,
        "party": party or "*",
        "period": period.as_dict(),
        "generated_at": judged_at,
        "checkpoint": {"tree_size": size, "root_hash": base64.b64encode(checkpoint.root_hash).decode("ascii"),
                       "note": checkpoint.note},
        "personal_data": PERSONAL_DATA,
        "not_counted": NOT_COUNTED,
        **body,
    }
    doc["signature"] = report_note(doc, signer)
    return doc


def report_body(db: Db, observed: _Observed, period: Period, *, share: str | None, judged_at: str
                ) -> dict[str, Any]:
    """The report's figures from read models as of the checkpoint (``db``)."""
    return {
        "transfers": _transfers(db, period, share),
        "authorizations": _authorizations(db, period, share),
        "consents": _consents(db, observed.leaf_times, period, share),
        "preservations": _preservations(db, observed.leaf_times, period, share, judged_at),
        "erasures": _erasures(db, period, share, judged_at),
        "consultations": _consultations(observed.entries, period, share),
        "control": _control(db, period, share),
        "findings": _findings(db, period, share, judged_at),
    }


def _share(columns: Sequence[str], share: str | None) -> tuple[str, list[Any]]:
    if share is None:
        return "", []
    return " WHERE (" + " OR ".join(f"{c} = ?" for c in columns) + ")", [share] * len(columns)


def _table(counter: Counter[str], name: str, value: str = "count") -> list[dict[str, Any]]:
    return [{name: key, value: n} for key, n in sorted(counter.items())]


def _hours(seconds: Sequence[float]) -> dict[str, Any]:
    values = sorted(seconds)
    if not values:
        return {"decisions": 0, "median": None, "mean": None, "max": None}
    return {"decisions": len(values), "median": round(stats_lib.median(values) / 3600, 3),
            "mean": round(sum(values) / len(values) / 3600, 3), "max": round(values[-1] / 3600, 3)}


def _transfers(db: Db, period: Period, share: str | None) -> dict[str, Any]:
    where, params = _share(("sender", "recipient", "origin"), share)
    sent: Counter[str] = Counter()
    received: Counter[str] = Counter()
    originated: Counter[str] = Counter()
    basis: Counter[str] = Counter()
    regime: Counter[str] = Counter()
    routes: Counter[tuple[str, str]] = Counter()
    total = onward = urgent = authorized = 0
    for r in db.query("SELECT transferred_at, sender, recipient, origin, parent_id, legal_basis, regime, urgent, "
                      f"authorization_id FROM {{proj_transfers}}{where}", params):
        if not period.holds(r["transferred_at"]):
            continue
        total += 1
        onward += r["parent_id"] is not None
        urgent += bool(r["urgent"])
        authorized += r["authorization_id"] is not None
        sent[r["sender"]] += 1
        received[r["recipient"]] += 1
        originated[r["origin"]] += 1
        basis[r["legal_basis"]] += 1
        regime[r["regime"]] += 1
        routes[(r["sender"], r["recipient"])] += 1
    parties = sorted(set(sent) | set(received) | set(originated))
    return {
        "total": total, "first": total - onward, "onward": onward, "onward_under_authorization": authorized,
        "urgent_without_prior_authorization": urgent,
        "by_party": [{"party": p, "sent": sent[p], "received": received[p], "originated": originated[p]}
                     for p in parties],
        "by_route": [{"sender": s, "recipient": t, "transfers": n} for (s, t), n in sorted(routes.items())],
        "by_legal_basis": _table(basis, "legal_basis", "transfers"),
        "by_regime": _table(regime, "regime", "transfers"),
    }


def _authorizations(db: Db, period: Period, share: str | None) -> dict[str, Any]:
    where, params = _share(("origin", "holder", "recipient"), share)
    counts = {"requested": 0, "granted": 0, "refused": 0, "revoked": 0}
    by_origin: dict[str, dict[str, int]] = {}
    seconds: list[float] = []
    pending = 0
    for r in db.query("SELECT status, origin, requested_at, decided_at, revoked_at, decide_seconds "
                      f"FROM {{proj_authorizations}}{where}", params):
        marks = []
        if period.holds(r["requested_at"]):
            marks.append("requested")
        if r["decided_at"] is not None and period.holds(r["decided_at"]):
            marks.append("refused" if r["status"] == "refused" else "granted")
            if r["decide_seconds"] is not None:
                seconds.append(float(r["decide_seconds"]))
        if r["revoked_at"] is not None and period.holds(r["revoked_at"]):
            marks.append("revoked")
        if r["status"] == "pending" and r["requested_at"] < period.high:
            pending += 1
        entry = by_origin.setdefault(r["origin"], dict.fromkeys(counts, 0)) if marks else None
        for mark in marks:
            counts[mark] += 1
            assert entry is not None
            entry[mark] += 1
    return {**counts, "decided": counts["granted"] + counts["refused"], "pending_at_checkpoint": pending,
            "hours_to_decide": _hours(seconds),
            "by_origin": [{"origin": o, **v} for o, v in sorted(by_origin.items())]}


def _consents(db: Db, times: dict[int, str], period: Period, share: str | None) -> dict[str, Any]:
    where, params = _share(("sender", "requester", "recipient"), share)
    counts = {"requested": 0, "granted": 0, "refused": 0}
    kinds: Counter[str] = Counter()
    pending = 0
    for r in db.query(f"SELECT status, kinds, requested_leaf, decided_leaf FROM {{proj_consents}}{where}", params):
        if period.holds(times.get(int(r["requested_leaf"]))):
            counts["requested"] += 1
            kinds.update(k for k in (r["kinds"] or "").split(",") if k)
        if r["decided_leaf"] is not None and period.holds(times.get(int(r["decided_leaf"]))):
            if r["status"] in counts:
                counts[r["status"]] += 1
        if r["status"] == "pending":
            pending += 1
    return {**counts, "pending_at_checkpoint": pending, "requested_by_kind_of_use": _table(kinds, "kind")}


def _preservations(db: Db, times: dict[int, str], period: Period, share: str | None, judged_at: str
                   ) -> dict[str, Any]:
    where, params = _share(("requesting_party", "requested_party"), share)
    counts = {"requested": 0, "followed_up": 0, "decided": 0, "released": 0}
    decisions: Counter[str] = Counter()
    active = 0
    for r in db.query("SELECT requested_at, follow_up_at, decision, decided_leaf, released_at, expires_at "
                      f"FROM {{proj_preservations}}{where}", params):
        counts["requested"] += period.holds(r["requested_at"])
        counts["followed_up"] += period.holds(r["follow_up_at"])
        counts["released"] += period.holds(r["released_at"])
        if r["decided_leaf"] is not None and period.holds(times.get(int(r["decided_leaf"]))):
            counts["decided"] += 1
            decisions[r["decision"] or "unknown"] += 1
        if r["released_at"] is None and (r["expires_at"] >= judged_at or r["follow_up_at"] is not None):
            active += 1
    return {**counts, "decided_by_decision": _table(decisions, "decision"), "active_at_checkpoint": active}


def _erasures(db: Db, period: Period, share: str | None, judged_at: str) -> dict[str, Any]:
    rows = db.query("SELECT e.transfer_id, e.retention_class, e.erased_at, t.retention_until, t.sender, "
                    "t.recipient, t.origin FROM {proj_erasures} e LEFT JOIN {proj_transfers} t ON t.id = e.transfer_id")
    classes: Counter[str] = Counter()
    on_time = late = undated = 0
    subject_erased = set()
    for r in rows:
        if share is not None and share not in (r["sender"], r["recipient"], r["origin"]):
            continue
        if r["retention_class"] == "subject-data":
            subject_erased.add(r["transfer_id"])
        if not period.holds(r["erased_at"]):
            continue
        classes[r["retention_class"]] += 1
        if r["retention_class"] != "subject-data":
            continue
        if r["retention_until"] is None:
            undated += 1
        elif _erased_on_time(r["erased_at"], r["retention_until"]):
            on_time += 1
        else:
            late += 1
    where, params = _share(("sender", "recipient", "origin"), share)
    overdue = sum(
        1 for r in db.query(f"SELECT id, retention_until FROM {{proj_transfers}}{where}", params)
        if r["retention_until"] is not None and r["retention_until"] < judged_at[:10] and r["id"] not in subject_erased
    )
    return {"total": sum(classes.values()), "by_retention_class": _table(classes, "retention_class", "erasures"),
            "subject_data": {"on_time": on_time, "late": late, "without_retention_date": undated},
            "due_not_erased_at_checkpoint": overdue}


def _erased_on_time(erased_at: str, retention_until: str) -> bool:
    """As the finding ``retention-period-expired`` judges it: erased by the end of the period's last
    day plus the retention job's grace (``projections.queries.RETENTION_GRACE_SECONDS``)."""
    due = datetime.fromisoformat(f"{retention_until}T23:59:59.999999+00:00")
    deadline = due + timedelta(seconds=queries.RETENTION_GRACE_SECONDS)
    return datetime.fromisoformat(erased_at.replace("Z", "+00:00")) <= deadline


def _consultations(entries: list[dict[str, Any]], period: Period, share: str | None) -> dict[str, Any]:
    principals: Counter[tuple[str, str]] = Counter()
    purposes: Counter[str] = Counter()
    both: Counter[tuple[str, str, str]] = Counter()
    routes: Counter[str] = Counter()
    total = 0
    for e in entries:
        if not period.holds(e.get("at")):
            continue
        if share is not None and e.get("party") != share and share not in (e.get("parties") or ()):
            continue
        principal, party = str(e.get("principal")), str(e.get("party"))
        purpose = str(e.get("purpose") or "")
        total += 1
        principals[(principal, party)] += 1
        purposes[purpose] += 1
        both[(principal, party, purpose)] += 1
        routes[str(e.get("route"))] += 1
    return {
        "entries": total,
        "by_principal": [{"principal": p, "party": party, "reads": n} for (p, party), n in sorted(principals.items())],
        "by_purpose": [{"purpose": p or None, "reads": n} for p, n in sorted(purposes.items())],
        "by_principal_and_purpose": [{"principal": p, "party": party, "purpose": pur or None, "reads": n}
                                     for (p, party, pur), n in sorted(both.items())],
        "by_route": _table(routes, "route", "reads"),
    }


def _control(db: Db, period: Period, share: str | None) -> dict[str, Any]:
    where, params = _share(("party",), share)
    checks = {r["id"]: r for r in db.query(
        f"SELECT id, party, kind, decided_on FROM {{proj_control_checks}}{where}", params)}
    years = range(period.start.year if period.start else 0, (period.end.year if period.end else 9999) + 1)
    plans = [r for r in db.query(f"SELECT year, planned_checks FROM {{proj_control_plans}}{where}", params)
             if int(r["year"]) in years]
    opened: Counter[str] = Counter(r["kind"] for r in checks.values() if period.holds(r["decided_on"]))
    concluded = [r for r in db.query("SELECT check_id, concluded_at FROM {proj_control_conclusions}")
                 if r["check_id"] in checks]
    measures = [r for r in db.query("SELECT id, check_id, deadline FROM {proj_control_measures}")
                if r["check_id"] in checks]
    completions = {r["id"]: r["completed_at"]
                   for r in db.query("SELECT id, completed_at FROM {proj_control_completions}")}
    concluded_in = {r["check_id"] for r in concluded if period.holds(r["concluded_at"])}
    return {
        "plans": len(plans), "planned_checks": sum(int(r["planned_checks"] or 0) for r in plans),
        "checks_opened": sum(opened.values()), "checks_opened_by_kind": _table(opened, "kind"),
        "checks_concluded": len(concluded_in),
        "measures_set": sum(1 for r in measures if r["check_id"] in concluded_in),
        "measures_completed": sum(1 for r in measures if period.holds(completions.get(r["id"]))),
        "measures_open_at_checkpoint": sum(1 for r in measures if r["id"] not in completions),
    }


def _findings(db: Db, period: Period, share: str | None, judged_at: str) -> dict[str, Any]:
    found = queries.findings(db, now=judged_at, share=share, limit=10**9)
    items = found["items"]
    in_period: Counter[str] = Counter(f["rule"] for f in items if period.holds(f["detected_at"]))
    open_: Counter[str] = Counter(f["rule"] for f in items)

    def by_rule(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"rule": rule, "article": RULES[rule][0], "title": RULES[rule][1], "findings": n}
                for rule, n in sorted(counter.items())]

    return {
        "judged_at": judged_at,
        "detected_in_period": sum(in_period.values()),
        "detected_in_period_by_rule": by_rule(in_period),
        "open": len(items),
        "open_by_rule": by_rule(open_),
        "open_items": [{"id": f["id"], "rule": f["rule"], "article": f["article"], "reason": f["reason"],
                        "leaf_index": f["leaf_index"], "detected_at": f["detected_at"],
                        "transfer_id": f["transfer_id"], "authorization_id": f["authorization_id"]}
                       for f in items],
    }


# -- signing

def report_digest(doc: dict[str, Any]) -> str:
    """SHA-256 (hex) of the report's RFC 8785 canonical JSON, without its ``signature``."""
    body = {k: v for k, v in doc.items() if k != "signature"}
    return hashlib.sha256(rfc8785.dumps(body)).hexdigest()


def note_text(doc: dict[str, Any]) -> str:
    """The text the report's note signs: format, origin, tree size, root hash, digest."""
    cp = doc["checkpoint"]
    return f"{REPORT_FORMAT}\n{doc['origin']}\n{cp['tree_size']}\n{cp['root_hash']}\nsha256:{report_digest(doc)}\n"


def report_note(doc: dict[str, Any], signer: Signer) -> str:
    return sign_note(note_text(doc), signer)
