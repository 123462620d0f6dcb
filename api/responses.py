"""The problem answers routes declare in the OpenAPI document (``responses=``), written once.

The texts every router shares are here; a router adds the ones only it answers with
(the role its 403 needs, the rules its 409 and 422 name) through :func:`problems`.
"""

from __future__ import annotations

from typing import Any

from api.schemas import Problem

#: The 401 of a route that needs a key (``UNAUTHENTICATED_RULES`` also names its rules).
UNAUTHENTICATED = "No API key, or an unknown or revoked one"


def named(text: str, *rules: str) -> str:
    """``text`` followed by the rules it answers with: ``text (`a`, `b`)``."""
    return f"{text} ({', '.join(f'`{rule}`' for rule in rules)})"


UNAUTHENTICATED_RULES = named(UNAUTHENTICATED, "authentication-required", "invalid-api-key")
#: The 400 of a route that reads a body.
MALFORMED_JSON = named("The body is not valid JSON", "malformed-json")


def body_too_large(limit: int | None = None) -> str:
    """The 413 of a route that reads a body; ``limit``: the size it states, if any."""
    return named("Request body too large" if limit is None else f"Request body larger than {limit} bytes",
                 "body-too-large")


def problems(texts: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """Problem answers (RFC 9457 ``Problem``) by status, each with its description."""
    return {status: {"model": Problem, "description": text} for status, text in texts.items()}


#: The answers of a route that reads personal data, beside its own: the consultation log's.
PERSONAL_READ = problems({
    428: named("The reader's Party requires a justification for every read of personal data: send it in "
               "`X-Justification` (LED art. 25(1))", "justification-required"),
    503: named("The consultation log cannot take the read (its database is not being written): nothing was "
               "answered; retry after `Retry-After` seconds", "consultation-log-unavailable"),
})


#: The 503 of every command on a read-only server (``serve --read-only``, a replica); ``api.app``
#: declares it on every command.
READ_ONLY = named("This server is read-only (`serve --read-only`, a replica): nothing was recorded; send "
                  "commands to the primary", "read-only")
