"""The personal data of event format 2, kept apart from the hashed events.

Four tables, created with the recorder's schema (``ledger.storage.schema``):

``ledger_meta``
    name -> value: ``event_format`` (1 or 2), set when the ledger is first opened.
``ledger_data_keys``
    one row per data key: its id, its scope (``subject-data:<transfer id>`` or
    ``actor-log:<aggregate id>:<date>``), the key-encryption key that wraps it
    (``ledger.storage.keyring``) and its bucket, the wrapped key; once the key
    is destroyed, ``wrapped`` is NULL and ``destroyed_at`` / ``destroyed_by``
    say when and by which erasure event. The row stays, so an id is never
    used twice.
``ledger_openings``
    one row per event and retention class: the key id and the sealed
    openings (``ledger.tlog.commitment``). Deleted when its key is destroyed.
``ledger_erased``
    one row per erased commitment: its event, field and class, the erasure
    event and when; a reader says of an erased field when and under which
    erasure leaf it went.

Binary values are stored as base64 text, the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ledger.storage.sql import SqlAccess

META = "ledger_meta"
KEYS = "ledger_data_keys"
OPENINGS = "ledger_openings"
ERASED = "ledger_erased"

CREATE_TABLES = (
    "CREATE TABLE IF NOT EXISTS {" + META + "} (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {" + KEYS + "} ("
    "key_id TEXT PRIMARY KEY, scope TEXT NOT NULL, kek_id TEXT NOT NULL, bucket TEXT NOT NULL, "
    "wrapped TEXT, created_at TEXT NOT NULL, destroyed_at TEXT, destroyed_by TEXT)",
    "CREATE INDEX IF NOT EXISTS ledger_data_keys_scope ON {" + KEYS + "} (scope)",
    "CREATE TABLE IF NOT EXISTS {" + OPENINGS + "} ("
    "originator_id TEXT NOT NULL, originator_version BIGINT NOT NULL, retention_class TEXT NOT NULL, "
    "key_id TEXT NOT NULL, sealed TEXT NOT NULL, "
    "PRIMARY KEY (originator_id, originator_version, retention_class))",
    "CREATE INDEX IF NOT EXISTS ledger_openings_key ON {" + OPENINGS + "} (key_id)",
    "CREATE TABLE IF NOT EXISTS {" + ERASED + "} ("
    "commitment TEXT PRIMARY KEY, originator_id TEXT NOT NULL, originator_version BIGINT NOT NULL, "
    "path TEXT NOT NULL, retention_class TEXT NOT NULL, "
    "erasure_id TEXT NOT NULL, erasure_version BIGINT NOT NULL, erased_at TEXT NOT NULL)",
)


@dataclass(frozen=True)
class DataKeyRow:
    key_id: str
    scope: str
    kek_id: str
    bucket: str
    wrapped: str | None
    destroyed_at: str | None
    destroyed_by: str | None


@dataclass(frozen=True)
class OpeningRow:
    originator_id: str
    originator_version: int
    retention_class: str
    key_id: str
    sealed: str
    #: The key's row, joined (None where the key row is missing).
    key: DataKeyRow | None


@dataclass(frozen=True)
class ErasedRow:
    commitment: str
    originator_id: str
    originator_version: int
    path: str
    retention_class: str
    erasure_id: str
    erasure_version: int
    erased_at: str


@dataclass(frozen=True)
class ErasedField:
    """One commitment whose opening an erasure destroys."""

    commitment: str
    originator_id: str
    originator_version: int
    path: str
    retention_class: str


def key_row(key_id: str, scope: str, kek_id: str, bucket: str, wrapped: str,
            created_at: str) -> tuple[str, tuple[Any, ...]]:
    """A new data key's row, to insert with the events it seals (``also_insert``)."""
    return KEYS, (key_id, scope, kek_id, bucket, wrapped, created_at, None, None)


def opening_row(originator_id: str, version: int, retention_class: str, key_id: str,
                sealed: str) -> tuple[str, tuple[Any, ...]]:
    return OPENINGS, (originator_id, version, retention_class, key_id, sealed)


def _key(row: dict[str, Any]) -> DataKeyRow:
    return DataKeyRow(row["key_id"], row["scope"], row["kek_id"], row["bucket"], row["wrapped"],
                      row["destroyed_at"], row["destroyed_by"])


class PersonalDataStore:
    """Reads and erasures of the tables above, on the ledger's database."""

    def __init__(self, sql: SqlAccess) -> None:
        self.sql = sql

    # -- the ledger's event format --------------------------------------------------

    def event_format(self, new_ledger_format: int, ledger_is_empty: bool) -> int:
        """The ledger's event format, set the first time it is asked: ``new_ledger_format``
        for a ledger without events, 1 for one that has events already (written before
        formats were stored)."""
        rows = self.sql.query("SELECT value FROM {" + META + "} WHERE name = 'event_format'")
        if rows:
            return int(rows[0]["value"])
        chosen = new_ledger_format if ledger_is_empty else 1
        self.sql.query(
            "INSERT INTO {" + META + "} VALUES ('event_format', ?) ON CONFLICT (name) DO NOTHING",
            (str(chosen),), commit=True,
        )
        return int(self.sql.query("SELECT value FROM {" + META + "} WHERE name = 'event_format'")[0]["value"])

    # -- data keys --------------------------------------------------------------------

    def live_key(self, scope: str) -> DataKeyRow | None:
        """The live (not destroyed) data key of ``scope``, the newest if several."""
        rows = self.sql.query(
            "SELECT * FROM {" + KEYS + "} WHERE scope = ? AND wrapped IS NOT NULL ORDER BY created_at DESC",
            (scope,),
        )
        return _key(rows[0]) if rows else None

    def _select_in(self, sql: str, values: Iterable[str]) -> list[dict[str, Any]]:
        """Rows of ``sql`` (ending in ``IN (``) for these values, 500 at a time."""
        wanted = sorted(set(values))
        rows: list[dict[str, Any]] = []
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            rows.extend(self.sql.query(sql + ",".join("?" * len(chunk)) + ")", tuple(chunk)))
        return rows

    def keys(self, key_ids: Sequence[str]) -> list[DataKeyRow]:
        return [_key(r) for r in self._select_in("SELECT * FROM {" + KEYS + "} WHERE key_id IN (", key_ids)]

    def live_keys(self) -> list[DataKeyRow]:
        return [_key(r) for r in self.sql.query("SELECT * FROM {" + KEYS + "} WHERE wrapped IS NOT NULL")]

    def live_buckets(self) -> set[str]:
        return {r["bucket"] for r in self.sql.query(
            "SELECT DISTINCT bucket FROM {" + KEYS + "} WHERE wrapped IS NOT NULL")}

    # -- openings -----------------------------------------------------------------------

    def openings(self, originator_ids: Iterable[str]) -> list[OpeningRow]:
        """Every opening of these aggregates' events, each with its key's row."""
        out: list[OpeningRow] = []
        for r in self._select_in(
            "SELECT o.originator_id, o.originator_version, o.retention_class, o.key_id, o.sealed, "
            "k.scope, k.kek_id, k.bucket, k.wrapped, k.destroyed_at, k.destroyed_by "
            "FROM {" + OPENINGS + "} o LEFT JOIN {" + KEYS + "} k ON k.key_id = o.key_id "
            "WHERE o.originator_id IN (", originator_ids,
        ):
            key = (DataKeyRow(r["key_id"], r["scope"], r["kek_id"], r["bucket"], r["wrapped"],
                              r["destroyed_at"], r["destroyed_by"]) if r["scope"] is not None else None)
            out.append(OpeningRow(r["originator_id"], int(r["originator_version"]), r["retention_class"],
                                  r["key_id"], r["sealed"], key))
        return out

    def openings_of_keys(self, key_ids: Sequence[str]) -> list[OpeningRow]:
        return [OpeningRow(r["originator_id"], int(r["originator_version"]), r["retention_class"], r["key_id"],
                           r["sealed"], None)
                for r in self._select_in("SELECT * FROM {" + OPENINGS + "} WHERE key_id IN (", key_ids)]

    def erased(self, commitments: Iterable[str]) -> list[ErasedRow]:
        """What the erasure tables say of these commitments (those erased)."""
        return [ErasedRow(r["commitment"], r["originator_id"], int(r["originator_version"]), r["path"],
                          r["retention_class"], r["erasure_id"], int(r["erasure_version"]), r["erased_at"])
                for r in self._select_in("SELECT * FROM {" + ERASED + "} WHERE commitment IN (", commitments)]

    # -- erasure --------------------------------------------------------------------------

    @staticmethod
    def erasure_statements(key_ids: Sequence[str], erased: Sequence[ErasedField], erasure_id: str,
                           erasure_version: int, erased_at: str) -> list[tuple[str, Sequence[Any]]]:
        """The statements that destroy ``key_ids`` and their openings, and note what was erased,
        run in the erasure event's own transaction."""
        statements: list[tuple[str, Sequence[Any]]] = []
        for key_id in key_ids:
            statements.append((
                "UPDATE {" + KEYS + "} SET wrapped = NULL, destroyed_at = ?, destroyed_by = ? WHERE key_id = ?",
                (erased_at, f"{erasure_id}/{erasure_version}", key_id),
            ))
            statements.append(("DELETE FROM {" + OPENINGS + "} WHERE key_id = ?", (key_id,)))
        for field in erased:
            statements.append((
                "INSERT INTO {" + ERASED + "} VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (commitment) DO NOTHING",
                (field.commitment, field.originator_id, field.originator_version, field.path,
                 field.retention_class, erasure_id, erasure_version, erased_at),
            ))
        return statements
