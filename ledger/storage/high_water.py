"""The newest checkpoint a data dir has signed, remembered outside its database.

A database restored from a backup is as old as the backup: it cannot say that a
newer checkpoint was signed, and handed to witnesses and verifiers, after the
backup was made. File ``checkpoint-high-water.json`` in the data dir does: the
tree size, root hash and signed note of the largest checkpoint stored there.
It is raised (never lowered) each time the store saves a checkpoint larger than
it, replaced atomically (written beside, then renamed) under a lock file, so
that several processes of one data dir never lower it. ``transfer-ledger
restore`` refuses a database whose tree is smaller than it, or whose tree at
its size has another root (docs/decisions/0018-backup-and-restore.md).
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from domain.values import format_datetime

FILE = "checkpoint-high-water.json"


class HighWaterError(Exception):
    """The record exists but cannot be read."""


@dataclass(frozen=True)
class HighWaterMark:
    tree_size: int
    root_hash: bytes
    note: str

    def as_dict(self) -> dict[str, Any]:
        return {"tree_size": self.tree_size, "root_hash": self.root_hash.hex(), "note": self.note}


class HighWater:
    """The record ``FILE`` of one data dir."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def read(self) -> HighWaterMark | None:
        """The mark recorded, or None if there is none yet."""
        try:
            doc = json.loads(self.path.read_text("utf-8"))
            return HighWaterMark(int(doc["tree_size"]), bytes.fromhex(doc["root_hash"]), str(doc["note"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise HighWaterError(f"cannot read {self.path}: {e}") from e

    def raise_to(self, tree_size: int, root_hash: bytes, note: str) -> bool:
        """Record this checkpoint if it is larger than the mark; whether it was. (A ledger opened
        on a data dir that does not exist, as some PostgreSQL jobs are, records nothing.)"""
        if not self.path.parent.is_dir():
            return False
        current = self._read_quietly()
        if current is not None and current.tree_size >= tree_size:
            return False  # the usual case, a checkpoint signed again: no lock, no write
        with self._locked():
            current = self._read_quietly()
            if current is not None and current.tree_size >= tree_size:
                return False
            self._write(HighWaterMark(tree_size, root_hash, note), reason="signed")
            return True

    def reset(self, mark: HighWaterMark | None, *, superseded: HighWaterMark | None, reason: str) -> None:
        """Replace the mark, even by a smaller one (an accepted rollback); the old mark is kept
        in the record as ``superseded``. None removes the record."""
        with self._locked():
            if mark is None:
                self.path.unlink(missing_ok=True)
                return
            self._write(mark, reason=reason, superseded=superseded)

    def _read_quietly(self) -> HighWaterMark | None:
        try:
            return self.read()
        except HighWaterError:
            return None  # a damaged record is replaced by the checkpoint being stored

    def _write(self, mark: HighWaterMark, *, reason: str, superseded: HighWaterMark | None = None) -> None:
        doc: dict[str, Any] = {**mark.as_dict(), "recorded_at": format_datetime(datetime.now(UTC)),
                               "reason": reason}
        if superseded is not None:
            doc["superseded"] = superseded.as_dict()
        fd, tmp = tempfile.mkstemp(prefix=".checkpoint-high-water-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(doc, out, sort_keys=True, indent=1)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
