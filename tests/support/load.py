"""Recording clients that load a real server, and what each of their requests got.

Used by the graceful-stop and the kill -9 tests: many threads, each posting
transfers in a loop, half of them over one kept-alive connection and half over
a fresh connection per request, until the server stops answering. Every
request's outcome is kept: a complete answer (status and body), or the
transport error that ended it, so a test can tell a request the server never
received (the connection was refused) from one it dropped.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support import builders


def transfer_for(key: str) -> dict[str, Any]:
    """The transfer a client sends under ``key``: the same body on every retry."""
    return builders.transfer("DE", "FR", purpose={"proceeding": key, "description": "load"})


@dataclass(frozen=True)
class Outcome:
    client: int
    sent_at: float
    key: str
    status: int | None = None
    body: Any = None
    error: BaseException | None = None

    @property
    def never_received(self) -> bool:
        """The server cannot have read a byte of it: the connection itself was refused."""
        return isinstance(self.error, httpx.ConnectError)


@dataclass
class Load:
    """``clients`` threads recording transfers against ``url`` with ``token``, until stopped."""

    url: str
    token: str
    clients: int = 32
    #: Send an ``Idempotency-Key`` with every request (the key is in each outcome).
    idempotent: bool = False
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Load:
        for n in range(self.clients):
            thread = threading.Thread(target=self._run, args=(n,), daemon=True, name=f"load-client-{n}")
            self._threads.append(thread)
            thread.start()
        return self

    def answered(self) -> int:
        with self._lock:
            return sum(1 for o in self.outcomes if o.status is not None)

    def wait_for_answers(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.answered() < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {self.answered()} answers in {timeout}s: {self.outcomes[-5:]}")
            time.sleep(0.01)

    def stop(self, timeout: float = 60.0) -> list[Outcome]:
        """Ask every client to stop after its request in flight, and wait for them."""
        self._stop.set()
        return self.join(timeout)

    def join(self, timeout: float = 60.0) -> list[Outcome]:
        """Wait until every client stopped (each stops once the server refuses its connection)."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            assert not thread.is_alive(), f"a client still waits {timeout}s on: {self.outcomes[-5:]}"
        return list(self.outcomes)

    def _run(self, n: int) -> None:
        # Even clients keep one connection alive; odd ones open a fresh connection per request.
        keep_alive = n % 2 == 0
        limits = httpx.Limits(max_keepalive_connections=1 if keep_alive else 0)
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, timeout=30.0, headers=headers, limits=limits) as client:
            i = 0
            while not self._stop.is_set():
                key = f"load-{n}-{i}"
                i += 1
                body = transfer_for(key)
                extra = {"Idempotency-Key": key} if self.idempotent else {}
                sent = time.monotonic()
                try:
                    response = client.post("/v1/transfers", json=body, headers=extra)
                    outcome = Outcome(n, sent, key, response.status_code, response.json())
                except httpx.TransportError as error:
                    outcome = Outcome(n, sent, key, error=error)
                with self._lock:
                    self.outcomes.append(outcome)
                if outcome.error is not None:
                    return  # the server is gone (or dropped us): this client is done
