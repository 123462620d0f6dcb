"""Holding group commit's writer, to queue commands into one batch."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ledger.service.application import TransferLedger


class Held(Exception):
    """What the command that held up the committer answers."""


@contextmanager
def committer_held(ledger: TransferLedger) -> Iterator[Callable[[], None]]:
    """Hold the committer (a batch being written) until the yielded release() is called."""
    committer = ledger.committer
    assert committer is not None
    entered, release = threading.Event(), threading.Event()

    def hold() -> Any:
        entered.set()
        assert release.wait(60)
        raise Held

    holder = Call(lambda: committer.submit(hold))
    assert entered.wait(10)
    try:
        yield release.set
    finally:
        release.set()
        assert isinstance(holder.outcome(), Held)


class Call:
    """A call running in its own thread (an API request thread, say)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._result: Any = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self._result = fn()
        except BaseException as e:  # noqa: BLE001 - kept for the test to inspect
            self._result = e

    def outcome(self, timeout: float = 60) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the call did not finish"
        return self._result


def queued(ledger: TransferLedger, n: int, timeout: float = 10) -> None:
    """Wait until n commands wait in the committer's queue."""
    committer = ledger.committer
    assert committer is not None
    deadline = time.monotonic() + timeout
    while committer.waiting < n:
        assert time.monotonic() < deadline, f"{committer.waiting} queued, expected {n}"
        time.sleep(0.002)
