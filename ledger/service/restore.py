"""Restoring a SQLite ledger database from a backup (``transfer-ledger restore``).

The backup is copied beside the data dir's database (SQLite's backup API,
``ledger.storage.backup``), opened there as a ledger (which re-applies every
erasure of the data dir's journal that the copy does not hold:
:meth:`TransferLedger.reapply_erasures`), verified, and compared with the
newest checkpoint the data dir has signed (``ledger.storage.high_water``, and
the checkpoints of the database being replaced): a smaller tree is a rollback,
a tree whose root at the checkpoint's size differs is a fork; both are refused
unless accepted. Only then is it renamed over the database. Whatever fails
leaves the previous database as it was (docs/decisions/0018-backup-and-restore.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from ledger.service.application import TransferLedger
from ledger.service.checkpoints import InconsistentTreeError, current_tree, stored_root_at
from ledger.storage.backup import (
    Progress,
    copy_database,
    describe_database,
    in_use,
    newest_checkpoint,
    put_in_place,
    remove_database,
    settle,
)
from ledger.storage.high_water import HighWater, HighWaterMark
from ledger.storage.store import LedgerStore


class Verified(Protocol):
    @property
    def ok(self) -> bool: ...


R = TypeVar("R", bound=Verified)


class RestoreRefused(Exception):
    """The backup is older than, or forks from, a checkpoint the data dir signed."""


class RestoreFailed(Exception):
    """The restored ledger does not verify; ``report`` says why."""

    def __init__(self, report: Verified) -> None:
        super().__init__("the backup does not verify")
        self.report = report


@dataclass(frozen=True)
class Restored:
    tree_size: int
    root_hash: bytes
    erasures_reapplied: int
    #: The newest checkpoint the data dir had signed, which the backup was checked against.
    high_water: HighWaterMark | None
    #: The rollback (or fork) accepted with ``accept_rollback``, described; None if there was none.
    rollback: str | None
    report: Verified


def high_water_mark(record: HighWater, database: Path) -> HighWaterMark | None:
    """The newest checkpoint the data dir has signed: its record, or the database in place
    if that holds a larger one (checkpoints stored before the record was kept)."""
    marks = [m for m in (record.read(), newest_checkpoint(database)) if m is not None]
    return max(marks, key=lambda m: m.tree_size) if marks else None


def _not_in_use(database: Path) -> None:
    if in_use(database):
        raise RestoreRefused(f"{database} is open in another process (a server?): stop every process of "
                             "the data dir before restoring")


def rollback_problem(store: LedgerStore, mark: HighWaterMark | None) -> str | None:
    """Why the tree of ``store`` does not extend the checkpoint ``mark``, or None if it does."""
    if mark is None:
        return None
    size = store.head().size
    if size < mark.tree_size:
        return (f"the backup's tree has {size} leaves, but this data dir signed a checkpoint of "
                f"{mark.tree_size}: restoring it would roll the ledger back")
    try:
        root = stored_root_at(store, mark.tree_size)
    except InconsistentTreeError:
        root = b""
    if root != mark.root_hash:
        return (f"the backup's tree at size {mark.tree_size} does not have the root this data dir "
                "signed there: it is a fork of the ledger")
    return None


def restore_database(
    backup: Path,
    database: Path,
    env: dict[str, str],
    record: HighWater,
    verify: Callable[[TransferLedger], R],
    *,
    accept_rollback: bool = False,
    progress: Progress | None = None,
) -> Restored:
    """Put the ledger database ``backup`` in place of ``database``, checked as the module says.

    ``env`` is the ledger's eventsourcing environment (``ledger.config.eventsourcing_env``);
    ``verify`` verifies the ledger restored and returns its report. Raises
    :class:`RestoreFailed` (it does not verify), :class:`RestoreRefused` (a rollback or a
    fork, not accepted), :class:`ledger.storage.backup.BackupError` (not a ledger database);
    in each case ``database`` is left as it was.
    """
    describe_database(backup)  # a ledger database, or a BackupError before anything is made
    _not_in_use(database)
    mark = high_water_mark(record, database)
    prepared = database.with_name(database.name + ".restoring")
    remove_database(prepared)
    try:
        copy_database(backup, prepared, progress)
        opened = {k: v for k, v in env.items() if k != "CHECKPOINT_HIGH_WATER"}
        opened["SQLITE_DBNAME"] = str(prepared)
        ledger = TransferLedger(opened)  # re-applies the journal's erasures as it opens
        try:
            reapplied = ledger.erasures_reapplied
            report = verify(ledger)
            if not report.ok:
                raise RestoreFailed(report)
            problem = rollback_problem(ledger.store, mark)
            if problem is not None and not accept_rollback:
                raise RestoreRefused(f"{problem}; pass --accept-rollback to restore it anyway")
            size, root = current_tree(ledger.store)
            checkpoints = ledger.store.checkpoints()
        finally:
            ledger.close()
        settle(prepared)
        _not_in_use(database)
        put_in_place(prepared, database)
    finally:
        remove_database(prepared)
    newest = (HighWaterMark(checkpoints[-1].tree_size, checkpoints[-1].root_hash, checkpoints[-1].note)
              if checkpoints else None)
    if problem is not None:
        record.reset(newest, superseded=mark, reason="rollback accepted at restore")
    elif newest is not None:
        record.raise_to(newest.tree_size, newest.root_hash, newest.note)
    return Restored(size, root, reapplied, mark, problem, report)
