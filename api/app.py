"""The FastAPI application: wiring, lifespan, limits.

``create_app(settings)`` builds the app for a data dir (and optional
PostgreSQL URL); ``create_app_from_env`` is the factory for
``uvicorn --factory api.app:create_app_from_env`` with the
``TRANSFER_LEDGER_*`` environment variables.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import start_http_server
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import console, errors, responses
from api.audit_routes import router as audit_router
from api.consultation_routes import router as consultation_router
from api.control_routes import router as control_router
from api.custody_routes import router as custody_router
from api.import_routes import router as import_router
from api.metrics import Metrics
from api.metrics import router as metrics_router
from api.observe import Observe
from api.preservation_routes import router as preservation_router
from api.referral_routes import router as referral_router
from api.report_routes import router as report_router
from api.routers import router
from api.witness_routes import router as witness_router
from ledger import bootstrap
from ledger.config import ConfigError, Settings
from ledger.service.node_cache import NodeCache, NodeCacheClosed, StoredNodesMissing
from ledger.service.read_models import runner_of
from ledger.storage.cosignatures import CosignatureStore
from ledger.storage.sql import SqlAccess

logger = logging.getLogger(__name__)

#: How long a server process trusts a key it authenticated before looking it up again: a key
#: revoked by `transfer-ledger principals revoke` is refused by every server within this time.
AUTH_CACHE_SECONDS = 1.0

#: Requests with a larger body are refused with 413 before they are parsed.
MAX_BODY_BYTES = 64 * 1024

#: Records the read models of an API process keep in memory between batches (each of
#: transfers and authorizations).
READ_MODEL_CACHE = 20_000

DESCRIPTION = """\
Tamper-evident audit ledger for cross-border transfers of personal data
(UN Convention against Cybercrime, art. 36). Every transfer is a hash-chained
leaf of an RFC 9162 Merkle tree; an onward transfer is recorded only under a
grant of the **first transferring Party** (art. 36 §3).

Authenticate with `Authorization: Bearer <API key>`. Errors are RFC 9457
`application/problem+json` with a stable `type` per rule (`/problems/<rule>`).
Every `POST` accepts `Idempotency-Key`.
"""


class BodyLimit:
    """ASGI middleware refusing request bodies over ``limit`` bytes with a 413 problem."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_large = int(value) > self.limit
                except ValueError:
                    break  # the server refuses a bad Content-Length itself; count what arrives
                if too_large:
                    await self._refuse(scope, receive, send)
                    return
                # The HTTP server delivers no more than Content-Length bytes as the body:
                # nothing to count.
                await self.app(scope, receive, send)
                return
        received = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    too_large = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # Once the body is too large, whatever the app answers (FastAPI turns any error
            # while reading the body into a 400) gives way to the 413.
            if not too_large:
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            pass
        if too_large:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = errors.problem(413, "body-too-large", f"request bodies are limited to {self.limit} bytes",
                              instance=scope.get("path"))
        response = JSONResponse(body, status_code=413, media_type=errors.PROBLEM_JSON,
                                headers={"Connection": "close"})
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


#: Collect the youngest generation every this many allocations (CPython's default: 700).
GC_YOUNGEST_THRESHOLD = 10_000


def tune_gc_for_serving() -> None:
    """Set the garbage collector up for a long-running server, once start-up is done.

    The objects made at start-up (modules, the app, its routes and models) live as long as
    the process: they are frozen out of the collector, so that a full collection no longer
    walks them. The youngest generation is collected every ``GC_YOUNGEST_THRESHOLD``
    allocations instead of 700, so that the objects of requests in flight die young rather
    than being promoted and collected again and again. Measured under 64 concurrent
    recording clients: the time spent collecting went from about 150 to 20 us per request,
    and the longest pause from 66 to 16 ms (docs/PERFORMANCE.md).
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNGEST_THRESHOLD, older, oldest)


def _load_proof_nodes(proofs: NodeCache) -> None:
    """Load the stored nodes of the tree as it is now (the background load of a served app)."""
    try:
        proofs.ensure(proofs.store.head().size)
    except NodeCacheClosed:
        pass  # shutting down
    except StoredNodesMissing as e:
        # Proofs answer 503 nodes-missing until the store is repaired; say so now.
        logger.warning("proofs unavailable: %s (run transfer-ledger verify)", e)
    except Exception:  # noqa: BLE001 - a background thread reports, proofs load on demand
        logger.exception("loading the stored Merkle nodes failed; proofs will load them on demand")


def _run_retention(ledger: Any, interval: int, stop: threading.Event, metrics: Metrics) -> None:
    """``serve --retention-interval``: the retention job every ``interval`` seconds until the app stops."""
    while not stop.wait(interval):
        try:
            report = ledger.run_retention()
            metrics.record_retention(report)
            logger.info("retention: %d transfer(s) erased, %d held, %d refused, %d actor log day(s) erased",
                        len(report["erased"]), len(report["held"]), len(report["failed"]),
                        len(report["actor_logs"]))
        except Exception:  # noqa: BLE001 - the next run tries again
            metrics.record_retention(None)
            logger.exception("the retention job failed; it runs again in %d s", interval)


def create_app(settings: Settings, *, serving: bool = False) -> FastAPI:
    """The API over the ledger configured by ``settings`` (opened at start-up).

    Proofs are answered from the process's in-memory copy of the stored Merkle nodes
    (:class:`ledger.service.node_cache.NodeCache`; 64 bytes a leaf), read from the store as the tree grows.

    ``serving``: what ``transfer-ledger serve`` and ``uvicorn --factory`` run. Once started,
    the process's garbage collector is set up for serving (:func:`tune_gc_for_serving`) and
    the copy of the nodes is loaded in the background, so that the first proof does not wait
    for it. Off for apps made in-process (tests, embedding): the copy loads at the first proof.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.settings_file.exists():
            raise ConfigError(f"{settings.data_dir} is not initialized: run `transfer-ledger init`")
        ledger = bootstrap.open_ledger(settings)
        proofs: NodeCache | None = None
        stop, retention, metrics_server = threading.Event(), None, None
        try:
            app.state.ledger = ledger
            app.state.principals = bootstrap.principals_of(ledger, cache_seconds=AUTH_CACHE_SECONDS)
            app.state.signer = bootstrap.signer_of(settings)
            ledger.idempotency  # noqa: B018 - made before the first request
            app.state.cosignatures = CosignatureStore(SqlAccess(ledger.recorder))
            console.open_console(app, settings.data_dir)
            app.state.metrics.watch(app, settings.data_dir)
            if serving and settings.metrics_port:
                metrics_server, _ = start_http_server(settings.metrics_port, addr="127.0.0.1",
                                                      registry=app.state.metrics.registry)
            app.state.projections = runner_of(ledger, cache_limit=READ_MODEL_CACHE,  # tables on first read
                                              read_only=ledger.read_only)
            if ledger.read_only:  # a replica (or a read-only database): nothing to commit, reads logged
                app.state.read_only = True  # to a file or refused, every command refused
                ledger.consultations.local_file = settings.consultation_log_file
            else:
                ledger.start_group_commit(max_batch=settings.commit_batch, max_queue=settings.commit_queue)
            if serving and not ledger.read_only:  # in-process apps write the log at each query of it,
                ledger.consultations.start(settings.consultation_flush_ms / 1000)  # every 500 reads, at shutdown
            app.state.proofs = proofs = NodeCache(ledger.store)
            if settings.retention_interval and ledger.event_format == 2 and not ledger.read_only:
                retention = threading.Thread(target=_run_retention,
                                             args=(ledger, settings.retention_interval, stop, app.state.metrics),
                                             name="retention", daemon=True)
                retention.start()
            if serving:
                tune_gc_for_serving()
                warm = threading.Thread(target=_load_proof_nodes, args=(proofs,), name="proof-nodes", daemon=True)
                warm.start()
            yield
        finally:
            if metrics_server is not None:
                metrics_server.shutdown()
            stop.set()
            if retention is not None:
                retention.join(timeout=30)
            if proofs is not None:
                proofs.close()  # a load in progress stops at its next batch
            ledger.close()

    app = FastAPI(
        title="Transfer Ledger",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(refuse_commands_if_read_only)],
        openapi_tags=[
            {"name": "transfers", "description": "Transfers and onward transfers of personal data"},
            {"name": "authorizations", "description": "Art. 36 §3 requests, decisions and revocations"},
            {"name": "preservations", "description": "Art. 42 preservation of stored data, its extension, "
             "follow-up and release"},
            {"name": "ledger", "description": "Feed, checkpoints and Merkle proofs"},
            {"name": "health", "description": "Liveness"},
        ],
    )
    errors.install(app)
    routers = (import_router,  # before router: /v1/transfers/batch is not a transfer id
               router, witness_router, audit_router, custody_router, preservation_router, referral_router,
               consultation_router, control_router, report_router, metrics_router)
    for included in routers:
        app.include_router(included)
    console.install(app)
    _problems_as_problem_json(app)

    @app.get("/problems/{rule}", include_in_schema=False)
    def problem_type(rule: str) -> dict[str, Any]:
        return {"type": errors.PROBLEM_BASE + rule, "rule": rule,
                "see": "docs/API.md lists every rule, its status code and meaning"}

    app.state.read_only = settings.read_only
    app.state.routes = [*(r for included in routers for r in included.routes),
                        *(r for r in app.router.routes if getattr(r, "methods", None))]
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    app.state.metrics = Metrics()
    app.add_middleware(Observe, metrics=app.state.metrics)  # outermost: ids, counts and logs every answer
    return app


#: Methods that never record anything: the only ones a read-only server answers.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def refuse_commands_if_read_only(request: Request) -> None:
    """``serve --read-only`` (a replica): every command is refused before anything is read or
    checked, with 503 ``read-only`` (docs/decisions/0019-read-only-replicas.md). The console's
    own forms (its login) are its business: they record nothing."""
    if (request.method not in SAFE_METHODS and getattr(request.app.state, "read_only", False)
            and request.url.path.startswith("/v1/")):
        raise errors.ApiProblem(503, "read-only", "this server is read-only (a replica): nothing was recorded; "
                                "send commands to the primary")


def _problems_as_problem_json(app: FastAPI) -> None:
    """Declare error responses as ``application/problem+json`` (the media type they are sent with)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for operations in schema.get("paths", {}).values():
                for method, operation in operations.items():
                    _declare_app_wide_problems(operation)
                    if method.upper() not in SAFE_METHODS:
                        _declare_read_only(operation)
                    for status, response in operation.get("responses", {}).items():
                        schemas = [media for media in response.get("content", {}).values() if "schema" in media]
                        if status[:1] in ("4", "5") and schemas:
                            response["content"] = {errors.PROBLEM_JSON: schemas[0]}
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


#: Answers any route may give, whatever it declares: the app gives them itself.
_APP_WIDE = {
    "401": responses.UNAUTHENTICATED_RULES,
    "400": responses.MALFORMED_JSON,
    "413": responses.body_too_large(MAX_BODY_BYTES),
}


def _declare_app_wide_problems(operation: dict[str, Any]) -> None:
    """401 where a key is required; 400 and 413 where a body is read."""
    wanted = (["401"] if operation.get("security") else []) + (["400", "413"] if "requestBody" in operation else [])
    declared = operation.setdefault("responses", {})
    for status in wanted:
        declared.setdefault(status, {
            "description": _APP_WIDE[status],
            "content": {errors.PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        })


def _declare_read_only(operation: dict[str, Any]) -> None:
    """A command's 503 also says ``read-only`` (the answer of a read-only server)."""
    declared = operation.setdefault("responses", {})
    if "503" in declared:
        declared["503"]["description"] += f"; {responses.READ_ONLY}"
    else:
        declared["503"] = {
            "description": responses.READ_ONLY,
            "content": {errors.PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }


def create_app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` (settings from the environment)."""
    return create_app(Settings.from_env(), serving=True)

