"""The leaf: the canonical bytes that bind one stored event into the ledger.

A leaf is the RFC 8785 (JSON Canonicalization Scheme) serialization of::

    {"format": "transfer-ledger/leaf/v1",
     "leaf_index": <int>,                # gap-free, 0-based
     "originator_id": <str>,             # the aggregate id (UUID, hyphenated)
     "originator_version": <int>,
     "prev_leaf_hash": <64 lowercase hex>, # leaf hash of index-1; zeros at 0
     "recorded_at": <RFC 3339, UTC, "Z">,
     "state": <standard base64 of the stored state bytes>,
     "topic": <str>}

The state is taken as stored (after any compression or encryption), so
verification needs no keys. The leaf hash is RFC 9162's: SHA-256(0x00 ||
leaf bytes). ``docs/FORMAT.md`` states this byte for byte.

Every value here is an integer below 2**53 or a string, and every key is
ASCII, so RFC 8785 reduces to: keys in code-point order, no white space,
strings escaped as ECMAScript's JSON.stringify does. :func:`encode_leaf`
writes that directly (it runs for every append and every verification); the
tests cross-check it against the ``rfc8785`` package.
"""

from __future__ import annotations

import base64
import json
from binascii import b2a_base64
from json.encoder import encode_basestring
from typing import Any, NamedTuple
from uuid import UUID

LEAF_FORMAT = "transfer-ledger/leaf/v1"
ZERO_HASH = bytes(32)

_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode

#: The leaf with its keys in code-point order; %b slots take the JSON strings
#: (quoted and escaped) and the base64 and hex digits, %d the integers.
_LEAF_TEMPLATE = (
    b'{"format":"' + LEAF_FORMAT.encode("ascii") + b'","leaf_index":%d,"originator_id":%b,'
    b'"originator_version":%d,"prev_leaf_hash":"%b","recorded_at":%b,"state":"%b","topic":%b}'
)


def _json_string(value: Any) -> bytes:
    """A JSON string as RFC 8785 writes it, UTF-8 encoded.

    ``encode_basestring`` (the C escaper behind ``json.dumps(...,
    ensure_ascii=False)``) escapes exactly what ECMAScript's JSON.stringify
    does for well-formed strings: ``"``, ``\\``, the short forms ``\\b \\f
    \\n \\r \\t`` and other controls as lowercase ``\\u00xx``. Anything
    but a ``str`` (a tampered cell read back from SQLite) goes through the
    full encoder, as before, so that it hashes differently, not crashes.
    """
    if type(value) is str:
        return encode_basestring(value).encode("utf-8")
    return _dumps(value).encode("utf-8")


def originator_id_text(originator_id: UUID | str) -> str:
    """The leaf's form of an aggregate id: a UUID in its hyphenated form.

    SQLite stores UUIDs as 32 hex digits and PostgreSQL as ``uuid``; both map
    to the same text here, so a leaf does not depend on the backend.
    """
    if isinstance(originator_id, UUID):
        return str(originator_id)
    if len(originator_id) == 32:
        try:
            return str(UUID(hex=originator_id))
        except ValueError:
            pass
    return originator_id


def encode_leaf(
    leaf_index: int,
    prev_leaf_hash: bytes,
    originator_id: str,
    originator_version: int,
    topic: str,
    state: bytes,
    recorded_at: str,
) -> bytes:
    """The canonical (RFC 8785) bytes of one leaf."""
    return _LEAF_TEMPLATE % (
        int(leaf_index),
        _json_string(originator_id),
        int(originator_version),
        prev_leaf_hash.hex().encode("ascii"),
        _json_string(recorded_at),
        b2a_base64(state, newline=False),
        _json_string(topic),
    )


def leaf_document(
    leaf_index: int,
    prev_leaf_hash: bytes,
    originator_id: str,
    originator_version: int,
    topic: str,
    state: bytes,
    recorded_at: str,
) -> dict[str, Any]:
    """The leaf as a JSON object (what :func:`encode_leaf` canonicalizes)."""
    return {
        "format": LEAF_FORMAT,
        "leaf_index": leaf_index,
        "originator_id": originator_id,
        "originator_version": originator_version,
        "prev_leaf_hash": prev_leaf_hash.hex(),
        "recorded_at": recorded_at,
        "state": base64.b64encode(state).decode("ascii"),
        "topic": topic,
    }


class AppendedLeaf(NamedTuple):
    """What the store tells the application about a leaf it just appended."""

    leaf_index: int
    notification_id: int
    originator_id: str
    originator_version: int
    recorded_at: str
    leaf_hash: bytes
