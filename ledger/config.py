"""Configuration: where the ledger lives, and how the application is wired.

``--data-dir`` (env ``TRANSFER_LEDGER_DATA_DIR``, default ``./ledger-data``)
holds the SQLite database, the signing key (mode 0600), the verifier key and
the ledger's settings. ``--database-url`` (env ``TRANSFER_LEDGER_DATABASE_URL``)
puts the events in PostgreSQL instead; keys stay in the data dir. A setting is
its option, else its ``TRANSFER_LEDGER_*`` variable, else its default
(:meth:`Settings.from_env`, pydantic-settings: docs/decisions/0010-settings.md).

The backend is chosen the eventsourcing way, by topic strings in the
application's environment (``PERSISTENCE_MODULE``,
``APPLICATION_RECORDER_TOPIC``): see :func:`eventsourcing_env`.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from pydantic import Field, PlainValidator, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from domain.consultation import DEFAULT_CONSULTATION_LOG_YEARS
from domain.personal import DEFAULT_LOG_RETENTION_YEARS

DEFAULT_DATA_DIR = Path("ledger-data")
DATABASE_FILE = "ledger.sqlite3"
SIGNING_KEY_FILE = "signing.key"
VKEY_FILE = "ledger.vkey"
SETTINGS_FILE = "settings.json"
DATA_KEYS_DIR = "data-keys"
#: The newest checkpoint signed in the data dir, kept outside the database (``ledger.storage.high_water``).
HIGH_WATER_FILE = "checkpoint-high-water.json"
DEFAULT_LOG_ORIGIN = "transfer-ledger.example/ledger"
#: Group commit (``serve``): most commands written in one transaction, and most waiting.
DEFAULT_COMMIT_BATCH = 64
DEFAULT_COMMIT_QUEUE = 256


class ConfigError(Exception):
    """The configuration is unusable (exit status 2 on the command line)."""


ENV_PREFIX = "TRANSFER_LEDGER_"
MAX_COUNT = 100_000

#: Set while :meth:`Settings.from_env` builds its settings: only then is the environment read.
_FROM_ENVIRONMENT: ContextVar[bool] = ContextVar("_FROM_ENVIRONMENT", default=False)


class _NotACount(ValueError):
    pass


def _count(value: object) -> int:
    """A whole number from 1 to 100000, text read as ``int()`` reads it (``"5.0"`` is not one)."""
    try:
        count = int(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else 0
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_COUNT:
        raise _NotACount(f"must be a whole number from 1 to {MAX_COUNT}")
    return count


Count = Annotated[int, PlainValidator(_count)]


_YEARS_BY_PARTY = r"^([A-Z0-9-]{1,16}=[0-9]{1,2})?(,[A-Z0-9-]{1,16}=[0-9]{1,2})*$"


class Settings(BaseSettings):
    """Where the ledger lives, and how the API commits (pydantic-settings, decision 10).

    ``Settings(data_dir, database_url, commit_batch=..., commit_queue=...)`` holds what it is
    given and the defaults for the rest; :meth:`from_env` puts the ``TRANSFER_LEDGER_*``
    environment between the two. A bad value is a :class:`ConfigError` naming it.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, frozen=True)

    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str | None = None
    commit_batch: Count = DEFAULT_COMMIT_BATCH
    commit_queue: Count = DEFAULT_COMMIT_QUEUE
    #: LED art. 25: how long the log of who acted is kept, in years, and per Party (``RU=5,FR=3``).
    log_retention_years: Annotated[int, Field(ge=1, le=100)] = DEFAULT_LOG_RETENTION_YEARS
    log_retention_years_by_party: Annotated[str, Field(pattern=_YEARS_BY_PARTY)] = ""
    #: LED art. 25: how long consultation logs are kept, in years.
    consultation_log_years: Annotated[int, Field(ge=1, le=100)] = DEFAULT_CONSULTATION_LOG_YEARS
    #: ``serve``: milliseconds between two writes of the consultation log (what a crash can lose).
    consultation_flush_ms: Annotated[int, Field(ge=1, le=10_000)] = 100
    #: ``serve``: seconds between two runs of the retention job (0: never; run ``retention run``).
    retention_interval: Annotated[int, Field(ge=0, le=31_536_000)] = 0
    #: ``serve``: a port on 127.0.0.1 serving only /metrics, without a key (0: none; GET /metrics needs one).
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 0
    #: ``serve --read-only``: a read-only database (a replica): reads only, nothing written
    #: (docs/OPERATIONS.md, "Auditors on a replica"; docs/decisions/0019-read-only-replicas.md).
    read_only: bool = False
    #: ``serve --read-only``: the file that logs reads of personal data (LED art. 25); without
    #: one, such reads are refused (503 ``consultation-log-unavailable``).
    consultation_log_file: Path | None = None

    def __init__(self, data_dir: Path | str | None = None, database_url: str | None = None, **values: Any) -> None:
        if data_dir is not None:
            values["data_dir"] = data_dir
        if database_url is not None:
            values["database_url"] = database_url
        try:
            super().__init__(**values)
        except ValidationError as e:
            raise ConfigError(_one_line(e, from_env=_FROM_ENVIRONMENT.get())) from None

    @classmethod
    def from_env(cls, data_dir: Path | str | None = None, database_url: str | None = None) -> Settings:
        """An explicit value (a command-line option) first, then the environment, then the default."""
        reading = _FROM_ENVIRONMENT.set(True)
        try:
            return cls(data_dir or None, database_url or None)
        finally:
            _FROM_ENVIRONMENT.reset(reading)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # No .env file and no secrets directory; the environment only for from_env.
        return (init_settings, env_settings) if _FROM_ENVIRONMENT.get() else (init_settings,)

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
    def data_keys_dir(self) -> Path:
        """The key-encryption keys of the personal data (mode 0700; docs/OPERATIONS.md)."""
        return self.data_dir / DATA_KEYS_DIR

    @property
    def high_water_file(self) -> Path:
        return self.data_dir / HIGH_WATER_FILE

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


def _one_line(error: ValidationError, *, from_env: bool) -> str:
    """The first problem of ``error``, named as the user spelled it (the variable, from the environment)."""
    problem = error.errors(include_url=False)[0]
    field = str(problem["loc"][0]) if problem["loc"] else "settings"
    name = f"{ENV_PREFIX}{field.upper()}" if from_env else field
    if problem["type"] == "value_error" and isinstance(problem.get("ctx", {}).get("error"), _NotACount):
        return f"{name} must be a whole number from 1 to {MAX_COUNT}, not {problem['input']!r}"
    return f"{name}: {problem['msg']}"


def eventsourcing_env(settings: Settings) -> dict[str, str]:
    """The eventsourcing environment for the configured backend, the data dir's
    key-encryption keys (``DATA_KEYS_DIR``: a new ledger is started in event format 2)
    and its record of the newest checkpoint (``CHECKPOINT_HIGH_WATER``)."""
    read_only = {"READ_ONLY": "y", "CREATE_TABLE": "n"} if settings.read_only else {}
    return {
        **_backend_env(settings),
        **read_only,
        "DATA_KEYS_DIR": str(settings.data_keys_dir),
        "CHECKPOINT_HIGH_WATER": str(settings.high_water_file),
        "LOG_RETENTION_YEARS": str(settings.log_retention_years),
        "LOG_RETENTION_YEARS_BY_PARTY": settings.log_retention_years_by_party,
        "CONSULTATION_LOG_YEARS": str(settings.consultation_log_years),
    }


def _backend_env(settings: Settings) -> dict[str, str]:
    if not settings.database_url:
        return {
            "PERSISTENCE_MODULE": "ledger.storage.sqlite:SQLiteLedgerFactory",
            "SQLITE_DBNAME": (f"file:{quote(str(settings.database_file.absolute()))}?mode=ro"
                              if settings.read_only else str(settings.database_file)),
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
