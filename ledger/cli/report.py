"""The supervisory report: ``report`` writes it, ``verify-report`` checks it offline (docs/AUDIT.md)."""

from __future__ import annotations

import json
import sys
from contextlib import closing
from pathlib import Path
from typing import Annotated

import typer

from ledger.bootstrap import open_ledger
from ledger.cli.common import (
    DatabaseUrl,
    DataDir,
    app,
    errors_as_exit_status,
    fail,
    progress_bar,
    require_initialized,
    settings_for,
    verification_failed,
)
from ledger.tlog.keys import load_signing_key


@app.command("report")
def report_command(
    out: Annotated[Path, typer.Option(help="Write the report here; it must not exist.")],
    party: Annotated[str | None, typer.Option(help="One Party's share (default: the whole ledger).",
                                              show_default=False)] = None,
    from_: Annotated[str | None, typer.Option("--from", metavar="YYYY-MM-DD", help="First day of the period, "
                                              "included (default: the ledger's beginning).",
                                              show_default=False)] = None,
    to: Annotated[str | None, typer.Option("--to", metavar="YYYY-MM-DD", help="Last day of the period, "
                                           "included (default: open).", show_default=False)] = None,
    fmt: Annotated[str, typer.Option("--format", help="json, csv or pdf.")] = "json",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Write the signed supervisory report of a period, as of a checkpoint signed now.

    Transfers, authorizations, consents, preservations, erasures, consultations, control checks, findings.

    The report holds no personal values. Check a JSON report with verify-report.

    Exit 0 when written, 2 on a usage or environment error (a malformed date, from after to, an unknown format).
    """
    from domain.errors import DomainError
    from ledger.audit.report import render
    from ledger.service.report import build_report, parse_format, parse_period

    try:
        chosen = parse_format(fmt)
        period = parse_period(from_, to)
    except DomainError as e:
        fail(e.detail, 2)
    if party is not None and (not party or len(party) > 16):
        fail(f"--party must be a Party's code, not {party!r}", 2)
    settings = settings_for(data_dir, database_url)
    require_initialized(settings)
    if out.exists():
        fail(f"{out} exists: choose another --out", 2)
    with errors_as_exit_status(), closing(open_ledger(settings)) as ledger:
        signer = load_signing_key(settings.signing_key_file)
        with progress_bar(sys.stderr.isatty(), "replaying") as progress:
            doc = build_report(ledger, signer, period, party=None if party in (None, "*") else party,
                               progress=progress)
        out.write_bytes(render(doc, chosen))
    typer.echo(f"{chosen} report of {doc['party']}, {period.as_dict()['from'] or '(open)'} to "
               f"{period.as_dict()['to'] or '(open)'}, as of tree size {doc['checkpoint']['tree_size']}, "
               f"written to {out}")


@app.command("verify-report")
def verify_report_command(
    report: Annotated[Path, typer.Argument(help="The report (JSON).")],
    vkey: Annotated[str, typer.Option(help="The ledger's verifier key, or a file holding it.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Check a JSON supervisory report offline, with the ledger's verifier key only.

    Its note's signature; that the note names the report's own SHA-256 (RFC 8785), origin, tree size, root;
    that its checkpoint verifies and names the same tree.

    Exit 0 if it holds; 1 if not (altered, not JSON, not signed by this key); 2 if unreadable, or a bad vkey.
    """
    from ledger.audit.bundles import BundleError, load_vkey
    from ledger.audit.report import ReportError, verify_report

    try:
        data = report.read_bytes()
    except OSError as e:
        fail(f"cannot read {report}: {e.strerror or e}", 2)
    try:
        verifier = load_vkey(vkey)
    except (OSError, ValueError, BundleError) as e:
        fail(f"--vkey: {e}", 2)
    try:
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, ValueError) as e:
            raise ReportError(f"not a JSON report: {e}") from None
        checked = verify_report(doc, verifier)
    except ReportError as e:
        verification_failed(str(e), as_json)
    if as_json:
        typer.echo(json.dumps(checked.as_dict()))
        return
    period = checked.period
    typer.echo(f"OK: report of {checked.party}, {period.get('from') or '(open)'} to {period.get('to') or '(open)'}, "
               f"signed by {checked.origin}, as of the signed tree of {checked.tree_size} leaves "
               f"(root {checked.root_hash}); sha256 {checked.digest}")
