"""Idempotent commands: a retried request never records twice.

A client names each command with an idempotency key (HTTP ``Idempotency-Key``),
scoped to its principal. When the command records something, the key's row is
inserted **in the same transaction** as the events (``also_insert`` of the
recorder), so a crash can never leave the events without the key or the key
without the events; the row names the resource and its version, from which
the first response is rebuilt exactly. When the command is refused, nothing
is recorded and the refusal itself is stored, so a retry gets the same answer.
The same key with another request is an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from domain.errors import InvalidInput
from domain.values import format_datetime
from ledger.storage.sql import SqlAccess

TABLE = "api_idempotency"
MAX_KEY_LENGTH = 255
#: The table, created with the recorder's schema (``ledger.storage.schema``).
CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS {" + TABLE + "} ("
    "principal_id TEXT NOT NULL, idem_key TEXT NOT NULL, request_hash TEXT NOT NULL, "
    "status_code INTEGER NOT NULL, resource_kind TEXT, resource_id TEXT, "
    "resource_version INTEGER, response TEXT, created_at TEXT NOT NULL, "
    "PRIMARY KEY (principal_id, idem_key))"
)


@dataclass(frozen=True)
class IdempotencyClaim:
    """A command's idempotency key, the request it names, and its success status."""

    principal_id: str
    key: str
    request_hash: str
    success_status: int = 201

    def __post_init__(self) -> None:
        if not self.key or len(self.key) > MAX_KEY_LENGTH or not self.key.isascii() or not self.key.isprintable():
            raise InvalidInput(
                f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
                rule="invalid-idempotency-key",
                field="Idempotency-Key",
            )


@dataclass(frozen=True)
class IdempotencyRecord:
    request_hash: str
    status_code: int
    resource_kind: str | None
    resource_id: str | None
    resource_version: int | None
    response: dict[str, Any] | None


class IdempotencyKeyReused(InvalidInput):
    """The key was used before for a different request."""

    rule = "idempotency-key-reused"


class IdempotencyStore:
    """The ``api_idempotency`` table, in the ledger's own database."""

    def __init__(self, sql: SqlAccess) -> None:
        self.sql = sql

    def lookup(self, claim: IdempotencyClaim) -> IdempotencyRecord | None:
        """The record of an earlier use of the claim's key; raises if it named another request."""
        rows = self.sql.query(
            "SELECT * FROM {" + TABLE + "} WHERE principal_id = ? AND idem_key = ?",
            (claim.principal_id, claim.key),
        )
        if not rows:
            return None
        row = rows[0]
        if row["request_hash"] != claim.request_hash:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used for a different request; "
                "use a new key for a new request",
                field="Idempotency-Key",
            )
        return IdempotencyRecord(
            request_hash=row["request_hash"],
            status_code=row["status_code"],
            resource_kind=row["resource_kind"],
            resource_id=row["resource_id"],
            resource_version=row["resource_version"],
            response=json.loads(row["response"]) if row["response"] is not None else None,
        )

    def existing_keys(self, principal_id: str, keys: list[str]) -> set[str]:
        """Which of ``keys`` the principal already used (one query per 500 keys)."""
        found: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = self.sql.query("SELECT idem_key FROM {" + TABLE + "} WHERE principal_id = ? AND idem_key IN ("
                                  + marks + ")", (principal_id, *chunk))
            found.update(row["idem_key"] for row in rows)
        return found

    @staticmethod
    def row_for(claim: IdempotencyClaim, kind: str, resource_id: str, version: int) -> tuple[str, tuple[Any, ...]]:
        """The row to insert in the same transaction as the command's events."""
        return TABLE, (
            claim.principal_id, claim.key, claim.request_hash, claim.success_status,
            kind, resource_id, version, None, format_datetime(datetime.now(UTC)),
        )

    @staticmethod
    def scrub_statements(texts: list[str]) -> list[tuple[str, tuple[Any, ...]]]:
        """Statements that replace each text, as a JSON string holds it, by ``[erased]`` in the
        stored answers (a refusal may quote what an erasure destroys), run in its transaction."""
        statements = []
        for text in sorted(set(texts)):
            inner = json.dumps(text)[1:-1]  # as save_refusal stores answers (ASCII, escaped)
            pattern = "%" + inner.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"
            statements.append((
                "UPDATE {" + TABLE + "} SET response = replace(response, ?, '[erased]') "
                "WHERE response LIKE ? ESCAPE '!'",
                (inner, pattern),
            ))
        return statements

    def save_refusal(self, claim: IdempotencyClaim, status: int, body: dict[str, Any]) -> None:
        """Remember a refusal (nothing was recorded), unless the key was used meanwhile."""
        self.sql.query(
            "INSERT INTO {" + TABLE + "} VALUES (?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (principal_id, idem_key) DO NOTHING",
            (claim.principal_id, claim.key, claim.request_hash, status, None, None, None,
             json.dumps(body), format_datetime(datetime.now(UTC))),
            commit=True,
        )
