"""An independent verifier written from docs/FORMAT.md alone.

It uses only hashlib, base64, json, rfc8785 and cryptography: none of the
ledger's own leaf, Merkle, note or verification code. It checks (a) that the
worked example printed in FORMAT.md recomputes to the values printed there,
and (b) that a real ledger's rows, read with SQL, recompute to the stored
leaf hashes, subtree nodes, head and signed checkpoints.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ledger.service.checkpoints import sign_current_checkpoint
from ledger.tlog.keys import parse_signing_key
from tests.support.builders import actor, granted_chain, onward, transfer

FORMAT_MD = Path(__file__).resolve().parents[2] / "docs" / "FORMAT.md"

LEAF_KEYS = [
    "format", "leaf_index", "originator_id", "originator_version",
    "prev_leaf_hash", "recorded_at", "state", "topic",
]
RECORDED_AT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{6})?Z")
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ZERO_HASH = bytes(32)
EM_DASH = "\u2014"
ED25519 = b"\x01"  # the signature type byte


# -- FORMAT.md -------------------------------------------------------------------


def example_blocks() -> dict[str, str]:
    """The fenced blocks labelled ``example=NAME``, by name, without the final line end."""
    text = FORMAT_MD.read_text("utf-8")
    found = re.findall(r"^```\w+ example=([a-z0-9-]+)\n(.*?)\n```$", text, re.M | re.S)
    blocks = dict(found)
    assert len(blocks) == len(found), "two example blocks share a name"
    return blocks


def key_values(block: str) -> dict[str, str]:
    """``name = value`` lines."""
    return dict(line.split(" = ", 1) for line in block.splitlines())


def example_inputs() -> list[tuple[int, str, int, str, str]]:
    """Rows of the worked example's table: leaf, originator_id, version, topic, recorded_at."""
    rows = re.findall(
        r"^\| (\d+) \| `([0-9a-f]{32})` \| (\d+) \| `([^`]+)` \| `([^`]+)` \|$",
        FORMAT_MD.read_text("utf-8"),
        re.M,
    )
    return [(int(i), oid, int(v), topic, when) for i, oid, v, topic, when in rows]


# -- the formats, as FORMAT.md states them ------------------------------------------


class Rejected(ValueError):
    """A key or note that FORMAT.md says to reject."""


def b64decode_strict(text: str) -> bytes:
    """Section 1: standard, padded base64 with zero unused bits."""
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise Rejected(f"not base64: {text!r}") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise Rejected(f"not canonical base64: {text!r}")
    return raw


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(leaf: bytes) -> bytes:
    return sha256(b"\x00" + leaf)


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def leaf_bytes(
    index: int, prev: bytes, originator_id: Any, version: int, topic: str, state: bytes, recorded_at: str
) -> bytes:
    """Section 4: the RFC 8785 serialization of the leaf object."""
    return rfc8785.dumps({
        "format": "transfer-ledger/leaf/v1",
        "leaf_index": index,
        "originator_id": str(uuid.UUID(str(originator_id))),
        "originator_version": version,
        "prev_leaf_hash": prev.hex(),
        "recorded_at": recorded_at,
        "state": b64(state),
        "topic": topic,
    })


def mth(hashes: list[bytes]) -> bytes:
    """Section 6: the Merkle Tree Hash, by its recursive definition."""
    if not hashes:
        return sha256(b"")
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return node_hash(mth(hashes[:k]), mth(hashes[k:]))


class StreamingTree:
    """Section 6's streaming computation; collects the nodes of section 7."""

    def __init__(self) -> None:
        self.size = 0
        self.frontier: list[bytes] = []
        self.nodes: dict[tuple[int, int], bytes] = {}

    def append(self, h: bytes) -> None:
        i, j = self.size, 0
        while i & 1:
            h = node_hash(self.frontier.pop(), h)
            i >>= 1
            j += 1
            self.nodes[(j, self.size >> j)] = h
        self.frontier.append(h)
        self.size += 1

    def root(self) -> bytes:
        if not self.frontier:
            return sha256(b"")
        r = self.frontier[-1]
        for h in reversed(self.frontier[:-1]):
            r = node_hash(h, r)
        return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(m: int, n: int, proof: list[bytes], root1: bytes, root2: bytes) -> bool:
    """RFC 9162 §2.1.4.2."""
    if m == n:
        return not proof and root1 == root2
    if not 0 < m < n or not proof:
        return False
    if m & (m - 1) == 0:
        proof = [root1, *proof]
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == root1 and sr == root2 and sn == 0


def key_id(name: str, public_key: bytes) -> bytes:
    """Section 9.1: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    return sha256(name.encode("utf-8") + b"\n\x01" + public_key)[:4]


def public_key_of(seed: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


def vkey_of(name: str, public_key: bytes) -> str:
    """Section 9.1: name + hex key ID + base64(0x01 || public key)."""
    return f"{name}+{key_id(name, public_key).hex()}+{b64(ED25519 + public_key)}"


def signing_key_line(name: str, seed: bytes) -> str:
    """Section 9.2."""
    return f"PRIVATE+KEY+{name}+{key_id(name, public_key_of(seed)).hex()}+{b64(ED25519 + seed)}"


def parse_vkey(vkey: str) -> tuple[str, bytes, bytes]:
    """Section 9.1: name, key ID and public key, the key ID checked."""
    parts = vkey.split("+", 2)
    if len(parts) != 3 or not re.fullmatch("[0-9a-f]{8}", parts[1]):
        raise Rejected(f"not a vkey: {vkey!r}")
    name, hex_id, key64 = parts
    raw = b64decode_strict(key64)
    if len(raw) != 33 or raw[:1] != ED25519:
        raise Rejected("vkey is not an Ed25519 key")
    if key_id(name, raw[1:]).hex() != hex_id:
        raise Rejected("vkey's key ID does not match its name and key")
    return name, bytes.fromhex(hex_id), raw[1:]


def open_checkpoint(note: str, vkey: str) -> tuple[str, int, bytes]:
    """Section 9.3: verify the signature by ``vkey``; return origin, size and root."""
    name, kid, public_key = parse_vkey(vkey)
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise Rejected("no empty line before the signatures, or no final newline")
    text, signatures = note[: split + 1], note[split + 2 :]
    verified = 0
    for line in signatures[:-1].split("\n"):
        signer, space, blob64 = line.removeprefix(EM_DASH + " ").partition(" ")
        if not line.startswith(EM_DASH + " ") or not space:
            raise Rejected(f"malformed signature line {line!r}")
        blob = b64decode_strict(blob64)
        if signer != name or blob[:4] != kid:
            continue  # another key's signature, e.g. a witness's
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(blob[4:], text.encode("utf-8"))
        except InvalidSignature:
            raise Rejected(f"the signature by {name} does not verify") from None
        verified += 1
    if not verified:
        raise Rejected("no signature by the ledger's key")
    lines = text[:-1].split("\n")
    if len(lines) != 3 or not re.fullmatch("0|[1-9][0-9]*", lines[1]):
        raise Rejected(f"not a checkpoint: {text!r}")
    origin, size, root64 = lines
    root = b64decode_strict(root64)
    if len(root) != 32:
        raise Rejected("root hash is not 32 bytes")
    return origin, int(size), root


# -- (a) the worked example --------------------------------------------------------


def test_example_leaves_recompute_from_their_inputs() -> None:
    blocks = example_blocks()
    hashes = key_values(blocks["hashes"])
    inputs = example_inputs()
    assert [row[0] for row in inputs] == [0, 1, 2]
    prev = ZERO_HASH
    for index, originator_id, version, topic, recorded_at in inputs:
        state = blocks[f"state-{index}"].encode("utf-8")
        leaf = blocks[f"leaf-{index}"].encode("utf-8")
        assert leaf_bytes(index, prev, originator_id, version, topic, state, recorded_at) == leaf

        document = json.loads(leaf)
        assert list(document) == LEAF_KEYS
        assert rfc8785.dumps(document) == leaf
        assert document["format"] == "transfer-ledger/leaf/v1"
        assert document["leaf_index"] == index
        assert UUID_TEXT.fullmatch(document["originator_id"])
        assert RECORDED_AT.fullmatch(document["recorded_at"])
        assert b64decode_strict(document["state"]) == state
        assert document["prev_leaf_hash"] == prev.hex()

        prev = leaf_hash(leaf)
        assert prev.hex() == hashes[f"leaf_hash {index}"]
    # Leaves 0 and 1 were saved together; leaf 2 has a fractional second.
    assert inputs[0][4] == inputs[1][4] == "2026-03-01T09:30:00Z"
    assert inputs[2][4] == "2026-03-01T09:30:00.250000Z"


def test_example_tree_nodes_roots_and_frontier() -> None:
    hashes = key_values(example_blocks()["hashes"])
    leaves = [bytes.fromhex(hashes[f"leaf_hash {i}"]) for i in range(3)]
    tree = StreamingTree()
    for size, h in enumerate(leaves, start=1):
        tree.append(h)
        assert tree.root().hex() == mth(leaves[:size]).hex() == hashes[f"root {size}"]
    assert tree.nodes == {(1, 0): bytes.fromhex(hashes["node 1 0"])}
    assert b"".join(tree.frontier).hex() == hashes["frontier 3"]
    assert node_hash(tree.nodes[(1, 0)], leaves[2]).hex() == hashes["root 3"]


def test_example_proofs_verify() -> None:
    blocks = example_blocks()
    hashes = key_values(blocks["hashes"])
    roots = {size: bytes.fromhex(hashes[f"root {size}"]) for size in (1, 2, 3)}
    proofs = key_values(blocks["proofs"])
    assert len(proofs) == 5
    for name, value in proofs.items():
        kind, a, b = name.split()
        proof = [b64decode_strict(p) for p in value.split()]
        if kind == "inclusion":
            leaf = bytes.fromhex(hashes[f"leaf_hash {a}"])
            assert verify_inclusion(int(a), int(b), leaf, proof, roots[int(b)]), name
            assert not verify_inclusion(int(a), int(b), leaf, proof, roots[2]), name
        else:
            assert kind == "consistency"
            assert verify_consistency(int(a), int(b), proof, roots[int(a)], roots[int(b)]), name
            assert not verify_consistency(int(a), int(b), proof, roots[int(a)], roots[2]), name


def test_example_key_vkey_signing_key_and_checkpoint() -> None:
    blocks = example_blocks()
    key = key_values(blocks["key"])
    name, seed = key["origin"], bytes.fromhex(key["seed"])
    public_key = public_key_of(seed)
    assert public_key.hex() == key["public_key"]
    digest = sha256(name.encode("utf-8") + b"\x0a\x01" + public_key)
    assert digest.hex() == key["key_id_sha256"]
    assert digest[:4].hex() == key["key_id"]
    assert vkey_of(name, public_key) == blocks["vkey"]
    assert signing_key_line(name, seed) == blocks["signing-key"]

    note = blocks["checkpoint"] + "\n"
    origin, size, root = open_checkpoint(note, blocks["vkey"])
    assert (origin, size) == (name, 3)
    assert root.hex() == key_values(blocks["hashes"])["root 3"]
    # Ed25519 is deterministic: signing the note text again gives the same line.
    text = f"{origin}\n{size}\n{b64(root)}\n"
    signature = Ed25519PrivateKey.from_private_bytes(seed).sign(text.encode("utf-8"))
    assert note == f"{text}\n{EM_DASH} {name} {b64(bytes.fromhex(key['key_id']) + signature)}\n"


def test_a_tampered_example_fails() -> None:
    blocks = example_blocks()
    vkey = blocks["vkey"]
    note = blocks["checkpoint"] + "\n"
    with pytest.raises(Rejected, match="does not verify"):
        open_checkpoint(note.replace("\n3\n", "\n4\n", 1), vkey)
    other = vkey_of("transfer-ledger.example/other", public_key_of(bytes(32)))
    with pytest.raises(Rejected, match="no signature by the ledger's key"):
        open_checkpoint(note, other)
    leaf = blocks["leaf-1"].encode("utf-8").replace(b'"originator_version":2', b'"originator_version":3')
    assert leaf_hash(leaf).hex() != key_values(blocks["hashes"])["leaf_hash 1"]


# -- (b) a real ledger, read with SQL ------------------------------------------------


def test_a_real_ledger_recomputes_from_its_rows(ledger: Any, backend: Any) -> None:
    key = key_values(example_blocks()["key"])
    name, seed = key["origin"], bytes.fromhex(key["seed"])
    signer = parse_signing_key(signing_key_line(name, seed))
    vkey = vkey_of(name, public_key_of(seed))

    root, auth = granted_chain(ledger)
    onward_transfer = ledger.record_transfer(onward("FR", "INTERPOL", root, auth))
    first = sign_current_checkpoint(ledger.store, signer)
    ledger.set_party_policy("DE", written_authorization_required=True, set_by=actor("DE"))
    ledger.record_transfer(transfer("NL", "BR", data_categories=["content"]))
    second = sign_current_checkpoint(ledger.store, signer)
    assert 0 < first.tree_size < second.tree_size

    rows = backend.execute(
        "SELECT l.leaf_index, l.notification_id, l.originator_id, l.originator_version, "
        "l.recorded_at, l.leaf_hash, e.originator_id, e.originator_version, e.topic, e.state "
        f"FROM ledger_leaves l JOIN {backend.events_table} e "
        f"ON e.{backend.notification_id} = l.notification_id ORDER BY l.leaf_index"
    )
    event_count = backend.execute(f"SELECT COUNT(*) FROM {backend.events_table}")[0][0]
    head_size, head_last, head_frontier = backend.execute(
        "SELECT size, last_leaf_hash, frontier FROM ledger_head WHERE id = 1"
    )[0]
    stored_nodes = {
        (level, idx): bytes(h)
        for level, idx, h in backend.execute("SELECT level, idx, hash FROM ledger_nodes")
    }
    checkpoints = backend.execute(
        "SELECT tree_size, root_hash, note FROM ledger_checkpoints ORDER BY tree_size"
    )

    assert len(rows) == event_count == head_size == second.tree_size
    tree, prev, last_notification = StreamingTree(), ZERO_HASH, 0
    roots: dict[int, bytes] = {}
    leaf_hashes: list[bytes] = []
    recorded: dict[int, tuple[str, str, str]] = {}
    for expected, row in enumerate(rows):
        index, notification_id, leaf_oid, leaf_version, recorded_at, stored_hash = row[:6]
        event_oid, event_version, topic, state = row[6:]
        assert index == expected
        assert notification_id > last_notification
        assert uuid.UUID(str(leaf_oid)) == uuid.UUID(str(event_oid))
        assert leaf_version == event_version
        assert RECORDED_AT.fullmatch(recorded_at)
        digest = leaf_hash(
            leaf_bytes(index, prev, event_oid, event_version, topic, bytes(state), recorded_at)
        )
        assert digest == bytes(stored_hash), f"leaf {index}"
        tree.append(digest)
        roots[tree.size] = tree.root()
        leaf_hashes.append(digest)
        recorded[index] = (str(uuid.UUID(str(event_oid))), topic, recorded_at)
        prev, last_notification = digest, notification_id

    assert tree.nodes == stored_nodes
    assert bytes(head_last) == prev
    assert bytes(head_frontier) == b"".join(tree.frontier)
    assert tree.root() == mth(leaf_hashes)

    assert [c[0] for c in checkpoints] == [first.tree_size, second.tree_size]
    for tree_size, root_hash, note in checkpoints:
        origin, size, signed_root = open_checkpoint(note, vkey)
        assert (origin, size) == (name, tree_size)
        assert signed_root == bytes(root_hash) == roots[tree_size]
    assert first.note == checkpoints[0][2]

    # The onward transfer and its grant's use were saved together: one record time.
    index = onward_transfer["leaf_index"]
    assert recorded[index] == (onward_transfer["id"], "transfer-ledger:TransferRecorded:v1",
                               onward_transfer["recorded_at"])
    assert recorded[index + 1] == (auth["id"], "transfer-ledger:AuthorizationUsed:v1",
                                   onward_transfer["recorded_at"])


def test_a_changed_event_row_no_longer_recomputes(ledger: Any, backend: Any) -> None:
    granted_chain(ledger)
    table, nid = backend.events_table, backend.notification_id
    target = backend.execute("SELECT notification_id FROM ledger_leaves WHERE leaf_index = 1")[0][0]
    backend.execute(f"UPDATE {table} SET topic = 'transfer-ledger:Forged:v1' WHERE {nid} = {int(target)}")
    rows = backend.execute(
        "SELECT l.leaf_index, l.recorded_at, l.leaf_hash, e.originator_id, e.originator_version, "
        f"e.topic, e.state FROM ledger_leaves l JOIN {table} e ON e.{nid} = l.notification_id "
        "ORDER BY l.leaf_index"
    )
    prev, matches = ZERO_HASH, []
    for index, recorded_at, stored_hash, oid, version, topic, state in rows:
        digest = leaf_hash(leaf_bytes(index, prev, oid, version, topic, bytes(state), recorded_at))
        matches.append(digest == bytes(stored_hash))
        prev = digest
    assert matches == [True, False, False]


# -- section 17: personal data (event format 2) ------------------------------------


def _section_17() -> str:
    text = (Path(__file__).resolve().parents[2] / "docs" / "FORMAT.md").read_text("utf-8")
    return text[text.index("## 17. Personal data"):]


def _hmac_commitment(salt: bytes, originator_id: str, version: int, path: str, value: Any) -> str:
    import hmac

    message = rfc8785.dumps(["transfer-ledger/commitment/v1", originator_id, version, path, value])
    return "commitment:" + hmac.new(salt, message, hashlib.sha256).hexdigest()


def test_the_personal_data_example_recomputes() -> None:
    section = _section_17()
    example = section[section.index("### 17.6"):section.index("### 17.7")]
    blocks = [line.strip() for line in example.splitlines() if line.startswith("    ")]
    message, commitment, aad = blocks
    salt = bytes.fromhex(re.search(r"salt `([0-9a-f]{64})`", example).group(1))  # type: ignore[union-attr]
    oid, value = "3f1c0c1e-0000-4000-8000-000000000001", ["Ivan Petrov"]
    assert rfc8785.dumps(["transfer-ledger/commitment/v1", oid, 1, "subjects", value]).decode() == message
    assert _hmac_commitment(salt, oid, 1, "subjects", value) == commitment
    key_id = "00112233445566778899aabbccddeeff"
    assert rfc8785.dumps(["transfer-ledger/opening/v1", oid, 1, "subject-data", key_id]).decode() == aad
    # and the ledger's own code computes the same
    from ledger.tlog.commitment import commit, opening_aad

    assert commit(salt, oid, 1, "subjects", value) == commitment
    assert opening_aad(oid, 1, "subject-data", key_id).decode() == aad


def test_a_real_ledger_opens_its_commitments_from_its_rows(ledger: Any, backend: Any) -> None:
    """Every commitment of a format 2 ledger opens with the rows and key files section 17 describes,
    read with SQL and decrypted with ``cryptography`` alone."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    root, auth = granted_chain(ledger)
    ledger.record_transfer(onward("FR", "INTERPOL", root, auth))
    keks = {}
    for path in (backend.settings.data_dir / "data-keys").glob("kek-*.key"):
        doc = json.loads(path.read_text())
        keks[doc["id"]] = base64.b64decode(doc["key"])
    data_keys = {}
    for key_id, scope, kek_id, wrapped in backend.execute(
            "SELECT key_id, scope, kek_id, wrapped FROM ledger_data_keys"):
        raw = base64.b64decode(wrapped)
        data_keys[key_id] = AESGCM(keks[kek_id]).decrypt(
            raw[:12], raw[12:], rfc8785.dumps(["transfer-ledger/data-key/v1", key_id, scope]))
    openings = {}
    for oid, version, retention_class, key_id, sealed in backend.execute(
            "SELECT originator_id, originator_version, retention_class, key_id, sealed FROM ledger_openings"):
        raw = base64.b64decode(sealed)
        plain = AESGCM(data_keys[key_id]).decrypt(
            raw[:12], raw[12:], rfc8785.dumps(["transfer-ledger/opening/v1", oid, version, retention_class, key_id]))
        assert plain == rfc8785.dumps(json.loads(plain))  # canonical, as documented
        openings[(oid, version)] = {**openings.get((oid, version), {}), **json.loads(plain)}
    checked = 0
    for oid, version, state in backend.execute(
            f"SELECT originator_id, originator_version, state FROM {backend.events_table}"):
        oid = str(uuid.UUID(str(oid)))
        data = json.loads(bytes(state))
        block = data.get("personal_data")
        if block is None:
            continue
        assert block["format"] == "transfer-ledger/personal-data/v1"
        for path, retention_class in block["fields"].items():
            assert retention_class in block and len(block[retention_class]["key_id"]) == 32
            node: Any = data
            for step in path.split("."):
                node = node[step]
            opening = openings[(oid, version)][path]
            assert _hmac_commitment(base64.b64decode(opening["salt"]), oid, version, path, opening["value"]) == node
            checked += 1
    assert checked >= 10
