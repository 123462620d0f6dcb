"""`make bench`, HTTP section: recording over HTTP vs a bare FastAPI endpoint, side by side.

Two servers run as processes of their own on 127.0.0.1, with the same uvicorn
settings: the real ledger (``transfer-ledger serve`` on a fresh data dir, with
a recorder API key of Party DE) and a bare FastAPI endpoint that validates the
same request model and stores nothing (bench/bare_app.py). For each number of
concurrent clients (1, 16, 64) both get the same warm-up, then the same fixed
number of ``POST /v1/transfers`` of valid first transfers sent by DE, in rounds
that alternate between the two servers so that both see the same machine
conditions.

The load comes from a third process (a fresh interpreter): asyncio over plain
sockets, one HTTP/1.1 keep-alive connection per client (fresh for each round),
requests built before the clock starts, each client sending the next request
as soon as it has read the answer to the last. Every request's latency is
measured; a 503 with Retry-After is retried after the delay it asks for, its
latency counted from the first attempt, and counted apart. A run stops by
itself after its requests or at its time limit.

BENCH_HTTP_REQUESTS sets the measured requests per server and client count
(default 3000); BENCH_HTTP_SECONDS bounds each client count's run, both servers
together (default 180). ``python -m bench.http`` runs the section alone, on
SQLite and, when BENCH_DATABASE_URL is set, on PostgreSQL (in a fresh schema).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REQUESTS = int(os.environ.get("BENCH_HTTP_REQUESTS", "3000"))
RUN_SECONDS = float(os.environ.get("BENCH_HTTP_SECONDS", "180"))
CLIENTS = (1, 16, 64)
WARMUP = 200
#: The measured requests of a run alternate between the servers in this many rounds.
ROUNDS = 3
HOST = "127.0.0.1"
RATIO_GOAL = 0.70
RATIO_GOAL_CLIENTS = 64
P99_GOAL = 0.100  # seconds
START_TIMEOUT = 60.0
STOP_TIMEOUT = 40.0
#: Longest Retry-After honoured (seconds); a longer one is waited for this long.
MAX_RETRY_AFTER = 5.0


def transfer_body(i: int) -> dict[str, Any]:
    """A valid first transfer sent by DE: the request of every recording benchmark (this
    module imports nothing but the standard library, so the load generator stays light)."""
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


def build_request(port: int, key: str | None, i: int, get_path: str | None = None) -> bytes:
    """The ``i``-th request: ``POST /v1/transfers`` of :func:`transfer_body`, or ``GET get_path``."""
    if get_path is not None:
        auth = f"Authorization: Bearer {key}\r\n" if key else ""
        return f"GET {get_path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n{auth}\r\n".encode()
    body = json.dumps(transfer_body(i), separators=(",", ":"), ensure_ascii=False).encode()
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    head = (f"POST /v1/transfers HTTP/1.1\r\nHost: {HOST}:{port}\r\n{auth}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


# -- the load generator (runs in a process of its own) ---------------------------------


@dataclass
class LoadResult:
    clients: int
    requests: int  # asked for
    done: int = 0  # answered, any status
    created: int = 0  # answered 201 (200 for the reads of bench/reads.py)
    seconds: float = 0.0
    p50: float = float("nan")
    p99: float = float("nan")
    retried_503: int = 0  # 503 answers with Retry-After, retried
    statuses: dict[int, int] = field(default_factory=dict)  # final answers other than 201
    errors: int = 0  # connections lost or unreadable answers
    timed_out: bool = False
    sample: str = ""  # the first answer other than 201, truncated

    @property
    def rate(self) -> float:
        return self.created / self.seconds if self.seconds > 0 else 0.0

    @property
    def non_201(self) -> int:
        return sum(self.statuses.values()) + self.errors + (self.requests - self.done if self.timed_out else 0)


class _Answer:
    __slots__ = ("status", "close", "retry_after", "body")

    def __init__(self, status: int, close: bool, retry_after: str | None, body: bytes) -> None:
        self.status, self.close, self.retry_after, self.body = status, close, retry_after, body


async def _read_answer(reader: asyncio.StreamReader) -> _Answer:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status_line = lines[0]
    if not status_line.startswith(b"HTTP/1."):
        raise ConnectionError(f"not an HTTP answer: {status_line[:80]!r}")
    status = int(status_line[9:12])
    length = -1
    chunked = close = False
    retry_after = None
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            close = b"close" in value.lower()
        elif name == b"retry-after":
            retry_after = value.strip().decode("latin-1")
    if status_line.startswith(b"HTTP/1.0"):
        close = True
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                    pass
                break
            parts.append(await reader.readexactly(size + 2))
        body = b"".join(p[:-2] for p in parts)
    elif length >= 0:
        body = await reader.readexactly(length) if length else b""
    elif status in (204, 304) or 100 <= status < 200:
        body = b""
    else:  # no length: the body runs to the end of the connection
        body = await reader.read()
        close = True
    return _Answer(status, close, retry_after, body)


def _retry_delay(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 1.0  # an HTTP-date: not expected from this server
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _percentile(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        return float("nan")
    rank = max(1, -(-int(q * 1000) * len(ordered) // 1000))  # nearest rank, ceil(q * n)
    return ordered[min(rank, len(ordered)) - 1]


async def _drive(targets: list[tuple[int, str | None]], clients: int, warmup: int, requests: int, first: int,
                 rounds: int, seconds: float, get_paths: list[str] | None = None) -> list[LoadResult]:
    """For each target (port, API key): ``warmup`` requests, then ``requests`` requests in
    ``rounds`` rounds that alternate between the targets, so that all see the same machine
    conditions; each round from ``clients`` fresh keep-alive connections, only its requests timed.
    With ``get_paths``, the requests are GETs of those paths in turn, and success is 200, not 201."""
    perf = time.perf_counter
    deadline = time.monotonic() + seconds
    results = [LoadResult(clients, requests) for _ in targets]
    latencies: list[list[float]] = [[] for _ in targets]
    success = 200 if get_paths else 201

    def build(port: int, key: str | None, i: int) -> bytes:
        return build_request(port, key, i, get_paths[i % len(get_paths)] if get_paths else None)

    warm = [[build(port, key, first + i) for i in range(warmup)] for port, key in targets]
    measured = [[build(port, key, first + warmup + i) for i in range(requests)] for port, key in targets]

    async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(HOST, port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer

    async def phase(t: int, batch: list[bytes], record: bool) -> bool:
        """Send ``batch`` from ``clients`` connections, each taking the next request as soon as it
        has its answer; False if the deadline came first."""
        port = targets[t][0]
        result, times = results[t], latencies[t]
        conns = [await connect(port) for _ in range(clients)]
        state = {"next": 0}

        async def client(slot: int) -> None:
            reader, writer = conns[slot]
            while True:
                i = state["next"]
                if i >= len(batch):
                    return
                state["next"] = i + 1
                request = batch[i]
                start = perf()
                try:
                    while True:
                        writer.write(request)
                        answer = await _read_answer(reader)
                        if answer.close:
                            writer.close()
                            reader, writer = conns[slot] = await connect(port)
                        if answer.status == 503 and answer.retry_after is not None:
                            if record:
                                result.retried_503 += 1
                            await asyncio.sleep(_retry_delay(answer.retry_after))
                            continue
                        break
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
                    if record:
                        result.errors += 1
                        result.done += 1
                        if not result.sample:
                            result.sample = f"connection error: {type(e).__name__}: {e}"[:300]
                    writer.close()
                    reader, writer = conns[slot] = await connect(port)
                    continue
                if record:
                    times.append(perf() - start)
                    result.done += 1
                    if answer.status == success:
                        result.created += 1
                    else:
                        result.statuses[answer.status] = result.statuses.get(answer.status, 0) + 1
                        if not result.sample:
                            result.sample = f"{answer.status} {answer.body[:300].decode('utf-8', 'replace')}"

        started = perf()
        tasks = [asyncio.ensure_future(client(slot)) for slot in range(clients)]
        done, pending = await asyncio.wait(tasks, timeout=max(0.5, deadline - time.monotonic()))
        if record:
            result.seconds += perf() - started
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        for _, writer in conns:
            writer.close()
        for task in done:
            task.result()  # an unexpected error surfaces
        return not pending

    for t in range(len(targets)):
        if warm[t] and not await phase(t, warm[t], False):
            results[t].timed_out = True
    # A round ends as its last requests drain, fewer than ``clients`` in flight: keep rounds of
    # at least ten requests per client, so that the drain stays a small part of each.
    rounds = max(1, min(rounds, requests // (10 * max(clients, 1))))
    bounds = [requests * k // rounds for k in range(rounds + 1)]
    chunks = [(a, b) for a, b in zip(bounds, bounds[1:]) if a < b]
    for a, b in chunks:
        for t in range(len(targets)):
            if not results[t].timed_out and not await phase(t, measured[t][a:b], True):
                results[t].timed_out = True
    for t, result in enumerate(results):
        times = sorted(latencies[t])
        result.p50, result.p99 = _percentile(times, 0.50), _percentile(times, 0.99)
    return results


def _load_child() -> None:
    """The load generator's process: arguments as JSON on stdin, the result as JSON on stdout."""
    args = json.loads(sys.stdin.read())
    targets = [(port, key) for port, key in args.pop(0)]
    results = asyncio.run(_drive(targets, *args))
    sys.stdout.write(json.dumps([asdict(result) for result in results]))


def run_load(targets: Sequence[tuple[int, str | None]], clients: int, warmup: int, requests: int, first: int,
             rounds: int = ROUNDS, seconds: float = RUN_SECONDS,
             get_paths: Sequence[str] | None = None) -> list[LoadResult]:
    """Drive one run against every target (port, API key) from a process of its own,
    which imports nothing but this module."""
    argv = [sys.executable, "-c", "from bench.http import _load_child; _load_child()"]
    limit = seconds * 2 + 60  # the generator stops itself at its deadline; allow for start-up
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=_clean_env(), cwd=Path(__file__).resolve().parents[1])
    try:
        args = [list(targets), clients, warmup, requests, first, rounds, seconds,
                list(get_paths) if get_paths else None]
        out, err = process.communicate(json.dumps(args).encode(), timeout=limit)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"the load generator did not finish within {limit:.0f}s") from None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    if process.returncode != 0:
        raise RuntimeError(f"the load generator failed ({process.returncode}):\n{err.decode(errors='replace')}")
    results = []
    for fields in json.loads(out):
        fields["statuses"] = {int(k): v for k, v in fields["statuses"].items()}
        results.append(LoadResult(**fields))
    return results


# -- servers -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TRANSFER_LEDGER_")}


def _cli(*args: str, data_dir: Path, database_url: str | None) -> str:
    argv = [sys.executable, "-m", "ledger.cli", *args, "--data-dir", str(data_dir)]
    if database_url:
        argv += ["--database-url", database_url]
    done = subprocess.run(argv, capture_output=True, text=True, env=_clean_env(), timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"transfer-ledger {args[0]} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


class Server:
    """A server process on a free loopback port, its output in a log file."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name, self.log = name, log
        self.port = _free_port()
        self.argv = [*argv, "--host", HOST, "--port", str(self.port)]
        self.process: subprocess.Popen[bytes] | None = None

    def launch(self) -> Server:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env=_clean_env())
        return self

    def ready(self) -> Server:
        """Wait until it answers /healthz."""
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"http://{HOST}:{self.port}/healthz", timeout=2.0) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer /healthz within {START_TIMEOUT:.0f}s:\n{self.tail()}")

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self) -> None:
        """Wait for the graceful shutdown after :meth:`terminate`; kill if it does not come."""
        process, self.process = self.process, None
        if process is None:
            return
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)

    def tail(self) -> str:
        try:
            return self.log.read_text("utf-8", errors="replace")[-3000:]
        except OSError:
            return ""


@contextmanager
def postgres_schema(url: str, name: str = "http") -> Iterator[str]:
    """``url`` with a fresh schema (dropped afterwards), unless it names one already."""
    query = url.partition("?")[2]
    if "schema=" in query:
        yield url
        return
    import psycopg

    schema = f"bench_{name}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{url}{'&' if '?' in url else '?'}schema={schema}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


# -- the section -----------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def _row(backend: str, bare: LoadResult, ledger: LoadResult) -> str:
    ratio = ledger.rate / bare.rate if bare.rate > 0 else 0.0
    missed = ledger.non_201 > 0 or bare.non_201 > 0 or ledger.timed_out or bare.timed_out
    missed |= not ledger.p99 < P99_GOAL
    goals = f"p99 < {P99_GOAL * 1e3:.0f}ms"
    if ledger.clients >= RATIO_GOAL_CLIENTS:
        goals = f">= {RATIO_GOAL:.2f}x, {goals}"
        missed |= not ratio >= RATIO_GOAL
    extra = ""
    if ledger.retried_503 or bare.retried_503:
        extra += f", 503 retried {bare.retried_503}|{ledger.retried_503}"
    if ledger.timed_out or bare.timed_out:
        extra += ", stopped at the time limit"
    label = f"{backend}, {ledger.clients} client{'s' if ledger.clients > 1 else ''}"
    return (f"{label:<34} {ledger.requests:>8} {bare.rate:>12.0f}/s {ledger.rate:>12.0f}/s {ratio:>7.2f}x  "
            f"p50 {_ms(bare.p50)}|{_ms(ledger.p50)}ms p99 {_ms(bare.p99)}|{_ms(ledger.p99)}ms "
            f"non-201 {bare.non_201}|{ledger.non_201}{extra}  (goal {goals}){'  MISSED' if missed else ''}")


def header(backend: str) -> str:
    return (f"{'HTTP recording (' + backend + ')':<34} {'requests':>8} {'bare':>14} {'ledger':>14} "
            f"{'ratio':>8}  (latency and failures: bare|ledger)")


def bench_http(requests: int, single_save_rate: float | None = None, database_url: str | None = None,
               clients: Sequence[int] = CLIENTS, warmup: int = WARMUP, rounds: int = ROUNDS,
               seconds: float = RUN_SECONDS) -> None:
    """Bare endpoint vs the ledger over HTTP on one backend: SQLite, or PostgreSQL at ``database_url``.

    Prints a header, one row per client count and, given the backend's single-save rate
    (one save, one fsync each), whether the ledger at the most clients records faster.
    """
    from bench.bare_app import ledger_handler_is_async

    backend = "PostgreSQL" if database_url else "SQLite"
    kind = "async def" if ledger_handler_is_async() else "def"
    print(header(backend))
    tmp = Path(tempfile.mkdtemp(prefix="bench-http-"))
    servers: list[Server] = []
    try:
        with (postgres_schema(database_url) if database_url else _no_schema()) as url, _stopping(servers):
            # The bare server starts while the ledger's data dir and API key are made.
            bare = Server("bare endpoint", [sys.executable, "-m", "bench.bare_app"], tmp / "bare.log")
            servers.append(bare.launch())
            data_dir = tmp / "ledger-data"
            _cli("init", data_dir=data_dir, database_url=url)
            key = _cli("principals", "add", "--party", "DE", "--roles", "recorder", "--name", "bench",
                       data_dir=data_dir, database_url=url).strip().splitlines()[-1]
            serve = [sys.executable, "-m", "ledger.cli", "serve", "--data-dir", str(data_dir)]
            if url:
                serve += ["--database-url", url]
            ledger = Server("transfer-ledger serve", serve, tmp / "ledger.log")
            servers.append(ledger.launch())
            for server in servers:
                server.ready()
            first = 0
            top: LoadResult | None = None
            for n in clients:
                w = max(n, min(warmup, requests))
                b, r = run_load([(bare.port, None), (ledger.port, key)], n, w, requests, first, rounds, seconds)
                first += w + requests
                print(_row(backend, b, r), flush=True)
                for name, result in (("bare", b), ("ledger", r)):
                    if result.sample:
                        print(f"{'':<34} first {name} answer other than 201: {result.sample}")
                top = r
            if single_save_rate is not None and top is not None:
                above = top.rate > single_save_rate
                label = f"  {top.clients} clients vs single saves"
                print(f"{label:<34} {'':>8} {single_save_rate:>12.0f}/s {top.rate:>12.0f}/s "
                      f"{top.rate / single_save_rate if single_save_rate > 0 else 0.0:>7.2f}x  "
                      f"(goal: above the single-save rate){'' if above else '  MISSED'}")
            print(f"{'':<34} (bare endpoint: {kind} handler, as the ledger's; one load-generator process)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def _no_schema() -> Iterator[None]:
    yield None


@contextmanager
def _stopping(servers: list[Server]) -> Iterator[None]:
    """Stop every server in ``servers`` on the way out (before its schema is dropped), errors or not."""
    try:
        yield
    finally:
        for server in servers:
            with suppress(Exception):
                server.terminate()
        for server in servers:
            with suppress(Exception):
                server.wait()


def main() -> int:
    print(f"Transfer Ledger HTTP benchmark, BENCH_HTTP_REQUESTS={REQUESTS}, Python {sys.version.split()[0]}")
    bench_http(REQUESTS)
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        print()
        bench_http(REQUESTS, database_url=url)
    else:
        print(f"{'PostgreSQL':<34} (set BENCH_DATABASE_URL to include it)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
