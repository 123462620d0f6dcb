"""Salted commitments to personal values, their openings, and the data keys that seal them.

docs/FORMAT.md, "Personal data (event format 2)", states these bytes; an
outside verifier recomputes a commitment from an opening with nothing but
HMAC-SHA-256 and RFC 8785.

- **Commitment** to ``value`` at ``path`` of the event ``(originator_id,
  originator_version)``: ``HMAC-SHA-256(key=salt, msg=JCS([COMMITMENT_TAG,
  originator_id, originator_version, path, value]))`` with a fresh 32-byte
  salt per field, written in the event state as ``commitment:<64 hex>``.
  Without the salt the commitment reveals nothing, not even to someone who
  guesses the value.
- **Opening** of one event's fields of one retention class: ``JCS({path:
  {"salt": base64, "value": value}})``, encrypted with AES-256-GCM under a
  data key, a fresh 12-byte nonce, and the associated data ``JCS([OPENING_TAG,
  originator_id, originator_version, retention_class, key_id])``: a sealed
  opening cannot be moved to another event, class or key.
- **Data key** (AES-256), wrapped with AES-256-GCM under a key-encryption key,
  associated data ``JCS([DATA_KEY_TAG, key_id, scope])``.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import orjson
import rfc8785
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.personal import COMMITMENT_PREFIX, is_commitment

COMMITMENT_TAG = "transfer-ledger/commitment/v1"
OPENING_TAG = "transfer-ledger/opening/v1"
DATA_KEY_TAG = "transfer-ledger/data-key/v1"
SALT_SIZE = 32
NONCE_SIZE = 12
KEY_SIZE = 32


_SORT_KEYS = orjson.OPT_SORT_KEYS
_MAX_EXACT_INT = 2**53


def _plain(value: Any) -> bool:
    """Whether RFC 8785 of ``value`` is what ``orjson`` writes with sorted keys: strings (both
    escape as ECMAScript's JSON.stringify does: see ``ledger.tlog.leaf``), exact integers,
    booleans, null, lists, and objects with ASCII keys (code-point order is UTF-16 order there).
    Not floats: ECMAScript writes them otherwise."""
    kind = type(value)
    if kind is str:
        return True
    if kind is list or kind is tuple:
        return all(type(item) is str for item in value) or all(_plain(item) for item in value)
    if kind is int:
        return bool(-_MAX_EXACT_INT < value < _MAX_EXACT_INT)
    if value is None or kind is bool:
        return True
    if kind is dict:
        return all(type(k) is str and k.isascii() and _plain(v) for k, v in value.items())
    return False


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) bytes of ``value``: ``orjson`` where it writes the same bytes (every value
    the ledger seals), the ``rfc8785`` package otherwise (tests check both agree)."""
    if type(value) is str or _plain(value):
        try:
            return orjson.dumps(value, option=_SORT_KEYS)
        except orjson.JSONEncodeError:  # a lone surrogate, a value nested too deep: rfc8785 decides
            pass
    return rfc8785.dumps(value)


class SealError(Exception):
    """An opening or a wrapped key does not decrypt, or does not match its commitment."""


_MESSAGE_HEAD = b'["' + COMMITMENT_TAG.encode("ascii") + b'",'


class Committer:
    """Commitments to the fields of one event ``(originator_id, originator_version)``: the
    message's head, JCS of ``[COMMITMENT_TAG, originator_id, originator_version, ``, written once."""

    def __init__(self, originator_id: str, originator_version: int) -> None:
        self.originator_id, self.originator_version = originator_id, originator_version
        exact = type(originator_version) is int and -_MAX_EXACT_INT < originator_version < _MAX_EXACT_INT
        self._head = b"%b%b,%d," % (_MESSAGE_HEAD, canonical_json(originator_id), originator_version) \
            if exact else None

    def message(self, path: str, value: Any, value_json: bytes | None = None) -> bytes:
        """JCS of ``[COMMITMENT_TAG, originator_id, originator_version, path, value]``, written from
        the JCS of each member (``value_json``: the value's, when the caller has it already)."""
        if self._head is None:
            return rfc8785.dumps([COMMITMENT_TAG, self.originator_id, self.originator_version, path, value])
        return b"%b%b,%b]" % (self._head, canonical_json(path),
                              canonical_json(value) if value_json is None else value_json)

    def __call__(self, salt: bytes, path: str, value: Any, value_json: bytes | None = None) -> str:
        """The commitment to ``value`` at ``path``, as the event state holds it (``commitment:<64 hex>``)."""
        return COMMITMENT_PREFIX + hmac.digest(salt, self.message(path, value, value_json), "sha256").hex()


def commitment_message(originator_id: str, originator_version: int, path: str, value: Any) -> bytes:
    """The bytes the commitment's HMAC is computed over (:meth:`Committer.message`)."""
    return Committer(originator_id, originator_version).message(path, value)


def commit(salt: bytes, originator_id: str, originator_version: int, path: str, value: Any) -> str:
    """The commitment to ``value``, as the event state holds it (``commitment:<64 hex>``)."""
    return Committer(originator_id, originator_version)(salt, path, value)


def opens(commitment: str, salt: bytes, originator_id: str, originator_version: int, path: str,
          value: Any) -> bool:
    """Whether ``(salt, value)`` opens ``commitment`` (compared in constant time)."""
    if not is_commitment(commitment):
        return False
    return hmac.compare_digest(commit(salt, originator_id, originator_version, path, value), commitment)


_OPENING_HEAD = b'["' + OPENING_TAG.encode("ascii") + b'",'
_DATA_KEY_HEAD = b'["' + DATA_KEY_TAG.encode("ascii") + b'",'


def opening_aad(originator_id: str, originator_version: int, retention_class: str, key_id: str) -> bytes:
    """JCS of ``[OPENING_TAG, originator_id, originator_version, retention_class, key_id]``."""
    if type(originator_version) is not int or not -_MAX_EXACT_INT < originator_version < _MAX_EXACT_INT:
        return rfc8785.dumps([OPENING_TAG, originator_id, originator_version, retention_class, key_id])
    return b"%b%b,%d,%b,%b]" % (_OPENING_HEAD, canonical_json(originator_id), originator_version,
                                canonical_json(retention_class), canonical_json(key_id))


def data_key_aad(key_id: str, scope: str) -> bytes:
    """JCS of ``[DATA_KEY_TAG, key_id, scope]``."""
    return b"%b%b,%b]" % (_DATA_KEY_HEAD, canonical_json(key_id), canonical_json(scope))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


@dataclass(frozen=True)
class Opening:
    """A field's salt and value: what opens its commitment."""

    salt: bytes
    value: Any


def opening_plaintext(fields: list[tuple[str, bytes, bytes]]) -> bytes:
    """JCS of ``{path: {"salt": base64, "value": value}}``, from each field's path, salt and the JCS
    of its value (the bytes its commitment was computed over: the value is written once)."""
    if all(path.isascii() for path, _, _ in fields):
        ordered = sorted(fields)  # ASCII: code-point order is UTF-16 order (paths are distinct)
    else:
        ordered = sorted(fields, key=lambda f: f[0].encode("utf-16-be"))  # RFC 8785 section 3.2.3
    return b"{%b}" % b",".join([
        b'%b:{"salt":"%b","value":%b}' % (canonical_json(path), base64.b64encode(salt), value)
        for path, salt, value in ordered])


def seal_plaintext(key: bytes | AESGCM, aad: bytes, plain: bytes) -> str:
    """Encrypt an opening's plaintext: base64 of nonce || AES-GCM ciphertext (``key`` the data
    key, or an ``AESGCM`` made of it, reused across events)."""
    nonce = os.urandom(NONCE_SIZE)
    cipher = key if isinstance(key, AESGCM) else AESGCM(key)
    return _b64(nonce + cipher.encrypt(nonce, plain, aad))


def seal_openings(key: bytes | AESGCM, aad: bytes, openings: dict[str, Opening]) -> str:
    """Encrypt one event's openings of one class (:func:`opening_plaintext`, :func:`seal_plaintext`)."""
    return seal_plaintext(key, aad, opening_plaintext(
        [(path, o.salt, canonical_json(o.value)) for path, o in openings.items()]))


def unseal_openings(key: bytes, aad: bytes, sealed: str) -> dict[str, Opening]:
    """The openings :func:`seal_openings` encrypted; :class:`SealError` if they do not decrypt."""
    try:
        raw = _unb64(sealed)
        plain = AESGCM(key).decrypt(raw[:NONCE_SIZE], raw[NONCE_SIZE:], aad)
        fields = json.loads(plain)  # RFC 8785 is JSON
        return {path: Opening(_unb64(o["salt"]), o["value"]) for path, o in fields.items()}
    except (InvalidTag, ValueError, KeyError, TypeError) as e:
        raise SealError(f"opening does not decrypt: {type(e).__name__}") from None


def wrap_key(kek: bytes | AESGCM, key_id: str, scope: str, key: bytes) -> str:
    """A data key wrapped under a key-encryption key: base64 of nonce || ciphertext."""
    nonce = os.urandom(NONCE_SIZE)
    cipher = kek if isinstance(kek, AESGCM) else AESGCM(kek)
    return _b64(nonce + cipher.encrypt(nonce, key, data_key_aad(key_id, scope)))


def unwrap_key(kek: bytes, key_id: str, scope: str, wrapped: str) -> bytes:
    try:
        raw = _unb64(wrapped)
        return AESGCM(kek).decrypt(raw[:NONCE_SIZE], raw[NONCE_SIZE:], data_key_aad(key_id, scope))
    except (InvalidTag, ValueError) as e:
        raise SealError(f"data key {key_id} does not unwrap: {type(e).__name__}") from None


def new_salts(count: int) -> list[bytes]:
    """``count`` fresh salts from one read of the system's random source."""
    pool = os.urandom(SALT_SIZE * count)
    return [pool[i * SALT_SIZE:(i + 1) * SALT_SIZE] for i in range(count)]


def new_key() -> bytes:
    return os.urandom(KEY_SIZE)


def new_key_id() -> str:
    """32 hex digits: the time in milliseconds (48 bits), then 80 random bits. Never the id of an
    earlier key, and in the order keys are made, so that the indexes on key ids grow at their
    end (one page per batch of new keys, not one page per key)."""
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"
