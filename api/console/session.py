"""The console's sign-in: an API key entered once, kept in an encrypted, HTTP-only cookie.

The key is never put in a URL or in the browser's storage. The session cookie holds the
key, the officer and the justification the auditor gave, and the time the session ends,
sealed with AES-GCM under a key of the data dir (``console.key``, mode 0600, made at the
first start): the browser cannot read or alter it, and the server keeps no session table,
so any process of the same data dir (``--workers``) answers it. Each request authenticates
the key again: a revoked key ends its sessions at once.

Forms that change something carry a CSRF token: an HMAC of the session cookie under the
same secret, so that a page of another site can neither read nor forge it; the sign-in
form, before any session, carries the value of a random cookie set with it (double submit).
Cookies are ``HttpOnly``, ``SameSite=Strict``, limited to ``/console`` and ``Secure`` when
the console is served over HTTPS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SECRET_FILE = "console.key"
SESSION_COOKIE = "tl_console"
LOGIN_COOKIE = "tl_console_login"
#: The auditor's own trust settings (pinned checkpoint, witness policy): kept across sessions.
TRUST_COOKIE = "tl_console_trust"
SESSION_SECONDS = 8 * 3600
TRUST_SECONDS = 400 * 24 * 3600
COOKIE_PATH = "/console"
_SESSION_AAD = b"transfer-ledger console session v1"
_TRUST_AAD = b"transfer-ledger console trust v1"


def console_secret(data_dir: Path) -> bytes:
    """The data dir's console secret (32 random bytes), made once with mode 0600."""
    path = data_dir / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_bytes()
        if len(secret) != 32:
            raise ValueError(f"{path} must hold 32 bytes, not {len(secret)}: remove it to make a new one "
                             "(every console session then ends)") from None
        return secret
    secret = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as out:
        out.write(secret)
        out.flush()
        os.fsync(out.fileno())
    return secret


@dataclass(frozen=True)
class Session:
    key: str
    officer: str | None
    justification: str | None
    expires: int


class Sessions:
    """Seals and opens the console's cookies; makes and checks CSRF tokens."""

    def __init__(self, secret: bytes) -> None:
        self._aead = AESGCM(_derive(secret, b"seal"))
        self._mac = _derive(secret, b"csrf")

    def _seal(self, data: dict[str, Any], aad: bytes) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, json.dumps(data, separators=(",", ":")).encode(), aad)
        return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def _open(self, token: str | None, aad: bytes) -> dict[str, Any] | None:
        if not token or len(token) > 4096:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            data = json.loads(self._aead.decrypt(raw[:12], raw[12:], aad))
        except (ValueError, InvalidTag):
            return None
        return data if isinstance(data, dict) else None

    def seal_session(self, key: str, officer: str | None, justification: str | None) -> str:
        return self._seal({"k": key, "o": officer, "j": justification,
                           "e": int(time.time()) + SESSION_SECONDS}, _SESSION_AAD)

    def open_session(self, token: str | None) -> Session | None:
        data = self._open(token, _SESSION_AAD)
        if data is None or not isinstance(data.get("k"), str) or not isinstance(data.get("e"), int):
            return None
        if data["e"] < time.time():
            return None
        return Session(data["k"], data.get("o"), data.get("j"), data["e"])

    def seal_trust(self, trust: dict[str, Any]) -> str:
        return self._seal(trust, _TRUST_AAD)

    def open_trust(self, token: str | None) -> dict[str, Any]:
        return self._open(token, _TRUST_AAD) or {}

    def csrf_token(self, session_cookie: str) -> str:
        return hmac.new(self._mac, session_cookie.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session_cookie: str | None, given: str | None) -> bool:
        if not session_cookie or not given:
            return False
        return hmac.compare_digest(self.csrf_token(session_cookie), given)


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return hmac.new(secret, b"transfer-ledger console " + purpose, hashlib.sha256).digest()


def login_nonce() -> str:
    return secrets.token_urlsafe(24)
