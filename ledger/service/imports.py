"""Bulk import of earlier transfer logs: many transfers a transaction, each checked as if recorded alone.

A file of JSON lines, one transfer each: ``{"key": "<unique per line>", "transfer": {...}}``,
where ``transfer`` is the body of ``POST /v1/transfers`` and ``key`` makes the line
idempotent (an import run again records nothing twice: the key is the line's idempotency
key, under the principal ``import``). Lines are read in order and recorded in batches:
each transfer of a batch is prepared after the ones before it (an onward transfer may name
a transfer imported a line earlier), with every rule of art. 36 §3 applied to it, and the
batch is saved in one transaction. A refused line is reported with its number and rule
and the rest proceeds; with ``all_or_nothing``, one refused line records nothing at all.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from domain.errors import DomainError
from ledger.storage.idempotency import IdempotencyClaim

#: The principal an import's idempotency keys belong to.
IMPORT_PRINCIPAL = "import"
DEFAULT_BATCH = 500


@dataclass
class ImportReport:
    lines: int = 0
    recorded: int = 0
    #: Lines whose key an earlier import already recorded: nothing was recorded again.
    already: int = 0
    refused: list[dict[str, Any]] = field(default_factory=list)
    batches: int = 0
    seconds: float = 0.0
    #: With all_or_nothing and a refused line: nothing was recorded.
    rolled_back: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"lines": self.lines, "recorded": self.recorded, "already": self.already,
                "refused": self.refused, "batches": self.batches, "seconds": round(self.seconds, 3),
                "rolled_back": self.rolled_back,
                "per_second": round(self.recorded / self.seconds, 1) if self.seconds else None}


def _refusal(line: int, key: str | None, rule: str, detail: str, field_: str | None = None) -> dict[str, Any]:
    return {"line": line, "key": key, "rule": rule, "detail": detail, "field": field_}


def _parsed(number: int, text: str) -> tuple[str, dict[str, Any]] | dict[str, Any]:
    """The line's key and transfer, or its refusal."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        return _refusal(number, None, "malformed-json", f"line {number} is not JSON: {e}")
    if not isinstance(doc, dict) or set(doc) - {"key", "transfer"}:
        return _refusal(number, None, "invalid-input", f"line {number} must be an object with key and transfer "
                        "only")
    key, transfer = doc.get("key"), doc.get("transfer")
    if not isinstance(key, str) or not key:
        return _refusal(number, None, "missing-field", f"line {number} has no key", "key")
    if not isinstance(transfer, dict):
        return _refusal(number, key, "missing-field", f"line {number} has no transfer object", "transfer")
    return key, transfer


def import_transfers(ledger: Any, lines: Iterable[str], *, batch: int = DEFAULT_BATCH,
                     all_or_nothing: bool = False,
                     progress: Callable[[int], None] | None = None) -> ImportReport:
    """Record the transfers of ``lines`` (JSON lines, see the module) in batches of ``batch``;
    ``progress(lines_done)`` after each batch."""
    report = ImportReport()
    started = time.monotonic()
    pending: list[tuple[int, str, Any]] = []  # line, key, plan
    seen: set[str] = set()

    def flush() -> None:
        if not pending:
            return
        outcomes = ledger.record_planned([plan for _, _, plan in pending], all_or_nothing=all_or_nothing)
        report.batches += 1
        for (number, key, _), (result, error) in zip(pending, outcomes, strict=True):
            if error is None:
                report.recorded += 1 if result is not None else 0
            elif type(error).__name__ == "AlreadyDone":
                report.already += 1
            elif isinstance(error, DomainError):
                report.refused.append(_refusal(number, key, error.rule, error.detail, error.field))
            else:
                raise error
        pending.clear()
        if progress is not None:
            progress(report.lines)

    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        report.lines += 1
        parsed = _parsed(number, text)
        if isinstance(parsed, dict):
            report.refused.append(parsed)
            continue
        key, transfer = parsed
        if key in seen:
            report.refused.append(_refusal(number, key, "duplicate-key", f"line {number} repeats the key of an "
                                           "earlier line", "key"))
            continue
        seen.add(key)
        digest = hashlib.sha256(b"POST /v1/transfers\n" + json.dumps(transfer, sort_keys=True,
                                                                     separators=(",", ":")).encode()).hexdigest()
        try:
            claim = IdempotencyClaim(IMPORT_PRINCIPAL, key, digest, 201)
            done = ledger.replay(claim)
            if done is not None:
                report.already += 1
                continue
            plan = ledger.plan_record_transfer(transfer, idempotency=claim)
        except DomainError as e:
            report.refused.append(_refusal(number, key, e.rule, e.detail, e.field))
            continue
        pending.append((number, key, plan))
        if not all_or_nothing and len(pending) >= batch:
            flush()
    if all_or_nothing and report.refused:
        report.rolled_back = True
        pending.clear()
    flush()
    if all_or_nothing and report.refused and report.recorded:  # refused while staging the one batch
        raise AssertionError("an all-or-nothing import recorded part of the file")
    if all_or_nothing and report.refused:
        report.rolled_back = True
    report.seconds = time.monotonic() - started
    return report
