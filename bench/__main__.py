"""`make bench`: the ledger against its baselines, side by side, in one run.

Sections (more arrive with later issues):
- recording a transfer in-process vs the raw eventsourcing save of an equal
  single event, on SQLite (and on PostgreSQL when BENCH_DATABASE_URL is set).

BENCH_EVENTS sets the size (default 5000). Ratios, not absolute times, are
what to compare: both sides run on the same machine, backend and data.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate

from ledger.application import TransferLedger
from ledger.config import Settings, eventsourcing_env, postgres_env

EVENTS = int(os.environ.get("BENCH_EVENTS", "5000"))


def transfer_body(i: int) -> dict[str, Any]:
    return {
        "sender": {"party": "DE", "authority": "DE/BKA", "officer": "A. Keller"},
        "recipient": {"party": "FR", "authority": "FR/OFAC"},
        "legal_basis": "art44",
        "request_reference": f"FR-MLA-2026-{i}",
        "purpose": {"proceeding": "FR-PNC-2026-0417", "description": "ransomware"},
        "data_categories": ["subscriber", "traffic"],
        "subjects": ["person:1", "person:2"],
        "dataset_sha256": f"{i:064x}",
        "item_count": 1840,
        "handling": {"written_authorization_required": True, "use_restrictions": ["H2"]},
        "retention_until": "2031-03-01",
        "justification": "MLA request (art. 40 §15)",
        "ordered_by": "C. Vogel",
    }


class RawTransfer(Aggregate):
    """A plain eventsourcing aggregate whose one event equals TransferRecorded:
    the same attributes with the same values, saved by the stock recorder."""

    class Recorded(Aggregate.Created):
        sender: dict[str, str]
        recipient: dict[str, str]
        legal_basis: str
        request_reference: str | None
        purpose: dict[str, Any]
        data_categories: list[str]
        subjects: list[str]
        dataset_sha256: str
        item_count: int | None
        handling: dict[str, Any]
        retention_until: str | None
        transferred_at: str
        justification: str | None
        ordered_by: str | None
        parent_transfer_id: str | None
        authorization_id: str | None
        origin: str
        root_transfer_id: str
        depth: int
        origin_requires_written_form: bool

        def apply(self, aggregate: Any) -> None:
            aggregate.fields = dict(self.__dict__)


class RawApp(Application[Any]):
    name = "RawBench"


def recorded_payload(i: int) -> dict[str, Any]:
    """What the ledger stores for transfer_body(i): the same fields, as stored."""
    body = transfer_body(i)
    body.setdefault("transferred_at", None)
    body.update(
        transferred_at="2026-11-23T10:00:00.000000Z", parent_transfer_id=None, authorization_id=None,
        origin="DE", root_transfer_id=str(uuid4()), depth=0, origin_requires_written_form=True,
    )
    return body


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def bench_recording(label: str, raw_env: dict[str, str], ledger_env: dict[str, str], n: int) -> None:
    raw = RawApp(raw_env)
    ledger = TransferLedger(ledger_env)
    try:
        payloads = [recorded_payload(i) for i in range(n)]
        bodies = [transfer_body(i) for i in range(n)]
        # Warm up both (table creation, statement caches), then interleave
        # rounds so that both sides see the same machine conditions.
        raw.save(RawTransfer._create(RawTransfer.Recorded, id=uuid4(), **payloads[0]))
        ledger.record_transfer(bodies[0])
        t_raw = t_ledger = 0.0
        rounds = 5
        per = n // rounds
        for r in range(rounds):
            chunk = range(r * per, (r + 1) * per)
            start = time.perf_counter()
            for i in chunk:
                raw.save(RawTransfer._create(RawTransfer.Recorded, id=uuid4(), **payloads[i]))
            t_raw += time.perf_counter() - start
            start = time.perf_counter()
            for i in chunk:
                ledger.record_transfer(bodies[i])
            t_ledger += time.perf_counter() - start
        done = per * rounds
        raw_rate, ledger_rate = rate(done, t_raw), rate(done, t_ledger)
        ratio = ledger_rate / raw_rate
        print(
            f"{label:<34} {done:>8} {raw_rate:>12.0f}/s {ledger_rate:>12.0f}/s "
            f"{ratio:>7.2f}x  (goal >= 0.80x){'' if ratio >= 0.8 else '  MISSED'}"
        )
    finally:
        raw.close()
        ledger.close()


def main() -> int:
    print(f"Transfer Ledger benchmarks, BENCH_EVENTS={EVENTS}, Python {sys.version.split()[0]}")
    print(f"{'recording in-process':<34} {'events':>8} {'raw save':>14} {'ledger':>14} {'ratio':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(Path(tmp))
        raw_env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(Path(tmp) / "raw.sqlite3")}
        bench_recording("SQLite", raw_env, eventsourcing_env(settings), EVENTS)
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        raw_env = postgres_env(url)
        bench_recording("PostgreSQL", raw_env, eventsourcing_env(Settings(Path("."), url)), EVENTS)
    else:
        print(f"{'PostgreSQL':<34} (set BENCH_DATABASE_URL to include it)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
