"""The commands on the ledger itself: init, checkpoint, verify, serve, demo, export, verify-export."""

from __future__ import annotations

import json
import os
import signal
import sys
from contextlib import closing
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from eventsourcing.persistence import OperationalError, PersistenceError

from domain.consultation import MAX_JUSTIFICATION, justification_missing, object_ref
from ledger.audit.last_verify import verify_and_record
from ledger.audit.verify import VerificationIncomplete
from ledger.bootstrap import open_ledger, principals_of
from ledger.cli.common import (
    DatabaseUrl,
    DataDir,
    _where,
    app,
    errors_as_exit_status,
    fail,
    load_trusted_checkpoint,
    load_verifier,
    progress_bar,
    require_initialized,
    settings_for,
)
from ledger.config import (
    DEFAULT_COMMIT_BATCH,
    DEFAULT_COMMIT_QUEUE,
    DEFAULT_LOG_ORIGIN,
    ConfigError,
    eventsourcing_env,
)
from ledger.logs import LogFormat, LogLevel, logging_config
from ledger.service.checkpoints import sign_current_checkpoint
from ledger.service.consultations import Consultation
from ledger.storage.principals import (
    GLOBAL_PARTY,
)
from ledger.tlog.keys import create_signing_key, load_signing_key
from ledger.tlog.note import (
    check_key_name,
)


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
            with closing(open_ledger(settings)) as ledger:  # creates the tables
                _, admin_key = principals_of(ledger).add(GLOBAL_PARTY, ["admin"], name="initial admin")
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
        with closing(open_ledger(settings)) as ledger:
            stored = sign_current_checkpoint(ledger.store, signer)
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
        try:
            with closing(open_ledger(settings)) as ledger, \
                    progress_bar(not as_json and sys.stderr.isatty(), "verifying leaves") as progress:
                report, _ = verify_and_record(ledger, verifier, settings.log_origin(), settings.data_dir,
                                              by="transfer-ledger verify" + (" --since" if trusted else ""),
                                              since=trusted, progress=progress)
        except VerificationIncomplete as stopped:
            _verification_incomplete(stopped, as_json)
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
    retention_interval: Annotated[
        int, typer.Option(help="Run the retention job (as `retention run`) every this many seconds in each "
                          "worker; 0: never.", min=0, max=31_536_000, envvar="TRANSFER_LEDGER_RETENTION_INTERVAL")
    ] = 0,
    metrics_port: Annotated[
        int, typer.Option(help="Also serve /metrics, without a key, on this port of 127.0.0.1 (one worker "
                          "only); 0: none (GET /metrics on the API needs a verifier or admin key).",
                          min=0, max=65535, envvar="TRANSFER_LEDGER_METRICS_PORT")
    ] = 0,
    log_format: Annotated[
        LogFormat, typer.Option(help="Log lines as text, or json: one JSON object per line.",
                                envvar="TRANSFER_LEDGER_LOG_FORMAT")
    ] = LogFormat.text,
    log_level: Annotated[
        LogLevel, typer.Option(help="The least severe level logged.", envvar="TRANSFER_LEDGER_LOG_LEVEL")
    ] = LogLevel.info,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Serve a read-only database (a replica): reads only, every "
                           "command answered 503 read-only.", envvar="TRANSFER_LEDGER_READ_ONLY")
    ] = False,
    consultation_log_file: Annotated[
        Path | None, typer.Option(help="With --read-only: log reads of personal data (LED art. 25) to this "
                                  "file; without it they are refused.", show_default=False,
                                  envvar="TRANSFER_LEDGER_CONSULTATION_LOG_FILE")
    ] = None,
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
    if read_only:  # docs/OPERATIONS.md, "Auditors on a replica"
        settings = settings.model_copy(update={"read_only": True})
        os.environ["TRANSFER_LEDGER_READ_ONLY"] = "1"
        if consultation_log_file is not None:
            os.environ["TRANSFER_LEDGER_CONSULTATION_LOG_FILE"] = str(consultation_log_file.absolute())
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
    os.environ["TRANSFER_LEDGER_RETENTION_INTERVAL"] = str(retention_interval)
    if metrics_port and workers > 1:
        fail("--metrics-port serves one process's metrics: use it with --workers 1, or scrape each worker's "
             "GET /metrics with a verifier key", 2)
    os.environ["TRANSFER_LEDGER_METRICS_PORT"] = str(metrics_port)
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
        log_config=logging_config(log_format.value, log_level.value),
        access_log=False,  # the app logs each request itself, without ids or query strings (ledger/logs.py)
    ))


@app.command()
def demo(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Record a realistic multi-hop art. 36 §3 scenario, with uses of the data and consents
    (art. 40 §19), and narrate it, then print a checkpoint."""
    from ledger.cli.demo import run_demo

    settings = settings_for(data_dir, database_url)
    require_initialized(settings)
    with errors_as_exit_status():
        signer = load_signing_key(settings.signing_key_file)
        with closing(open_ledger(settings)) as ledger:
            run_demo(ledger, signer, typer.echo)


# -- audit bundles: export, verify-export --------------------------------------------

#: Largest API key file read, in bytes (a key is 46 characters).
MAX_API_KEY_FILE_SIZE = 4096


def _api_key_from(path: Path) -> str:
    """The API key a file holds, alone on one line (``-``: standard input). A key is read from a
    file, never from the command line, where other users of the host see it (``ps``)."""
    where = "the API key on standard input" if str(path) == "-" else f"API key file {path}"
    try:
        if str(path) == "-":
            data = typer.get_binary_stream("stdin").read(MAX_API_KEY_FILE_SIZE + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(MAX_API_KEY_FILE_SIZE + 1)
    except OSError as e:
        fail(f"cannot read {where}: {e.strerror or e}")
    if len(data) > MAX_API_KEY_FILE_SIZE:
        fail(f"{where}: larger than {MAX_API_KEY_FILE_SIZE} bytes; it must hold one API key")
    try:
        key = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        fail(f"{where}: not UTF-8 text")
    if not key or any(ch.isspace() for ch in key):
        fail(f"{where}: expected the API key alone on one line")
    return key


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
    with_personal_data: Annotated[
        bool,
        typer.Option(
            "--with-personal-data",
            help="Also write openings.jsonl: the salt and value of every personal value the principal "
            "of --api-key-file may read (an auditor of * all; a recorder, authority or auditor of a Party "
            "those of the transfers its Party sent, received or originated and of the authorizations "
            "about them; a verifier none). Erased values are absent: they are destroyed. Event format 2 "
            "only. events.jsonl is the same as without.",
        ),
    ] = False,
    api_key_file: Annotated[
        Path | None,
        typer.Option(
            "--api-key-file", metavar="FILE",
            help="With --with-personal-data: a file holding the API key alone on one line ('-': standard "
            "input). The key is never taken on the command line.",
            show_default=False,
        ),
    ] = None,
    justification: Annotated[
        str | None,
        typer.Option(
            help="With --with-personal-data: why the personal data are read, logged with the read in the "
            "consultation log (LED art. 25); required when the reader's Party's policy says so.",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Write an audit bundle: the checkpoint (signed now, or reused), every event in
    leaf order (events.jsonl), a tlog-proof per --transfer, and bundle.json. The
    events of a ledger of event format 2 hold commitments, never personal values.

    With --with-personal-data and the API key of a principal that reads personal
    data, also the openings of that principal's share (openings.jsonl), which
    verify-export checks against the commitments; bundle.json says who read
    them and which share. That read is logged in the consultation log (who, when,
    which leaves, the --justification), as reads through the API are.

    Anyone can check it offline with `verify-export BUNDLE --vkey VKEY`. Refuses
    (exit 1) if a leaf no longer hashes to its stored hash; exit 2, writing
    nothing, if DIR is not empty, a transfer is unknown, the API key is unknown,
    revoked or reads no personal data, or the ledger is of event format 1 (its
    leaves hold the values already).
    """
    from ledger.audit.bundles import ExportError, export_bundle

    if with_personal_data and api_key_file is None:
        fail("--with-personal-data needs --api-key-file FILE: the API key of a principal allowed to read "
             "personal data")
    if api_key_file is not None and not with_personal_data:
        fail("--api-key-file is read only with --with-personal-data")
    if justification is not None and not with_personal_data:
        fail("--justification is read only with --with-personal-data: nothing personal is read without it")
    if justification is not None and len(justification) > MAX_JUSTIFICATION:
        fail(f"--justification is limited to {MAX_JUSTIFICATION} characters")
    settings = settings_for(data_dir, database_url)
    require_initialized(settings)
    api_key = _api_key_from(api_key_file) if api_key_file is not None else None
    with errors_as_exit_status():
        signer = load_signing_key(settings.signing_key_file)
        with closing(open_ledger(settings)) as ledger, \
                progress_bar(sys.stderr.isatty(), "exporting leaves") as progress:
            reader = None
            if api_key is not None:
                reader = principals_of(ledger).authenticate(api_key)
                if reader is None:
                    fail("the API key is unknown or was revoked")
                if not reader.is_global:
                    missing = justification_missing(ledger.justification_required(reader.party), justification,
                                                    reader.party)
                    if missing is not None:
                        fail(f"{missing.detail.split(':')[0]}: give --justification TEXT ({missing.article})")
            try:
                result = export_bundle(ledger, signer, out, transfer or (), progress=progress, reader=reader)
            except ExportError as e:
                fail(str(e), e.status)
            if reader is not None and result.openings is not None:
                ledger.consultations.log(Consultation(
                    principal=reader.id, party=reader.party, route="transfer-ledger export --with-personal-data",
                    objects=(object_ref("leaves", f"0-{result.tree_size - 1}"),),
                    parties=() if reader.is_global else (reader.party,), justification=justification,
                    via="cli"))
                ledger.consultations.flush()  # before the values are shown as exported
    typer.echo(
        f"exported {result.tree_size} leaves (checkpoint of {result.origin} at size "
        f"{result.tree_size}, root {result.root_hash.hex()}) and {len(result.proofs)} proof(s) to {out}"
    )
    opened = result.openings
    if opened is not None:
        whose = "every event" if opened.share == "all" else f"the share of party {opened.party}"
        typer.echo(
            f"opened {opened.values} personal value(s) of {whose} for principal {opened.principal}"
            f"{f' ({opened.name})' if opened.name else ''} into openings.jsonl; {opened.erased} erased "
            "(absent: destroyed)"
        )
        if opened.unavailable:
            typer.echo(
                f"transfer-ledger: warning: {opened.unavailable} personal value(s) of the share could not be "
                "opened and were not erased: their openings or data keys are missing; run `transfer-ledger verify`",
                err=True,
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
    opening of openings.jsonl against the commitment in its leaf, each tlog-proof,
    and bundle.json's digests. Names the first bad file:line.

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
        with progress_bar(not as_json and sys.stderr.isatty(), "verifying the bundle") as progress:
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
