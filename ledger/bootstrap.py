"""The composition root: the ledger and what stands beside it, built one way for the API and the CLI.

``Settings`` (``ledger.config``) say where the ledger lives; this module turns
them into the objects both entry points run on, so that ``api.app`` and
``ledger.cli`` wire nothing by hand.
"""

from __future__ import annotations

from ledger.config import Settings, eventsourcing_env
from ledger.service.application import TransferLedger
from ledger.storage.principals import PrincipalStore
from ledger.storage.sql import SqlAccess
from ledger.tlog.keys import load_signing_key
from ledger.tlog.note import Signer


def open_ledger(settings: Settings) -> TransferLedger:
    """The application over the configured backend (SQLite file, or PostgreSQL)."""
    return TransferLedger(eventsourcing_env(settings))


def principals_of(ledger: TransferLedger, *, cache_seconds: float = 0.0) -> PrincipalStore:
    """The API principals and their keys, in the ledger's own database."""
    return PrincipalStore(SqlAccess(ledger.recorder), cache_seconds=cache_seconds)


def signer_of(settings: Settings) -> Signer:
    """The ledger's checkpoint signing key, from its key file (mode 0600)."""
    return load_signing_key(settings.signing_key_file)
