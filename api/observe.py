"""What the server observes of each request: its id, its metrics and its log line.

One middleware, outermost, for every request:

- **request id**: the client's ``X-Request-Id`` when it is 1 to 64 letters, digits, ``-``,
  ``_`` or ``.``, else a new random one; returned in the ``X-Request-Id`` header, put in
  every problem document (``request_id``, by ``api.errors``) and in every log line written
  while the request is answered (a ``contextvars`` variable);
- **metrics**: requests by method, route template and status, their latency, problems
  by status and rule (``api.metrics``);
- **one access log line** (logger ``transfer_ledger.access``): method, route template,
  status, duration, request id. Never the path's ids, the query string or a body: no
  personal data in logs (docs/OPERATIONS.md, "Logs").
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import Metrics
from ledger.logs import request_id

REQUEST_ID_HEADER = b"x-request-id"
_GIVEN_ID = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")
_PROBLEM_JSON = b"application/problem+json"

access_log = logging.getLogger("transfer_ledger.access")


class Observe:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = dict(scope.get("headers") or ()).get(REQUEST_ID_HEADER, b"")
        rid = given.decode() if _GIVEN_ID.match(given) else secrets.token_hex(8)
        token = request_id.set(rid)
        seen: dict[str, Any] = {"status": 500, "problem": False, "body": b""}

        async def observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                headers = list(message.get("headers") or ())
                seen["problem"] = dict(headers).get(b"content-type", b"").startswith(_PROBLEM_JSON)
                message = {**message, "headers": [*headers, (REQUEST_ID_HEADER, rid.encode())]}
            elif message["type"] == "http.response.body" and seen["problem"] and len(seen["body"]) < 65536:
                seen["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "GET")
            status = seen["status"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            rule = _rule(seen["body"]) if seen["problem"] else None
            if rule is not None:
                self.metrics.problems.labels(str(status), rule).inc()
            access_log.info("%s %s %d %.1f ms", method, route, status, elapsed * 1000,
                            extra={"method": method, "route": route, "status": status,
                                   "duration_ms": round(elapsed * 1000, 3), **({"rule": rule} if rule else {})})
            request_id.reset(token)


def _rule(body: bytes) -> str:
    try:
        rule = json.loads(body).get("rule")
    except (ValueError, AttributeError):
        return "unknown"
    return rule if isinstance(rule, str) and len(rule) <= 64 else "unknown"
