"""Several API processes writing to one database at once.

Four real ``transfer-ledger serve`` processes on four ports (and, in the
second test, one ``serve --workers 2``) share one database: the suite's
backend, PostgreSQL when ``TRANSFER_LEDGER_TEST_DATABASE_URL`` is set (the
deployment this is about), else one SQLite file. Client threads record many
first transfers spread over the servers, race many onward transfers under
one grant allowing K of them, and ask for the signed checkpoint, while
``transfer-ledger checkpoint`` runs in processes of its own.

Then, from what was committed: ``transfer-ledger verify`` passes; the leaf
indexes are exactly 0..N-1 with N the number of events; every 201 is one
recorded transfer and nothing else was recorded; exactly K onward transfers
got a 201, the others a 409 ``authorization-exhausted``, none a 5xx; the
grant counts exactly those K uses. A 503 (the API's queue is full) is
retried after its Retry-After, and counted.

Every wait is bounded; every server is killed in a ``finally``.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.model import Authorization, Transfer
from ledger.config import Settings, eventsourcing_env
from ledger.service.application import TransferLedger
from ledger.service.checkpoints import sign_current_checkpoint
from ledger.storage.sql import DDL_LOCK
from ledger.tlog.keys import create_signing_key
from ledger.tlog.note import open_checkpoint
from tests.support import builders
from tests.support.api import ORIGIN_LINE, Initialized, run_init
from tests.support.server import Server, add_keys, clean_env, cli

#: First transfers, spread over the servers; senders and recipients vary.
FIRST_TRANSFERS = 200
#: The grant allows this many onward transfers; this many attempts race for them.
MAX_USES = 5
ONWARD_ATTEMPTS = 40
#: ``GET /v1/checkpoint`` (signs the current tree) from the clients, during the load.
CHECKPOINT_GETS = 12
#: ``transfer-ledger checkpoint`` processes, two at a time: at least this many, started as the load
#: starts, and more while it lasts, up to the maximum.
CHECKPOINT_RUNS = 4
MAX_CHECKPOINT_RUNS = 16
CLIENT_THREADS = 12
#: Bounds: one request (503 retries included), the whole load, one CLI process.
REQUEST_DEADLINE = 60.0
LOAD_DEADLINE = 120.0
CLI_TIMEOUT = 60.0
#: Idle client connections are dropped after this long (uvicorn closes them after 5 s).
KEEPALIVE_EXPIRY = 1.0
#: The rule an onward transfer under a used-up grant is refused with (domain/rules.py).
EXHAUSTED = "/problems/authorization-exhausted"
SENDERS = ("DE", "FR", "INTERPOL", "BR")
RECIPIENTS = ("DE", "FR", "INTERPOL", "BR", "NL", "US")


@dataclass
class Outcome:
    kind: str  # "first", "onward" or "checkpoint"
    status: int
    body: Any
    retried_503: int = 0


@dataclass
class Load:
    outcomes: list[Outcome] = field(default_factory=list)
    checkpoint_runs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)
    seconds: float = 0.0

    def of(self, kind: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind == kind]

    @property
    def retried_503(self) -> int:
        return sum(o.retried_503 for o in self.outcomes)


def send(client: httpx.Client, method: str, path: str, **kwargs: Any) -> tuple[httpx.Response, int]:
    """One request; a 503 is retried after its Retry-After (bounded). Returns the answer and the 503 count."""
    deadline = time.monotonic() + REQUEST_DEADLINE
    retried = 0
    while True:
        response = client.request(method, path, **kwargs)
        if response.status_code != 503 or time.monotonic() > deadline:
            return response, retried
        retried += 1
        try:
            wait = float(response.headers.get("retry-after", "0.1"))
        except ValueError:
            wait = 0.1
        time.sleep(min(max(wait, 0.01), 2.0))


def api_client(url: str, key: str) -> httpx.Client:
    """A client that never reuses a connection the server may be closing: uvicorn closes idle
    keep-alive connections after 5 s, and a request sent on one just then gets no answer."""
    return httpx.Client(base_url=url, timeout=30.0, headers={"Authorization": f"Bearer {key}"},
                        limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY))


def first_transfer(i: int) -> dict[str, Any]:
    sender = SENDERS[i % len(SENDERS)]
    recipient = [r for r in RECIPIENTS if r != sender][i % (len(RECIPIENTS) - 1)]
    return builders.transfer(sender, recipient, request_reference=f"MLA-2026-{i:05d}")


@contextmanager
def running(servers: list[Server]) -> Iterator[list[Server]]:
    """Start the servers at the same time; kill them whatever happens."""
    with ExitStack() as stack:
        for server in servers:
            stack.callback(server.kill)
        with ThreadPoolExecutor(len(servers)) as pool:
            for started in [pool.submit(server.start) for server in servers]:
                started.result(timeout=60)
        yield servers


def stop_all(servers: list[Server]) -> None:
    """SIGTERM to every server at once; each exits cleanly (requests finished, ledger closed)."""
    with ThreadPoolExecutor(len(servers)) as pool:
        statuses = list(pool.map(Server.stop, servers, timeout=60))
    for server, status in zip(servers, statuses, strict=True):
        server.assert_stopped_cleanly(status)
        log = server.log.read_text("utf-8", errors="replace")
        assert "Traceback" not in log and " 500 Internal" not in log and "died" not in log, log[-20000:]


def checkpoint_runner(settings: Settings, runs: int, out: list[subprocess.CompletedProcess[str]],
                      load_done: threading.Event, stop: threading.Event) -> Callable[[], None]:
    """``transfer-ledger checkpoint`` processes, two at a time, started again and again while the
    load runs (at least ``runs`` of them), so that they overlap each other and the writers."""

    def run() -> None:
        def one() -> None:
            out.append(cli("checkpoint", settings=settings, check=None))

        started: list[threading.Thread] = []
        while not stop.is_set() and len(started) < MAX_CHECKPOINT_RUNS:
            if load_done.is_set() and len(started) >= runs:
                break
            if sum(t.is_alive() for t in started) < 2:
                started.append(threading.Thread(target=one))
                started[-1].start()
            stop.wait(0.25)
        for t in started:
            t.join(timeout=CLI_TIMEOUT + 10)

    return run


def run_load(urls: list[str], keys: dict[str, str], settings: Settings, grant: dict[str, Any],
             root: dict[str, Any], *, first: int, onward: int, checkpoint_gets: int,
             checkpoint_runs: int) -> Load:
    """Everything at once, requests spread round-robin over the servers, in random order."""
    jobs: list[tuple[str, int]] = (
        [("first", i) for i in range(first)] + [("onward", i) for i in range(onward)]
        + [("checkpoint", i) for i in range(checkpoint_gets)]
    )
    random.Random(36).shuffle(jobs)
    local = threading.local()  # each client thread keeps its connections
    opened: list[dict[tuple[str, str], httpx.Client]] = []
    opened_lock = threading.Lock()

    def client(url: str, who: str) -> httpx.Client:
        if not hasattr(local, "clients"):
            local.clients = {}
            with opened_lock:
                opened.append(local.clients)
        clients: dict[tuple[str, str], httpx.Client] = local.clients
        if (url, who) not in clients:
            clients[(url, who)] = api_client(url, keys[who])
        return clients[(url, who)]

    def job(n: int, kind: str, i: int) -> Outcome:
        url = urls[n % len(urls)]
        if kind == "first":
            body = first_transfer(i)
            response, retried = send(client(url, f"{body['sender']['party']}-recorder"), "POST", "/v1/transfers",
                                     json=body, headers={"Idempotency-Key": f"first-{i}"})
        elif kind == "onward":
            response, retried = send(client(url, "FR-recorder"), "POST", "/v1/transfers",
                                     json=builders.onward("FR", "NL", root, grant),
                                     headers={"Idempotency-Key": f"onward-{i}"})
        else:
            response, retried = send(client(url, "*-auditor"), "GET", "/v1/checkpoint")
            return Outcome(kind, response.status_code, response.text, retried)
        return Outcome(kind, response.status_code, response.json(), retried)

    load = Load()
    load_done, stop = threading.Event(), threading.Event()
    checkpoints = threading.Thread(
        target=checkpoint_runner(settings, checkpoint_runs, load.checkpoint_runs, load_done, stop))
    started = time.monotonic()
    try:
        checkpoints.start()  # a process takes a while to start: under way as the requests begin
        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            futures = [pool.submit(job, n, kind, i) for n, (kind, i) in enumerate(jobs)]
            deadline = started + LOAD_DEADLINE
            for future in futures:
                load.outcomes.append(future.result(timeout=max(1.0, deadline - time.monotonic())))
        load.seconds = time.monotonic() - started
    except BaseException:
        stop.set()  # start no more checkpoint processes
        raise
    finally:
        load_done.set()
        checkpoints.join(timeout=2 * CLI_TIMEOUT)
        for clients in opened:
            for c in clients.values():
                c.close()
    return load


def set_up_grant(url: str, keys: dict[str, str], max_uses: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """DE -> FR recorded; FR asks DE for an onward transfer to NL; DE grants at most ``max_uses``."""
    def as_(who: str) -> httpx.Client:
        return api_client(url, keys[who])

    with as_("DE-recorder") as de, as_("FR-recorder") as fr, as_("DE-authority") as de_authority:
        response, _ = send(de, "POST", "/v1/transfers", json=builders.transfer("DE", "FR"))
        assert response.status_code == 201, response.text
        root = response.json()
        response, _ = send(fr, "POST", "/v1/authorization-requests", json=builders.request("FR", "NL", root))
        assert response.status_code == 201, response.text
        request = response.json()
        response, _ = send(de_authority, "POST", f"/v1/authorization-requests/{request['id']}/decision",
                           json=builders.grant("DE", max_transfers=max_uses))
        assert response.status_code == 200, response.text
        grant = response.json()
        assert grant["status"] == "granted" and grant["conditions"]["max_transfers"] == max_uses
    return root, grant


def assert_load_answered(load: Load, *, first: int, onward: int, max_uses: int, checkpoint_gets: int,
                         checkpoint_runs: int) -> None:
    statuses = Counter((o.kind, o.status) for o in load.outcomes)
    failed = [o for o in load.outcomes if o.status >= 500]
    assert not failed, (statuses, [(o.kind, o.status, o.body) for o in failed[:5]])
    assert statuses[("first", 201)] == first, (statuses, [o.body for o in load.of("first") if o.status != 201][:3])
    onward_statuses = Counter(o.status for o in load.of("onward"))
    assert onward_statuses == {201: max_uses, 409: onward - max_uses}, (
        onward_statuses, [o.body for o in load.of("onward") if o.status not in (201, 409)][:3])
    refusals = {o.body["type"] for o in load.of("onward") if o.status == 409}
    assert refusals == {EXHAUSTED}, refusals
    assert statuses[("checkpoint", 200)] == checkpoint_gets, statuses
    assert len(load.checkpoint_runs) >= checkpoint_runs
    for run in load.checkpoint_runs:
        assert run.returncode == 0, (run.returncode, run.stdout, run.stderr)
        assert run.stdout.count("\n") >= 3 and "\n\n" in run.stdout, run.stdout


def assert_ledger_intact(settings: Settings, init: Initialized, load: Load, root: dict[str, Any],
                         grant: dict[str, Any], *, max_uses: int) -> int:
    """verify passes; leaves 0..N-1, one per event; 201s = transfers; the grant's uses = the onward 201s."""
    done = cli("verify", settings=settings, check=None)
    assert done.returncode == 0, (done.stdout, done.stderr)
    match = re.fullmatch(r"OK: (\d+) leaves, root [0-9a-f]{64}, (\d+) checkpoint\(s\) consistent\n", done.stdout)
    assert match, done.stdout
    size, checkpoints_checked = int(match[1]), int(match[2])
    assert checkpoints_checked >= 1

    recorded = [o.body for o in load.outcomes if o.kind in ("first", "onward") and o.status == 201]
    onward_ids = sorted(o.body["id"] for o in load.of("onward") if o.status == 201)
    ledger = TransferLedger(eventsourcing_env(settings))
    try:
        leaves = ledger.store.read_leaves(0, size + 1000)
        assert [leaf.leaf_index for leaf in leaves] == list(range(size))
        assert ledger.store.head().size == size
        assert ledger.store.count_events() == size
        # root, request, grant; each first transfer one event; each onward transfer two (its own, the grant's use)
        assert size == 3 + len(recorded) + max_uses
        feed = [event for start in range(0, size, 500) for _, event in ledger.store.read_feed(start, 500)]
        assert len(feed) == size and len({e.notification_id for e in feed}) == size
        transfers = [e.originator_id for e in feed if e.topic == Transfer.Recorded.TOPIC]
        assert sorted(transfers) == sorted([root["id"], *(r["id"] for r in recorded)])
        uses = [e for e in feed if e.topic == Authorization.Used.TOPIC]
        assert len(uses) == max_uses and {e.originator_id for e in uses} == {grant["id"]}
        # what each 201 said is what was committed: its own leaf index
        for body in recorded:
            leaf = leaves[body["leaf_index"]]
            assert leaf.originator_id == body["id"] and leaf.originator_version == 1
        authorization = ledger.get_authorization(grant["id"])
        assert sorted(authorization["uses"]) == onward_ids and len(onward_ids) == max_uses
        stored = {c.tree_size: c.note for c in ledger.store.checkpoints()}
        assert len(stored) == checkpoints_checked
        # every checkpoint a `checkpoint` process printed is signed by the ledger's key, and stored
        for run in load.checkpoint_runs:
            printed = open_checkpoint(run.stdout, init.verifier, ORIGIN_LINE)
            assert printed.size <= size and stored[printed.size] == run.stdout
    finally:
        ledger.close()
    return size


def report(name: str, load: Load, size: int, started: float) -> None:
    """One line on stderr (seen with ``pytest -s``): how long, how many, what the checkpoints covered."""
    sizes = sorted(int(r.stdout.splitlines()[1]) for r in load.checkpoint_runs if r.returncode == 0)
    print(f"\n{name}: {len(load.outcomes)} requests in {load.seconds:.1f}s ({time.monotonic() - started:.1f}s "
          f"in all), {size} leaves, 503 retried {load.retried_503}x, `checkpoint` sizes {sizes}", file=sys.stderr)


def initialized(settings: Settings) -> tuple[Initialized, dict[str, str]]:
    """``init``, API keys, and the API's own tables: created before the servers start all at once
    (creating them concurrently is test_servers_starting_at_once_create_the_api_tables' subject)."""
    init = run_init(settings)
    keys = add_keys(settings)
    ledger = TransferLedger(eventsourcing_env(settings))
    try:
        ledger.idempotency  # noqa: B018 - creates its table
    finally:
        ledger.close()
    return init, keys


@pytest.mark.slow
def test_four_serve_processes_on_one_database(settings: Settings, tmp_path: Path) -> None:
    began = time.monotonic()
    init, keys = initialized(settings)
    servers = [Server(settings, tmp_path / f"server-{n}.log") for n in range(4)]
    with running(servers):
        urls = [s.url for s in servers]
        root, grant = set_up_grant(urls[0], keys, MAX_USES)
        load = run_load(urls, keys, settings, grant, root, first=FIRST_TRANSFERS, onward=ONWARD_ATTEMPTS,
                        checkpoint_gets=CHECKPOINT_GETS, checkpoint_runs=CHECKPOINT_RUNS)
        assert_load_answered(load, first=FIRST_TRANSFERS, onward=ONWARD_ATTEMPTS, max_uses=MAX_USES,
                             checkpoint_gets=CHECKPOINT_GETS, checkpoint_runs=CHECKPOINT_RUNS)
        stop_all(servers)
    size = assert_ledger_intact(settings, init, load, root, grant, max_uses=MAX_USES)
    report("4 x serve", load, size, began)


@pytest.mark.slow
def test_one_serve_with_two_workers(settings: Settings, tmp_path: Path) -> None:
    began = time.monotonic()
    init, keys = initialized(settings)
    server = Server(settings, tmp_path / "server.log", extra_args=("--workers", "2"))
    with running([server]):
        log = server.log.read_text("utf-8", errors="replace")
        assert "Started parent process" in log, log
        root, grant = set_up_grant(server.url, keys, MAX_USES)
        load = run_load([server.url], keys, settings, grant, root, first=FIRST_TRANSFERS, onward=ONWARD_ATTEMPTS,
                        checkpoint_gets=CHECKPOINT_GETS, checkpoint_runs=2)
        assert_load_answered(load, first=FIRST_TRANSFERS, onward=ONWARD_ATTEMPTS, max_uses=MAX_USES,
                             checkpoint_gets=CHECKPOINT_GETS, checkpoint_runs=2)
        log = server.log.read_text("utf-8", errors="replace")
        assert len(set(re.findall(r"Started server process \[(\d+)\]", log))) == 2, log
        stop_all([server])
    size = assert_ledger_intact(settings, init, load, root, grant, max_uses=MAX_USES)
    report("serve --workers 2", load, size, began)


def test_the_serve_command_takes_workers() -> None:
    done = subprocess.run([sys.executable, "-m", "ledger.cli", "serve", "--help"], capture_output=True,
                          text=True, env=clean_env(), timeout=CLI_TIMEOUT)
    assert done.returncode == 0 and "--workers" in done.stdout, done.stdout


# -- what the load above can hit, made to happen every time ---------------------------------


class _SignedMeanwhile:
    """A store on which, once, another process appends and signs a checkpoint just before
    the checkpoints are read: i.e. after this signer read the head."""

    def __init__(self, store: Any, meanwhile: Callable[[], None]) -> None:
        self._store, self._meanwhile = store, meanwhile

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def checkpoints(self) -> Any:
        meanwhile, self._meanwhile = self._meanwhile, lambda: None
        meanwhile()
        return self._store.checkpoints()


def test_a_checkpoint_signed_meanwhile_by_another_process(ledger: TransferLedger, tmp_path: Path) -> None:
    signer = create_signing_key(tmp_path / "signing.key", "transfer-ledger.example/ledger")
    ledger.record_transfer(builders.transfer("DE", "FR"))

    def another_process_appends_and_signs() -> None:
        ledger.record_transfer(builders.transfer("FR", "NL"))
        sign_current_checkpoint(ledger.store, signer)

    stored = sign_current_checkpoint(_SignedMeanwhile(ledger.store, another_process_appends_and_signs), signer)
    assert stored.tree_size == 2
    assert [c.tree_size for c in ledger.store.checkpoints()] == [2]


def test_servers_starting_at_once_create_the_api_tables(settings: Settings, backend: Any) -> None:
    """One process is creating the API's tables (under the DDL lock, as opening the store does) when another starts."""
    ledger = TransferLedger(eventsourcing_env(settings))
    try:
        if backend.kind != "postgresql":
            ledger.idempotency  # noqa: B018 - SQLite serializes DDL with its write lock
            return
        import psycopg

        failures: list[BaseException] = []

        def second_process() -> None:
            try:
                TransferLedger(eventsourcing_env(settings)).close()  # opening creates the schema
            except BaseException as e:  # noqa: BLE001 - reported below
                failures.append(e)

        url = settings.database_url.split("?", 1)[0]  # type: ignore[union-attr]
        with psycopg.connect(url) as first:
            first.execute(f'SET search_path TO "{backend.schema}"')
            first.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK,))
            first.execute("CREATE TABLE IF NOT EXISTS api_idempotency (principal_id TEXT NOT NULL, "
                          "idem_key TEXT NOT NULL, request_hash TEXT NOT NULL, status_code INTEGER NOT NULL, "
                          "resource_kind TEXT, resource_id TEXT, resource_version INTEGER, response TEXT, "
                          "created_at TEXT NOT NULL, PRIMARY KEY (principal_id, idem_key))")
            thread = threading.Thread(target=second_process)
            thread.start()
            with psycopg.connect(url, autocommit=True) as watcher:
                deadline = time.monotonic() + 20
                while not watcher.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0]:
                    assert time.monotonic() < deadline and thread.is_alive(), failures
                    time.sleep(0.05)
            first.commit()
        thread.join(timeout=30)
        assert not thread.is_alive()
        assert not failures, failures
    finally:
        ledger.close()
