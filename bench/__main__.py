"""`make bench`: the ledger against its baselines, side by side, in one run.

Sections, in this order:
- recording a transfer in-process vs the raw eventsourcing save of an equal
  single event, on SQLite and on PostgreSQL: the server at BENCH_DATABASE_URL,
  or else a throwaway one started for the run when the PostgreSQL server
  binaries are installed.
- recording over HTTP with 1, 16 and 64 concurrent clients vs a bare FastAPI
  endpoint validating the same request model (bench/http.py), on both
  backends, and the 64-client rate vs the backend's single-save rate.
- reading transfers over HTTP with every read logged in the consultation log
  vs the same app logging nothing, on both backends (bench/reads.py).
- full verification vs reading the same rows and SHA-256-hashing them, with
  peak memory at n/10 and n (bench/verify.py).
- proofs from the stored nodes vs pymerkle.
- read models: rebuilding every projection from a ledger of realistic events
  (transfers, requests, grants, refusals, uses, revocations), and lineage
  queries on a 10,000-transfer tree.

Sizes: BENCH_EVENTS (recording; default 5000; also the default of the
sizes below), BENCH_HTTP_REQUESTS (per client count; default 3000),
BENCH_VERIFY_EVENTS, BENCH_PROOF_LEAVES and BENCH_PROJECTION_EVENTS (each
1,000,000 unless BENCH_EVENTS is set). Ratios, not absolute times, are what
to compare: both sides run on the same machine, backend and data.
"""

from __future__ import annotations

import contextlib
import glob
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate

from bench.http import transfer_body
from bench.rounds import alternating
from domain.model import Transfer
from domain.values import TransferDraft
from ledger.config import Settings, eventsourcing_env, postgres_env
from ledger.service.application import TransferLedger

EVENTS = int(os.environ.get("BENCH_EVENTS", "5000"))


def _keep_fields(event: Any, aggregate: Any) -> None:
    aggregate.fields = dict(event.__dict__)


class RawTransfer(Aggregate):
    """A plain eventsourcing aggregate whose one event equals TransferRecorded:
    the same attributes with the same values, saved by the stock recorder."""

    # The same attributes as TransferRecorded, written once (domain/model.py), eventsourcing's
    # own topic (no TOPIC): a stock aggregate saved by the stock recorder.
    Recorded = type("Recorded", (Aggregate.Created,), {
        "__annotations__": dict(Transfer.Recorded.__annotations__),
        "__module__": __name__, "__qualname__": "RawTransfer.Recorded",
        "apply": _keep_fields,
    })


class RawApp(Application[Any]):
    name = "RawBench"


def recorded_payload(i: int) -> dict[str, Any]:
    """What the ledger stores for transfer_body(i): the same fields, as stored."""
    draft = TransferDraft.parse(transfer_body(i), now=datetime(2026, 11, 23, 10, tzinfo=UTC))
    return Transfer.record(draft, None, draft.sender.party).data


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def bench_recording(label: str, raw_env: dict[str, str], ledger_env: dict[str, str], n: int) -> float:
    """Print the row; return the raw single-save rate (one save, one durable commit each)."""
    raw = RawApp(raw_env)
    ledger = TransferLedger(ledger_env)
    try:
        payloads = [recorded_payload(i) for i in range(n)]
        bodies = [transfer_body(i) for i in range(n)]
        # Warm up both (table creation, statement caches), then interleave
        # rounds so that both sides see the same machine conditions.
        raw.save(RawTransfer._create(RawTransfer.Recorded, id=uuid4(), **payloads[0]))
        ledger.record_transfer(bodies[0])
        rounds = 10
        per = n // rounds

        def raw_round(chunk: range) -> float:
            start = time.perf_counter()
            for i in chunk:
                raw.save(RawTransfer._create(RawTransfer.Recorded, id=uuid4(), **payloads[i]))
            return time.perf_counter() - start

        def ledger_round(chunk: range) -> float:
            start = time.perf_counter()
            for i in chunk:
                ledger.record_transfer(bodies[i])
            return time.perf_counter() - start

        t_raw, t_ledger = alternating(rounds, per, raw_round, ledger_round)
        done = per * rounds
        raw_rate, ledger_rate = rate(done, t_raw), rate(done, t_ledger)
        ratio = ledger_rate / raw_rate
        print(
            f"{label:<34} {done:>8} {raw_rate:>12.0f}/s {ledger_rate:>12.0f}/s "
            f"{ratio:>7.2f}x  (goal >= 0.80x){'' if ratio >= 0.8 else '  MISSED'}"
        )
        return raw_rate
    finally:
        raw.close()
        ledger.close()


def bench_sealing(tmp: Path, n: int, database_url: str | None = None) -> None:
    """Event format 2 (personal values sealed: commitments, encrypted openings, data keys) against
    format 1 (values in clear), the same transfers, side by side: one commit each (the goal), and
    batches of 64 as group commit writes them (where the commit no longer hides the work). On
    PostgreSQL each format has a schema of its own in the same database."""
    from bench.http import postgres_schema

    with contextlib.ExitStack() as stack:
        urls: list[str | None] = [None, None]
        if database_url is not None:
            base, _, query = database_url.partition("?")
            rest = "&".join(p for p in query.split("&") if p and not p.startswith("schema="))
            urls = [stack.enter_context(postgres_schema(f"{base}?{rest}" if rest else base, name))
                    for name in ("format1", "format2")]
        _bench_sealing(Settings(tmp / "format1", urls[0]), Settings(tmp / "format2", urls[1]), n)


def _bench_sealing(plain_settings: Settings, sealed_settings: Settings, n: int) -> None:
    for s in (plain_settings, sealed_settings):
        s.data_dir.mkdir(parents=True)
    plain_env = {k: v for k, v in eventsourcing_env(plain_settings).items() if k != "DATA_KEYS_DIR"}
    plain, sealed = TransferLedger(plain_env), TransferLedger(eventsourcing_env(sealed_settings))
    assert (plain.event_format, sealed.event_format) == (1, 2)
    try:
        bodies = [transfer_body(i) for i in range(n)]
        for ledger in (plain, sealed):
            ledger.record_transfer(bodies[0])

        def single(ledger: TransferLedger, chunk: list[dict[str, Any]]) -> float:
            start = time.perf_counter()
            for body in chunk:
                ledger.record_transfer(body)
            return time.perf_counter() - start

        def batched(ledger: TransferLedger, chunk: list[dict[str, Any]]) -> float:
            start = time.perf_counter()
            for at in range(0, len(chunk), 64):
                outcomes = ledger._execute_batch([ledger.plan_record_transfer(b) for b in chunk[at:at + 64]])
                assert all(error is None for _, error in outcomes)
            return time.perf_counter() - start

        for label, run, count in (("format 2 vs 1, one commit each", single, n),
                                  ("format 2 vs 1, batches of 64", batched, n * 4)):
            work = [bodies[i % n] for i in range(count)]
            t_plain = t_sealed = 0.0
            rounds = 10
            per = count // rounds
            for r in range(rounds):
                chunk = work[r * per:(r + 1) * per]
                if r % 2 == 0:
                    t_plain += run(plain, chunk)
                    t_sealed += run(sealed, chunk)
                else:
                    t_sealed += run(sealed, chunk)
                    t_plain += run(plain, chunk)
            done = per * rounds
            plain_rate, sealed_rate = rate(done, t_plain), rate(done, t_sealed)
            ratio = sealed_rate / plain_rate
            judged = run is single  # the goal: in-process recording, one commit each
            verdict = (f"  (goal >= 0.90x){'' if ratio >= 0.9 else '  MISSED'}" if judged
                       else "  (the sealing's own cost, not judged)")
            print(f"{label:<34} {done:>8} {plain_rate:>12.0f}/s {sealed_rate:>12.0f}/s {ratio:>7.2f}x{verdict}")
    finally:
        plain.close()
        sealed.close()


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

    from ledger.service.node_cache import NodeCache
    from ledger.tlog.leaf import ZERO_HASH, encode_leaf
    from ledger.tlog.merkle import consistency_proof, inclusion_proof

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
            print(f"{'  (load stored nodes into memory)':<34} {n:>8} {'':>13} {load:>12.2f}s  "
                  "(a served API process does it once, in the background, at start)")

            def get_nodes(ids: Any) -> Any:
                return ledger.store.read_nodes(ids)

            for label, ours, theirs, judged in (
                ("inclusion (as the API serves it)", cache.inclusion_proof,
                 lambda i, m: reference.prove_inclusion(i + 1, m), True),
                ("consistency (as the API serves it)", cache.consistency_proof,
                 lambda a, b: reference.prove_consistency(a, b), True),
                ("inclusion, one SQL query each", lambda i, m: inclusion_proof(i, m, get_nodes),
                 lambda i, m: reference.prove_inclusion(i + 1, m), False),
                ("consistency, one SQL query each", lambda a, b: consistency_proof(a, b, get_nodes),
                 lambda a, b: reference.prove_consistency(a, b), False),
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
                if judged:
                    goal = ("  (goal: sub-millisecond, >= 10x pymerkle)"
                            f"{'' if t_ours < 1e-3 and t_theirs / t_ours >= 10 else '  MISSED'}")
                else:
                    goal = "  (for comparison: export and audit bundles read their few proofs so)"
                print(f"{label:<34} {n:>8} {t_theirs * 1e6:>11.1f}us {t_ours * 1e6:>11.1f}us "
                      f"{t_theirs / t_ours:>7.1f}x{goal}")
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


# -- read models -----------------------------------------------------------------------

PARTIES = ("DE", "FR", "NL", "BR", "US", "INTERPOL", "IT", "ES", "PL", "JP")
BASES = ("art40", "art40-4", "art41", "art42", "art43", "art44", "art45", "art46", "art47")
CATEGORIES = ("subscriber", "traffic", "content", "other_personal")


class SyntheticLedger:
    """Stored events as the application writes them (same topics, fields and JSON), made
    fast: a realistic mix of first transfers, requests, grants, refusals, onward
    transfers with their uses, revocations and second hops."""

    def __init__(self, seed: int = 36) -> None:
        import random
        from datetime import UTC, datetime

        from domain.model import Authorization, Transfer

        self.rng = random.Random(seed)
        self.clock = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
        self.events: list[Any] = []
        self.topics = {
            "transfer": Transfer.Recorded.TOPIC, "requested": Authorization.Requested.TOPIC,
            "granted": Authorization.Granted.TOPIC, "refused": Authorization.Refused.TOPIC,
            "revoked": Authorization.Revoked.TOPIC, "used": Authorization.Used.TOPIC,
        }
        self.transfers = 0

    def _now(self) -> tuple[str, str]:
        from datetime import UTC, datetime

        self.clock += self.rng.randint(20, 900)
        moment = datetime.fromtimestamp(self.clock, UTC)
        return moment.isoformat(timespec="microseconds"), moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def _emit(self, originator: Any, version: int, kind: str, state: dict[str, Any]) -> None:
        import json

        from eventsourcing.persistence import StoredEvent

        body = json.dumps(state, separators=(",", ":"), ensure_ascii=False).encode()
        self.events.append(StoredEvent(originator, version, self.topics[kind], body))

    @staticmethod
    def actor(party: str, officer: bool = True) -> dict[str, str]:
        out = {"party": party, "authority": f"{party}/POLICE"}
        if officer:
            out["officer"] = "Officer on duty"
        return out

    def transfer(self, sender: str, recipient: str, parent: dict[str, Any] | None = None,
                 auth: dict[str, Any] | None = None) -> dict[str, Any]:
        ident = uuid4()
        stamp, zulu = self._now()
        categories = list(parent["data_categories"][:1]) if parent else sorted(
            self.rng.sample(CATEGORIES, self.rng.randint(1, 3)))
        state = {
            "timestamp": {"_type_": "datetime_iso", "_data_": stamp},
            "originator_topic": "transfer-ledger:Transfer",
            "sender": self.actor(sender), "recipient": self.actor(recipient, False),
            "legal_basis": "art47" if parent else self.rng.choice(BASES),
            "request_reference": f"MLA-{self.transfers}",
            "purpose": {"proceeding": "PROC-2025-0417", "description": "ransomware"},
            "data_categories": categories, "subjects": ["person:1"], "dataset_sha256": f"{self.transfers:064x}",
            "item_count": self.rng.randint(1, 5000),
            "handling": {"confidential": False, "written_authorization_required": False, "use_restrictions": []},
            "retention_until": "2031-03-01", "transferred_at": zulu, "justification": "MLA request (art. 40 §15)",
            "ordered_by": "C. Vogel",
            "parent_transfer_id": parent["id"] if parent else None,
            "authorization_id": auth["id"] if auth else None,
            "origin": parent["origin"] if parent else sender,
            "root_transfer_id": parent["root_transfer_id"] if parent else str(ident),
            "depth": parent["depth"] + 1 if parent else 0, "origin_requires_written_form": False,
        }
        self.transfers += 1
        self._emit(ident, 1, "transfer", state)
        if auth is not None:
            auth["version"] += 1
            self._emit(UUID(auth["id"]), auth["version"], "used",
                       {"timestamp": {"_type_": "datetime_iso", "_data_": stamp}, "transfer_id": str(ident)})
        return {"id": str(ident), **state}

    def request(self, parent: dict[str, Any], recipient: str) -> dict[str, Any]:
        ident = uuid4()
        stamp, _ = self._now()
        holder = parent["recipient"]["party"]
        self._emit(ident, 1, "requested", {
            "timestamp": {"_type_": "datetime_iso", "_data_": stamp},
            "originator_topic": "transfer-ledger:Authorization", "parent_transfer_id": parent["id"],
            "requested_by": self.actor(holder), "recipient": self.actor(recipient, False),
            "purpose": {"proceeding": "PROC-2025-0417", "description": "ransomware"},
            "data_categories": parent["data_categories"][:1], "justification": "cross-match",
            "origin": parent["origin"], "root_transfer_id": parent["root_transfer_id"],
        })
        return {"id": str(ident), "version": 1, "origin": parent["origin"], "holder": holder, "recipient": recipient}

    def decide(self, auth: dict[str, Any], granted: bool) -> None:
        stamp, _ = self._now()
        auth["version"] += 1
        state: dict[str, Any] = {"timestamp": {"_type_": "datetime_iso", "_data_": stamp}, "origin": auth["origin"],
                                 "decided_by": self.actor(auth["origin"])}
        if granted:
            state.update(conditions={"valid_until": None, "max_transfers": 3, "data_categories": None,
                                     "purpose": None, "written_instrument": None, "further_conditions": []},
                         reasons=None, signature=None)
        else:
            state.update(reasons="no proceeding named", signature=None)
        self._emit(UUID(auth["id"]), auth["version"], "granted" if granted else "refused", state)

    def revoke(self, auth: dict[str, Any]) -> None:
        stamp, _ = self._now()
        auth["version"] += 1
        self._emit(UUID(auth["id"]), auth["version"], "revoked", {
            "timestamp": {"_type_": "datetime_iso", "_data_": stamp},
            "revoked_by": self.actor(auth["origin"]), "reasons": "proceeding closed"})

    def onward(self, parent: dict[str, Any]) -> dict[str, Any] | None:
        holder, origin = parent["recipient"]["party"], parent["origin"]
        target = self.rng.choice([p for p in PARTIES if p not in (holder, origin)])
        auth = self.request(parent, target)
        roll = self.rng.random()
        if roll < 0.08:
            return None  # left pending
        if roll < 0.22:
            self.decide(auth, False)
            return None
        self.decide(auth, True)
        child = self.transfer(holder, target, parent, auth)
        if self.rng.random() < 0.1:
            self.revoke(auth)
        return child

    def mixed(self, n: int) -> None:
        """About ``n`` events of everyday traffic."""
        while len(self.events) < n:
            sender, recipient = self.rng.sample(PARTIES, 2)
            root = self.transfer(sender, recipient)
            if self.rng.random() < 0.45:
                continue
            child = self.onward(root)
            if child is not None and self.rng.random() < 0.3:
                self.onward(child)

    def tree(self, size: int) -> str:
        """One lineage of ``size`` transfers, each hop under its own grant; the root's id."""
        root = self.transfer("DE", "FR")
        nodes = [root]
        while len(nodes) < size:
            parent = nodes[self.rng.randrange(len(nodes))]
            holder, origin = parent["recipient"]["party"], parent["origin"]
            target = self.rng.choice([p for p in PARTIES if p not in (holder, origin)])
            auth = self.request(parent, target)
            self.decide(auth, True)
            nodes.append(self.transfer(holder, target, parent, auth))
        return str(root["id"])


def bench_projections(n: int, tree_size: int) -> None:
    """Rebuild every read model from an n-event SQLite ledger; lineage queries on one big tree."""
    from ledger.storage.sql import SqlAccess
    from projections import queries, runner_for

    with tempfile.TemporaryDirectory() as tmp:
        ledger = TransferLedger(eventsourcing_env(Settings(Path(tmp))))
        try:
            synth = SyntheticLedger()
            synth.mixed(max(0, n - 4 * tree_size) // 2)
            root_id = synth.tree(tree_size)
            synth.mixed(n)
            events = synth.events[:n]
            start = time.perf_counter()
            for i in range(0, len(events), 5000):
                ledger.recorder.insert_events(events[i:i + 5000])
            build = time.perf_counter() - start
            print(f"{'  (write the ledger)':<34} {len(events):>8} {'':>13} {build:>12.1f}s")
            runner = runner_for(ledger, SqlAccess(ledger.recorder))
            runner.ensure()
            start, cpu = time.perf_counter(), time.process_time()
            applied = runner.rebuild()
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            ev_rate = rate(applied, seconds)
            print(f"{'rebuild all read models':<34} {applied:>8} {'':>13} {ev_rate:>10.0f}/s  "
                  f"({seconds:.1f}s, {cpu:.1f}s of CPU on 2 threads; goal >= 20000/s)"
                  f"{'' if ev_rate >= 20000 else '  MISSED'}")
            db = runner.db
            root_leaf = db.rows("SELECT root_leaf FROM {proj_transfers} WHERE id = ?", (root_id,))[0][0]
            deepest = db.rows("SELECT id FROM {proj_transfers} WHERE root_leaf = ? ORDER BY depth DESC, leaf_index "
                              "LIMIT 1", (root_leaf,))[0][0]
            inner = db.rows("SELECT id FROM {proj_transfers} WHERE root_leaf = ? AND depth = 2 ORDER BY leaf_index "
                            "LIMIT 1", (root_leaf,))
            cases = [(f"lineage of the root ({tree_size} tree)", root_id),
                     ("lineage of a transfer 2 hops down", inner[0][0] if inner else root_id),
                     ("lineage of the deepest transfer", deepest)]
            for label, ident in cases:
                queries.lineage(db, ident)  # warm the page cache
                times = []
                for _ in range(15):
                    start = time.perf_counter()
                    answer = queries.lineage(db, ident)
                    times.append(time.perf_counter() - start)
                assert answer is not None
                t_query = sorted(times)[len(times) // 2]
                size = 1 + len(answer["ancestors"]) + len(answer["descendants"])
                print(f"{label:<34} {size:>8} {'':>13} {t_query * 1e3:>10.1f}ms  (median; nodes in the answer; "
                      f"goal: milliseconds){'' if t_query < 0.25 else '  MISSED'}")
        finally:
            ledger.close()


POSTGRES_SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "postgres.sh"


@contextmanager
def postgres_url() -> Iterator[str | None]:
    """BENCH_DATABASE_URL; else a throwaway local server for this run, if the
    PostgreSQL server binaries are installed (stopped and removed after);
    else None."""
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        yield url
        return
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb") or not POSTGRES_SCRIPT.exists():
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp:
        try:
            started = subprocess.run(
                ["bash", str(POSTGRES_SCRIPT), "start", tmp], capture_output=True, text=True, check=True
            )
            yield started.stdout.strip().splitlines()[-1]
        finally:
            subprocess.run(["bash", str(POSTGRES_SCRIPT), "stop", tmp], capture_output=True, check=False)


def _bench_import(label: str, raw_env: dict[str, str], ledger_env: dict[str, str], n: int) -> None:
    from bench.imports import bench_import

    raw, ledger = RawApp(raw_env), TransferLedger(ledger_env)
    try:
        bench_import(label, raw, lambda p: RawTransfer._create(RawTransfer.Recorded, id=uuid4(), **p),
                     recorded_payload, transfer_body, ledger, n)
    finally:
        raw.close()
        ledger.close()


def main() -> int:
    from bench.http import REQUESTS as HTTP_REQUESTS
    from bench.http import bench_http
    from bench.reads import bench_reads
    from bench.verify import bench_verify, events_from_env

    print(f"Transfer Ledger benchmarks, BENCH_EVENTS={EVENTS}, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPU(s)")
    print(f"{'recording in-process':<34} {'events':>8} {'raw save':>14} {'ledger':>14} {'ratio':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(Path(tmp))
        raw_env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(Path(tmp) / "raw.sqlite3")}
        sqlite_single = bench_recording("SQLite", raw_env, eventsourcing_env(settings), EVENTS)
    print()
    print(f"{'bulk import, batches of 500':<34} {'events':>8} {'raw batched':>14} {'import':>14} {'ratio':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        raw_env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(Path(tmp) / "raw.sqlite3")}
        _bench_import("SQLite", raw_env, eventsourcing_env(Settings(Path(tmp))), EVENTS)
    print()
    print(f"{'personal data sealed (SQLite)':<34} {'events':>8} {'format 1':>14} {'format 2':>14} {'ratio':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        bench_sealing(Path(tmp), min(EVENTS, 5_000))
    with contextlib.ExitStack() as stack:
        url: str | None = None
        pg_single: float | None = None
        try:
            url = stack.enter_context(postgres_url())
        except subprocess.CalledProcessError as e:
            print(f"{'PostgreSQL':<34} (could not start a server: {(e.stderr or '').strip()[-200:]}; "
                  "set BENCH_DATABASE_URL to use one)")
        else:
            if url:
                pg_single = bench_recording(
                    "PostgreSQL", postgres_env(url), eventsourcing_env(Settings(Path("."), url)), EVENTS
                )
                _bench_import("PostgreSQL import, batches of 500", postgres_env(url),
                              eventsourcing_env(Settings(Path("."), url)), EVENTS)
                print()
                print(f"{'personal data sealed (PostgreSQL)':<34} {'events':>8} {'format 1':>14} "
                      f"{'format 2':>14} {'ratio':>8}")
                with tempfile.TemporaryDirectory() as tmp:
                    bench_sealing(Path(tmp), min(EVENTS, 2_000), database_url=url)
            else:
                print(f"{'PostgreSQL':<34} (install the PostgreSQL server, or set BENCH_DATABASE_URL="
                      "postgresql://user:pw@host:port/db, to include it)")
        print()
        bench_http(HTTP_REQUESTS, sqlite_single)
        if url:
            print()
            bench_http(HTTP_REQUESTS, pg_single, database_url=url)
        print()
        bench_reads(HTTP_REQUESTS)
        if url:
            print()
            bench_reads(HTTP_REQUESTS, database_url=url)
    print()
    print(f"{'verification (SQLite)':<34} {'events':>8} {'':>13} {'ledger':>13}")
    bench_verify(events_from_env())
    print()
    proof_leaves = int(os.environ.get("BENCH_PROOF_LEAVES", str(max(EVENTS, 1_000_000))))
    print(f"{'proofs (SQLite store)':<34} {'leaves':>8} {'pymerkle':>13} {'ledger':>13} {'speed-up':>8}")
    bench_proofs(proof_leaves)
    print()
    projection_events = int(os.environ.get("BENCH_PROJECTION_EVENTS") or os.environ.get("BENCH_EVENTS")
                            or 1_000_000)
    tree = min(10_000, max(100, projection_events // 20))
    print(f"{'read models (SQLite)':<34} {'events':>8} {'':>13} {'ledger':>13}")
    bench_projections(projection_events, tree)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
