"""The auditor's console, served at ``/console`` by ``transfer-ledger serve`` (docs/CONSOLE.md)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.console.session import Sessions, console_secret


def install(app: FastAPI) -> None:
    """Add the console's pages and its static files (shipped in this package: no CDN)."""
    from api.console.pages import router

    app.include_router(router)
    app.mount("/console/static", StaticFiles(packages=[("api.console", "static")]), name="console-static")


def open_console(app: FastAPI, data_dir: Path) -> None:
    """At start-up: the data dir's console secret (made once), for the session cookies."""
    app.state.console_sessions = Sessions(console_secret(data_dir))
    app.state.console_data_dir = data_dir
