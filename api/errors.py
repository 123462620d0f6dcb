"""RFC 9457 problem details for every error the API returns.

``type`` is a stable URI reference per rule: ``/problems/<rule>`` (served by
the API itself, with the rule's description), e.g.
``/problems/onward-transfer-not-authorized``. ``detail`` is for people;
``rule``, ``field``, ``article`` and ``values`` are for programs.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from domain.errors import DomainError, InvalidInput, NotFound, RuleViolation
from domain.validation import is_rule_error, rule_detail, rule_values
from ledger.logs import current_request_id
from ledger.storage.store import ReadOnly

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "/problems/"

#: Rules that are about who asks, not what is asked.
FORBIDDEN_RULES = {"forbidden", "not-your-party", "role-required"}


class ApiProblem(Exception):
    """An error raised by the API layer itself (authentication, access, limits)."""

    def __init__(self, status: int, rule: str, detail: str, *, title: str | None = None,
                 field: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.rule, self.detail = status, rule, detail
        self.title = title or _TITLES.get(status, "Error")
        self.field = field
        self.headers = headers or {}


_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Refused",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid request",
    428: "Precondition required",
    500: "Internal server error",
    503: "Unavailable",
}


def problem(status: int, rule: str, detail: str, *, title: str | None = None, field: str | None = None,
            extra: dict[str, Any] | None = None, instance: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + rule,
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "rule": rule,
    }
    if field:
        body["field"] = field
    if instance:
        body["instance"] = instance
    if extra:
        body.update(extra)
    rid = current_request_id()
    if rid is not None:
        body["request_id"] = rid
    return body


def problem_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def domain_status(error: DomainError) -> int:
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, RuleViolation):
        return 409
    return 422


def domain_problem(error: DomainError, instance: str | None = None) -> tuple[int, dict[str, Any]]:
    status = domain_status(error)
    extra: dict[str, Any] = {}
    if error.article:
        extra["article"] = error.article
    if error.values:
        extra["values"] = error.values
    title = {404: "Not found", 409: "Refused by a rule", 422: "Invalid request"}[status]
    return status, problem(status, error.rule, error.detail, title=title, field=error.field,
                           extra=extra, instance=instance)


def _field_of(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or ".".join(str(p) for p in loc)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem."""

    @app.exception_handler(DomainError)
    async def on_domain_error(request: Request, error: DomainError) -> JSONResponse:
        status, body = domain_problem(error, request.url.path)
        return problem_response(status, body)

    @app.exception_handler(ApiProblem)
    async def on_api_problem(request: Request, error: ApiProblem) -> JSONResponse:
        return problem_response(
            error.status,
            problem(error.status, error.rule, error.detail, title=error.title, field=error.field,
                    instance=request.url.path),
            headers=error.headers,
        )

    @app.exception_handler(ReadOnly)
    async def on_read_only(request: Request, error: ReadOnly) -> JSONResponse:
        # ``serve --read-only`` (a replica): what was asked would write; nothing was written.
        return problem_response(503, problem(503, "read-only", str(error), instance=request.url.path))

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = error.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":
            where = first.get("ctx", {}).get("error", "")
            return _malformed_json(request, f"the body is not valid JSON: {where}".rstrip(": "))
        shape = [e for e in errors if not is_rule_error(e)]
        if errors and not shape:  # well-formed JSON that a rule of the domain refuses: that rule's problem
            refused = errors[0]
            field = _field_of(tuple(refused.get("loc", ())))
            status, body = domain_problem(InvalidInput(
                rule_detail(refused, field), rule=refused["type"], field=field, values=rule_values(refused),
            ), request.url.path)
            return problem_response(status, body)
        first = shape[0]
        field = _field_of(tuple(first.get("loc", ())))
        message = str(first.get("msg", "invalid"))
        detail = f"{field}: {message}" if field else message
        invalid = [
            {"field": _field_of(tuple(e.get("loc", ()))), "message": str(e.get("msg", ""))} for e in shape[:20]
        ]
        return problem_response(
            422, problem(422, "invalid-input", detail, field=field, extra={"errors": invalid},
                         instance=request.url.path)
        )

    @app.exception_handler(Exception)
    async def on_unexpected_error(request: Request, error: Exception) -> JSONResponse:
        # The server's log has the traceback; the client learns nothing about the internals.
        return problem_response(
            500, problem(500, "internal-error", "the server failed to answer this request; it was logged",
                         instance=request.url.path)
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 400:  # FastAPI could not read the body (e.g. not UTF-8)
            return _malformed_json(request, "the body is not valid JSON (UTF-8)")
        headers = dict(getattr(error, "headers", None) or {})
        if error.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        rule = {404: "not-found", 405: "method-not-allowed"}.get(error.status_code, "http-error")
        return problem_response(
            error.status_code,
            problem(error.status_code, rule, str(error.detail), instance=request.url.path),
            headers=headers,
        )


def _malformed_json(request: Request, detail: str) -> JSONResponse:
    return problem_response(400, problem(400, "malformed-json", detail, field="body", instance=request.url.path))


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's).

    ``app.state.routes`` lists the routes flat (``create_app`` sets it: included routers are
    not flat in ``app.router.routes``).
    """
    matched = []
    for route in getattr(request.app.state, "routes", None) or request.app.router.routes:
        if getattr(getattr(route, "endpoint", None), "method_guard", False):
            continue  # answers 405 for methods the path does not have
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            matched.append(route)
    # A path a route names literally (/v1/transfers/batch) is that route's, not an id of a
    # templated one (/v1/transfers/{transfer_id}) that would answer it 404.
    literal = [r for r in matched if "{" not in getattr(r, "path", "{")]
    allowed: set[str] = set()
    for route in literal or matched:
        allowed |= set(getattr(route, "methods", None) or ())
    return sorted(allowed)


__all__ = ["ApiProblem", "InvalidInput", "domain_problem", "install", "problem", "problem_response"]
