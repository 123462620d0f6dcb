"""What every command shares: the root app, the data dir and database options, errors as exit statuses."""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from eventsourcing.persistence import OperationalError, PersistenceError

from domain.errors import DomainError, RuleViolation
from ledger.config import (
    ConfigError,
    Settings,
)
from ledger.service.checkpoints import InconsistentTreeError
from ledger.storage.principals import (
    PrincipalError,
)
from ledger.tlog.keys import KeyFileError
from ledger.tlog.note import (
    Checkpoint,
    NoteError,
    Verifier,
    open_checkpoint,
)

app = typer.Typer(
    name="transfer-ledger",
    help=(
        "Tamper-evident audit ledger for cross-border transfers of personal data "
        "(UN Convention against Cybercrime, art. 36).\n\n"
        "Exit status: 0 success, 1 integrity failure or refused, 2 usage or environment error."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Directory with the SQLite database, signing key and settings "
        "[env TRANSFER_LEDGER_DATA_DIR; default ./ledger-data].",
        show_default=False,
    ),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Keep the events in PostgreSQL: postgresql://user:pw@host:port/db "
        "[env TRANSFER_LEDGER_DATABASE_URL]. Keys stay in the data dir.",
        show_default=False,
    ),
]

T = TypeVar("T")


def fail(message: str, status: int = 2) -> NoReturn:
    typer.echo(f"transfer-ledger: error: {message}", err=True)
    raise typer.Exit(status)


@contextmanager
def errors_as_exit_status(*, json_report: bool = False, internal_errors: bool = False) -> Iterator[None]:
    """Turn known failures into one line on stderr and the right exit status.

    With ``json_report``, stdout also gets the one JSON object a job expects,
    with ``ok: false`` and the ``error``. With ``internal_errors``, any other
    exception (a defect) exits 2 too, where an exit status of 1 has a meaning
    of its own (``verify``: a finding).
    """
    try:
        yield
    except typer.Exit:
        raise
    except (RuleViolation, InconsistentTreeError) as e:
        _report_error(str(e), 1, json_report)
    except (DomainError, ConfigError, KeyFileError, NoteError, PrincipalError) as e:
        _report_error(str(e), 2, json_report)
    except (OperationalError, PersistenceError) as e:
        text = str(e).strip()
        _report_error(f"database: {text.splitlines()[0] if text else type(e).__name__}", 2, json_report)
    except OSError as e:
        _report_error(f"{e.filename or ''}: {e.strerror or e}".lstrip(": "), 2, json_report)
    except Exception as e:
        if not internal_errors:
            raise
        _report_error(f"internal error ({_where(e)}); please report it", 2, json_report)


def _where(error: BaseException) -> str:
    """An exception with the file and line it was raised at, on one line."""
    frame = traceback.extract_tb(error.__traceback__)[-1:]
    where = f" at {Path(frame[0].filename).name}:{frame[0].lineno}" if frame else ""
    return f"{type(error).__name__}{where}: {error}"


def _report_error(message: str, status: int, json_report: bool) -> NoReturn:
    if json_report:
        typer.echo(json.dumps({"ok": False, "tree_size": None, "first_bad_index": None,
                               "problems": [], "error": message}))
    fail(message, status)


def settings_for(data_dir: Path | None, database_url: str | None) -> Settings:
    """The options given, then the ``TRANSFER_LEDGER_*`` environment, then the defaults.

    A bad value (``TRANSFER_LEDGER_COMMIT_BATCH=abc``) is one line on stderr, exit status 2.
    """
    with errors_as_exit_status():
        return Settings.from_env(data_dir, database_url)


def require_initialized(settings: Settings) -> None:
    if not settings.settings_file.exists():
        fail(
            f"{settings.data_dir} is not an initialized ledger data dir; "
            "run `transfer-ledger init` first (or pass --data-dir)"
        )


def load_verifier(settings: Settings, vkey: Path | None) -> Verifier:
    path = vkey or settings.vkey_file
    try:
        text = path.read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read verifier key {path}: {getattr(e, 'strerror', None) or e}") from e
    try:
        return Verifier.from_vkey(text)
    except NoteError as e:
        raise ConfigError(f"verifier key {path}: {e}") from e


def load_trusted_checkpoint(path: Path, verifier: Verifier, origin: str) -> Checkpoint:
    """A checkpoint file the job trusts: it must verify under the ledger's key."""
    try:
        note = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read checkpoint {path}: {e.strerror or e}") from e
    try:
        return open_checkpoint(note, verifier, origin)
    except NoteError as e:
        raise ConfigError(f"checkpoint {path}: {e}") from e




@contextmanager
def progress_bar(enabled: bool, description: str) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr (``update(done, total)``), or ``None`` when ``enabled`` is false."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TimeRemainingColumn,
    )

    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), transient=True, console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def verification_failed(message: str, as_json: bool) -> NoReturn:
    """A document that does not verify: ``FAILED: ...`` (or ``{"ok": false, "error": ...}``), exit 1."""
    if as_json:
        typer.echo(json.dumps({"ok": False, "error": message}))
    else:
        typer.echo(f"FAILED: {message}")
    raise typer.Exit(1)
