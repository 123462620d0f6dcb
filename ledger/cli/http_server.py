"""uvicorn, stopped so that every request it received gets its answer (docs/decisions/0009).

uvicorn's own graceful shutdown closes the listening socket first, then every
idle kept-alive connection at once. On Linux, closing a listening socket resets
every connection still waiting in its accept queue, whose clients have already
sent their requests; closing a connection whose next request sits unread in the
socket's receive buffer resets it too. Under load both happen, and clients get
``Connection reset by peer`` for requests the server had received. This module
changes three things and keeps the rest of uvicorn:

1. Before the listening socket is closed, every connection waiting in its
   accept queue is accepted and served (``GracefulServer.shutdown``).
2. Every response not yet started carries ``Connection: close``, so no client
   sends another request on a connection that is about to close. A response
   already begun (without that header) ends as begun, and its connection is
   not closed right after it (uvicorn's way, which races the client's next
   request on it) but kept alive as in 3.
3. A connection idle at the stop is not closed at once, but when the
   keep-alive timeout (5 s) says, as it would be had the server not been
   stopping: a request that arrives first is read and answered; then, with
   nothing to read, the connection is closed cleanly (``DrainingH11Protocol``).

Then, as in uvicorn, requests in flight finish within ``--graceful-timeout``
and the application's lifespan ends (the group commit queue is written, the
database closed). With ``--workers N``, the supervisor closes its own copy of
the listening socket before it signals the workers, so that the socket stops
listening when the last worker has drained it, not when the supervisor exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
from collections.abc import Iterator

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.supervisors import multiprocess

CONNECTION_CLOSE = (b"connection", b"close")
#: How long the stop waits for asyncio to make the transports of connections it accepted.
TRANSPORT_TIMEOUT_SECONDS = 1.0


class DrainingH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, which does not reset an idle connection when the server stops."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[arg-type]
        if CONNECTION_CLOSE in self.server_state.default_headers:
            # Accepted while the server stops: its client connected to send a request.
            self._close_unless_a_request_arrives(within=self.timeout_keep_alive)

    def shutdown(self) -> None:
        if self.cycle is not None and not self.cycle.response_started:
            self.cycle.keep_alive = False  # answered, then closed (as uvicorn does)
            if CONNECTION_CLOSE not in self.cycle.default_headers:
                # and its answer says so, lest the client send another request on it
                self.cycle.default_headers = [*self.cycle.default_headers, CONNECTION_CLOSE]
        elif self.cycle is not None and not self.cycle.response_complete:
            # Its answer has begun without Connection: close, so its client will send its next
            # request on it: closing it after this answer (uvicorn's way) races that request.
            # The answer ends as begun, then the connection waits out its keep-alive like any
            # other, and a request that arrives first is answered with Connection: close.
            pass
        elif self.timeout_keep_alive_task is None:
            # No request yet: its client connected to send one, and has the keep-alive
            # timeout to do it, as it would have had if the server were not stopping.
            self._close_unless_a_request_arrives(within=self.timeout_keep_alive)
        # Between two requests, the keep-alive timer armed by the last answer runs on: the
        # connection is closed when it would have been had the server not been stopping, and
        # a request that arrives first is answered with Connection: close. A stop adds no
        # race of its own to the one every kept-alive HTTP/1.1 connection has.

    def _close_unless_a_request_arrives(self, within: float) -> None:
        # The keep-alive timer closes the connection cleanly when it fires; any bytes that
        # arrive first cancel it (data_received), and the request they carry is answered
        # with Connection: close.
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(within, self.timeout_keep_alive_handler)


class GracefulServer(uvicorn.Server):
    """uvicorn's server, which answers the connections waiting to be accepted before it stops listening."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._listening = list(sockets or [])
        await super().startup(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # From here on every response says Connection: close (the default headers are not
        # refreshed any more once the main loop has ended; cycles not yet answered share this list).
        self.server_state.default_headers.append(CONNECTION_CLOSE)
        loop = asyncio.get_running_loop()
        for listening in self._listening:
            loop.remove_reader(listening.fileno())  # asyncio accepts no more: we accept what waits
        while True:
            # A connection asyncio accepted just before gets its transport in a task of its own,
            # which fails (and drops the connection) if the server is closed before it runs.
            if being_made := _transports_being_made():
                await asyncio.wait(being_made, timeout=TRANSPORT_TIMEOUT_SECONDS)
                if _transports_being_made() >= being_made:
                    break  # stuck (they wait for the client): uvicorn's timeout takes over
                continue
            accepted = 0
            for listening in self._listening:
                accepted += await self._accept_waiting(listening)
            if not accepted:  # an empty pass awaited nothing: nothing new can be in the making
                break
        # No await between the last empty accept and the close of the listening socket.
        await super().shutdown(sockets)

    async def _accept_waiting(self, listening: socket.socket) -> int:
        """Accept and serve every connection waiting on ``listening``; how many there were."""
        loop = asyncio.get_running_loop()
        protocol = functools.partial(self.config.http_protocol_class, config=self.config,
                                     server_state=self.server_state, app_state=self.lifespan.state)
        accepted: list[socket.socket] = []
        while True:
            try:
                conn, _ = listening.accept()
            except (InterruptedError, ConnectionAbortedError):
                continue  # a signal, or a client that gave up before it was accepted
            except OSError:
                break  # nothing waits any more (or the socket no longer listens)
            accepted.append(conn)
        for conn in accepted:
            await loop.connect_accepted_socket(protocol, conn, ssl=self.config.ssl)
        return len(accepted)


def _transports_being_made() -> set[asyncio.Task[object]]:
    # asyncio's selector loop makes the transport of each accepted connection in a task
    # running BaseSelectorEventLoop._accept_connection2.
    return {task for task in asyncio.all_tasks() if not task.done()
            and getattr(task.get_coro(), "__qualname__", "").endswith("._accept_connection2")}


class _GracefulProcess(multiprocess.Process):
    """A worker process of uvicorn's supervisor that runs a ``GracefulServer``."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = GracefulServer(config=self.config)
        return self._server


@contextlib.contextmanager
def _graceful_workers() -> Iterator[None]:
    # uvicorn's supervisor makes its workers from the module's Process class; while it does,
    # that class is ours. The supervisor runs in one thread of the parent process.
    plain = multiprocess.Process
    multiprocess.Process = _GracefulProcess  # type: ignore[misc]
    try:
        yield
    finally:
        multiprocess.Process = plain  # type: ignore[misc]


class GracefulMultiprocess(multiprocess.Multiprocess):
    """uvicorn's supervisor of ``--workers N`` processes, each a ``GracefulServer``."""

    def init_processes(self) -> None:
        with _graceful_workers():
            super().init_processes()

    def restart_all(self) -> None:
        with _graceful_workers():
            super().restart_all()

    def keep_subprocess_alive(self) -> None:
        with _graceful_workers():
            super().keep_subprocess_alive()

    def terminate_all(self) -> None:
        # The supervisor never accepts: once its copy is closed, the socket stops listening
        # as soon as the last worker has accepted what was waiting and closed its own.
        for listening in self.sockets:
            listening.close()
        super().terminate_all()


def run(config: uvicorn.Config) -> None:
    """Serve ``config`` until SIGTERM or SIGINT, then stop gracefully (see the module's text)."""
    config.http = DrainingH11Protocol
    listening = config.bind_socket()
    try:
        if config.workers > 1:
            GracefulMultiprocess(config, sockets=[listening]).run()
        else:
            GracefulServer(config=config).run(sockets=[listening])
    finally:
        listening.close()
