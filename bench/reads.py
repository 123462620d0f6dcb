"""`make bench`, consultation-log section: reads of personal data over HTTP, logged vs not, side by side.

Two servers run on the same data dir (the same transfers), each started the way
``transfer-ledger serve`` starts (the same uvicorn settings and HTTP server):

- the ledger as it is: every ``GET /v1/transfers/{id}`` logged in the consultation
  log (LED art. 25), buffered and written every 100 ms through group commit;
- the same app with the logging dependency replaced by one that logs nothing: the
  baseline, which only this benchmark runs.

For 1, 16 and 64 concurrent clients both get the same warm-up, then the same reads
of 200 transfers in turn, in rounds that alternate between the two servers (the load
generator of bench/http.py). The ratio is reads per second logged / not logged; the
goal is at least 0.80x: logging must not cost a durable commit per read.

``python -m bench.reads`` runs the section alone on SQLite (BENCH_DATABASE_URL:
also on PostgreSQL).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any

from fastapi import Request

from api.deps import CurrentPrincipal, Reading, reading
from bench.http import (
    CLIENTS,
    REQUESTS,
    RUN_SECONDS,
    WARMUP,
    LoadResult,
    Server,
    _cli,
    _ms,
    _no_schema,
    _stopping,
    postgres_schema,
    run_load,
    transfer_body,
)

#: Reads logged / not logged, at every client count.
RATIO_GOAL = 0.80
TRANSFERS = 200


class _Unlogged(Reading):
    """A read that logs nothing."""

    def log(self, kind: str, ids: Any, parties: Any = (), *, purpose: str | None = None) -> None:
        pass


def _unlogged(request: Request, principal: CurrentPrincipal) -> Reading:
    return _Unlogged(request, principal, None, None)


def unlogged_app_from_env() -> Any:
    """The ledger's app with reads not logged: the baseline of this benchmark, never served otherwise."""
    from api.app import create_app_from_env

    app = create_app_from_env()
    app.dependency_overrides[reading] = _unlogged
    return app


def _serve_unlogged(data_dir: str, database_url: str, host: str, port: str) -> None:
    """As ``transfer-ledger serve`` (one worker), with the unlogged app."""
    import uvicorn

    from ledger.cli import http_server

    os.environ["TRANSFER_LEDGER_DATA_DIR"] = data_dir
    if database_url:
        os.environ["TRANSFER_LEDGER_DATABASE_URL"] = database_url
    signal.signal(signal.SIGTERM, lambda *_: None)
    http_server.run(uvicorn.Config("bench.reads:unlogged_app_from_env", factory=True, host=host, port=int(port),
                                   timeout_graceful_shutdown=30, log_level="info"))


def _record_transfers(data_dir: Path, url: str | None) -> list[str]:
    from ledger.bootstrap import open_ledger
    from ledger.config import Settings

    with closing(open_ledger(Settings(data_dir, url))) as ledger:
        return [ledger.record_transfer(transfer_body(i))["id"] for i in range(TRANSFERS)]


def _row(backend: str, plain: LoadResult, logged: LoadResult) -> str:
    ratio = logged.rate / plain.rate if plain.rate > 0 else 0.0
    failed = plain.requests - plain.created + logged.requests - logged.created
    missed = failed > 0 or not ratio >= RATIO_GOAL or logged.timed_out or plain.timed_out
    label = f"{backend}, {logged.clients} client{'s' if logged.clients > 1 else ''}"
    return (f"{label:<34} {logged.requests:>8} {plain.rate:>12.0f}/s {logged.rate:>12.0f}/s {ratio:>7.2f}x  "
            f"p50 {_ms(plain.p50)}|{_ms(logged.p50)}ms p99 {_ms(plain.p99)}|{_ms(logged.p99)}ms "
            f"non-200 {plain.requests - plain.created}|{logged.requests - logged.created}  "
            f"(goal >= {RATIO_GOAL:.2f}x){'  MISSED' if missed else ''}")


def header(backend: str) -> str:
    return (f"{'reads, logged (' + backend + ')':<34} {'requests':>8} {'not logged':>14} {'logged':>14} "
            f"{'ratio':>8}  (latency and failures: not logged|logged)")


def bench_reads(requests: int = REQUESTS, database_url: str | None = None, clients: Any = CLIENTS,
                warmup: int = WARMUP, seconds: float = RUN_SECONDS) -> None:
    backend = "PostgreSQL" if database_url else "SQLite"
    print(header(backend))
    tmp = Path(tempfile.mkdtemp(prefix="bench-reads-"))
    servers: list[Server] = []
    try:
        with (postgres_schema(database_url, "reads") if database_url else _no_schema()) as url:
            data_dir = tmp / "ledger-data"
            with _stopping(servers):
                expected = _run(data_dir, url, tmp, servers, backend, requests, clients, warmup, seconds)
            logged_entries = _logged_reads(data_dir, url)
            verdict = "" if logged_entries == expected else "  MISSED: reads answered but not logged"
            print(f"{'  entries in the consultation log':<34} {logged_entries:>8} (of {expected} reads answered by "
                  f"the logged server){verdict}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _logged_reads(data_dir: Path, url: str | None) -> int:
    from ledger.bootstrap import open_ledger
    from ledger.config import Settings

    with closing(open_ledger(Settings(data_dir, url))) as ledger:
        return ledger.consultations.index.count()


def _run(data_dir: Path, url: str | None, tmp: Path, servers: list[Server], backend: str, requests: int,
         clients: Any, warmup: int, seconds: float) -> int:
    """Both servers, the loads; how many reads the logged server answered 200."""
    answered = 0
    _cli("init", data_dir=data_dir, database_url=url)
    key = _cli("principals", "add", "--party", "FR", "--roles", "recorder", "--name", "bench",
               data_dir=data_dir, database_url=url).strip().splitlines()[-1]
    ids = _record_transfers(data_dir, url)
    serve = [sys.executable, "-m", "ledger.cli", "serve", "--data-dir", str(data_dir)]
    if url:
        serve += ["--database-url", url]
    logged = Server("transfer-ledger serve", serve, tmp / "logged.log")
    plain = Server("unlogged", [sys.executable, "-m", "bench.reads", "--serve-unlogged", str(data_dir),
                                url or ""], tmp / "plain.log")
    servers += [logged.launch(), plain.launch()]
    for server in servers:
        server.ready()
    paths = [f"/v1/transfers/{i}" for i in ids]
    first = 0
    for n in clients:
        w = max(n, min(warmup, requests))
        p, r = run_load([(plain.port, key), (logged.port, key)], n, w, requests, first,
                        seconds=seconds, get_paths=paths)
        first += w + requests
        print(_row(backend, p, r), flush=True)
        answered += r.created + w  # the warm-up's reads are logged too
        for name, result in (("not logged", p), ("logged", r)):
            if result.sample:
                print(f"{'':<34} first {name} answer other than 200: {result.sample}")
    return answered


def main() -> int:
    if sys.argv[1:2] == ["--serve-unlogged"]:  # DATA_DIR DATABASE_URL --host HOST --port PORT
        data_dir, database_url, _, host, _, port = sys.argv[2:8]
        _serve_unlogged(data_dir, database_url, host, port)
        return 0
    print(f"Transfer Ledger consultation-log benchmark, BENCH_HTTP_REQUESTS={REQUESTS}")
    bench_reads()
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        print()
        bench_reads(database_url=url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
