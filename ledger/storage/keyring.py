"""Key-encryption keys: files in the data dir that wrap the data keys kept in the database.

One key-encryption key (KEK) per **bucket**: the month in which the data it
protects are due for destruction (``2030-01``), or ``open`` for data kept until
someone decides to erase them. A KEK is a file ``kek-<bucket>.key`` (mode
0600, in a directory of mode 0700) holding its id, its bucket and its 32
bytes. Destroying it overwrites the file and unlinks it; a KEK made later for
the same bucket has a new id. The database holds only wrapped data keys, so a
copy of the database (a backup, its WAL, a replica) opens nothing without
these files (docs/decisions/0012-personal-data-erasure.md).
"""

from __future__ import annotations

import base64
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.tlog.commitment import new_key, new_key_id

OPEN_BUCKET = "open"
JOURNAL_FILE = "erasures.jsonl"


class KeyringError(Exception):
    """The key directory or one of its files is unusable."""


@dataclass(frozen=True)
class Kek:
    kek_id: str
    bucket: str
    key: bytes


class Keyring:
    """The key-encryption keys of one ledger, in ``directory``."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._by_id: dict[str, Kek] = {}
        self._by_bucket: dict[str, Kek] = {}
        self._paths: dict[str, Path] = {}

    def _path(self, bucket: str) -> Path:
        path = self._paths.get(bucket)
        if path is not None:
            return path
        if bucket != OPEN_BUCKET and not (len(bucket) == 7 and bucket[4] == "-" and bucket.replace("-", "").isdigit()):
            raise KeyringError(f"bad key bucket {bucket!r}")
        path = self._paths[bucket] = self.directory / f"kek-{bucket}.key"
        return path

    def _ensure_directory(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.directory, 0o700)
        except OSError as e:
            raise KeyringError(f"cannot use the data-key directory {self.directory}: {e}") from e

    def _read(self, path: Path) -> Kek | None:
        try:
            doc = json.loads(path.read_text("utf-8"))
            kek = Kek(str(doc["id"]), str(doc["bucket"]), base64.b64decode(doc["key"], validate=True))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise KeyringError(f"cannot read key-encryption key {path}: {e}") from e
        if len(kek.key) != 32:
            raise KeyringError(f"key-encryption key {path} is not 32 bytes")
        return kek

    def for_bucket(self, bucket: str) -> Kek:
        """The live KEK of ``bucket``, made now if there is none (another process may make it
        at the same moment: the first file linked in place wins, both use it)."""
        path = self._path(bucket)
        cached = self._by_bucket.get(bucket)
        if cached is not None and path.exists():  # a KEK destroyed by another process is not used
            return cached
        kek = self._read(path)
        if kek is not None:
            self._by_id[kek.kek_id] = self._by_bucket[bucket] = kek
            return kek
        with self._lock:
            self._ensure_directory()
            made = Kek(new_key_id(), bucket, new_key())
            temp = self.directory / f".kek-{bucket}-{made.kek_id}.tmp"
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump({"id": made.kek_id, "bucket": bucket,
                               "key": base64.b64encode(made.key).decode("ascii")}, f)
                    f.flush()
                    os.fsync(f.fileno())
                try:
                    os.link(temp, path)  # fails if another process linked its own first
                except FileExistsError:
                    pass
            finally:
                temp.unlink(missing_ok=True)
            fsync_path(self.directory)
        kek = self._read(path)
        if kek is None:
            raise KeyringError(f"key-encryption key {path} vanished as it was made")
        self._by_id[kek.kek_id] = self._by_bucket[bucket] = kek
        return kek

    def by_id(self, kek_id: str, bucket: str) -> Kek | None:
        """The KEK ``kek_id`` of ``bucket`` if its file still exists (None once destroyed)."""
        path = self._path(bucket)
        if not path.exists():
            self._by_id.pop(kek_id, None)
            return None
        kek = self._by_id.get(kek_id)
        if kek is None:
            kek = self._read(path)
            if kek is None or kek.kek_id != kek_id:
                return None
            self._by_id[kek_id] = kek
        return kek

    def destroy(self, bucket: str) -> str | None:
        """Overwrite and unlink the KEK of ``bucket``; its id, or None if there was none."""
        path = self._path(bucket)
        kek = self._read(path)
        if kek is None:
            return None
        with self._lock:
            try:
                with open(path, "r+b") as f:
                    size = f.seek(0, os.SEEK_END)
                    f.seek(0)
                    f.write(os.urandom(size))
                    f.flush()
                    os.fsync(f.fileno())
                path.unlink()
            except FileNotFoundError:
                pass
            fsync_path(self.directory)
            self._by_id.pop(kek.kek_id, None)
            self._by_bucket.pop(bucket, None)
        return kek.kek_id

    # -- the erasure journal: what was destroyed, kept beside the keys ---------------

    @property
    def journal_file(self) -> Path:
        return self.directory / JOURNAL_FILE

    def journal(self, entry: dict[str, Any]) -> None:
        """Append an erasure (its key ids and commitments, nothing personal) to the journal,
        on disk before this returns: a database restored from an older backup has it re-applied."""
        with self._lock:
            self._ensure_directory()
            fd = os.open(self.journal_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n")
                f.flush()
                os.fsync(f.fileno())

    def journaled(self) -> list[dict[str, Any]]:
        """The erasures journaled, oldest first (a torn last line, cut by a crash, is passed over)."""
        try:
            lines = self.journal_file.read_text("utf-8").splitlines()
        except FileNotFoundError:
            return []
        except OSError as e:
            raise KeyringError(f"cannot read the erasure journal {self.journal_file}: {e}") from e
        entries = []
        for line in lines:
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue
        return entries

    def buckets(self) -> list[str]:
        """The buckets that have a live KEK."""
        if not self.directory.exists():
            return []
        return sorted(p.name[4:-4] for p in self.directory.glob("kek-*.key"))


def fsync_path(path: Path) -> None:
    """Make a file's or a directory's content (a directory: its entries) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
