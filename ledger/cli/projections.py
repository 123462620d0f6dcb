"""``transfer-ledger projections`` (the read models) and ``replay``."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from ledger.bootstrap import open_ledger
from ledger.cli.common import (
    DatabaseUrl,
    DataDir,
    _report_error,
    app,
    errors_as_exit_status,
    fail,
    progress_bar,
    require_initialized,
    settings_for,
)
from ledger.config import (
    Settings,
)
from ledger.tlog.keys import load_signing_key

projections_app = typer.Typer(
    help="Read models built from the ledger's feed: lineage, authorization registry, compliance "
    "findings, statistics. Each tracks the last leaf index it applied.",
    no_args_is_help=True,
)
app.add_typer(projections_app, name="projections")


@contextmanager
def _opened_runner(settings: Settings, *, json_report: bool = False) -> Iterator[Any]:
    from ledger.service.read_models import runner_of
    from projections.runner import ProjectionError

    require_initialized(settings)
    with errors_as_exit_status():
        ledger = open_ledger(settings)
        try:
            try:
                yield runner_of(ledger)
            except ProjectionError as e:
                if json_report:
                    typer.echo(json.dumps({"ok": False, "error": str(e)}))
                fail(str(e), 1)
        finally:
            ledger.close()


@projections_app.command("status")
def projections_status(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Each read model's position (last leaf applied) and how far behind the ledger it is.

    Exit status 0 (up to date or not: see `behind`).
    """
    with _opened_runner(settings_for(data_dir, database_url)) as runner:
        status = runner.status()
    if as_json:
        typer.echo(json.dumps(status))
        return
    typer.echo(f"ledger: {status['tree_size']} leaves")
    for model in status["models"]:
        typer.echo(f"  {model['name']:<15} applied {model['applied']:>10}  behind {model['behind']:>10}  "
                   f"(v{model['version']}, updated {model['updated_at'] or '-'})")
    typer.echo("up to date" if status["up_to_date"] else "behind: `transfer-ledger projections run` catches up")


@projections_app.command("rebuild")
def projections_rebuild(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Empty every read model and apply the whole ledger again, from leaf 0.

    Each batch of leaves commits with the new position: interrupted, the next
    `projections run` (or any reader) goes on from there.
    """
    import time

    with _opened_runner(settings_for(data_dir, database_url), json_report=as_json) as runner:
        start = time.perf_counter()
        with progress_bar(not as_json and sys.stderr.isatty(), "rebuilding read models") as progress:
            applied = runner.rebuild(progress=progress)
        seconds = time.perf_counter() - start
        status = runner.status()
    if as_json:
        typer.echo(json.dumps({"ok": True, "applied": applied, "seconds": round(seconds, 3), **status}))
        return
    typer.echo(f"rebuilt {len(status['models'])} read models from {applied} leaves in {seconds:.1f}s "
               f"({applied / seconds if seconds else 0:.0f} leaves/s)")


@projections_app.command("run")
def projections_run(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    follow: Annotated[bool, typer.Option("--follow", help="Keep following the feed until stopped "
                                         "(SIGTERM or Ctrl-C).")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between polls when idle (SQLite polls; "
                                             "PostgreSQL is also woken by NOTIFY).", min=0.05)] = 1.0,
) -> None:
    """Apply the leaves the read models have not seen yet; with --follow, keep doing so."""
    import threading

    with _opened_runner(settings_for(data_dir, database_url)) as runner:
        if not follow:
            applied = runner.catch_up()
            typer.echo(f"applied {applied} leaves; the read models stand at leaf {runner.position()}")
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        typer.echo(f"following the feed from leaf {runner.position() + 1} (Ctrl-C stops)", err=True)
        runner.follow(stop, interval=interval,
                      on_batch=lambda n, at: typer.echo(f"applied {n} leaves, at leaf {at}", err=True))
        typer.echo(f"stopped at leaf {runner.position()}", err=True)


@app.command("replay")
def replay_command(
    at_index: Annotated[
        int | None,
        typer.Option("--at-index", metavar="N", help="Replay leaves 0..N.", min=0, show_default=False),
    ] = None,
    at_time: Annotated[
        str | None,
        typer.Option("--at-time", metavar="T", help="Replay the leaves recorded at or before T (RFC 3339); "
                     "with --at-index, whichever comes first.", show_default=False),
    ] = None,
    party: Annotated[
        str | None,
        typer.Option(help="Only this Party's share (what it sent, received or originated).", show_default=False),
    ] = None,
    transfer: Annotated[
        str | None,
        typer.Option("--transfer", metavar="ID", help="Also the lineage of this transfer as of then.",
                     show_default=False),
    ] = None,
    pending_deadline_days: Annotated[
        float, typer.Option(help="Findings: a request undecided longer than this many days.", min=0)
    ] = 30.0,
    limit: Annotated[int, typer.Option(help="At most this many authorizations and findings listed.", min=0)] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Every read model as of leaf N (or time T), computed by replaying leaves 0..N, with the
    signed checkpoint that covers leaf N and the proof that the leaf is in it.

    Later events never change the answer. Time-dependent findings are judged at the
    record time of leaf N (or at T). Without --at-index and --at-time: the whole ledger.
    """
    from ledger.service.read_models import state_as_of
    from projections.replay import ReplayError

    settings = settings_for(data_dir, database_url)
    require_initialized(settings)
    with errors_as_exit_status(json_report=as_json):
        signer = load_signing_key(settings.signing_key_file)
        ledger = open_ledger(settings)
        try:
            try:
                state = state_as_of(ledger, signer, at_index=at_index, at_time=at_time, share=party,
                                    transfer_id=transfer, pending_deadline_days=pending_deadline_days, limit=limit)
            except ReplayError as e:
                _report_error(str(e), 2, as_json)
        finally:
            ledger.close()
    if as_json:
        typer.echo(json.dumps(state))
        return
    _print_state(state)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def _print_state(state: dict[str, Any]) -> None:
    checkpoint = state["checkpoint"]
    typer.echo(f"as of leaf {state['at_index'] if state['at_index'] is not None else '-'} "
               f"(tree size {state['tree_size']}), recorded at {state['leaf_recorded_at'] or '-'}"
               + (f"; party {state['party']}" if state["party"] != "*" else ""))
    if checkpoint:
        typer.echo(f"covered by the checkpoint at tree size {checkpoint['tree_size']}, root {checkpoint['root_hash']} "
                   f"(inclusion proof of leaf {checkpoint['leaf_index']}: {len(checkpoint['inclusion_proof'])} hashes)")
    lineage = state["lineage"]
    typer.echo(f"transfers: {lineage['transfers']} ({lineage['first_transfers']} first, "
               f"{lineage['onward_transfers']} onward, deepest {lineage['max_depth']} hops)")
    counts = state["authorizations"]["counts"]
    typer.echo("authorizations: " + ", ".join(f"{counts[k]} {k}" for k in ("pending", "granted", "refused", "revoked")))
    requests = state["statistics"]["requests"]
    decide = requests["time_to_decide_seconds"]
    typer.echo(f"time to decide: mean {_duration(decide['mean'])}, median {_duration(decide['median'])}, "
               f"longest {_duration(decide['max'])} ({decide['count']} decided)")
    findings = state["findings"]
    typer.echo(f"findings at {findings['now']}: {findings['total']}"
               + (" (" + ", ".join(f"{n} {rule}" for rule, n in sorted(findings["counts"].items())) + ")"
                  if findings["counts"] else ""))
    for item in findings["items"]:
        cited = ", ".join(str(e["leaf_index"]) for e in item["evidence"])
        typer.echo(f"  [{item['rule']}] {item['article']}: {item['detail']} (leaves {cited})")
    if lineage.get("of_transfer") is not None:
        of = lineage["of_transfer"]
        typer.echo(f"lineage of {of['id']} (origin {of['origin']}): {len(of['ancestors'])} ancestor(s), "
                   f"{len(of['descendants'])} descendant(s)")
        for node in [*reversed(of["ancestors"]), of["transfer"], *of["descendants"]]:
            typer.echo(f"  {'  ' * node['depth']}{node['sender']} -> {node['recipient']} "
                       f"{node['id']} (leaf {node['leaf_index']})")
