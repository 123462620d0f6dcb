"""Group commit: concurrent commands written in batches, one durable commit each.

Callers (the API's request threads) hand a command's *preparation* to
:meth:`GroupCommitter.submit` and wait. One committer thread takes every
command waiting, up to ``max_batch``, prepares them one after another (each
sees what the earlier ones changed) and saves them all in one transaction:
one fsync for the batch. Each caller gets its answer, or its refusal, only
after that commit. While a batch commits, the next one gathers, so a busy
server writes large batches and an idle one writes batches of one, with no
added wait.

The queue is bounded: when ``max_queue`` commands are waiting, ``submit``
raises :class:`Overloaded` at once (the API answers 503 with
``Retry-After``); such a command was not recorded. On :meth:`close`, every
command already queued is written before the thread stops.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


class Overloaded(Exception):
    """The commit queue is full, or the ledger is shutting down: nothing was recorded."""

    def __init__(self, detail: str, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


@dataclass
class _Waiting:
    prepare: Callable[[], Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


@dataclass
class CommitStats:
    """What the committer did so far (shown by ``/healthz``)."""

    batches: int = 0
    commands: int = 0
    largest_batch: int = 0
    refused_overloaded: int = 0
    #: Batches that could not be saved as one (another process wrote first, or a
    #: repeated idempotency key), whose commands then ran one by one.
    batches_rerun: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "batches": self.batches,
            "commands": self.commands,
            "largest_batch": self.largest_batch,
            "refused_overloaded": self.refused_overloaded,
            "batches_rerun": self.batches_rerun,
        }


_STOP = object()

#: Executes a batch: one (result, error) per preparation, in order.
ExecuteBatch = Callable[[Sequence[Callable[[], Any]]], list[tuple[Any, BaseException | None]]]


class GroupCommitter:
    """One thread writing queued commands in batches (see the module's docstring)."""

    def __init__(self, execute_batch: ExecuteBatch, *, max_batch: int = 64, max_queue: int = 256) -> None:
        if max_batch < 1 or max_queue < 1:
            raise ValueError("max_batch and max_queue must be at least 1")
        self._execute_batch = execute_batch
        self.max_batch, self.max_queue = max_batch, max_queue
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._work, name="group-commit", daemon=True)
        self._closing = False
        self._lock = threading.Lock()
        self.stats = CommitStats()

    def start(self) -> None:
        self._thread.start()

    def submit(self, prepare: Callable[[], Any]) -> Any:
        """Queue a command and wait for its batch's commit; its result, or its error raised."""
        waiting = _Waiting(prepare)
        with self._lock:
            if self._closing:
                raise Overloaded("the ledger is shutting down; retry on another instance or later")
            try:
                self._queue.put_nowait(waiting)
            except queue.Full:
                self.stats.refused_overloaded += 1
                raise Overloaded(
                    f"{self.max_queue} commands are already waiting to be written; retry shortly"
                ) from None
        waiting.done.wait()
        if waiting.error is not None:
            raise waiting.error
        return waiting.result

    def close(self) -> None:
        """Refuse new commands, write every queued one, stop the thread."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
        if self._thread.is_alive():
            self._queue.put(_STOP)  # after everything queued; waits while the queue is full
            self._thread.join()

    def _work(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            self._write(batch)

    def _write(self, batch: list[_Waiting]) -> None:
        try:
            outcomes = self._execute_batch([waiting.prepare for waiting in batch])
        except BaseException as error:  # noqa: BLE001 - every caller learns of it; the thread goes on
            outcomes = [(None, error)] * len(batch)
        self.stats.batches += 1
        self.stats.commands += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        for waiting, (result, error) in zip(batch, outcomes, strict=True):
            waiting.result, waiting.error = result, error
            waiting.done.set()
