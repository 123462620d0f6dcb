"""The HTTP baseline of `make bench`: a bare FastAPI endpoint that stores nothing.

``POST /v1/transfers`` validates the body with the ledger's own request model
(:class:`api.schemas.TransferIn`) and answers 201 with the model dumped back,
nothing more: no API key lookup, no database. Its handler is a plain ``def``
(run in the thread pool) or an ``async def`` exactly as the ledger's
``POST /v1/transfers`` handler is, so that the two differ only by what the
ledger does with the request.

``python -m bench.bare_app --port P`` serves it with the same uvicorn settings
as ``transfer-ledger serve`` (one process, uvicorn's default loop and HTTP
implementation, access log on at level info, the same graceful shutdown), and
the same garbage collector settings once started (``api.app.tune_gc_for_serving``).
"""

from __future__ import annotations

import argparse
import inspect
import signal
from typing import Any

from api.schemas import TransferIn


def ledger_handler_is_async() -> bool:
    """Whether the ledger's ``POST /v1/transfers`` handler is a coroutine function."""
    from api.routers import router

    for route in router.routes:
        if getattr(route, "path", None) == "/v1/transfers" and "POST" in (getattr(route, "methods", None) or ()):
            return inspect.iscoroutinefunction(getattr(route, "endpoint", None))
    return False


def create_app() -> Any:
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from api.app import tune_gc_for_serving

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tune_gc_for_serving()  # as the ledger's app does once started
        yield

    app = FastAPI(title="bare baseline", lifespan=lifespan)

    if ledger_handler_is_async():
        @app.post("/v1/transfers", status_code=201)
        async def record_transfer(body: TransferIn) -> Any:
            return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code=201)
    else:
        @app.post("/v1/transfers", status_code=201)
        def record_transfer(body: TransferIn) -> Any:  # type: ignore[misc]
            return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code=201)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.bare_app", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--graceful-timeout", type=int, default=30)
    args = parser.parse_args(argv)
    # As `transfer-ledger serve`: a graceful shutdown on SIGTERM exits 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.run(
        "bench.bare_app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=1,
        timeout_graceful_shutdown=args.graceful_timeout,
        log_level="info",
    )


if __name__ == "__main__":
    main()
