"""Configuration: where the ledger lives, and how the application is wired.

``--data-dir`` (env ``TRANSFER_LEDGER_DATA_DIR``, default ``./ledger-data``)
holds the SQLite database, the signing key (mode 0600), the verifier key and
the ledger's settings. ``--database-url`` (env ``TRANSFER_LEDGER_DATABASE_URL``)
puts the events in PostgreSQL instead; keys stay in the data dir.

The backend is chosen the eventsourcing way, by topic strings in the
application's environment (``PERSISTENCE_MODULE``,
``APPLICATION_RECORDER_TOPIC``): see :func:`eventsourcing_env`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_DATA_DIR = Path("ledger-data")
DATABASE_FILE = "ledger.sqlite3"
SIGNING_KEY_FILE = "signing.key"
VKEY_FILE = "ledger.vkey"
SETTINGS_FILE = "settings.json"
DEFAULT_LOG_ORIGIN = "transfer-ledger.example/ledger"
#: Group commit (``serve``): most commands written in one transaction, and most waiting.
DEFAULT_COMMIT_BATCH = 64
DEFAULT_COMMIT_QUEUE = 256


class ConfigError(Exception):
    """The configuration is unusable (exit status 2 on the command line)."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str | None = None
    commit_batch: int = DEFAULT_COMMIT_BATCH
    commit_queue: int = DEFAULT_COMMIT_QUEUE

    @classmethod
    def from_env(cls, data_dir: Path | str | None = None, database_url: str | None = None) -> Settings:
        chosen_dir = data_dir or os.environ.get("TRANSFER_LEDGER_DATA_DIR") or DEFAULT_DATA_DIR
        url = database_url or os.environ.get("TRANSFER_LEDGER_DATABASE_URL") or None
        return cls(
            Path(chosen_dir),
            url,
            _env_count("TRANSFER_LEDGER_COMMIT_BATCH", DEFAULT_COMMIT_BATCH),
            _env_count("TRANSFER_LEDGER_COMMIT_QUEUE", DEFAULT_COMMIT_QUEUE),
        )

    @property
    def database_file(self) -> Path:
        return self.data_dir / DATABASE_FILE

    @property
    def signing_key_file(self) -> Path:
        return self.data_dir / SIGNING_KEY_FILE

    @property
    def vkey_file(self) -> Path:
        return self.data_dir / VKEY_FILE

    @property
    def settings_file(self) -> Path:
        return self.data_dir / SETTINGS_FILE

    @property
    def backend(self) -> str:
        return "postgresql" if self.database_url else "sqlite"

    def describe_database(self) -> str:
        """Where the events are, without any password."""
        if not self.database_url:
            return f"SQLite {self.database_file}"
        parts = urlsplit(self.database_url)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
        return f"PostgreSQL {host}{port}{parts.path}"

    def stored(self) -> dict[str, str]:
        """Settings written by ``init`` (the log origin / key name)."""
        try:
            return dict(json.loads(self.settings_file.read_text("utf-8")))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot read {self.settings_file}: {e}") from e

    def log_origin(self) -> str:
        return self.stored().get("origin", DEFAULT_LOG_ORIGIN)


def _env_count(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        count = int(value)
    except ValueError:
        count = 0
    if not 1 <= count <= 100_000:
        raise ConfigError(f"{name} must be a whole number from 1 to 100000, not {value!r}")
    return count


def eventsourcing_env(settings: Settings) -> dict[str, str]:
    """The eventsourcing environment for the configured backend."""
    if not settings.database_url:
        return {
            "PERSISTENCE_MODULE": "ledger.storage.sqlite:SQLiteLedgerFactory",
            "SQLITE_DBNAME": str(settings.database_file),
            "SQLITE_LOCK_TIMEOUT": "30",
            "APPLICATION_RECORDER_TOPIC": "ledger.storage.sqlite:SQLiteLedgerRecorder",
        }
    return {
        **postgres_env(settings.database_url),
        "APPLICATION_RECORDER_TOPIC": "ledger.storage.postgres:PostgresLedgerRecorder",
    }


def postgres_env(url: str) -> dict[str, str]:
    """eventsourcing's POSTGRES_* settings from ``postgresql://user:pw@host:port/db``.

    A ``?schema=NAME`` query parameter selects a schema other than ``public``.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(
            f"unsupported database URL scheme {parts.scheme!r}: expected postgresql://user:pw@host:port/db"
        )
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname or not parts.username:
        raise ConfigError("database URL needs a user and a database: postgresql://user:pw@host:port/db")
    try:
        port = parts.port or 5432
    except ValueError as e:
        raise ConfigError(f"database URL has a bad port: {e}") from e
    query = parse_qs(parts.query)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": unquote(parts.hostname or "localhost"),
        "POSTGRES_PORT": str(port),
        "POSTGRES_USER": unquote(parts.username),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_POOL_SIZE": "5",
        "POSTGRES_MAX_OVERFLOW": "10",
        "POSTGRES_LOCK_TIMEOUT": "30",
        "POSTGRES_CONNECT_TIMEOUT": "10",
    }
    if "schema" in query:
        env["POSTGRES_SCHEMA"] = query["schema"][0]
    return env
