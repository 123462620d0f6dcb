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

from domain.errors import DomainError, InvalidInput
from ledger.service.application import AlreadyDone
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


def _parsed(number: int, text: str) -> tuple[str, dict[str, Any]]:
    """The line's key and transfer; :class:`InvalidInput` naming what is wrong with it."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise InvalidInput(f"line {number} is not JSON: {e}", rule="malformed-json") from None
    if not isinstance(doc, dict) or set(doc) - {"key", "transfer"}:
        raise InvalidInput(f"line {number} must be an object with key and transfer only", rule="invalid-input")
    key, transfer = doc.get("key"), doc.get("transfer")
    if not isinstance(key, str) or not key:
        raise InvalidInput(f"line {number} has no key", rule="missing-field", field="key")
    if not isinstance(transfer, dict):
        raise InvalidInput(f"line {number} has no transfer object", rule="missing-field", field="transfer")
    return key, transfer


@dataclass
class Item:
    """One transfer to record: its number (line, or place in a batch), key and body; its outcome."""

    number: int
    key: str
    transfer: dict[str, Any]
    view: dict[str, Any] | None = None
    #: Why it was not recorded, as the domain refuses (a malformed line is refused before it is read).
    error: DomainError | None = None
    already: bool = False

    @property
    def refusal(self) -> dict[str, Any] | None:
        """The refusal as the import's report lists it."""
        if self.error is None:
            return None
        return {"line": self.number, "key": self.key or None, "rule": self.error.rule, "detail": self.error.detail,
                "field": self.error.field}


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
    pending: list[tuple[Item, Any]] = []
    seen: set[str] = set()
    read = 0  # items read so far, for progress

    def flush() -> None:
        if not pending:
            return
        outcomes = ledger.record_planned([plan for _, plan in pending], all_or_nothing=all_or_nothing)
        report.batches += 1
        for (item, _), (result, error) in zip(pending, outcomes, strict=True):
            if isinstance(error, AlreadyDone):
                item.already, item.view = True, error.body
            elif isinstance(error, DomainError):
                item.error = error
            elif error is not None:
                raise error
            else:
                item.view = result
        pending.clear()
        if progress is not None:
            progress(read)

    items = list(items)
    # One query per 500 keys for the keys used before; only those are looked up one by one.
    used = ledger.idempotency.existing_keys(principal_id, [i.key for i in items if i.error is None and i.key])
    for read, item in enumerate(items, start=1):  # noqa: B007 - read by flush()
        if item.error is not None:
            continue
        if item.key in seen:
            item.error = InvalidInput(f"item {item.number} repeats the key of an earlier one", rule="duplicate-key",
                                      field="key")
            continue
        seen.add(item.key)
        try:
            claim = IdempotencyClaim(principal_id, item.key, _digest(item.transfer), 201)
            stored = ledger.replay(claim) if item.key in used else None
            if stored is not None:
                item.already, item.view = True, stored[1]
                continue
            item.error = allowed(item.transfer) if allowed is not None else None
            if item.error is None:
                pending.append((item, ledger.plan_record_transfer(item.transfer, idempotency=claim)))
        except DomainError as e:
            item.error = e
        if not all_or_nothing and len(pending) >= batch:
            flush()
    report.rolled_back = all_or_nothing and any(item.error is not None for item in items)
    if report.rolled_back:
        pending.clear()  # refused while reading: nothing is recorded
    flush()  # all_or_nothing: the one batch, which records nothing if staging refuses one
    report.rolled_back = all_or_nothing and any(item.error is not None for item in items)
    report.lines = len(items)
    report.recorded = sum(1 for item in items if item.view is not None and not item.already and not report.rolled_back)
    report.already = sum(1 for item in items if item.already)
    report.refused = [item.refusal for item in items if item.refusal is not None]
    report.seconds = time.monotonic() - started
    return items, report


def import_transfers(ledger: Any, lines: Iterable[str], *, batch: int = DEFAULT_BATCH,
                     all_or_nothing: bool = False,
                     progress: Callable[[int], None] | None = None) -> ImportReport:
    """Record the transfers of ``lines`` (JSON lines, see the module) in batches of ``batch``;
    ``progress(lines_done)`` after each batch."""

    def items() -> Iterable[Item]:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                key, transfer = _parsed(number, text)
            except InvalidInput as e:
                yield Item(number, "", {}, error=e)
            else:
                yield Item(number, key, transfer)

    return record_items(ledger, items(), batch=batch, all_or_nothing=all_or_nothing, progress=progress)[1]
