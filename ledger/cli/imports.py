"""``transfer-ledger import``: load earlier transfer logs, in batches, each line checked as if recorded alone."""

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
)
from ledger.service.imports import DEFAULT_BATCH, import_transfers

#: Refusals listed on stdout (all of them are in --json).
SHOWN_REFUSALS = 20


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(metavar="FILE.jsonl", help="One transfer a line: "
                                         '{"key": "<unique>", "transfer": {<body of POST /v1/transfers>}}; '
                                         "- for stdin.", show_default=False)],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    batch: Annotated[int, typer.Option(help="Transfers saved in one transaction.", min=1, max=10_000)] = DEFAULT_BATCH,
    all_or_nothing: Annotated[bool, typer.Option("--all-or-nothing", help="Record nothing if any line is "
                                                 "refused (the whole file in one transaction).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Record many transfers at once: each line checked by every rule of art. 36 §3 as if recorded
    alone (an onward transfer may name a transfer of an earlier line), saved in batches, one
    transaction each. A refused line is reported with its number and rule, and the rest proceeds
    (unless --all-or-nothing). Each line's key makes it idempotent: importing the same file again
    records nothing twice.

    Exit status 0 when no line was refused, 1 when some were (listed), 2 on a usage error.
    """
    settings = settings_for(data_dir, database_url)
    require_initialized(settings)
    if str(file) == "-":
        lines = sys.stdin.read().splitlines()
    else:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            fail(f"cannot read {file}: {e}", 2)
    total = sum(1 for line in lines if line.strip())
    with errors_as_exit_status(), closing(open_ledger(settings)) as ledger, \
            progress_bar(not as_json and sys.stderr.isatty(), "importing transfers") as bar:
        report = import_transfers(ledger, lines, batch=batch, all_or_nothing=all_or_nothing,
                                  progress=(lambda done: bar(done, total)) if bar else None)
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
    else:
        verb = "recorded nothing (--all-or-nothing)" if report.rolled_back else f"recorded {report.recorded}"
        typer.echo(f"{report.lines} line(s): {verb}, {report.already} already recorded, "
                   f"{len(report.refused)} refused, in {report.batches} batch(es), {report.seconds:.2f} s")
        for refusal in report.refused[:SHOWN_REFUSALS]:
            typer.echo(f"  line {refusal['line']}: {refusal['rule']}: {refusal['detail']}")
        if len(report.refused) > SHOWN_REFUSALS:
            typer.echo(f"  ... and {len(report.refused) - SHOWN_REFUSALS} more (--json lists them all)")
    raise typer.Exit(1 if report.refused else 0)
