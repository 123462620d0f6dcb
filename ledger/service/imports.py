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


@dataclass
class Item:
    """One transfer to record: its number (line, or place in a batch), key and body; its outcome."""

    number: int
    key: str
    transfer: dict[str, Any]
    view: dict[str, Any] | None = None
    refusal: dict[str, Any] | None = None
    #: The refusal as the domain raised it (None for a malformed line).
    error: DomainError | None = None
    already: bool = False


def _digest(transfer: dict[str, Any]) -> str:
    return hashlib.sha256(b"POST /v1/transfers\n" + json.dumps(transfer, sort_keys=True,
                                                              separators=(",", ":")).encode()).hexdigest()


def record_items(ledger: Any, items: Iterable[Item], *, principal_id: str = IMPORT_PRINCIPAL,
                 batch: int = DEFAULT_BATCH, all_or_nothing: bool = False,
                 allowed: Callable[[dict[str, Any]], DomainError | None] | None = None,
                 progress: Callable[[int], None] | None = None) -> tuple[list[Item], ImportReport]:
    """Record ``items`` in batches of ``batch`` (each key an idempotency key of ``principal_id``);
    ``allowed(transfer)``: a refusal for a transfer the caller may not record, or None."""
    report = ImportReport()
    started = time.monotonic()
    done: list[Item] = []
    pending: list[tuple[Item, Any]] = []
    seen: set[str] = set()

    def refuse(item: Item, error: DomainError) -> None:
        item.error = error
        item.refusal = _refusal(item.number, item.key, error.rule, error.detail, error.field)
        report.refused.append(item.refusal)

    def flush() -> None:
        if not pending:
            return
        outcomes = ledger.record_planned([plan for _, plan in pending], all_or_nothing=all_or_nothing)
        report.batches += 1
        for (item, _), (result, error) in zip(pending, outcomes, strict=True):
            if error is None:
                item.view = result
                report.recorded += 1 if result is not None else 0
            elif type(error).__name__ == "AlreadyDone":
                item.already, item.view = True, getattr(error, "body", None)
                report.already += 1
            elif isinstance(error, DomainError):
                refuse(item, error)
            else:
                raise error
        pending.clear()
        if progress is not None:
            progress(report.lines)

    items = list(items)
    # One query per 500 keys for the keys used before; only those are looked up one by one.
    used = ledger.idempotency.existing_keys(principal_id, [i.key for i in items if i.refusal is None and i.key])
    for item in items:
        report.lines += 1
        done.append(item)
        if item.refusal is not None:  # refused before (a malformed line)
            report.refused.append(item.refusal)
            continue
        if item.key in seen:
            item.refusal = _refusal(item.number, item.key, "duplicate-key",
                                    f"item {item.number} repeats the key of an earlier one", "key")
            report.refused.append(item.refusal)
            continue
        seen.add(item.key)
        try:
            claim = IdempotencyClaim(principal_id, item.key, _digest(item.transfer), 201)
            stored = ledger.replay(claim) if item.key in used else None
            if stored is not None:
                item.already, item.view = True, stored[1]
                report.already += 1
                continue
            denied = allowed(item.transfer) if allowed is not None else None
            if denied is not None:
                refuse(item, denied)
                continue
            pending.append((item, ledger.plan_record_transfer(item.transfer, idempotency=claim)))
        except DomainError as e:
            refuse(item, e)
            continue
        if not all_or_nothing and len(pending) >= batch:
            flush()
    if all_or_nothing and report.refused:
        report.rolled_back = True
        pending.clear()
    flush()
    if all_or_nothing and report.refused:
        if report.recorded:
            raise AssertionError("an all-or-nothing import recorded part of its items")
        report.rolled_back = True
    report.seconds = time.monotonic() - started
    return done, report


def import_transfers(ledger: Any, lines: Iterable[str], *, batch: int = DEFAULT_BATCH,
                     all_or_nothing: bool = False,
                     progress: Callable[[int], None] | None = None) -> ImportReport:
    """Record the transfers of ``lines`` (JSON lines, see the module) in batches of ``batch``;
    ``progress(lines_done)`` after each batch."""

    def items() -> Iterable[Item]:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            parsed = _parsed(number, text)
            if isinstance(parsed, dict):
                yield Item(number, parsed.get("key") or "", {}, refusal=parsed)
            else:
                yield Item(number, parsed[0], parsed[1])

    return record_items(ledger, items(), batch=batch, all_or_nothing=all_or_nothing, progress=progress)[1]
