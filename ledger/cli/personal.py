"""Personal data (event format 2): ``retention run``, ``erasure-certificate``, ``verify-certificate``."""

from __future__ import annotations

import json
import sys
from contextlib import closing
from datetime import date
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
from ledger.service.checkpoints import sign_current_checkpoint
from ledger.tlog.keys import load_signing_key

retention_app = typer.Typer(
    help="Retention of personal data (event format 2): erase the subject data of every transfer whose "
    "retention_until has passed, unless an evidence hold stands (docs/OPERATIONS.md, \"Personal data\").",
    no_args_is_help=True,
)
app.add_typer(retention_app, name="retention")


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what is due; erase nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    today: Annotated[str | None, typer.Option(
        help="The day to judge periods by (YYYY-MM-DD; default: today, UTC).", show_default=False)] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Erase every transfer's subject data whose period has ended and that no hold covers.

    Each erasure is a PersonalDataErased leaf (ground retention-expired). Running it again erases
    nothing more. Exit 0 when everything due was erased, 1 when an erasure was refused (a hold
    placed meanwhile), 2 on a usage or environment error.
    """
    try:
        day = date.fromisoformat(today) if today is not None else None
    except ValueError:
        fail(f"--today must be a date, YYYY-MM-DD, not {today!r}", 2)
    settings = settings_for(data_dir, database_url)
    require_initialized(settings)
    with errors_as_exit_status(), closing(open_ledger(settings)) as ledger:
        if ledger.event_format != 2:
            fail("this ledger is in event format 1: its personal data are inside its leaves and cannot be "
                 "erased (docs/FORMAT.md, section 17)", 2)
        with progress_bar(not as_json and sys.stderr.isatty(), "erasing") as progress:
            report = ledger.run_retention(day, dry_run=dry_run, progress=progress)
    if as_json:
        typer.echo(json.dumps(report))
    else:
        verb = "due" if dry_run else "erased"
        count = len(report["due"]) if dry_run else len(report["erased"])
        typer.echo(f"{count} transfer(s) {verb}, {len(report['held'])} held, {len(report['failed'])} refused "
                   f"(periods judged on {report['today']})")
        for failed in report["failed"]:
            typer.echo(f"  {failed['transfer_id']}: {failed['rule']}: {failed['detail']}")
    raise typer.Exit(1 if report["failed"] else 0)


@app.command("erasure-certificate")
def erasure_certificate_command(
    transfer_id: Annotated[str, typer.Argument(help="The transfer whose erasure to certify.")],
    out: Annotated[Path, typer.Option(help="Write the certificate (JSON) here; it must not exist.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Write the certificate of a transfer's erasure: its leaf, what it destroyed, and a C2SP tlog-proof
    against a signed (and, where witnessed, cosigned) checkpoint. Check it with verify-certificate."""
    from ledger.audit.certificates import CertificateError, certify_erasure
    from ledger.storage.cosignatures import CosignatureStore
    from ledger.storage.sql import SqlAccess

    settings = settings_for(data_dir, database_url)
    require_initialized(settings)
    if out.exists():
        fail(f"{out} exists: choose another --out", 2)
    with errors_as_exit_status(), closing(open_ledger(settings)) as ledger:
        signer = load_signing_key(settings.signing_key_file)
        try:
            certificate = certify_erasure(ledger, transfer_id, CosignatureStore(SqlAccess(ledger.recorder)),
                                          lambda: sign_current_checkpoint(ledger.store, signer))
        except CertificateError as e:
            fail(str(e), 1)
    out.write_text(json.dumps(certificate, indent=2) + "\n", "utf-8")
    typer.echo(f"certificate of the erasure of {certificate['transfer_id']} (leaf {certificate['leaf_index']}, "
               f"{len(certificate['erasure']['key_ids'])} key(s) destroyed) written to {out}")
    typer.echo(certificate["witnessing"])


@app.command("verify-certificate")
def verify_certificate_command(
    certificate: Annotated[Path, typer.Argument(help="The certificate file (JSON).")],
    vkey: Annotated[str, typer.Option(help="The ledger's verifier key, or a file holding it.")],
    witness: Annotated[list[str] | None, typer.Option(
        "--witness", metavar="VKEY", help="A witness's cosigner vkey (type 0x04), or a file holding it "
        "(repeatable): its cosignature of the certificate's checkpoint must verify.", show_default=False)] = None,
    quorum: Annotated[int | None, typer.Option(
        metavar="K", min=0, help="How many of the --witness keys must have cosigned [default: all given].",
        show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Check an erasure certificate offline: the checkpoint's signature, the erasure leaf's inclusion,
    that the leaf says what the certificate claims, and who cosigned the checkpoint.

    With --witness, each given witness's cosignature is checked under its vkey (one that does not
    verify fails the certificate) and at least K of them must have cosigned. Cosignatures of
    witnesses not given are counted, not checked. Exit 0 if it holds, 1 if not, 2 if unreadable
    or on a usage error (a malformed vkey, K larger than the witnesses given).
    """
    from ledger.audit.bundles import load_vkey
    from ledger.audit.certificates import CertificateError, verify_certificate
    from ledger.tlog.cosignature import CosignatureVerifier
    from ledger.witness import WitnessStateError, read_key_argument

    try:
        doc = json.loads(certificate.read_text("utf-8"))
    except (OSError, ValueError) as e:
        fail(f"cannot read {certificate}: {e}", 2)
    try:
        verifier = load_vkey(vkey)
    except (OSError, ValueError) as e:
        fail(f"--vkey: {e}", 2)
    witnesses: dict[tuple[str, int], CosignatureVerifier] = {}
    for value in witness or []:
        try:
            key = read_key_argument(value, CosignatureVerifier.from_vkey, "--witness")
        except WitnessStateError as e:
            fail(str(e), 2)
        if witnesses.get((key.name, key.key_id), key) != key:
            fail(f"two different --witness keys share name {key.name!r} and key id {key.key_id:08x}", 2)
        witnesses[(key.name, key.key_id)] = key
    if quorum is not None and quorum > len(witnesses):
        fail(f"--quorum {quorum} exceeds the {len(witnesses)} distinct --witness keys given", 2)
    try:
        report = verify_certificate(doc, verifier, witnesses=witnesses.values(), quorum=quorum)
    except CertificateError as e:
        verification_failed(str(e), as_json)
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
        return
    typer.echo(f"OK: erasure of {report.transfer_id} at leaf {report.leaf_index}, in the signed tree of "
               f"{report.tree_size} leaves (root {report.root_hash}, {report.cosignatures} cosignature(s)); "
               f"{len(report.key_ids)} key(s) destroyed, {report.commitments} commitment(s) erased")
    if report.quorum is not None:
        names = ", ".join(w["witness"] for w in report.witnesses_verified) or "none"
        typer.echo(f"Witnesses: {len(report.witnesses_verified)} of the {len(witnesses)} given cosigned "
                   f"(quorum {report.quorum}), each verified: {names}")
    typer.echo(f"Witnessing: {doc['witnessing']}")
    typer.echo(f"It cannot prove: {doc['cannot_prove']}")
