"""Commitments, sealed openings and key-encryption keys (docs/FORMAT.md section 17), against rfc8785."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from ledger.storage.keyring import Keyring, KeyringError
from ledger.tlog.commitment import (
    Opening,
    SealError,
    canonical_json,
    commit,
    commitment_message,
    data_key_aad,
    new_key,
    opening_aad,
    opening_plaintext,
    opens,
    seal_openings,
    unseal_openings,
    unwrap_key,
    wrap_key,
)

#: JSON values as the ledger seals them, and more: any text (no lone surrogates), exact integers.
TEXT = st.text(st.characters(exclude_categories=("Cs",)))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5),
    max_leaves=20,
)


@given(JSON)
def test_the_fast_canonical_json_is_rfc8785(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@given(TEXT, st.integers(1, 2**40), TEXT, JSON)
def test_the_commitment_message_is_rfc8785_of_the_documented_array(oid: str, version: int, path: str,
                                                                   value: Any) -> None:
    assert commitment_message(oid, version, path, value) == rfc8785.dumps(
        ["transfer-ledger/commitment/v1", oid, version, path, value])


@given(st.dictionaries(TEXT, st.tuples(st.binary(min_size=32, max_size=32), JSON), max_size=6))
def test_an_opening_written_from_its_fields_bytes_is_rfc8785_of_the_documented_object(
        fields: dict[str, tuple[bytes, Any]]) -> None:
    """The sealer writes each value's JCS once (for its commitment) and builds the opening from it:
    the same bytes as JCS of the whole object, paths in UTF-16 order (RFC 8785 section 3.2.3)."""
    import base64

    written = opening_plaintext([(path, salt, canonical_json(value)) for path, (salt, value) in fields.items()])
    assert written == rfc8785.dumps(
        {path: {"salt": base64.b64encode(salt).decode(), "value": value} for path, (salt, value) in fields.items()})


def test_opening_paths_sort_in_utf16_order_not_code_point_order() -> None:
    salt = b"s" * 32
    fields = {"\uffff": "a", "\U0001f600": "b"}  # UTF-16: D83D DE00 sorts before FFFF
    written = opening_plaintext([(path, salt, canonical_json(value)) for path, value in fields.items()])
    assert written.index("\U0001f600".encode()) < written.index("\uffff".encode())
    assert written == rfc8785.dumps({p: {"salt": "c3Nz" * 10 + "c3M=", "value": v} for p, v in fields.items()})


@given(TEXT, st.integers(-(2**53) + 1, 2**53 - 1), TEXT, TEXT)
def test_the_associated_data_are_rfc8785_of_the_documented_arrays(oid: str, version: int, cls: str,
                                                                  key_id: str) -> None:
    assert opening_aad(oid, version, cls, key_id) == rfc8785.dumps(
        ["transfer-ledger/opening/v1", oid, version, cls, key_id])
    assert data_key_aad(key_id, cls) == rfc8785.dumps(["transfer-ledger/data-key/v1", key_id, cls])


def test_a_float_goes_the_careful_way() -> None:
    assert canonical_json({"x": 1.5e300, "é": [0.1]}) == rfc8785.dumps({"x": 1.5e300, "é": [0.1]})


def test_an_opening_opens_only_its_commitment() -> None:
    salt = os.urandom(32)
    c = commit(salt, "id", 1, "subjects", ["A"])
    assert opens(c, salt, "id", 1, "subjects", ["A"])
    assert not opens(c, salt, "id", 1, "subjects", ["B"])
    assert not opens(c, salt, "id", 2, "subjects", ["A"])
    assert not opens(c, salt, "id", 1, "justification", ["A"])
    assert not opens(c, os.urandom(32), "id", 1, "subjects", ["A"])
    assert not opens("not a commitment", salt, "id", 1, "subjects", ["A"])


def test_sealed_openings_are_bound_to_their_event_class_and_key() -> None:
    key = new_key()
    aad = opening_aad("id", 1, "subject-data", "k1")
    openings = {"subjects": Opening(b"s" * 32, ["Anna"]), "justification": Opening(b"t" * 32, "why")}
    sealed = seal_openings(key, aad, openings)
    assert b"Anna" not in sealed.encode()
    assert unseal_openings(key, aad, sealed) == openings
    for other in (opening_aad("id", 2, "subject-data", "k1"), opening_aad("id", 1, "actor-log", "k1"),
                  opening_aad("id", 1, "subject-data", "k2"), opening_aad("other", 1, "subject-data", "k1")):
        with pytest.raises(SealError):
            unseal_openings(key, other, sealed)
    with pytest.raises(SealError):
        unseal_openings(new_key(), aad, sealed)
    with pytest.raises(SealError):
        unseal_openings(key, aad, sealed[:20] + ("B" if sealed[20] == "A" else "A") + sealed[21:])


def test_a_wrapped_key_unwraps_only_under_its_kek_id_and_scope() -> None:
    kek, key = new_key(), new_key()
    wrapped = wrap_key(kek, "k1", "subject-data:t1", key)
    assert unwrap_key(kek, "k1", "subject-data:t1", wrapped) == key
    for kek_, key_id, scope in ((new_key(), "k1", "subject-data:t1"), (kek, "k2", "subject-data:t1"),
                                (kek, "k1", "subject-data:t2")):
        with pytest.raises(SealError):
            unwrap_key(kek_, key_id, scope, wrapped)


def test_key_encryption_keys_are_private_files_and_destroyed_for_good(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "data-keys")
    kek = ring.for_bucket("2030-01")
    assert ring.for_bucket("2030-01") == kek  # one per bucket
    assert Keyring(tmp_path / "data-keys").for_bucket("2030-01") == kek  # another process reads the same
    path = tmp_path / "data-keys" / "kek-2030-01.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "data-keys").stat().st_mode) == 0o700
    assert ring.by_id(kek.kek_id, "2030-01") == kek
    assert ring.destroy("2030-01") == kek.kek_id
    assert not path.exists() and ring.by_id(kek.kek_id, "2030-01") is None
    assert ring.destroy("2030-01") is None
    later = ring.for_bucket("2030-01")
    assert later.kek_id != kek.kek_id and later.key != kek.key  # a new key never takes an old id
    assert ring.buckets() == ["2030-01"]
    with pytest.raises(KeyringError):
        ring.for_bucket("../etc")


def test_the_erasure_journal_survives_a_torn_last_line(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "data-keys")
    ring.journal({"key_id": "a"})
    ring.journal({"key_id": "b"})
    with open(ring.journal_file, "a", encoding="utf-8") as f:
        f.write('{"key_id": "c"')  # a crash cut the write
    assert [e["key_id"] for e in ring.journaled()] == ["a", "b"]
    assert stat.S_IMODE(ring.journal_file.stat().st_mode) == 0o600
