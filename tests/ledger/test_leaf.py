"""The leaf encoding is RFC 8785 canonical JSON: cross-checked with ``rfc8785``."""

from __future__ import annotations

import json
import string

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.tlog.leaf import LEAF_FORMAT, encode_leaf, leaf_document, originator_id_text

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)


@settings(max_examples=500, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=2**53 - 1),
    prev=st.binary(min_size=32, max_size=32),
    originator_id=texts,
    version=st.integers(min_value=1, max_value=2**53 - 1),
    topic=texts,
    state=st.binary(max_size=300),
    recorded_at=texts,
)
def test_encoding_equals_rfc8785(index: int, prev: bytes, originator_id: str, version: int, topic: str,
                                 state: bytes, recorded_at: str) -> None:
    args = (index, prev, originator_id, version, topic, state, recorded_at)
    assert encode_leaf(*args) == rfc8785.dumps(leaf_document(*args))


def test_control_characters_and_unicode_are_escaped_as_jcs_requires() -> None:
    topic = 'tl:"quoted"\\\n\t\x01\x1f é € 😀 \u2028'
    data = encode_leaf(0, bytes(32), "a", 1, topic, b"", "2026-01-01T00:00:00Z")
    assert data == rfc8785.dumps(leaf_document(0, bytes(32), "a", 1, topic, b"", "2026-01-01T00:00:00Z"))
    assert b"\\u0001" in data and b"\\u001f" in data and "😀".encode() in data


def test_leaf_bytes_decode_to_the_documented_object() -> None:
    data = encode_leaf(7, bytes(range(32)), "3f1c0c1e-0000-4000-8000-000000000001", 2, "t",
                       b"\x00\xff", "2026-03-01T09:30:00.250000Z")
    obj = json.loads(data)
    assert obj == {
        "format": LEAF_FORMAT,
        "leaf_index": 7,
        "originator_id": "3f1c0c1e-0000-4000-8000-000000000001",
        "originator_version": 2,
        "prev_leaf_hash": bytes(range(32)).hex(),
        "recorded_at": "2026-03-01T09:30:00.250000Z",
        "state": "AP8=",
        "topic": "t",
    }
    assert list(obj) == sorted(obj)  # keys in code-point order, as RFC 8785 sorts them


def test_originator_ids_have_one_text_form_on_every_backend() -> None:
    hyphenated = "3f1c0c1e-0000-4000-8000-000000000001"
    assert originator_id_text(hyphenated.replace("-", "")) == hyphenated  # SQLite's storage form
    assert originator_id_text(hyphenated) == hyphenated
    assert originator_id_text("not-a-uuid") == "not-a-uuid"
    assert all(c in string.hexdigits + "-" for c in originator_id_text("f" * 32))


@settings(max_examples=300, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=2**53 - 1),
    originator_id=st.text(alphabet='"\\/\b\f\n\r\t\x00\x1f\x7f\u2028\u2029é€😀abc-0', max_size=40),
    topic=st.text(alphabet='"\\/\b\f\n\r\t\x00\x01\x1f\x7f\u2028\u2029é€😀tl:Ab', max_size=40),
    state=st.binary(min_size=0, max_size=4000),
)
def test_escapes_and_long_states_equal_rfc8785(index: int, originator_id: str, topic: str, state: bytes) -> None:
    """Every escaped character JCS names, and states long enough that a line-wrapping
    base64 would differ."""
    args = (index, bytes(32), originator_id, 1, topic, state, "2026-03-01T09:30:00.250000Z")
    assert encode_leaf(*args) == rfc8785.dumps(leaf_document(*args))


def _previous_encode_leaf(leaf_index, prev_leaf_hash, originator_id, originator_version, topic, state,
                          recorded_at):  # type: ignore[no-untyped-def]
    """The encoder as first written (string concatenation): the oracle for inputs
    rfc8785 does not take, such as a tampered cell read back as a number."""
    import base64

    dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
    return (
        '{"format":"' + LEAF_FORMAT + '","leaf_index":' + str(int(leaf_index))
        + ',"originator_id":' + dumps(originator_id)
        + ',"originator_version":' + str(int(originator_version))
        + ',"prev_leaf_hash":"' + prev_leaf_hash.hex()
        + '","recorded_at":' + dumps(recorded_at)
        + ',"state":"' + base64.b64encode(state).decode("ascii")
        + '","topic":' + dumps(topic) + "}"
    ).encode("utf-8")


def test_tampered_cells_of_other_types_encode_as_before() -> None:
    """SQLite may hand back a number or NULL where text was stored: the leaf then
    hashes differently (verification reports it), and does not crash."""
    for recorded_at, topic, oid in [(20260301, "t", "a"), ("2026-03-01T00:00:00Z", None, "a"),
                                    ("2026-03-01T00:00:00Z", 1.5, 7), (True, "t", "a")]:
        args = (3, bytes(32), oid, 1, topic, b"x", recorded_at)
        assert encode_leaf(*args) == _previous_encode_leaf(*args)


def test_lone_surrogates_raise_unicode_encode_error_as_before() -> None:
    with pytest.raises(UnicodeEncodeError):
        encode_leaf(0, bytes(32), "a", 1, "bad \ud800 topic", b"", "2026-01-01T00:00:00Z")
