"""Group commit: concurrent commands written in batches, one durable commit each.

A command is handed over as its *preparation* (loading what it needs,
applying the rules, making its events). Every command waiting, up to
``max_batch``, is prepared one after another (each sees what the earlier
ones changed) and saved in one transaction: one fsync for the batch. Each
caller gets its answer, or its refusal, only after its batch committed;
while a batch is written, the next one gathers, so a busy server writes
large batches and a lone command is written at once, with no added wait.

Who writes a batch: a caller in a thread of its own (:meth:`submit`) that
finds no batch being written leads the next one in its own thread, and
then wakes the first caller that arrived meanwhile to lead the one after.
Callers on an event loop (:meth:`submit_async`, the API's handlers) wait
without a thread: the committer's writer thread writes their batches and
settles their futures with one wake-up of the loop per batch.

The queue is bounded: when ``max_queue`` commands are waiting, ``submit``
raises :class:`Overloaded` at once (the API answers 503 with
``Retry-After``); such a command was not recorded. :meth:`close` refuses new
commands and returns once every command already queued was written.
"""

from __future__ import annotations

import asyncio
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
    #: Woken not with an answer but to lead the next batch (its own command is in it).
    lead: bool = False
    #: For a caller on an event loop: settled there (it cannot lead; the writer thread does).
    future: asyncio.Future[Any] | None = None
    loop: asyncio.AbstractEventLoop | None = None


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
    #: How many batches had each size (the metrics' histogram of batch sizes).
    sizes: dict[int, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {
            "batches": self.batches,
            "commands": self.commands,
            "largest_batch": self.largest_batch,
            "refused_overloaded": self.refused_overloaded,
            "batches_rerun": self.batches_rerun,
        }


#: Executes a batch: one (result, error) per preparation, in order.
ExecuteBatch = Callable[[Sequence[Callable[[], Any]]], list[tuple[Any, BaseException | None]]]


class GroupCommitter:
    """Batches of queued commands, written by a leader among the callers (see the module)."""

    def __init__(self, execute_batch: ExecuteBatch, *, max_batch: int = 64, max_queue: int = 256) -> None:
        if max_batch < 1 or max_queue < 1:
            raise ValueError("max_batch and max_queue must be at least 1")
        self._execute_batch = execute_batch
        self.max_batch, self.max_queue = max_batch, max_queue
        self._pending: list[_Waiting] = []
        self._leading = False  # a batch is being written, or a leader was woken to write one
        self._closing = False
        self._idle = threading.Condition()
        self.stats = CommitStats()
        self._writer: threading.Thread | None = None  # leads batches for callers on event loops
        self._writer_turn = False
        self._writer_stop = False

    def start(self) -> None:
        """Nothing to start: batches are written by the callers' threads."""

    @property
    def waiting(self) -> int:
        """Commands queued and not yet taken into a batch."""
        with self._idle:
            return len(self._pending)

    def submit(self, prepare: Callable[[], Any]) -> Any:
        """Queue a command and wait for its batch's commit; its result, or its error raised."""
        waiting = _Waiting(prepare)
        with self._idle:
            self._enqueue(waiting)
            lead = not self._leading
            self._leading = True
        if not lead:
            waiting.done.wait()
            lead = waiting.lead
        if lead:
            self._lead()
        if waiting.error is not None:
            raise waiting.error
        return waiting.result

    async def submit_async(self, prepare: Callable[[], Any]) -> Any:
        """As :meth:`submit`, for a caller on an event loop: it waits without a thread."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(prepare, future=loop.create_future(), loop=loop)
        with self._idle:
            self._enqueue(waiting)
            if not self._leading:
                self._leading = True
                self._wake_writer()
        assert waiting.future is not None
        return await waiting.future

    def _enqueue(self, waiting: _Waiting) -> None:
        """Queue a command, or refuse it at once (nothing recorded). Holding ``_idle``."""
        if self._closing:
            raise Overloaded("the ledger is shutting down; retry on another instance or later")
        if len(self._pending) >= self.max_queue:
            self.stats.refused_overloaded += 1
            raise Overloaded(f"{self.max_queue} commands are already waiting to be written; retry shortly")
        self._pending.append(waiting)

    def _wake_writer(self) -> None:
        """Give the lead to the writer thread (started on first use). Holding ``_idle``."""
        self._writer_turn = True
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_for_loops, name="group-commit", daemon=True)
            self._writer.start()
        self._idle.notify_all()

    def _write_for_loops(self) -> None:
        while True:
            with self._idle:
                while not self._writer_turn and not self._writer_stop:
                    self._idle.wait()
                if not self._writer_turn:
                    return
                self._writer_turn = False
            self._lead()

    def close(self) -> None:
        """Refuse new commands; return once every queued command was written."""
        with self._idle:
            self._closing = True
            while self._leading or self._pending:
                self._idle.wait()
            self._writer_stop = True
            self._idle.notify_all()
        if self._writer is not None:
            self._writer.join()

    def _lead(self) -> None:
        """Write the next batch (it holds this thread's own command), then pass the lead on."""
        with self._idle:
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
        try:
            self._write(batch)
        finally:
            self._pass_lead()

    def _pass_lead(self) -> None:
        with self._idle:
            if self._pending:
                successor = self._pending[0]
                if successor.future is None:
                    successor.lead = True
                    successor.done.set()
                else:
                    self._wake_writer()
            else:
                self._leading = False
                self._idle.notify_all()

    def _write(self, batch: list[_Waiting]) -> None:
        try:
            outcomes = self._execute_batch([waiting.prepare for waiting in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{len(outcomes)} outcomes for a batch of {len(batch)}")
        except BaseException as error:  # noqa: BLE001 - every caller of the batch learns of it
            outcomes = [(None, error)] * len(batch)
        self.stats.batches += 1
        self.stats.commands += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        self.stats.sizes[len(batch)] = self.stats.sizes.get(len(batch), 0) + 1
        settle: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any, BaseException | None]]] = {}
        for waiting, (result, error) in zip(batch, outcomes, strict=True):
            waiting.result, waiting.error = result, error
            if waiting.loop is not None:
                settle.setdefault(waiting.loop, []).append((waiting.future, result, error))
            waiting.done.set()
        for loop, answers in settle.items():  # one wake-up per event loop and batch
            try:
                loop.call_soon_threadsafe(_settle, answers)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass


def _settle(answers: list[tuple[Any, Any, BaseException | None]]) -> None:
    for future, result, error in answers:
        if future.done():  # the request was cancelled (client gone)
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
