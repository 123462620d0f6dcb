"""Copies of a SQLite ledger database, made with SQLite's online backup API.

:func:`copy_database` copies a live database (WAL mode: a server may go on
writing meanwhile) into a new file, page by page, and the copy is consistent:
the snapshot of one moment. It copies ``PAGES_PER_STEP`` pages per step, each
step a short read transaction, and reports its progress. A write by another
connection between two steps makes SQLite start the copy again; after
``MAX_RESTARTS`` of those (a busy ledger) the rest is copied in one step, one
read transaction, which in WAL mode does not block writers either. The copy is
then checked (``PRAGMA quick_check``), switched to a rollback journal so that
it is one self-contained file (mode 0600), and written to disk.

:func:`newest_checkpoint` reads a database's largest stored checkpoint, without
opening it as a ledger (the ``restore`` command reads the database it replaces).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ledger.storage.high_water import HighWaterMark
from ledger.storage.keyring import fsync_path

PAGES_PER_STEP = 1024
MAX_RESTARTS = 3
Progress = Callable[[int, int], None]


class BackupError(Exception):
    """The copy cannot be made, or a file is not a ledger database."""


@dataclass(frozen=True)
class Copied:
    """What a copy holds: its pages, the tree size at its head, its newest checkpoint."""

    pages: int
    tree_size: int
    newest_checkpoint: int | None


class _Restarted(Exception):
    pass


def _connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    uri = f"{path.resolve().as_uri()}?mode={'ro' if read_only else 'rwc'}"
    return sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)


def copy_database(source: Path, target: Path, progress: Progress | None = None) -> Copied:
    """Copy the SQLite database ``source`` into ``target`` (a new file: it must not exist)."""
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source}")
    if target.exists():
        raise BackupError(f"{target} exists; it is not overwritten")
    try:
        src = _connect(source)  # read only by its use: a read-only connection could not open a WAL file
        try:
            dst = _connect(target)
            try:
                os.chmod(target, 0o600)  # the principals' key hashes and sealed personal data
                _backup(src, dst, progress)
                check = dst.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise BackupError(f"the copy of {source} is damaged: {check}")
                dst.execute("PRAGMA journal_mode=DELETE")
                copied = _describe(dst, target)
            finally:
                dst.close()
        finally:
            src.close()
        fsync_path(target)
    except sqlite3.Error as e:
        raise BackupError(f"cannot copy {source}: {e}") from e
    return copied


def backup_file(source: Path, out: Path, progress: Progress | None = None) -> Copied:
    """Copy the database ``source`` into the new file ``out``: written beside it, then linked
    into place, so that ``out`` is never a part-made copy and an existing file is never replaced."""
    if out.exists() or out.is_symlink():
        raise BackupError(f"{out} exists; it is not overwritten")
    if not out.parent.is_dir():
        raise BackupError(f"no such directory: {out.parent}")
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    remove_database(partial)
    try:
        copied = copy_database(source, partial, progress)
        try:
            os.link(partial, out)
        except FileExistsError:
            raise BackupError(f"{out} exists; it is not overwritten") from None
        fsync_path(out.parent)
    finally:
        remove_database(partial)
    return copied


def _backup(src: sqlite3.Connection, dst: sqlite3.Connection, progress: Progress | None) -> None:
    restarts = 0
    last_remaining: int | None = None

    def step(status: int, remaining: int, total: int) -> None:
        nonlocal last_remaining, restarts
        if last_remaining is not None and remaining > last_remaining:
            restarts += 1  # another connection wrote: SQLite started the copy again
            if restarts > MAX_RESTARTS:
                raise _Restarted
        last_remaining = remaining
        if progress is not None:
            progress(total - remaining, total)

    try:
        src.backup(dst, pages=PAGES_PER_STEP, progress=step)
    except _Restarted:
        # A busy ledger: the rest in one step, one snapshot (WAL mode: writers go on).
        src.backup(dst, pages=-1)
        if progress is not None:
            total = int(dst.execute("PRAGMA page_count").fetchone()[0])
            progress(total, total)


def _describe(db: sqlite3.Connection, path: Path) -> Copied:
    pages = int(db.execute("PRAGMA page_count").fetchone()[0])
    try:
        size = db.execute("SELECT size FROM ledger_head WHERE id = 1").fetchone()
        newest = db.execute("SELECT MAX(tree_size) FROM ledger_checkpoints").fetchone()[0]
    except sqlite3.DatabaseError as e:
        raise BackupError(f"{path} is not a ledger database: {e}") from e
    if size is None:
        raise BackupError(f"{path} is not a ledger database: it has no head")
    return Copied(pages, int(size[0]), int(newest) if newest is not None else None)


def describe_database(path: Path) -> Copied:
    """What the ledger database ``path`` holds (a :class:`BackupError` if it is not one)."""
    if not path.is_file():
        raise BackupError(f"no such file: {path}")
    try:
        db = _connect(path, read_only=True)
        try:
            return _describe(db, path)
        finally:
            db.close()
    except sqlite3.Error as e:
        raise BackupError(f"{path} is not a ledger database: {e}") from e


def newest_checkpoint(path: Path) -> HighWaterMark | None:
    """The largest checkpoint stored in the ledger database ``path``; None if it has none,
    or there is no such file."""
    if not path.is_file():
        return None
    try:
        db = _connect(path)
        try:
            row = db.execute(
                "SELECT tree_size, root_hash, note FROM ledger_checkpoints ORDER BY tree_size DESC LIMIT 1"
            ).fetchone()
        finally:
            db.close()
    except sqlite3.Error as e:
        raise BackupError(f"cannot read the checkpoints of {path}: {e}") from e
    return HighWaterMark(int(row[0]), bytes(row[1]), str(row[2])) if row else None


def in_use(path: Path) -> bool:
    """Whether another connection, of any process, has the database ``path`` open (a server):
    an exclusive lock in exclusive locking mode is refused while any other connection is open,
    even an idle one in WAL mode."""
    if not path.is_file():
        return False
    try:
        db = sqlite3.connect(path, timeout=0.5, isolation_level=None)
        try:
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("BEGIN EXCLUSIVE")
            db.execute("ROLLBACK")
        finally:
            db.close()
    except sqlite3.OperationalError as e:
        if "locked" in str(e) or "busy" in str(e):
            return True
        raise BackupError(f"cannot open {path}: {e}") from e
    return False


def settle(path: Path) -> None:
    """Fold the WAL of the database ``path`` into its file (no connection may be open on it):
    afterwards the file alone is the database."""
    try:
        db = _connect(path)
        try:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.execute("PRAGMA journal_mode=DELETE")
        finally:
            db.close()
    except sqlite3.Error as e:
        raise BackupError(f"cannot settle {path}: {e}") from e
    fsync_path(path)


def put_in_place(prepared: Path, database: Path) -> None:
    """Rename the settled database ``prepared`` over ``database``, atomically, after the old
    database's WAL was folded into it (so no stale ``-wal`` or ``-shm`` file outlives it)."""
    if database.exists():
        settle(database)
    for stale in (database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")):
        stale.unlink(missing_ok=True)
    os.replace(prepared, database)
    fsync_path(database.parent)


def remove_database(path: Path) -> None:
    """Remove a database file and its ``-wal``, ``-shm`` and ``-journal`` files."""
    for name in (path.name, path.name + "-wal", path.name + "-shm", path.name + "-journal"):
        path.with_name(name).unlink(missing_ok=True)
