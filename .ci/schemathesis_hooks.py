"""schemathesis hooks for .ci/schemathesis.sh (loaded by .ci/schemathesis.toml).

A client makes each ``Idempotency-Key`` unique per request, and the API
refuses a key reused with another body (422 ``idempotency-key-reused``, as
the IETF Idempotency-Key draft says). schemathesis draws keys from a small
space ("0", "00", ...) and so reuses them across different bodies. This hook
keeps every drawn key that the schema allows but makes it unique, so that an
``idempotency-key-reused`` in a run is a real finding; keys the schema
forbids are left as drawn, for negative testing.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import schemathesis

_ALLOWED = re.compile(r"[ -~]{1,255}\Z")
_serial = itertools.count()


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and _ALLOWED.match(key):
        headers["Idempotency-Key"] = f"{key[:230]}#{next(_serial)}"
