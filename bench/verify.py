"""Full verification against just reading the same rows and hashing them.

``python -m bench.verify`` builds a SQLite ledger of the application's own
events (transfers, requests, grants, refusals, uses, revocations, as
:class:`bench.__main__.SyntheticLedger` makes them; the Parties' decision
keys registered through the application, a share of the decisions signed
by their origin, and a few signed checkpoints), written through the real
recorder in batches, so that leaves, nodes and head are the real ones. Then,
each in a fresh process (so that its peak memory is its own):

- the baseline: read the rows verification must read (every event row, every
  ``ledger_leaves`` row and every ``ledger_nodes`` row, each table by keyset
  paging in verification's page size; verification reads the first two
  joined, a page of leaves with their event rows per query) and SHA-256 each
  event's bytes with its leaf row's fields, and each stored node's hash;
- full verification, the function ``transfer-ledger verify`` calls (not
  ``--since``): every leaf recomputed from its event row, the chain, the
  tree, the stored nodes and head, the checkpoints and decision signatures.

Up to 100,000 events each side runs three times, interleaved, and the
fastest run of each counts (a run then takes a fraction of a second, and a
busy machine's noise would otherwise decide the ratio); above, once each.
Both are timed over the same span: from a connection already open (each
has read the head before its clock starts; imports and opening the database
are not counted on either side) to the last row. The rate is events per
second on both sides.

The goal (docs/PERFORMANCE.md, "Targets"): verification at >= 0.5x the
baseline's rate, and constant memory: it is also run on a copy of the ledger
made at a tenth of its size, and both peaks are shown.

Size: BENCH_VERIFY_EVENTS, else BENCH_EVENTS, else 1,000,000.
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import resource
import sqlite3
import sys
import tempfile
import time
from operator import itemgetter, methodcaller
from pathlib import Path
from typing import Any

from bench.__main__ import SyntheticLedger, rate

#: One decision in this many carries its origin's signature.
SIGNED_EVERY = 50
#: Checkpoints signed while the ledger is written (and one at its end).
CHECKPOINTS = 4
WRITE_BATCH = 5000
LOG_ORIGIN = "transfer-ledger.example/bench"
LOG_SEED = bytes(range(32))


def _party_seed(party: str) -> bytes:
    return (party.encode() * 32)[:32]


def _party_signer(party: str) -> Any:
    from ledger.tlog.note import Signer

    return Signer.from_seed(f"{party.lower()}.example/decisions", _party_seed(party))


def _sign_decisions(events: list[Any]) -> int:
    """Sign every SIGNED_EVERY-th decision (grant or refusal) as its origin would."""
    import rfc8785
    from eventsourcing.persistence import StoredEvent

    from domain.model import Authorization
    from domain.rules import decision_document

    kinds = {Authorization.Granted.TOPIC: "granted", Authorization.Refused.TOPIC: "refused"}
    signers: dict[str, Any] = {}
    seen = signed = 0
    for i, event in enumerate(events):
        decision = kinds.get(event.topic)
        if decision is None:
            continue
        seen += 1
        if seen % SIGNED_EVERY:
            continue
        state = json.loads(event.state)
        origin = state["origin"]
        signer = signers.get(origin) or signers.setdefault(origin, _party_signer(origin))
        message = rfc8785.dumps(decision_document(
            str(event.originator_id), origin, decision, state["decided_by"], state.get("reasons"),
            state.get("conditions"),
        ))
        state["signature"] = {"key": f"{signer.name}+{signer.key_id:08x}",
                              "value": base64.b64encode(signer.sign_raw(message)).decode("ascii")}
        body = json.dumps(state, separators=(",", ":"), ensure_ascii=False).encode()
        events[i] = StoredEvent(event.originator_id, event.originator_version, event.topic, body)
        signed += 1
    return signed


def _copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (its WAL included)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _build(n: int, large_dir: str, small_dir: str, small: int) -> dict[str, Any]:
    """(In a child process.) Write the ledger of ``n`` events; copy it when it has ``small``."""
    from bench.__main__ import PARTIES
    from domain.parties import Actor  # noqa: F401  (the application's own imports, warmed)
    from ledger.config import Settings, eventsourcing_env
    from ledger.service.application import TransferLedger
    from ledger.service.checkpoints import sign_current_checkpoint
    from ledger.tlog.note import Signer

    settings = Settings(Path(large_dir))
    ledger = TransferLedger(eventsourcing_env(settings))
    log_signer = Signer.from_seed(LOG_ORIGIN, LOG_SEED)
    try:
        start = time.perf_counter()
        for party in PARTIES:  # through the application: the real PartyKeyRegistered events
            ledger.register_party_key(party, _party_signer(party).vkey(),
                                      registered_by={"party": party, "authority": f"{party}/MOJ",
                                                     "officer": "Key officer"})
        head = ledger.store.head().size
        small = max(small, head)
        synth = SyntheticLedger()
        synth.mixed(max(0, n - head))
        events = synth.events[: max(0, n - head)]
        del synth
        signed = _sign_decisions(events)
        generate = time.perf_counter() - start
        every = max(WRITE_BATCH, len(events) // CHECKPOINTS)
        small_written = False
        start = time.perf_counter()
        written = head
        for i in range(0, len(events), WRITE_BATCH):
            chunk = events[i: i + WRITE_BATCH]
            if not small_written and written + len(chunk) >= small:
                ledger.recorder.insert_events(chunk[: small - written])
                sign_current_checkpoint(ledger.store, log_signer)
                _copy_database(settings.database_file, Settings(Path(small_dir)).database_file)
                small_written = True
                chunk = chunk[small - written:]
                written = small
            if chunk:
                ledger.recorder.insert_events(chunk)
                written += len(chunk)
            if written // every != (written - len(chunk)) // every:
                sign_current_checkpoint(ledger.store, log_signer)
        sign_current_checkpoint(ledger.store, log_signer)
        write = time.perf_counter() - start
        if not small_written:
            _copy_database(settings.database_file, Settings(Path(small_dir)).database_file)
        return {"events": written, "signed": signed, "generate": generate, "write": write,
                "checkpoints": len(ledger.store.checkpoints())}
    finally:
        ledger.close()


def _peak_kib() -> int:
    """This process's peak resident set, in KiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


def _measure_verify(data_dir: str) -> dict[str, Any]:
    """(In a fresh child process.) Full verification, as ``transfer-ledger verify`` runs it."""
    from ledger.audit.verify import verify_ledger
    from ledger.config import Settings, eventsourcing_env
    from ledger.service.application import TransferLedger
    from ledger.tlog.note import Signer

    ledger = TransferLedger(eventsourcing_env(Settings(Path(data_dir))))
    try:
        verifier = Signer.from_seed(LOG_ORIGIN, LOG_SEED).verifier()
        ledger.store.head()  # the connection open, like the baseline's
        before = _peak_kib()
        start, cpu = time.perf_counter(), time.process_time()
        report = verify_ledger(ledger.store, verifier, LOG_ORIGIN)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        return {"rows": report.events_checked, "seconds": seconds, "cpu": cpu, "ok": report.ok,
                "problems": report.problems[:3], "checkpoints": report.checkpoints_checked,
                "signatures": report.signatures_checked, "tree_size": report.tree_size,
                "before_kib": before, "peak_kib": _peak_kib()}
    finally:
        ledger.close()


def _measure_baseline(data_dir: str) -> dict[str, Any]:
    """(In a fresh child process.) Read the rows verification must read, SHA-256 their bytes.

    The events and the leaves, side by side, and the stored Merkle nodes, in
    verification's page size, by keyset queries on each table; one SHA-256
    per event over its state, topic and id with its leaf's record time and
    hash, and one per stored node over its hash. Timed as verification is:
    from an open connection (the head read), to the last row.
    """
    from hashlib import sha256

    from ledger.audit.verify import BATCH
    from ledger.config import Settings

    conn = sqlite3.connect(Settings(Path(data_dir)).database_file)
    try:
        table = "stored_events"
        conn.execute("SELECT size FROM ledger_head").fetchone()
        before = _peak_kib()
        start, cpu = time.perf_counter(), time.process_time()
        rows = 0
        leaf_cursor, event_cursor = 0, 0
        node_level, node_cursor = 1, -1
        sink = bytearray(32)
        digest, second = methodcaller("digest"), itemgetter(1)

        def node_page() -> bool:
            """A page of stored nodes (about one per leaf, so a page per page of
            leaves), by keyset on one level at a time, as verification reads them."""
            nonlocal node_level, node_cursor
            while node_level < 64:
                nodes = conn.execute(
                    "SELECT idx, hash FROM ledger_nodes WHERE level = ? AND idx > ? ORDER BY idx LIMIT ?",
                    (node_level, node_cursor, BATCH),
                ).fetchall()
                if nodes:
                    sink[1] ^= list(map(digest, map(sha256, map(second, nodes))))[-1][0]
                    node_cursor = nodes[-1][0]
                    return True
                node_level, node_cursor = node_level + 1, -1
            return False

        while True:
            leaves = conn.execute(
                "SELECT * FROM ledger_leaves WHERE leaf_index >= ? ORDER BY leaf_index LIMIT ?",
                (leaf_cursor, BATCH),
            ).fetchall()
            events = conn.execute(
                f"SELECT rowid, originator_id, originator_version, topic, state FROM {table} "
                "WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (event_cursor, BATCH),
            ).fetchall()
            more_nodes = node_page()
            if not leaves or not events:
                break
            for leaf, event in zip(leaves, events):
                digest_ = sha256(b"".join((
                    event[4], event[3].encode(), event[1].encode(), leaf[4].encode(), leaf[5],
                ))).digest()
                sink[0] ^= digest_[0]
            rows += min(len(leaves), len(events))
            leaf_cursor, event_cursor = leaves[-1][0] + 1, events[-1][0]
        while more_nodes:
            more_nodes = node_page()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        return {"rows": rows, "seconds": seconds, "cpu": cpu, "before_kib": before, "peak_kib": _peak_kib()}
    finally:
        conn.close()


def _in_child(func: Any, *args: Any) -> Any:
    """Run ``func(*args)`` in a fresh interpreter (spawn) and return its result."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(func, args)


def _mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def bench_verify(n: int) -> None:
    """Build an n-event ledger (and its copy at n/10); baseline and full verify side by side."""
    small = max(1, n // 10)
    with tempfile.TemporaryDirectory() as tmp:
        large_dir, small_dir = str(Path(tmp) / "large"), str(Path(tmp) / "small")
        Path(large_dir).mkdir()
        Path(small_dir).mkdir()
        sys.stdout.flush()
        built = _in_child(_build, n, large_dir, small_dir, small)
        print(f"{'  (write the ledger)':<34} {built['events']:>8} {'':>13} {built['write']:>12.1f}s  "
              f"({built['signed']} signed decisions, {built['checkpoints']} checkpoints; "
              f"events made in {built['generate']:.1f}s)")
        # Interleaved, each in a fresh process; the fastest of each side
        # (both see the same share of a busy machine's noise).
        runs = [(_in_child(_measure_baseline, large_dir), _in_child(_measure_verify, large_dir))
                for _ in range(rounds_for(n))]
        base = min((b for b, _ in runs), key=lambda m: m["seconds"])
        full = min((v for _, v in runs), key=lambda m: m["seconds"])
        tenth = _in_child(_measure_verify, small_dir)
        base_tenth = _in_child(_measure_baseline, small_dir)
    if not full["ok"] or not tenth["ok"]:
        raise RuntimeError(f"verification of the benchmark ledger failed: {full['problems'] or tenth['problems']}")
    base_rate, verify_rate = rate(base["rows"], base["seconds"]), rate(full["rows"], full["seconds"])
    ratio = verify_rate / base_rate
    print(f"{'read rows + SHA-256 (baseline)':<34} {base['rows']:>8} {'':>13} {base_rate:>12.0f}/s  "
          f"({base['seconds']:.1f}s, {base['cpu']:.1f}s of CPU)")
    print(f"{'full verify':<34} {full['rows']:>8} {'':>13} {verify_rate:>12.0f}/s  "
          f"({full['seconds']:.1f}s, {full['cpu']:.1f}s of CPU; {full['checkpoints']} checkpoints, "
          f"{full['signatures']} signatures)")
    print(f"{'verify / baseline':<34} {full['rows']:>8} {'':>13} {ratio:>12.2f}x  (goal >= 0.50x)"
          f"{'' if ratio >= 0.5 else '  MISSED'}")
    rounds = len(runs)
    print(f"  (both timed from an open connection to the last row read, {'the fastest of ' if rounds > 1 else ''}"
          f"{rounds} interleaved run{'s' if rounds > 1 else ''} each; the baseline reads the leaves, events and "
          "stored nodes that verify reads, one SHA-256 per event and per node)")
    for label, measured in (("peak memory, baseline", base_tenth), ("peak memory, baseline", base),
                            ("peak memory, verify", tenth), ("peak memory, verify", full)):
        print(f"{label:<34} {measured['rows']:>8} {'':>13} {_mib(measured['peak_kib']):>13}  "
              f"(+{_mib(measured['peak_kib'] - measured['before_kib'])} while reading)")
    # Constant memory: the peak at n may exceed the peak at n/10 only by noise.
    growth = full["peak_kib"] - tenth["peak_kib"]
    constant = growth <= max(16 * 1024, tenth["peak_kib"] // 5)
    print(f"{'verify memory, n vs n/10':<34} {full['rows']:>8} {'':>13} "
          f"{'+' if growth >= 0 else '-'}{_mib(abs(growth)):>12}  (goal: constant memory)"
          f"{'' if constant else '  MISSED'}")


def rounds_for(n: int) -> int:
    """Runs of each side: a few where one takes a fraction of a second (and a
    busy machine's noise would decide the ratio), else one."""
    return 3 if n <= 100_000 else 1


def events_from_env() -> int:
    return int(os.environ.get("BENCH_VERIFY_EVENTS") or os.environ.get("BENCH_EVENTS") or 1_000_000)


def main() -> int:
    n = events_from_env()
    print(f"Transfer Ledger: full verification, BENCH_VERIFY_EVENTS={n}, Python {sys.version.split()[0]}")
    print(f"{'verification (SQLite)':<34} {'events':>8} {'':>13} {'ledger':>13}")
    bench_verify(n)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
