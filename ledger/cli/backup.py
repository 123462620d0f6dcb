"""``backup`` and ``restore``: a consistent copy of a live SQLite ledger, and putting one back."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.audit.last_verify import record_verification
from ledger.audit.verify import VerificationIncomplete, VerifyReport, verify_ledger
from ledger.cli.common import (
    DatabaseUrl,
    DataDir,
    app,
    errors_as_exit_status,
    fail,
    load_verifier,
    progress_bar,
    require_initialized,
    settings_for,
)
from ledger.config import Settings, eventsourcing_env
from ledger.service.application import TransferLedger
from ledger.service.restore import RestoreFailed, RestoreRefused, restore_database
from ledger.storage.backup import BackupError, Progress, backup_file
from ledger.storage.high_water import HighWater, HighWaterError

AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def _sqlite_only(settings: Settings, command: str) -> None:
    if settings.database_url:
        fail(f"`{command}` copies the embedded SQLite database only; back up PostgreSQL with `pg_dump "
             "--format=custom` (or a base backup) and restore it with `pg_restore`, as docs/OPERATIONS.md "
             "(\"Backup and restore\") says")


@app.command()
def backup(
    out: Annotated[Path, typer.Option("--out", help="The file to write the copy to (it must not exist).",
                                      show_default=False)],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    as_json: AsJson = False,
) -> None:
    """Copy the ledger's SQLite database into a new file, consistently, while it serves.

    SQLite's online backup API copies the pages in steps, so writers go on
    meanwhile; the copy is the ledger as of one moment, checked, one
    self-contained file. The signing key, data-keys/ and
    checkpoint-high-water.json are not in it: back them up apart
    (docs/OPERATIONS.md). On PostgreSQL, use pg_dump.
    Exit status 0 copied, 2 usage or environment error (nothing written).
    """
    settings = settings_for(data_dir, database_url)
    _sqlite_only(settings, "backup")
    require_initialized(settings)
    started = time.monotonic()
    with errors_as_exit_status():
        try:
            with progress_bar(not as_json and sys.stderr.isatty(), "copying pages") as progress:
                copied = backup_file(settings.database_file, out, progress)
        except BackupError as e:
            fail(str(e))
    done: dict[str, Any] = {"ok": True, "file": str(out), "pages": copied.pages, "tree_size": copied.tree_size,
                            "newest_checkpoint": copied.newest_checkpoint,
                            "seconds": round(time.monotonic() - started, 3)}
    if as_json:
        typer.echo(json.dumps(done))
    else:
        typer.echo(f"backed up {settings.database_file} to {out}: {copied.tree_size} leaves, "
                   f"{copied.pages} pages, newest checkpoint "
                   f"{copied.newest_checkpoint if copied.newest_checkpoint is not None else '-'}")


@app.command()
def restore(
    file: Annotated[Path, typer.Argument(help="A database file made by `transfer-ledger backup`.",
                                         metavar="FILE", show_default=False)],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    accept_rollback: Annotated[bool, typer.Option(
        "--accept-rollback",
        help="Restore even a ledger older than (or forking from) the newest checkpoint this data dir "
        "signed: verifiers holding that checkpoint will see the ledger go back.")] = False,
    as_json: AsJson = False,
) -> None:
    """Put a backup in place of the data dir's SQLite database, checked first.

    Stop the server first: refused while another process has the database
    open. The copy is made beside the database, opened (the erasures of the
    data dir's journal made after the backup are applied again), verified,
    and compared with the newest checkpoint this data dir signed
    (checkpoint-high-water.json): a smaller tree, or another root at that
    size, is refused unless --accept-rollback. Only then is it renamed into
    place. On PostgreSQL, use pg_restore.
    Exit status 0 restored, 1 the backup does not verify, 2 refused (a
    rollback, a fork) or usage error; the old database stays unless 0.
    """
    settings = settings_for(data_dir, database_url)
    _sqlite_only(settings, "restore")
    require_initialized(settings)
    interactive = not as_json and sys.stderr.isatty()
    started = time.monotonic()
    with errors_as_exit_status(internal_errors=True):
        verifier = load_verifier(settings, None)
        origin = settings.log_origin()

        try:
            with _stages(interactive) as stage:
                def verify(ledger: TransferLedger) -> VerifyReport:
                    return verify_ledger(ledger.store, verifier, origin, progress=stage("verifying leaves"),
                                         open_state=ledger.open_event_state)

                restored = restore_database(
                    file, settings.database_file, eventsourcing_env(settings), HighWater(settings.high_water_file),
                    verify, accept_rollback=accept_rollback, progress=stage("copying pages"),
                )
        except (BackupError, HighWaterError, RestoreRefused) as e:
            fail(str(e))
        except VerificationIncomplete as e:
            fail(f"verification of the backup did not complete after {e.report.events_checked} leaves; "
                 f"nothing was restored: {e.error}")
        except RestoreFailed as e:
            _failed(e.report, as_json)  # type: ignore[arg-type]
        report = restored.report
        assert isinstance(report, VerifyReport)
        record_verification(settings.data_dir, report, seconds=time.monotonic() - started,
                            by="transfer-ledger restore")
    mark = restored.high_water
    doc = {"ok": True, "file": str(file), "tree_size": restored.tree_size, "root_hash": restored.root_hash.hex(),
           "erasures_reapplied": restored.erasures_reapplied,
           "high_water": {"tree_size": mark.tree_size, "root_hash": mark.root_hash.hex()} if mark else None,
           "rollback_accepted": restored.rollback}
    if as_json:
        typer.echo(json.dumps(doc))
        return
    typer.echo(f"restored {file} into {settings.database_file}: {restored.tree_size} leaves, root "
               f"{restored.root_hash.hex()}, verified; {restored.erasures_reapplied} erasure(s) re-applied")
    if restored.rollback is not None:
        typer.echo(f"rollback accepted: {restored.rollback}", err=True)


@contextmanager
def _stages(enabled: bool) -> Iterator[Callable[[str], Progress | None]]:
    """Progress bars on stderr, one per stage of a job, in one display (``stage(description)``
    gives a stage's ``update(done, total)``); every stage None when ``enabled`` is false."""
    if not enabled:
        yield lambda description: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TimeRemainingColumn
    from rich.progress import Progress as Bars

    with Bars("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
              TimeRemainingColumn(), transient=True, console=Console(stderr=True)) as bars:
        def stage(description: str) -> Progress:
            task = bars.add_task(description, total=None)
            return lambda done, total: bars.update(task, completed=done, total=total)

        yield stage


def _failed(report: VerifyReport, as_json: bool) -> None:
    """The backup does not verify: nothing restored, exit 1."""
    if as_json:
        typer.echo(json.dumps({**report.as_dict(), "ok": False,
                               "error": "the backup does not verify; nothing was restored"}))
    else:
        typer.echo(f"FAILED: the backup does not verify ({report.problem_count} problem(s); first bad index: "
                   f"{report.first_bad_index if report.first_bad_index is not None else '-'}); "
                   "nothing was restored")
        for line in report.problems:
            typer.echo(f"  {line}")
    raise typer.Exit(1)
