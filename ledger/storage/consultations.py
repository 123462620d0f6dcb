"""The index of the consultation logs, beside the events (``ledger_consultations``).

The entries themselves are in the ``ConsultationsLogged`` events (``domain.consultation``):
hashed, chained and checkpointed. This table only finds them: one row per entry and
object read (one row with an empty ``object_ref`` for an entry that read nothing, such as
an empty page), inserted in the same transaction as the event (``also_insert``), so an
event and its index rows commit together or not at all. It holds nothing personal.

``at`` is the time of the read in one fixed-width form (``YYYY-MM-DDTHH:MM:SS.ffffffZ``),
so that text order is time order; ``involved`` the Parties of what was read, as
``,FR,RU,`` (a Party's auditor finds the reads of its share with ``LIKE '%,FR,%'``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger.storage.sql import SqlAccess

TABLE = "ledger_consultations"

CREATE_TABLES = (
    "CREATE TABLE IF NOT EXISTS {" + TABLE + "} ("
    "log_id TEXT NOT NULL, seq INTEGER NOT NULL, at TEXT NOT NULL, principal TEXT NOT NULL, "
    "party TEXT NOT NULL, involved TEXT NOT NULL, object_ref TEXT NOT NULL, "
    "PRIMARY KEY (log_id, seq, object_ref))",
    "CREATE INDEX IF NOT EXISTS ledger_consultations_at ON {" + TABLE + "} (at, log_id, seq)",
    "CREATE INDEX IF NOT EXISTS ledger_consultations_object ON {" + TABLE + "} (object_ref, at)",
)


def index_rows(log_id: str, entries: Sequence[dict[str, Any]]) -> list[tuple[str, tuple[Any, ...]]]:
    """The index rows of one event's entries, to insert with it."""
    rows: list[tuple[str, tuple[Any, ...]]] = []
    for seq, entry in enumerate(entries):
        involved = "," + ",".join(entry["parties"]) + "," if entry["parties"] else ","
        for ref in entry["objects"] or [""]:
            rows.append((TABLE, (log_id, seq, entry["at"], entry["principal"], entry["party"], involved, ref)))
    return rows


@dataclass(frozen=True)
class EntryRef:
    """Where an entry is: its event (``log_id``) and its place in it."""

    log_id: str
    seq: int
    at: str

    @property
    def cursor(self) -> str:
        return f"{self.at}|{self.log_id}|{self.seq}"


def parse_cursor(cursor: str) -> EntryRef | None:
    """A cursor made by :attr:`EntryRef.cursor`, or None when it is not one."""
    parts = cursor.split("|")
    if len(parts) != 3 or not parts[2].isdigit() or len(parts[0]) != 27:
        return None
    return EntryRef(parts[1], int(parts[2]), parts[0])


class ConsultationIndex:
    """Finds consultation log entries by reader, Party, object and time."""

    def __init__(self, sql: SqlAccess) -> None:
        self.sql = sql

    def find(self, *, principal: str | None = None, party: str | None = None, share: str | None = None,
             object_ref: str | None = None, since: str | None = None, until: str | None = None,
             after: EntryRef | None = None, limit: int = 50) -> list[EntryRef]:
        """Entries in time order (then event and place): read by ``principal``, by a principal of
        ``party``, about ``object_ref``, at or after ``since`` and before ``until``; ``share``:
        only those read by a principal of that Party or about what involves it."""
        where: list[str] = []
        params: list[Any] = []
        for clause, value in (("principal = ?", principal), ("party = ?", party), ("object_ref = ?", object_ref),
                              ("at >= ?", since), ("at < ?", until)):
            if value is not None:
                where.append(clause)
                params.append(value)
        if share is not None:
            where.append("(party = ? OR involved LIKE ?)")
            params += [share, f"%,{share},%"]
        if after is not None:
            where.append("(at > ? OR (at = ? AND (log_id > ? OR (log_id = ? AND seq > ?))))")
            params += [after.at, after.at, after.log_id, after.log_id, after.seq]
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self.sql.query(
            f"SELECT DISTINCT at, log_id, seq FROM {{{TABLE}}}{clause} ORDER BY at, log_id, seq LIMIT ?",
            [*params, limit],
        )
        return [EntryRef(row["log_id"], int(row["seq"]), row["at"]) for row in rows]

    def count(self) -> int:
        """Entries logged (not index rows)."""
        rows = self.sql.query(f"SELECT COUNT(*) AS n FROM (SELECT DISTINCT log_id, seq FROM {{{TABLE}}}) AS e")
        return int(rows[0]["n"])
