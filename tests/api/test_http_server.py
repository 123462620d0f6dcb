"""The stop of ``GracefulServer``, one connection at a time, over a real socket.

The load test (test_graceful_stop.py) shows that nothing is cut under load;
these tests pin each case of docs/decisions/0009 to a moment of the stop, so
that a race the load only hits now and then fails here every time.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import h11
import pytest
import uvicorn

from ledger.cli.http_server import DrainingH11Protocol, GracefulServer


@dataclass
class Stop:
    """The moments a test waits for: a connection told of the stop, an answer let go."""

    told: threading.Event = field(default_factory=threading.Event)
    release: asyncio.Event | None = None
    loop: asyncio.AbstractEventLoop | None = None


def _app(stop: Stop):  # type: ignore[no-untyped-def]
    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        if scope["path"] == "/slow":  # begun before the stop, ended after it
            stop.loop = asyncio.get_running_loop()
            stop.release = asyncio.Event()
            await stop.release.wait()
        await send({"type": "http.response.body", "body": scope["path"].encode()})
    return app


@pytest.fixture
def served() -> Iterator[tuple[GracefulServer, int, Stop]]:
    stop = Stop()

    class Observed(DrainingH11Protocol):
        def shutdown(self) -> None:
            super().shutdown()
            stop.told.set()

    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    config = uvicorn.Config(_app(stop), http=Observed, lifespan="off", log_level="warning",
                            timeout_keep_alive=5)
    server = GracefulServer(config=config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.01)
    yield server, listening.getsockname()[1], stop
    server.should_exit = True
    thread.join(30)
    assert not thread.is_alive(), "the server did not stop"
    listening.close()


class Client:
    """One HTTP/1.1 connection, read with h11 (which checks every byte the server sends)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.conn = h11.Connection(h11.CLIENT)

    def send(self, path: bytes) -> None:
        self.sock.sendall(self.conn.send(h11.Request(method="GET", target=b"/" + path, headers=[("Host", "test")])))
        self.sock.sendall(self.conn.send(h11.EndOfMessage()))

    def answer(self) -> tuple[h11.Response, bytes]:
        """The next complete answer; fails if the connection closes first."""
        response, body = None, b""
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                data = self.sock.recv(65536)
                assert data, "the connection was closed without an answer"
                self.conn.receive_data(data)
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert response is not None
                if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
                    self.conn.start_next_cycle()
                return response, body

    def closed_by_server(self) -> bool:
        return self.sock.recv(65536) == b""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_an_answer_begun_before_the_stop_leaves_its_connection_open_for_the_next_request(
        served: tuple[GracefulServer, int, Stop]) -> None:
    server, port, stop = served
    with Client(port) as client:
        client.send(b"slow")
        while stop.release is None:  # the answer has begun
            threading.Event().wait(0.01)
        server.should_exit = True
        assert stop.told.wait(10), "the connection was not told of the stop"
        assert stop.loop is not None
        stop.loop.call_soon_threadsafe(stop.release.set)
        first, body = client.answer()
        assert body == b"/slow"
        assert (b"connection", b"close") not in first.headers  # begun before the stop: ends as begun
        # Not told the connection closes, the client sends its next request on it (what the
        # load test's kept-alive clients do); closing after the first answer cut it.
        client.send(b"next")
        second, body = client.answer()
        assert (second.status_code, body) == (200, b"/next")
        assert (b"connection", b"close") in second.headers
        assert client.closed_by_server()


def test_an_idle_kept_alive_connection_answers_a_request_sent_after_the_stop(
        served: tuple[GracefulServer, int, Stop]) -> None:
    server, port, stop = served
    with Client(port) as client:
        client.send(b"first")
        client.answer()
        server.should_exit = True
        assert stop.told.wait(10)
        client.send(b"after")
        answer, body = client.answer()
        assert (answer.status_code, body) == (200, b"/after")
        assert (b"connection", b"close") in answer.headers
        assert client.closed_by_server()
