"""``transfer-ledger principals``: API principals and their keys."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from ledger.bootstrap import open_ledger, principals_of
from ledger.cli.common import (
    DatabaseUrl,
    DataDir,
    app,
    errors_as_exit_status,
    require_initialized,
    settings_for,
)
from ledger.config import (
    Settings,
)
from ledger.storage.principals import (
    ROLES,
    Principal,
    PrincipalStore,
)

principals_app = typer.Typer(
    help="API principals: a Party (or * for the whole ledger) and roles, each with one API key.",
    no_args_is_help=True,
)
app.add_typer(principals_app, name="principals")




@contextmanager
def opened_principals(settings: Settings) -> Iterator[PrincipalStore]:
    require_initialized(settings)
    with errors_as_exit_status():
        ledger = open_ledger(settings)
        try:
            yield principals_of(ledger)
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
