"""``policy``: a Party's standing policy, recorded in the ledger (a PartyPolicy event)."""

from __future__ import annotations

import json
from contextlib import closing
from typing import Annotated

import typer

from domain.errors import DomainError
from ledger.bootstrap import open_ledger
from ledger.cli.common import (
    DatabaseUrl,
    DataDir,
    app,
    errors_as_exit_status,
    fail,
    require_initialized,
    settings_for,
)


@app.command("policy")
def policy_command(
    party: Annotated[str, typer.Option(help="The Party whose policy this is (e.g. FR).", show_default=False)],
    authority: Annotated[str, typer.Option(
        help="The authority of the Party setting it, written <PARTY>/<NAME> (e.g. FR/DPO).", show_default=False)],
    officer: Annotated[str, typer.Option(help="The officer setting it (logged).", show_default=False)],
    justification_required: Annotated[bool | None, typer.Option(
        "--justification-required/--justification-optional",
        help="Whether every read of personal data by the Party's principals must give its justification "
        "(X-Justification; 428 justification-required without it; LED art. 25(1)).", show_default=False)] = None,
    written_authorization_required: Annotated[bool | None, typer.Option(
        "--written-authorization-required/--written-authorization-optional",
        help="Whether the Party's grants of onward transfers must be written instruments (art. 36 §3).",
        show_default=False)] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Set a Party's policy (each option given changes one point; the others stay) and print it as JSON.

    Exit 2, changing nothing, when no point is given or a value is malformed.
    """
    if justification_required is None and written_authorization_required is None:
        fail("give --justification-required/--justification-optional or "
             "--written-authorization-required/--written-authorization-optional")
    settings = settings_for(data_dir, database_url)
    require_initialized(settings)
    with errors_as_exit_status(), closing(open_ledger(settings)) as ledger:
        try:
            policy = ledger.set_party_policy(
                party, written_authorization_required=written_authorization_required,
                justification_required=justification_required,
                set_by={"party": party, "authority": authority, "officer": officer})
        except DomainError as e:
            fail(str(e))
    typer.echo(json.dumps(policy))
