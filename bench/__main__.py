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


def build_store(settings: Settings, n: int) -> TransferLedger:
    """A ledger of ``n`` leaves, appended through the real recorder in batches."""
    from eventsourcing.persistence import StoredEvent

    ledger = TransferLedger(eventsourcing_env(settings))
    batch = 5000
    for start in range(0, n, batch):
        ledger.recorder.insert_events(
            [StoredEvent(uuid4(), 1, "bench:Event:v1", f'{{"n":{i}}}'.encode())
             for i in range(start, min(n, start + batch))]
        )
    return ledger


def bench_proofs(n: int) -> None:
    """Inclusion and consistency proofs from the stored nodes vs pymerkle on the same leaves."""
    import random

    import pymerkle

    from ledger.leaf import ZERO_HASH, encode_leaf
    from ledger.merkle import consistency_proof, inclusion_proof
    from ledger.proofs import NodeCache

    with tempfile.TemporaryDirectory() as tmp:
        ledger = build_store(Settings(Path(tmp)), n)
        try:
            reference = pymerkle.InmemoryTree(algorithm="sha256")
            prev = ZERO_HASH
            for leaf, event in _feed(ledger, n):
                data = encode_leaf(leaf.leaf_index, prev, event.originator_id, event.originator_version,
                                   event.topic, event.state, leaf.recorded_at)
                reference.append_entry(data)
                prev = leaf.leaf_hash
            rng = random.Random(6962)
            samples = 1000
            pairs = [(rng.randrange(n), n) for _ in range(samples)]
            ranges = [(rng.randrange(1, n), n) for _ in range(samples)]

            cache = NodeCache(ledger.store)
            start = time.perf_counter()
            cache.ensure(n)
            load = time.perf_counter() - start
            print(f"{'  (load stored nodes into memory)':<34} {n:>8} {'':>13} {load:>12.2f}s")

            def get_nodes(ids: Any) -> Any:
                return ledger.store.read_nodes(ids)

            for label, ours, theirs in (
                ("inclusion", cache.inclusion_proof, lambda i, m: reference.prove_inclusion(i + 1, m)),
                ("consistency", cache.consistency_proof, lambda a, b: reference.prove_consistency(a, b)),
                ("inclusion, one SQL query each", lambda i, m: inclusion_proof(i, m, get_nodes),
                 lambda i, m: reference.prove_inclusion(i + 1, m)),
                ("consistency, one SQL query each", lambda a, b: consistency_proof(a, b, get_nodes),
                 lambda a, b: reference.prove_consistency(a, b)),
            ):
                args = pairs if label.startswith("inclusion") else ranges
                start = time.perf_counter()
                for a, b in args:
                    ours(a, b)
                t_ours = (time.perf_counter() - start) / samples
                start = time.perf_counter()
                for a, b in args:
                    theirs(a, b)
                t_theirs = (time.perf_counter() - start) / samples
                print(f"{label:<34} {n:>8} {t_theirs * 1e6:>11.1f}us {t_ours * 1e6:>11.1f}us "
                      f"{t_theirs / t_ours:>7.1f}x  (goal: sub-millisecond, >= 10x pymerkle)"
                      f"{'' if t_ours < 1e-3 and t_theirs / t_ours >= 10 else '  MISSED'}")
        finally:
            ledger.close()


def _feed(ledger: TransferLedger, n: int) -> Any:
    start = 0
    while start < n:
        rows = ledger.store.read_feed(start, 10_000)
        if not rows:
            return
        yield from rows
        start = rows[-1][0].leaf_index + 1


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
    print()
    proof_leaves = int(os.environ.get("BENCH_PROOF_LEAVES", str(max(EVENTS, 1_000_000))))
    print(f"{'proofs (SQLite store)':<34} {'leaves':>8} {'pymerkle':>13} {'ledger':>13} {'speed-up':>8}")
    bench_proofs(proof_leaves)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
