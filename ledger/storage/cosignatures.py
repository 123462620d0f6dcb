"""Witness cosignatures of the ledger's checkpoints, kept beside them.

Witnesses (``ledger.witness``) send the ledger their C2SP tlog-cosignature
over a stored checkpoint; the ledger checks it and keeps it in the table
``ledger_cosignatures`` of its own database, and serves the checkpoint with
the cosignature lines appended, so a verifier can require k of n witnesses.
A cosignature is a statement by its witness, verifiable by anyone with the
witness's vkey; it adds nothing to the tree and is not covered by it.

Table ``ledger_cosignatures``, one row per tree size and cosigner key (key
name and key ID), created with the same statement on both backends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from domain.values import format_datetime
from ledger.storage.sql import SqlAccess
from ledger.tlog.cosignature import (
    CosignatureError,
    CosignatureVerifier,
    parse_cosignature_line,
)
from ledger.tlog.note import NoteError, Verifier, open_note

TABLE = "ledger_cosignatures"

#: Cosigners kept per checkpoint: the note then has at most 33 signature
#: lines, well within what verifiers must accept (signed-note.md: >= 16 lines,
#: this project's verifier: 100).
MAX_COSIGNERS_PER_CHECKPOINT = 32

#: A cosignature dated later than this many seconds after the ledger's clock is refused.
MAX_CLOCK_SKEW = 3600

#: PostgreSQL advisory lock taken while a cosignature is checked against the others.
_COSIGNATURE_LOCK = 0x544C4353

_COLUMNS = "tree_size, key_name, key_id, vkey, cosigned_at, signature, principal_id, created_at"
#: The table, created with the recorder's schema (``ledger.storage.schema``).
CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS {ledger_cosignatures} ("
    "tree_size BIGINT NOT NULL, "
    "key_name TEXT NOT NULL, "
    "key_id TEXT NOT NULL, "
    "vkey TEXT NOT NULL, "
    "cosigned_at BIGINT NOT NULL, "
    "signature TEXT NOT NULL, "
    "principal_id TEXT NOT NULL, "
    "created_at TEXT NOT NULL, "
    "PRIMARY KEY (tree_size, key_name, key_id))"
)


class CosignatureRefused(Exception):
    """A cosignature the ledger will not keep. ``rule`` names why, ``field``
    the request field at fault, ``status`` the HTTP status (422 or 409)."""

    def __init__(self, status: int, rule: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.rule, self.detail, self.field = status, rule, detail, field


@dataclass(frozen=True)
class StoredCosignature:
    tree_size: int
    key_name: str
    key_id: str
    vkey: str
    cosigned_at: int
    signature: str
    principal_id: str
    created_at: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "tree_size": self.tree_size,
            "vkey": self.vkey,
            "key_name": self.key_name,
            "key_id": self.key_id,
            "timestamp": self.cosigned_at,
            "cosignature": self.signature,
            "created_at": self.created_at,
        }


class CosignatureStore:
    """The cosignatures of stored checkpoints, in the ledger's database."""

    def __init__(self, sql: SqlAccess) -> None:
        self._sql = sql

    def checkpoint_note(self, tree_size: int) -> str | None:
        """The stored signed checkpoint of ``tree_size`` (log signature only), or None."""
        rows = self._sql.query("SELECT note FROM {ledger_checkpoints} WHERE tree_size = ?", (tree_size,))
        return rows[0]["note"] if rows else None

    def lines(self, tree_size: int) -> list[str]:
        """The cosignature lines of ``tree_size``, in the order they were stored."""
        return [c.signature for c in self.for_size(tree_size)]

    def newest_cosigned_size(self) -> int | None:
        """The tree size of the newest checkpoint any witness cosigned, or None."""
        rows = self._sql.query("SELECT MAX(tree_size) AS size FROM {ledger_cosignatures}")
        return int(rows[0]["size"]) if rows and rows[0]["size"] is not None else None

    def newest_by_witness(self) -> dict[str, int]:
        """``<key name>+<key id>`` of each witness that cosigned: the POSIX time of its newest cosignature."""
        rows = self._sql.query("SELECT key_name, key_id, MAX(cosigned_at) AS newest FROM {ledger_cosignatures} "
                               "GROUP BY key_name, key_id ORDER BY key_name, key_id")
        return {f"{r['key_name']}+{r['key_id']}": int(r["newest"]) for r in rows}

    def for_size(self, tree_size: int) -> list[StoredCosignature]:
        rows = self._sql.query(
            f"SELECT {_COLUMNS} FROM {{ledger_cosignatures}} WHERE tree_size = ? "
            "ORDER BY created_at, key_name, key_id",
            (tree_size,),
        )
        return [StoredCosignature(**row) for row in rows]

    def add(
        self,
        tree_size: int,
        vkey: str,
        cosignature: str,
        principal_id: str,
        log_verifier: Verifier,
        now: int | None = None,
    ) -> tuple[StoredCosignature, bool]:
        """Check and keep a witness's cosignature of the stored checkpoint of
        ``tree_size``. Returns the stored row and whether it was stored now;
        one kept earlier for the same size and key is returned unchanged.

        Refused (:class:`CosignatureRefused`): no checkpoint of that size is
        stored, a malformed vkey or line, a line of another key than the
        vkey, a signature that does not verify over the stored checkpoint, a
        timestamp of 0 or too far ahead, another key already known under the
        same name and key ID, or too many cosigners for the size.
        """
        note = self.checkpoint_note(tree_size)
        if note is None:
            raise CosignatureRefused(422, "checkpoint-not-stored",
                                     f"no checkpoint of size {tree_size} is stored", "tree_size")
        try:
            text = open_note(note, [log_verifier]).text
        except NoteError as e:  # the ledger's own stored note: a damaged database
            raise RuntimeError(f"the stored checkpoint of size {tree_size} does not verify: {e}") from e
        try:
            witness = CosignatureVerifier.from_vkey(vkey, "vkey")
        except CosignatureError as e:
            raise CosignatureRefused(422, "invalid-vkey", str(e), "vkey") from None
        try:
            parsed = parse_cosignature_line(cosignature)
        except CosignatureError as e:
            raise CosignatureRefused(422, "invalid-cosignature", str(e), "cosignature") from None
        if (parsed.name, parsed.key_id) != (witness.name, witness.key_id):
            raise CosignatureRefused(
                422, "invalid-cosignature",
                f"the cosignature is by {parsed.name}+{parsed.key_id:08x}, not by the vkey's "
                f"{witness.describe()}", "cosignature",
            )
        try:
            witness.verify(text, parsed.signature)
        except CosignatureError as e:
            raise CosignatureRefused(422, "invalid-cosignature", f"{e} (size {tree_size})", "cosignature") from None
        clock = int(time.time()) if now is None else now
        if parsed.timestamp == 0:
            raise CosignatureRefused(422, "invalid-cosignature", "the cosignature's timestamp is 0",
                                     "cosignature")
        if parsed.timestamp > clock + MAX_CLOCK_SKEW:
            raise CosignatureRefused(
                422, "invalid-cosignature",
                f"the cosignature is dated {parsed.timestamp}, more than {MAX_CLOCK_SKEW} s after the "
                f"ledger's clock ({clock})", "cosignature",
            )
        key_id = f"{witness.key_id:08x}"
        line = parsed.line()
        created_at = format_datetime(datetime.now(UTC))
        try:
            with self._sql.datastore.transaction(commit=True) as cursor:
                # The insert comes first: on SQLite it takes the write lock (on
                # PostgreSQL, the advisory lock serializes), so the checks below
                # cannot race another witness's request.
                if self._sql.backend == "postgresql":
                    self._sql.run_in(cursor, "SELECT pg_advisory_xact_lock(?)", (_COSIGNATURE_LOCK,))
                inserted = self._sql.run_in(
                    cursor,
                    f"INSERT INTO {{ledger_cosignatures}} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT DO NOTHING RETURNING tree_size",
                    (tree_size, witness.name, key_id, witness.vkey(), parsed.timestamp, line, principal_id,
                     created_at),
                )
                other_key = self._sql.run_in(
                    cursor,
                    "SELECT vkey FROM {ledger_cosignatures} WHERE key_name = ? AND key_id = ? AND vkey <> ? LIMIT 1",
                    (witness.name, key_id, witness.vkey()),
                )
                if other_key:
                    raise _Rollback(CosignatureRefused(
                        409, "cosigner-key-conflict",
                        f"another key, {other_key[0]['vkey']}, already cosigned under the name and key id "
                        f"{witness.describe()}; a verifier could not tell them apart", "vkey",
                    ))
                count = self._sql.run_in(
                    cursor, "SELECT COUNT(*) AS n FROM {ledger_cosignatures} WHERE tree_size = ?", (tree_size,)
                )[0]["n"]
                if inserted and count > MAX_COSIGNERS_PER_CHECKPOINT:
                    raise _Rollback(CosignatureRefused(
                        409, "too-many-cosigners",
                        f"the checkpoint of size {tree_size} already has {MAX_COSIGNERS_PER_CHECKPOINT} "
                        "cosigners, the most the ledger keeps", "tree_size",
                    ))
                rows = self._sql.run_in(
                    cursor,
                    f"SELECT {_COLUMNS} FROM {{ledger_cosignatures}}"
                    " WHERE tree_size = ? AND key_name = ? AND key_id = ?",
                    (tree_size, witness.name, key_id),
                )
        except _Rollback as undone:
            raise undone.refusal from None
        return StoredCosignature(**rows[0]), bool(inserted)


class _Rollback(Exception):
    """Raised inside the transaction to undo the insert; carries the refusal."""

    def __init__(self, refusal: CosignatureRefused) -> None:
        super().__init__(refusal.detail)
        self.refusal = refusal


def cosigned_note(note: str, lines: list[str]) -> str:
    """The signed checkpoint with cosignature lines appended after its own
    signature lines (signed-note.md, "Format": each line ends in a newline)."""
    return note + "".join(lines)
