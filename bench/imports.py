"""Bulk import (``transfer-ledger import``) vs the raw eventsourcing batched save of equal events.

Both sides save the same transfers in batches of ``BATCH`` in one transaction each: the raw
side as stock eventsourcing aggregates whose one event has TransferRecorded's fields
(``raw.save(*aggregates)``), the ledger through ``import_transfers`` (parsing each line,
every art. 36 §3 check, idempotency keys, the leaves and Merkle nodes). Rounds alternate
which side goes first, so both see the same machine. Goal: >= 0.80x.
"""

from __future__ import annotations

import json
import time
from typing import Any
from uuid import uuid4

from bench.rounds import alternating
from ledger.service.application import TransferLedger
from ledger.service.imports import import_transfers

BATCH = 500


def bench_import(label: str, raw: Any, raw_aggregate: Any, payload: Any, body: Any, ledger: TransferLedger,
                 n: int) -> None:
    """Print the row. ``raw_aggregate(payload)`` makes one raw aggregate; ``body(i)`` a transfer's body."""
    rounds = 6
    per = max(BATCH, n // rounds)
    payloads = [payload(i) for i in range(per * rounds)]
    lines = [json.dumps({"key": f"bench-{uuid4()}", "transfer": body(i)}) for i in range(per * rounds)]
    raw.save(raw_aggregate(payloads[0]))  # warm up both
    import_transfers(ledger, [json.dumps({"key": f"warm-{uuid4()}", "transfer": body(0)})])

    def raw_round(chunk: range) -> float:
        start = time.perf_counter()
        for first in range(chunk.start, chunk.stop, BATCH):
            raw.save(*(raw_aggregate(payloads[i]) for i in range(first, min(first + BATCH, chunk.stop))))
        return time.perf_counter() - start

    def ledger_round(chunk: range) -> float:
        start = time.perf_counter()
        report = import_transfers(ledger, lines[chunk.start:chunk.stop], batch=BATCH)
        elapsed = time.perf_counter() - start
        if report.recorded != len(chunk):
            raise AssertionError(f"the import recorded {report.recorded} of {len(chunk)}: {report.refused[:3]}")
        return elapsed

    t_raw, t_ledger = alternating(rounds, per, raw_round, ledger_round)
    done = per * rounds
    raw_rate, ledger_rate = done / t_raw, done / t_ledger
    ratio = ledger_rate / raw_rate
    print(f"{label:<34} {done:>8} {raw_rate:>12.0f}/s {ledger_rate:>12.0f}/s "
          f"{ratio:>7.2f}x  (goal >= 0.80x){'' if ratio >= 0.8 else '  MISSED'}")
