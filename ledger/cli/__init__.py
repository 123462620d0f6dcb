"""The ``transfer-ledger`` command line.

Exit status everywhere: 0 success, 1 integrity failure or refused by a rule,
2 usage or environment error. Errors are one line on stderr.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from eventsourcing.persistence import OperationalError, PersistenceError

from domain.errors import DomainError, RuleViolation
from ledger.audit.verify import VerificationIncomplete, verify_ledger
from ledger.config import (
    DEFAULT_COMMIT_BATCH,
    DEFAULT_COMMIT_QUEUE,
    DEFAULT_LOG_ORIGIN,
    ConfigError,
    Settings,
    eventsourcing_env,
)
from ledger.service.application import TransferLedger
from ledger.service.checkpoints import InconsistentTreeError, sign_current_checkpoint
from ledger.storage.principals import (
    GLOBAL_PARTY,
    ROLES,
    Principal,
    PrincipalError,
    PrincipalStore,
)
from ledger.storage.sql import SqlAccess
from ledger.tlog.keys import KeyFileError, create_signing_key, load_signing_key
from ledger.tlog.note import (
    Checkpoint,
    NoteError,
    Verifier,
    check_key_name,
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
    return Settings.from_env(data_dir, database_url)


def require_initialized(settings: Settings) -> None:
    if not settings.settings_file.exists():
        fail(
            f"{settings.data_dir} is not an initialized ledger data dir; "
            "run `transfer-ledger init` first (or pass --data-dir)"
        )


def open_ledger(settings: Settings) -> TransferLedger:
    return TransferLedger(eventsourcing_env(settings))


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


@app.command()
def init(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    origin: Annotated[
        str,
        typer.Option(
            help="The ledger's name: the checkpoint origin line and signing key name "
            "(a schema-less URL is recommended).",
        ),
    ] = DEFAULT_LOG_ORIGIN,
) -> None:
    """Create the database, the signing key (mode 0600), the settings and the
    first admin API key, once.

    Prints the verifier key (C2SP vkey) on the first line of stdout and the
    admin API key (party *, role admin) on the second: the key is shown only
    this once, and only its hash is stored. A second init changes nothing,
    says so, and prints the verifier key again but no API key.
    """
    settings = settings_for(data_dir, database_url)
    with errors_as_exit_status():
        check_key_name(origin)
        if settings.settings_file.exists():
            stored = settings.stored()
            typer.echo(f"already initialized: {settings.data_dir} (nothing changed)", err=True)
            typer.echo(load_verifier(settings, None).vkey())
            if origin != DEFAULT_LOG_ORIGIN and origin != stored.get("origin"):
                fail(f"this ledger's origin is {stored.get('origin')!r}; it cannot be changed")
            return
        eventsourcing_env(settings)  # a malformed --database-url fails before anything is created
        created = not settings.data_dir.exists()
        try:
            settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(settings.data_dir, 0o700)
            ledger = open_ledger(settings)  # creates the tables
            try:
                _, admin_key = principal_store(ledger).add(GLOBAL_PARTY, ["admin"], name="initial admin")
            finally:
                ledger.close()
        except BaseException:
            if created and not any(settings.data_dir.iterdir()):
                settings.data_dir.rmdir()
            raise
        signer = create_signing_key(settings.signing_key_file, origin)
        settings.vkey_file.write_text(signer.vkey() + "\n", "utf-8")
        tmp = settings.settings_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"origin": origin}, indent=2) + "\n", "utf-8")
        tmp.replace(settings.settings_file)
        typer.echo(f"initialized {settings.data_dir} ({settings.describe_database()})", err=True)
        typer.echo(f"signing key: {settings.signing_key_file} (mode 0600)", err=True)
        typer.echo("verifier key, then the admin API key (shown this once; only its hash is stored):", err=True)
        typer.echo(signer.vkey())
        typer.echo(admin_key)


@app.command()
def checkpoint(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Sign the current tree and print the checkpoint (C2SP signed note) alone on stdout."""
    settings = settings_for(data_dir, database_url)
    require_initialized(settings)
    with errors_as_exit_status():
        signer = load_signing_key(settings.signing_key_file)
        ledger = open_ledger(settings)
        try:
            stored = sign_current_checkpoint(ledger.store, signer)
        finally:
            ledger.close()
        sys.stdout.write(stored.note)


@app.command()
def verify(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    vkey: Annotated[
        Path | None,
        typer.Option(help="Verifier key file (default: ledger.vkey in the data dir).", show_default=False),
    ] = None,
    since: Annotated[
        Path | None,
        typer.Option(
            help="Incremental: a checkpoint file (signed note) this job trusts; check that the "
            "ledger is consistent with it and re-verify only the leaves appended since.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Re-read every event and leaf, recompute the hash chain, the Merkle tree and
    every stored checkpoint, and report the first index where anything differs.

    With --since, start from a trusted checkpoint: work proportional to what is new.
    Exit status 0 intact, 1 integrity failure (a proven difference in the data), 2 usage or
    environment error, or verification that could not complete (it proves nothing either way).
    """
    settings = settings_for(data_dir, database_url)
    with errors_as_exit_status(json_report=as_json, internal_errors=True):
        if not settings.settings_file.exists():
            raise ConfigError(
                f"{settings.data_dir} is not an initialized ledger data dir; "
                "run `transfer-ledger init` first (or pass --data-dir)"
            )
        verifier = load_verifier(settings, vkey)
        trusted = load_trusted_checkpoint(since, verifier, settings.log_origin()) if since else None
        ledger = open_ledger(settings)
        try:
            with _progress(enabled=not as_json and sys.stderr.isatty()) as progress:
                report = verify_ledger(
                    ledger.store, verifier, settings.log_origin(), since=trusted, progress=progress
                )
        except VerificationIncomplete as stopped:
            _verification_incomplete(stopped, as_json)
        finally:
            ledger.close()
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
    else:
        root = report.root_hash.hex() if report.root_hash else "-"
        if report.ok:
            typer.echo(
                f"OK: {report.tree_size} leaves, root {root}, "
                f"{report.checkpoints_checked} checkpoint(s) consistent"
            )
        else:
            typer.echo(
                f"FAILED: {report.problem_count} problem(s); first bad index: "
                f"{report.first_bad_index if report.first_bad_index is not None else '-'}"
            )
            for line in report.problems:
                typer.echo(f"  {line}")
    raise typer.Exit(0 if report.ok else 1)


def _verification_incomplete(stopped: VerificationIncomplete, as_json: bool) -> NoReturn:
    """Verification did not finish: exit 2 (not 1, which only a finding gives),
    saying why and what had been checked, findings so far included."""
    error = stopped.error
    if isinstance(error, (OperationalError, PersistenceError)):
        text = str(error).strip()
        why = f"database: {text.splitlines()[0] if text else type(error).__name__}"
    else:
        why = f"internal error in verify ({_where(error)}); please report it"
    report = stopped.report
    message = (f"verification did not complete after {report.events_checked} leaves; "
               f"it proves nothing either way: {why}")
    if as_json:
        document = report.as_dict()
        document.update(ok=False, error=message)
        typer.echo(json.dumps(document))
    elif report.problems:
        typer.echo(f"found before it stopped ({report.problem_count}):")
        for line in report.problems:
            typer.echo(f"  {line}")
    fail(message, 2)


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TimeRemainingColumn,
    )

    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), transient=True,
    ) as bar:
        task = bar.add_task("verifying leaves", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@app.command()
def serve(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (uvicorn --workers).", min=1, max=64)] = 1,
    graceful_timeout: Annotated[
        int, typer.Option(help="Seconds to let requests received finish on shutdown; past it they are cancelled.",
                          min=0)
    ] = 30,
    commit_batch: Annotated[
        int, typer.Option(help="Group commit: most commands written in one transaction (per worker process).",
                          min=1, max=100_000, envvar="TRANSFER_LEDGER_COMMIT_BATCH")
    ] = DEFAULT_COMMIT_BATCH,
    commit_queue: Annotated[
        int, typer.Option(help="Group commit: most commands waiting to be written; beyond it a command is "
                          "answered 503 with Retry-After (per worker process).",
                          min=1, max=100_000, envvar="TRANSFER_LEDGER_COMMIT_QUEUE")
    ] = DEFAULT_COMMIT_QUEUE,
) -> None:
    """Run the HTTP API with uvicorn on the configured database.

    Concurrent commands are written in batches (group commit): one
    transaction and one durable commit per batch, each request answered
    after its own batch committed. On SIGTERM or SIGINT it answers every
    request it has received (connections waiting to be accepted included)
    with Connection: close, within --graceful-timeout, writes what is
    queued, closes the database and exits 0. OpenAPI at /docs.
    """
    import uvicorn

    from ledger.cli import http_server

    settings = settings_for(data_dir, database_url)
    require_initialized(settings)
    with errors_as_exit_status():
        load_signing_key(settings.signing_key_file)
        open_ledger(settings).close()  # the database answers before we listen
    # The API is loaded by name (api imports ledger, not the reverse); it reads
    # its settings from the environment, in every worker process.
    os.environ["TRANSFER_LEDGER_DATA_DIR"] = str(settings.data_dir)
    if settings.database_url:
        os.environ["TRANSFER_LEDGER_DATABASE_URL"] = settings.database_url
    else:
        os.environ.pop("TRANSFER_LEDGER_DATABASE_URL", None)
    os.environ["TRANSFER_LEDGER_COMMIT_BATCH"] = str(commit_batch)
    os.environ["TRANSFER_LEDGER_COMMIT_QUEUE"] = str(commit_queue)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal to
    # the handler that was in place: make that a no-op, so a clean shutdown
    # exits 0 (as a service manager expects), not "killed by SIGTERM".
    signal.signal(signal.SIGTERM, lambda *_: None)
    http_server.run(uvicorn.Config(
        "api.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        timeout_graceful_shutdown=graceful_timeout,
        log_level="info",
    ))


@app.command()
def demo(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Record a realistic multi-hop art. 36 §3 scenario and narrate it, then print a checkpoint."""
    from ledger.cli.demo import run_demo

    settings = settings_for(data_dir, database_url)
    require_initialized(settings)
    with errors_as_exit_status():
        signer = load_signing_key(settings.signing_key_file)
        ledger = open_ledger(settings)
        try:
            run_demo(ledger, signer, typer.echo)
        finally:
            ledger.close()


# -- audit bundles: export, verify-export --------------------------------------------


@contextmanager
def _bundle_progress(enabled: bool, description: str) -> Iterator[Callable[[int, int], None] | None]:
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


@app.command("export")
def export_command(
    out: Annotated[
        Path,
        typer.Option("--out", help="New or empty directory to write the bundle into.", show_default=False),
    ],
    transfer: Annotated[
        list[str] | None,
        typer.Option(
            "--transfer", metavar="ID",
            help="Also write a C2SP tlog-proof of this transfer's leaf (repeatable).",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Write an audit bundle: the checkpoint (signed now, or reused), every event in
    leaf order (events.jsonl), a tlog-proof per --transfer, and bundle.json.

    Anyone can check it offline with `verify-export BUNDLE --vkey VKEY`. Refuses
    (exit 1) if a leaf no longer hashes to its stored hash; exit 2 if DIR is not
    empty or a transfer is unknown.
    """
    from ledger.audit.bundles import ExportError, export_bundle

    settings = settings_for(data_dir, database_url)
    require_initialized(settings)
    with errors_as_exit_status():
        signer = load_signing_key(settings.signing_key_file)
        ledger = open_ledger(settings)
        try:
            with _bundle_progress(sys.stderr.isatty(), "exporting leaves") as progress:
                try:
                    result = export_bundle(ledger, signer, out, transfer or (), progress=progress)
                except ExportError as e:
                    fail(str(e), e.status)
        finally:
            ledger.close()
    typer.echo(
        f"exported {result.tree_size} leaves (checkpoint of {result.origin} at size "
        f"{result.tree_size}, root {result.root_hash.hex()}) and {len(result.proofs)} proof(s) to {out}"
    )


@app.command("verify-export")
def verify_export(
    bundle: Annotated[
        Path, typer.Argument(metavar="BUNDLE", help="Directory written by `export`.", show_default=False)
    ],
    vkey: Annotated[
        str,
        typer.Option(
            "--vkey", metavar="VKEY",
            help="The ledger's verifier key: a file holding it (like ledger.vkey), or the vkey itself.",
            show_default=False,
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Verify an audit bundle offline, with nothing but the bundle and the verifier
    key (no data dir, no database, no private key): checkpoint signature, every
    line of events.jsonl (leaf bytes, hash chain, decoded event), the root, each
    tlog-proof, and bundle.json's digests. Names the first bad file:line.

    Exit status 0 valid, 1 tampered or invalid, 2 usage error (no such bundle,
    missing files, bad vkey).
    """
    from ledger.audit.bundles import BundleError, load_vkey, verify_bundle

    def usage_error(message: str) -> NoReturn:
        if as_json:
            typer.echo(json.dumps({"ok": False, "tree_size": None, "first_bad_file": None,
                                   "first_bad_line": None, "first_bad_index": None,
                                   "problems": [], "error": message}))
        fail(message, 2)

    try:
        verifier = load_vkey(vkey)
        with _bundle_progress(not as_json and sys.stderr.isatty(), "verifying the bundle") as progress:
            report = verify_bundle(bundle, verifier, progress=progress)
    except BundleError as e:
        usage_error(str(e))
    except Exception as e:  # a bug: still one line, never a traceback
        usage_error(f"internal error while verifying {bundle}: {type(e).__name__}: {e}")
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
    else:
        typer.echo(report.summary())
        for line in report.problems[1:]:
            typer.echo(f"  {line}")
    raise typer.Exit(0 if report.ok else 1)


principals_app = typer.Typer(
    help="API principals: a Party (or * for the whole ledger) and roles, each with one API key.",
    no_args_is_help=True,
)
app.add_typer(principals_app, name="principals")


def principal_store(ledger: TransferLedger) -> PrincipalStore:
    return PrincipalStore(SqlAccess(ledger.recorder))


@contextmanager
def opened_principals(settings: Settings) -> Iterator[PrincipalStore]:
    require_initialized(settings)
    with errors_as_exit_status():
        ledger = open_ledger(settings)
        try:
            yield principal_store(ledger)
        finally:
            ledger.close()


def _summary(principal: Principal) -> str:
    name = f" {principal.name!r}" if principal.name else ""
    return f"{principal.id}{name} (party {principal.party}, roles {','.join(sorted(principal.roles))})"


@principals_app.command("add")
def principals_add(
    party: Annotated[
        str,
        typer.Option(help="The principal's Party (e.g. DE, INTERPOL), or '*' for the whole ledger.",
                     show_default=False),
    ],
    roles: Annotated[
        str,
        typer.Option(help=f"Comma-separated, of: {', '.join(ROLES)}.", show_default=False),
    ],
    name: Annotated[str | None, typer.Option(help="Who holds the key, for people.", show_default=False)] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Add a principal and print its new API key alone on the last line of stdout.

    The key is shown only this once; only its hash is stored.
    """
    with opened_principals(settings_for(data_dir, database_url)) as store:
        principal, key = store.add(party, roles, name)
    typer.echo(f"added principal {_summary(principal)}; its API key, shown this once:", err=True)
    typer.echo(key)


@principals_app.command("list")
def principals_list(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array on stdout.")] = False,
) -> None:
    """List every principal, revoked ones included, oldest first.

    Keys are never shown, only their first characters.
    """
    with opened_principals(settings_for(data_dir, database_url)) as store:
        principals = store.list()
    if as_json:
        typer.echo(json.dumps([p.as_dict() for p in principals]))
        return
    rows = [("ID", "PARTY", "ROLES", "NAME", "KEY", "CREATED", "REVOKED")] + [
        (p.id, p.party, ",".join(sorted(p.roles)), p.name or "-", p.key_prefix + "...",
         p.created_at, p.revoked_at or "-")
        for p in principals
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@principals_app.command("revoke")
def principals_revoke(
    principal_id: Annotated[str, typer.Argument(metavar="ID", help="The principal's id (see `principals list`).")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke a principal's API key at once, on every API process."""
    with opened_principals(settings_for(data_dir, database_url)) as store:
        principal = store.revoke(principal_id)
    typer.echo(f"revoked principal {_summary(principal)} at {principal.revoked_at}")


# -- witnesses: witness init|run|check, verify-checkpoint ------------------------------------

witness_app = typer.Typer(
    help="A witness of a ledger: it keeps the last checkpoint it accepted, checks that each new one "
    "extends it (consistency proof), cosigns it (C2SP tlog-cosignature) and reports a split view "
    "with both checkpoints as evidence.",
    no_args_is_help=True,
)
app.add_typer(witness_app, name="witness")

WitnessStateDir = Annotated[
    Path,
    typer.Option(
        "--state", metavar="DIR",
        help="The witness's state dir: its key (mode 0600), vkey, last accepted checkpoint per log, evidence.",
        show_default=False,
    ),
]
LogVkey = Annotated[
    str,
    typer.Option(
        "--log-vkey", metavar="VKEY",
        help="The ledger's verifier key: a file holding it (like ledger.vkey), or the vkey itself.",
        show_default=False,
    ),
]


@contextmanager
def witness_errors() -> Iterator[None]:
    """Refusals (split view, rollback, a checkpoint that does not verify) exit 1;
    state, key, network and usage errors exit 2; always one line on stderr."""
    from ledger.witness import LedgerUnavailable, WitnessRefused, WitnessStateError

    try:
        yield
    except WitnessRefused as e:
        fail(str(e), 1)
    except (WitnessStateError, LedgerUnavailable, KeyFileError, NoteError, ConfigError) as e:
        fail(str(e), 2)
    except OSError as e:
        fail(f"{e.filename or ''}: {e.strerror or e}".lstrip(": "), 2)
    except (typer.Exit, typer.Abort):
        raise
    except Exception as e:  # a bug: still one line, never a traceback
        fail(f"internal error: {type(e).__name__}: {e}", 2)


def _log_verifier(value: str) -> Verifier:
    from ledger.witness import read_key_argument

    return read_key_argument(value, Verifier.from_vkey, "log vkey")  # type: ignore[no-any-return]


@witness_app.command("init")
def witness_init(
    state: WitnessStateDir,
    name: Annotated[
        str,
        typer.Option(help="The witness's name, in its cosignature lines (a schema-less URL is recommended).",
                     show_default=False),
    ],
) -> None:
    """Create the witness's cosigning key (mode 0600), once; print its vkey alone on stdout.

    The state dir is created (mode 0700) if needed; the key is Ed25519, its vkey of
    signature type 0x04 is also written to DIR/witness.vkey. Give the vkey to verifiers:
    `verify-checkpoint --witness`. A second init changes
    nothing and prints the vkey again.
    """
    from ledger.witness import WitnessState

    with witness_errors():
        witness, created = WitnessState.init(state, name)
    if created:
        typer.echo(f"created witness {name}: key {state / WitnessState.KEY_FILE} (mode 0600); its vkey:", err=True)
    else:
        typer.echo(f"already initialized: {state} (nothing changed)", err=True)
    typer.echo(witness.cosigner.vkey())


@witness_app.command("run")
def witness_run(
    state: WitnessStateDir,
    ledger_url: Annotated[
        str, typer.Option("--ledger-url", metavar="URL", help="The ledger's API, e.g. http://127.0.0.1:8000.",
                          show_default=False),
    ],
    api_key: Annotated[
        str,
        typer.Option("--api-key", metavar="KEY", envvar="TRANSFER_LEDGER_API_KEY",
                     help="An API key of role verifier.", show_default=False),
    ],
    log_vkey: LogVkey,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each answer.", min=0.1)] = 30.0,
) -> None:
    """One round: verify the ledger's latest checkpoint, check it extends the last one accepted, cosign it.

    Fetches GET /v1/checkpoint, verifies the ledger's signature, compares with the last
    checkpoint this witness accepted (same size: same root; larger: the ledger's consistency
    proof must verify), records it, and sends POST /v1/checkpoint/cosignatures.

    The first checkpoint seen from a ledger is trusted as it is. Exit status 0 cosigned;
    1 refused: SPLIT VIEW (same size, another root; or not consistent), ROLLBACK (smaller
    tree) or a checkpoint that does not verify, with both checkpoints kept in
    DIR/evidence/ and named on stderr; 2 usage, state or network error.
    """
    from ledger.witness import LedgerClient, WitnessState, run_witness

    with witness_errors():
        witness = WitnessState.open(state)
        log_verifier = _log_verifier(log_vkey)
        with LedgerClient(ledger_url, api_key, timeout=timeout) as client:
            done = run_witness(client, witness, log_verifier)
    checkpoint = done.checkpoint
    before = (
        f"extends size {done.previous_size}" if done.previous_size is not None
        else "first checkpoint seen from this ledger, trusted as it is"
    )
    stored = "stored by the ledger" if done.stored else "the ledger already had this witness's cosignature"
    typer.echo(
        f"cosigned {checkpoint.origin} at size {checkpoint.size}, root "
        f"{base64.b64encode(checkpoint.root_hash).decode()} ({before}; {stored})"
    )


@witness_app.command("check")
def witness_check(
    first: Annotated[Path, typer.Argument(metavar="A", help="A checkpoint file (signed note).", show_default=False)],
    second: Annotated[Path, typer.Argument(metavar="B", help="Another checkpoint of the same log.",
                                           show_default=False)],
    log_vkey: LogVkey,
    proof: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="A consistency proof between the two sizes, one base64 hash per "
                     "line (like evidence/*/consistency-proof).", show_default=False),
    ] = None,
) -> None:
    """Compare two checkpoints of one ledger offline; the same size with different roots is a SPLIT VIEW.

    Both must verify under the log key. Checkpoints of different sizes need --proof.

    Exit status 0 consistent, 1 split view (or a checkpoint that does not verify), 2 usage
    error (unreadable files, different sizes without --proof).
    """
    from ledger.witness import WitnessRefused, compare_checkpoints, read_proof_file

    with witness_errors():
        log_verifier = _log_verifier(log_vkey)
        hashes = read_proof_file(proof) if proof is not None else None
        checkpoints = []
        for path in (first, second):
            note = _read_note(path)
            try:
                checkpoints.append(open_checkpoint(note, log_verifier, log_verifier.name))
            except NoteError as e:
                raise WitnessRefused("bad-checkpoint", f"checkpoint {path}: {e}") from None
        verdict = compare_checkpoints(checkpoints[0], checkpoints[1], hashes)
    typer.echo(f"OK: {verdict}")


def _read_note(path: Path) -> bytes:
    """A note from a file, or stdin for ``-``; at most MAX_NOTE_SIZE bytes (exit 2 otherwise)."""
    from ledger.tlog.note import MAX_NOTE_SIZE

    try:
        if str(path) == "-":
            data = sys.stdin.buffer.read(MAX_NOTE_SIZE + 1)
        else:
            with open(path, "rb") as file:
                data = file.read(MAX_NOTE_SIZE + 1)
    except OSError as e:
        fail(f"cannot read checkpoint {path}: {e.strerror or e}", 2)
    if len(data) > MAX_NOTE_SIZE:
        fail(f"checkpoint {path}: larger than {MAX_NOTE_SIZE} bytes", 2)
    return data


def _posix_time(timestamp: int) -> str:
    """RFC 3339 UTC, or the number itself beyond the years datetime can show."""
    try:
        return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError):
        return f"POSIX time {timestamp}"


@app.command("verify-checkpoint")
def verify_checkpoint(
    note_file: Annotated[
        Path, typer.Argument(metavar="NOTE", help="The checkpoint (signed note) file, or - for stdin.",
                             show_default=False),
    ],
    vkey: Annotated[
        str,
        typer.Option("--vkey", metavar="VKEY", help="The ledger's verifier key: a file (like ledger.vkey) or "
                     "the vkey itself.", show_default=False),
    ],
    witness: Annotated[
        list[str] | None,
        typer.Option("--witness", metavar="VKEY", help="A known witness's vkey (type 0x04): a file or the vkey "
                     "itself (repeatable).", show_default=False),
    ] = None,
    quorum: Annotated[
        int | None,
        typer.Option(metavar="K", min=0, help="How many known witnesses must have cosigned [default: all given].",
                     show_default=False),
    ] = None,
) -> None:
    """Verify a checkpoint's signature and at least K known witnesses' cosignatures, offline.

    The cosignatures are C2SP tlog-cosignature lines by the --witness keys. Lines of unknown
    keys are ignored; a known witness's cosignature that does not verify fails the checkpoint.

    Exit status 0 verified, 1 not (signature, form, cosignature, or fewer than K),
    2 usage error (unreadable files, malformed vkeys, K larger than the witnesses given).
    """
    from ledger.tlog.cosignature import CosignatureVerifier, verify_cosignatures
    from ledger.witness import read_key_argument

    with witness_errors():
        log_verifier = _log_verifier(vkey)
        witnesses = {}
        for value in witness or []:
            key = read_key_argument(value, CosignatureVerifier.from_vkey, "witness vkey")
            if (key.name, key.key_id) in witnesses and witnesses[(key.name, key.key_id)] != key:
                fail(f"two different --witness keys share name {key.name!r} and key id {key.key_id:08x}", 2)
            witnesses[(key.name, key.key_id)] = key
        required = len(witnesses) if quorum is None else quorum
        if required > len(witnesses):
            fail(f"--quorum {required} exceeds the {len(witnesses)} distinct --witness keys given", 2)
        note = _read_note(note_file)
        try:
            checkpoint, cosignatures = verify_cosignatures(
                note, log_verifier, witnesses.values(), required, origin=log_verifier.name
            )
        except NoteError as e:
            fail(f"checkpoint {note_file}: {e}", 1)
    names = ", ".join(f"{c.witness.describe()} at {_posix_time(c.timestamp)}" for c in cosignatures)
    typer.echo(
        f"OK: {checkpoint.origin} at size {checkpoint.size}, root "
        f"{base64.b64encode(checkpoint.root_hash).decode()}; cosigned by {len(cosignatures)} of "
        f"{len(witnesses)} known witnesses (quorum {required})" + (f": {names}" if names else "")
    )


# -- read models: projections, replay ------------------------------------------------

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
        with _bundle_progress(not as_json and sys.stderr.isatty(), "rebuilding read models") as progress:
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
    import signal
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


def main() -> Any:
    return app()

