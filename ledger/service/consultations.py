"""Consultation logs (LED art. 25): every read of personal data, written in batches.

A read must not cost a durable commit of its own. So :meth:`ConsultationLogWriter.log`
only appends the entry to a buffer in memory and returns; a flusher thread writes the
buffer every ``interval`` seconds (100 ms by default) as ``ConsultationsLogged`` events of
up to :data:`ENTRIES_PER_EVENT` entries each, through the ledger's group commit (one
durable commit for them and whatever commands share the batch), with their index rows in
the same transaction (``ledger.storage.consultations``).

What a crash can lose: the entries of the reads answered since the last flush began, i.e.
at most the last ``interval`` seconds of reads plus the one flush being written
(docs/OPERATIONS.md, "Consultation logs"). A stop (``close``) writes everything. If the
database cannot be written, the entries stay in the buffer and the next flush tries again;
once :data:`MAX_BUFFERED` entries wait, reads are refused (:class:`LogUnavailable`) rather
than served unlogged.

An application without a flusher thread (the CLI, in-process use) writes what it logged
when :meth:`flush` or :meth:`close` is called.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain.consultation import ConsultationLog, consultation_log_until
from ledger.storage.consultations import ConsultationIndex, EntryRef, index_rows
from ledger.storage.sql import SqlAccess

if TYPE_CHECKING:
    from ledger.service.application import Prepared, TransferLedger

logger = logging.getLogger("transfer_ledger.consultations")

#: Entries in one ConsultationsLogged event (its state stays well under a megabyte).
ENTRIES_PER_EVENT = 500
#: Entries that may wait to be written; beyond, reads are refused (503).
MAX_BUFFERED = 100_000
#: Seconds between two flushes of a serving process (the bound on what a crash loses).
DEFAULT_FLUSH_INTERVAL = 0.1


class LogUnavailable(Exception):
    """The consultation log cannot take more entries (the database has not been written for a while,
    or cannot be: a read-only replica). ``retry_after``: seconds worth waiting, None if not."""

    def __init__(self, detail: str, *, retry_after: int | None = 5) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


def log_time(moment: datetime) -> str:
    """The one fixed-width form of the time of a read (text order is time order)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Consultation:
    """One read of personal data, as logged (``domain.consultation``)."""

    principal: str
    party: str
    route: str
    objects: tuple[str, ...]
    parties: tuple[str, ...]
    status: int = 200
    officer: str | None = None
    justification: str | None = None
    purpose: str | None = None
    via: str = "api"
    at: datetime | None = None

    def entry(self, at: datetime) -> dict[str, Any]:
        out: dict[str, Any] = {
            "at": log_time(self.at or at), "via": self.via, "principal": self.principal, "party": self.party,
            "route": self.route, "status": self.status, "objects": list(self.objects),
            "parties": sorted(set(self.parties)),
        }
        if self.purpose is not None:
            out["purpose"] = self.purpose
        return out

    def reader(self) -> dict[str, Any]:
        return {"officer": self.officer, "justification": self.justification}


class ConsultationLogWriter:
    """The buffer of consultations not yet written, and what writes it (see the module)."""

    def __init__(self, ledger: TransferLedger, *, years: int, interval: float = DEFAULT_FLUSH_INTERVAL,
                 max_buffered: int = MAX_BUFFERED) -> None:
        self._ledger = ledger
        self.years = years
        self.interval = interval
        self.max_buffered = max_buffered
        self._buffer: list[tuple[Consultation, datetime]] = []
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # one flush at a time: entries keep their order
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._index: ConsultationIndex | None = None
        #: Entries written, and flushes that failed (``GET /healthz``, ``consultation_log``).
        self.written = 0
        self.failed_flushes = 0
        #: A read-only ledger (a replica): the file the entries are appended to instead, if the
        #: operator chose one (``consultation_log_file``); without one, reads are refused.
        self.local_file: Path | None = None

    @property
    def index(self) -> ConsultationIndex:
        if self._index is None:
            self._index = ConsultationIndex(SqlAccess(self._ledger.recorder))
        return self._index

    @property
    def buffered(self) -> int:
        with self._lock:
            return len(self._buffer)

    def log(self, consultation: Consultation) -> None:
        """Take one read into the log (written at the next flush); :class:`LogUnavailable` if full."""
        if self._ledger.read_only:
            self._log_read_only(consultation)
            return
        with self._lock:
            if len(self._buffer) >= self.max_buffered:
                raise LogUnavailable(f"{len(self._buffer)} consultations wait to be logged: the database is not "
                                     "being written; reads of personal data resume once it is")
            self._buffer.append((consultation, self._ledger.clock()))
            full = self._thread is None and len(self._buffer) >= ENTRIES_PER_EVENT
        if full:  # no flusher: an event's worth is written by the reader that filled it
            self.flush()

    def _log_read_only(self, consultation: Consultation) -> None:
        """A read-only ledger cannot log the read in the ledger: append it to :attr:`local_file`
        (one JSON line, on disk before the read is answered), or refuse the read."""
        if self.local_file is None:
            raise LogUnavailable("this server is read-only (a replica): a read of personal data must be logged "
                                 "(LED art. 25) and the ledger cannot be written here; read it on the primary",
                                 retry_after=None)
        line = json.dumps({**consultation.entry(self._ledger.clock()), **consultation.reader()},
                          ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            try:
                with self.local_file.open("a", encoding="utf-8") as out:
                    out.write(line)
                    out.flush()
                    os.fsync(out.fileno())
            except OSError as e:
                raise LogUnavailable(f"the local consultation log {self.local_file} cannot be written: {e}",
                                     retry_after=None) from None
            self.written += 1

    def start(self, interval: float | None = None) -> None:
        """Flush every ``interval`` seconds in a thread of its own, until :meth:`close`."""
        if interval is not None:
            self.interval = interval
        if self._thread is None:
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="consultation-log", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the entries stay buffered; the next flush retries
                self.failed_flushes += 1
                logger.exception("writing the consultation log failed; retrying in %.1f s", self.interval)

    def close(self) -> None:
        """Stop the flusher and write everything logged."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop = True
            self._wake.set()
            thread.join()
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - a stop must go on; say what is lost
            logger.exception("%d consultation(s) could not be logged at shutdown", self.buffered)

    def flush(self) -> int:
        """Write every entry buffered now; how many. On failure they stay buffered (and it raises)."""
        with self._flushing:
            with self._lock:
                taken, self._buffer = self._buffer, []
            if not taken:
                return 0
            done = 0
            try:
                while done < len(taken):
                    chunk = taken[done:done + ENTRIES_PER_EVENT]
                    self._ledger._run(lambda chunk=chunk: self._prepared(chunk))
                    done += len(chunk)
                    self.written += len(chunk)
            except BaseException:
                with self._lock:  # what was not written goes back in front, in order
                    self._buffer[:0] = taken[done:]
                raise
            return len(taken)

    def _prepared(self, chunk: Sequence[tuple[Consultation, datetime]]) -> Prepared:
        entries = [consultation.entry(at) for consultation, at in chunk]
        readers = [consultation.reader() for consultation, _ in chunk]
        last = max((consultation.at or at) for consultation, at in chunk)
        log = ConsultationLog.logged(entries, readers, consultation_log_until(last, self.years))
        prepared = self._ledger._prepared(log, resource=log, kind="consultation-log", idempotency=None,
                                          respond=lambda _leaves: {"entries": len(entries)})
        prepared.rows = index_rows(str(log.id), entries)
        return prepared

    # -- reading ---------------------------------------------------------------------

    def entries(self, refs: Iterable[EntryRef], opened: Callable[[dict[str, Any], UUID], dict[str, Any]]
                ) -> list[dict[str, Any]]:
        """The entries ``refs`` name, each with its leaf and its reader (opened, or erased)."""
        out: list[dict[str, Any]] = []
        logs: dict[str, tuple[dict[str, Any], int | None]] = {}
        for ref in refs:
            if ref.log_id not in logs:
                log = self._ledger.repository.get(UUID(ref.log_id))
                state = opened({"readers": log.readers}, log.id)
                leaf = self._ledger.store.leaf_of_event(log.id, 1)
                logs[ref.log_id] = ({"entries": log.entries, "readers": state["readers"]},
                                    leaf.leaf_index if leaf is not None else None)
            (doc, leaf_index) = logs[ref.log_id]
            entry = dict(doc["entries"][ref.seq])
            readers = doc["readers"]
            reader = readers[ref.seq] if isinstance(readers, list) else readers  # erased: one note for all
            entry.update(id=f"{ref.log_id}:{ref.seq}", leaf_index=leaf_index, log_id=ref.log_id, seq=ref.seq,
                         reader=reader)
            out.append(entry)
        return out

    def page(self, *, principal: str | None = None, party: str | None = None, share: str | None = None,
             object_ref: str | None = None, since: str | None = None, until: str | None = None,
             cursor: EntryRef | None = None, limit: int = 50) -> tuple[list[dict[str, Any]], str | None]:
        """A page of entries written so far (see :meth:`ConsultationIndex.find`) and the next cursor."""
        refs = self.index.find(principal=principal, party=party, share=share, object_ref=object_ref,
                               since=since, until=until, after=cursor, limit=limit + 1)
        more = len(refs) > limit
        refs = refs[:limit]
        items = self.entries(refs, self._ledger.open_personal)
        return items, (refs[-1].cursor if more else None)
