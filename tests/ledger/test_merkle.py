"""Tests of ledger.tlog.merkle: RFC 9162 §2.1 hashing, compact ranges and proofs.

Checked against the transparency-dev/merkle vectors (tests/testdata/rfc6962),
an RFC-literal recursive reference, pymerkle, and hypothesis properties.
"""

from __future__ import annotations

import base64
import json
import random
from functools import cache
from hashlib import sha256
from pathlib import Path

import pymerkle
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.tlog.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    ProofError,
    consistency_proof,
    consistency_proof_ids,
    inclusion_proof,
    inclusion_proof_ids,
    leaf_hash,
    node_hash,
    root_at,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    root_ids,
    verify_consistency,
    verify_inclusion,
)
from tests.support.backends import RFC6962_VECTORS as VECTORS

# The 8 leaf inputs and known roots of tests/testdata/rfc6962/README.md.
LEAF_INPUTS = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
LEAF_HASHES = [leaf_hash(d) for d in LEAF_INPUTS]
KNOWN_ROOTS = [
    bytes.fromhex(h)
    for h in [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]


# --------------------------------------------------------------------------
# Helpers


class Store:
    """Dict-backed node store filled from CompactRange.append, as a ledger would."""

    def __init__(self, leaf_hashes: list[bytes] = ()) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.range = CompactRange()
        self.leaves: list[bytes] = []
        self.calls: list[list[tuple[int, int]]] = []
        for h in leaf_hashes:
            self.append(h)

    def append(self, h: bytes) -> None:
        for level, index, node in self.range.append(h):
            assert (level, index) not in self.nodes
            self.nodes[(level, index)] = node
        self.leaves.append(h)

    def get_nodes(self, ids):
        self.calls.append(list(ids))
        return [self.nodes[i] for i in ids]


def distinct_leaves(n: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [leaf_hash(i.to_bytes(8, "big") + rng.randbytes(8)) for i in range(n)]


def rfc_reference(leaves: list[bytes]):
    """RFC 9162 §2.1.1/§2.1.3.1/§2.1.4.1 taken literally (recursive, small trees only)."""

    @cache
    def mth(a: int, b: int) -> bytes:
        n = b - a
        if n == 0:
            return EMPTY_ROOT
        if n == 1:
            return leaves[a]
        k = 1 << ((n - 1).bit_length() - 1)  # largest power of two < n
        return node_hash(mth(a, a + k), mth(a + k, b))

    def path(m: int, a: int, b: int) -> list[bytes]:
        n = b - a
        if n == 1:
            return []
        k = 1 << ((n - 1).bit_length() - 1)
        if m < k:
            return path(m, a, a + k) + [mth(a + k, b)]
        return path(m - k, a + k, b) + [mth(a, a + k)]

    def subproof(m: int, a: int, b: int, whole: bool) -> list[bytes]:
        n = b - a
        if m == n:
            return [] if whole else [mth(a, b)]
        k = 1 << ((n - 1).bit_length() - 1)
        if m <= k:
            return subproof(m, a, a + k, whole) + [mth(a + k, b)]
        return subproof(m - k, a + k, b, False) + [mth(a, a + k)]

    return mth, path, subproof


def flip_bit(h: bytes, bit: int) -> bytes:
    b = bytearray(h)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


# --------------------------------------------------------------------------
# Hashing and known roots


def test_constants_and_hashes():
    assert HASH_SIZE == 32
    assert EMPTY_ROOT == sha256(b"").digest()
    assert leaf_hash(b"ab") == sha256(b"\x00ab").digest()
    assert node_hash(b"L" * 32, b"R" * 32) == sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()


@pytest.mark.parametrize("size", range(9))
def test_known_roots(size):
    store = Store(LEAF_HASHES)
    want = KNOWN_ROOTS[size]
    cr = CompactRange()
    for h in LEAF_HASHES[:size]:
        cr.append(h)
    assert cr.root() == want
    assert root_from_leaf_hashes(LEAF_HASHES[:size]) == want
    assert root_at(size, store.get_nodes) == want
    assert rfc_reference(LEAF_HASHES)[0](0, size) == want


def test_root_from_leaf_hashes_matches_rfc_recursion():
    leaves = distinct_leaves(130)
    mth = rfc_reference(leaves)[0]
    for n in range(131):
        assert root_from_leaf_hashes(leaves[:n]) == mth(0, n)


# --------------------------------------------------------------------------
# Test vectors (transparency-dev/merkle testdata)


def _vector_files(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json"))


def _vector_params(kind: str):
    files = _vector_files(kind)
    if not files:  # fail, do not skip, when the vectors are missing
        return [pytest.param(None, id=f"{kind}-vectors-missing")]
    return [pytest.param(f, id=str(f.relative_to(VECTORS))) for f in files]


def _load(path: Path | None) -> dict:
    if path is None:
        pytest.fail(f"test vectors not found under {VECTORS}")
    v = json.loads(path.read_text())
    b64 = base64.b64decode
    v["proof"] = [b64(p) for p in (v["proof"] or [])]
    for key in ("root", "leafHash", "root1", "root2"):
        if key in v:
            v[key] = b64(v[key])
    return v


def _numbered(path: Path) -> bool:
    """Vectors in the numbered folders are built from the README's 8 leaves."""
    return path.parent.name.isdigit() and path.parent.parent.name in ("inclusion", "consistency")


def test_vectors_present_and_counted():
    assert VECTORS.is_dir(), f"test vectors not found: {VECTORS}"
    inclusion = _vector_files("inclusion")
    consistency = _vector_files("consistency")
    assert (len(inclusion), len(consistency)) == (98, 98)
    assert len(list(VECTORS.rglob("*.json"))) == 196


@pytest.mark.parametrize("path", _vector_params("inclusion"))
def test_inclusion_vector(path):
    v = _load(path)
    idx, size, proof = v["leafIdx"], v["treeSize"], v["proof"]
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(v["leafHash"], idx, size, proof, v["root"])
    else:
        verify_inclusion(v["leafHash"], idx, size, proof, v["root"])

    describes_tree = (
        0 <= idx < size <= 8
        and v["root"] == KNOWN_ROOTS[size]
        and v["leafHash"] == LEAF_HASHES[idx]
    )
    if _numbered(path) and not v["wantErr"]:
        assert describes_tree, "a valid numbered vector should describe the README tree"
    if describes_tree:
        store = Store(LEAF_HASHES)
        generated = inclusion_proof(idx, size, store.get_nodes)
        assert (generated == proof) == (not v["wantErr"])


@pytest.mark.parametrize("path", _vector_params("consistency"))
def test_consistency_vector(path):
    v = _load(path)
    size1, size2, proof = v["size1"], v["size2"], v["proof"]
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, proof, v["root1"], v["root2"])
    else:
        verify_consistency(size1, size2, proof, v["root1"], v["root2"])

    describes_tree = (
        0 < size1 <= size2 <= 8
        and v["root1"] == KNOWN_ROOTS[size1]
        and v["root2"] == KNOWN_ROOTS[size2]
    )
    if _numbered(path) and not v["wantErr"]:
        assert describes_tree, "a valid numbered vector should describe the README tree"
    if describes_tree:
        store = Store(LEAF_HASHES)
        generated = consistency_proof(size1, size2, store.get_nodes)
        assert (generated == proof) == (not v["wantErr"])


def test_numbered_vector_folders_are_the_readme_tree():
    """Every valid vector in 0..4 (and only there) is generated from the 8 leaves."""
    compared = 0
    for kind in ("inclusion", "consistency"):
        for path in _vector_files(kind):
            v = _load(path)
            if v["wantErr"] or not _numbered(path):
                continue
            store = Store(LEAF_HASHES)
            if kind == "inclusion":
                got = inclusion_proof(v["leafIdx"], v["treeSize"], store.get_nodes)
            else:
                got = consistency_proof(v["size1"], v["size2"], store.get_nodes)
            assert got == v["proof"], path
            compared += 1
    assert compared == 10  # one happy path per numbered folder and kind


# --------------------------------------------------------------------------
# Generation against the RFC taken literally; node id structure


def test_proofs_match_rfc_recursion_exhaustively():
    n = 64
    leaves = distinct_leaves(n, seed=1)
    store = Store(leaves)
    mth, path, subproof = rfc_reference(leaves)
    for size in range(1, n + 1):
        root = mth(0, size)
        for index in range(size):
            proof = inclusion_proof(index, size, store.get_nodes)
            assert proof == path(index, 0, size), (index, size)
            verify_inclusion(leaves[index], index, size, proof, root)
        for size1 in range(1, size + 1):
            proof = consistency_proof(size1, size, store.get_nodes)
            assert proof == subproof(size1, 0, size, True), (size1, size)
            verify_consistency(size1, size, proof, mth(0, size1), root)


def _check_specs(specs, size):
    """Proof elements are disjoint ranges of stored perfect subtrees within [0, size)."""
    seen = set()
    for spec in specs:
        assert spec
        prev_end = None
        for level, index in spec:
            begin, end = index << level, (index + 1) << level
            assert 0 <= begin and end <= size
            assert prev_end is None or prev_end == begin  # contiguous, left to right
            prev_end = end
            assert (level, index) not in seen
            seen.add((level, index))
        if len(spec) > 1:  # ephemeral right-edge node: must end at size
            assert prev_end == size
    return seen


@pytest.mark.parametrize(
    "size", [1, 2, 3, 1000, 10**6, 10**6 + 1, 2**20, 2**20 - 1, 2**40 + 12345, 2**63 - 1]
)
def test_node_ids_are_logarithmic_and_in_range(size):
    rng = random.Random(size)
    bound = 2 * max(size.bit_length(), 1) + 1
    for _ in range(50):
        index = rng.randrange(size)
        ids = _check_specs(inclusion_proof_ids(index, size), size)
        assert len(ids) <= bound
        size1 = rng.randint(1, size)
        ids = _check_specs(consistency_proof_ids(size1, size), size)
        assert len(ids) <= bound
    frontier = root_ids(size)
    assert len(frontier) == size.bit_count()
    assert frontier == CompactRange.frontier_ids(size)
    assert _check_specs([frontier], size)


def test_get_nodes_called_once_with_distinct_ids():
    store = Store(distinct_leaves(1000))
    for size in (1, 7, 8, 999, 1000):
        for fn, args in (
            (inclusion_proof, (size - 1, size)),
            (inclusion_proof, (0, size)),
            (consistency_proof, (max(1, size // 3), size)),
            (root_at, (size,)),
        ):
            store.calls.clear()
            fn(*args, store.get_nodes)
            assert len(store.calls) <= 1
            for ids in store.calls:
                assert len(ids) == len(set(ids)) > 0
    store.calls.clear()
    assert consistency_proof(5, 5, store.get_nodes) == []
    assert root_at(0, store.get_nodes) == EMPTY_ROOT
    assert store.calls == []


def test_get_nodes_result_checked():
    with pytest.raises(ValueError, match="returned 0 hashes"):
        inclusion_proof(0, 2, lambda ids: [])
    with pytest.raises(ValueError, match="bytes, want 32"):
        inclusion_proof(0, 2, lambda ids: [b"x"] * len(ids))


@pytest.mark.parametrize(
    "fn, args, message",
    [
        (inclusion_proof_ids, (5, 5), "out of range"),
        (inclusion_proof_ids, (0, 0), "out of range"),
        (inclusion_proof_ids, (-1, 5), ">= 0"),
        (inclusion_proof_ids, (True, 5), "must be an int"),
        (consistency_proof_ids, (0, 3), "size1 must be > 0"),
        (consistency_proof_ids, (0, 0), "size1 must be > 0"),
        (consistency_proof_ids, (4, 3), "greater than size2"),
        (consistency_proof_ids, (1, -3), ">= 0"),
        (root_ids, (-1,), ">= 0"),
        (root_ids, (1.0,), "must be an int"),
    ],
)
def test_generation_argument_validation(fn, args, message):
    with pytest.raises(ValueError, match=message):
        fn(*args)


# --------------------------------------------------------------------------
# Compact range


def test_compact_range_append_emits_every_completed_node():
    leaves = distinct_leaves(70, seed=2)
    mth = rfc_reference(leaves)[0]
    cr = CompactRange()
    stored: dict[tuple[int, int], bytes] = {}
    for i, h in enumerate(leaves):
        out = cr.append(h)
        assert out[0] == (0, i, h)
        # exactly the nodes whose last leaf is i: levels 0..trailing ones of i
        assert [(lv, ix) for lv, ix, _ in out] == [
            (lv, i >> lv) for lv in range(((i + 1) & -(i + 1)).bit_length())
        ]
        for level, index, node in out:
            assert node == mth(index << level, (index + 1) << level)
            stored[(level, index)] = node
        size = i + 1
        assert cr.size == size and len(cr.hashes) == size.bit_count()
        assert cr.root() == mth(0, size)
        rebuilt = CompactRange(size, [stored[n] for n in CompactRange.frontier_ids(size)])
        assert rebuilt == cr
        assert CompactRange.from_bytes(size, cr.to_bytes()) == cr
    # all perfect subtrees of the tree were emitted, and nothing else
    assert len(stored) == 2 * 70 - (70).bit_count()


def test_compact_range_empty_copy_and_validation():
    cr = CompactRange()
    assert cr.size == 0 and cr.hashes == [] and cr.root() == EMPTY_ROOT
    assert cr.to_bytes() == b"" and CompactRange.from_bytes(0, b"") == cr
    cr.append(LEAF_HASHES[0])
    twin = cr.copy()
    twin.append(LEAF_HASHES[1])
    assert cr.size == 1 and cr.root() == KNOWN_ROOTS[1]
    assert twin.size == 2 and twin.root() == KNOWN_ROOTS[2]
    with pytest.raises(ValueError, match="32"):
        cr.append(b"short")
    with pytest.raises(ValueError, match="needs 2 hashes"):
        CompactRange(3, [EMPTY_ROOT])


@pytest.mark.parametrize(
    "size, length",
    [(0, 32), (1, 0), (1, 31), (1, 33), (1, 64), (3, 32), (3, 96), (7, 64), (8, 64)],
)
def test_compact_range_from_bytes_rejects_wrong_length(size, length):
    with pytest.raises(ValueError, match=f"size {size} needs {32 * size.bit_count()} bytes"):
        CompactRange.from_bytes(size, b"\x00" * length)


def test_root_at_earlier_sizes():
    leaves = distinct_leaves(300, seed=3)
    store = Store(leaves)
    for m in range(301):
        assert root_at(m, store.get_nodes) == root_from_leaf_hashes(leaves[:m])


# --------------------------------------------------------------------------
# Verifier edge rules


def test_verifier_edge_rules():
    leaves = LEAF_HASHES
    store = Store(leaves)
    proof = inclusion_proof(2, 5, store.get_nodes)
    verify_inclusion(leaves[2], 2, 5, proof, KNOWN_ROOTS[5])
    assert root_from_inclusion_proof(leaves[2], 2, 5, proof) == KNOWN_ROOTS[5]
    with pytest.raises(ProofError, match="beyond tree size"):
        verify_inclusion(leaves[2], 5, 5, proof, KNOWN_ROOTS[5])
    with pytest.raises(ProofError, match="leaf hash has 31 bytes"):
        verify_inclusion(leaves[2][:31], 2, 5, proof, KNOWN_ROOTS[5])
    with pytest.raises(ProofError, match="wrong proof size: got 4 hashes, want 3"):
        verify_inclusion(leaves[2], 2, 5, proof + [leaves[0]], KNOWN_ROOTS[5])
    with pytest.raises(ProofError, match=r"proof\[1\] has 3 bytes"):
        verify_inclusion(leaves[2], 2, 5, [proof[0], b"abc", proof[2]], KNOWN_ROOTS[5])
    with pytest.raises(ProofError, match="yields root"):
        verify_inclusion(leaves[3], 2, 5, proof, KNOWN_ROOTS[5])

    cproof = consistency_proof(3, 7, store.get_nodes)
    verify_consistency(3, 7, cproof, KNOWN_ROOTS[3], KNOWN_ROOTS[7])
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    with pytest.raises(ProofError, match="smaller than size1"):
        verify_consistency(7, 3, cproof, KNOWN_ROOTS[7], KNOWN_ROOTS[3])
    with pytest.raises(ProofError, match="wrong proof size"):
        verify_consistency(3, 7, cproof[:-1], KNOWN_ROOTS[3], KNOWN_ROOTS[7])
    with pytest.raises(ProofError, match="yields root1"):
        verify_consistency(3, 7, cproof, KNOWN_ROOTS[2], KNOWN_ROOTS[7])
    with pytest.raises(ProofError, match="root1 has 12 bytes"):
        verify_consistency(3, 7, cproof, b"x" * 12, KNOWN_ROOTS[7])
    # equal sizes: empty proof, roots compared as bytes whatever their length
    verify_consistency(4, 4, [], b"any", b"any")
    with pytest.raises(ProofError, match="root1 != root2"):
        verify_consistency(4, 4, [], b"any", b"other")
    with pytest.raises(ProofError, match="want 0"):
        verify_consistency(4, 4, [KNOWN_ROOTS[4]], KNOWN_ROOTS[4], KNOWN_ROOTS[4])
    assert issubclass(ProofError, ValueError)


def test_inclusion_proof_does_not_bind_size_to_root():
    """Documented RFC 9162 property: the size must come bound to the root (e.g. by
    a signed checkpoint); an inclusion proof alone may verify for another size
    against the same root. (0, 3) and (0, 4) hash the same way."""
    proof = inclusion_proof(0, 3, Store(LEAF_HASHES).get_nodes)
    verify_inclusion(LEAF_HASHES[0], 0, 4, proof, KNOWN_ROOTS[3])
    with pytest.raises(ProofError):
        verify_inclusion(LEAF_HASHES[0], 0, 4, proof, KNOWN_ROOTS[4])


# --------------------------------------------------------------------------
# Cross-check against pymerkle


def test_pymerkle_configuration_matches_rfc6962():
    """pymerkle's default hashing (security on) prefixes 0x00/0x01 = RFC 6962;
    appended entries are raw leaf data. Turning security off breaks the match."""
    tree = pymerkle.InmemoryTree(algorithm="sha256")
    assert tree.security and tree.leaf_prefix == b"\x00" and tree.node_prefix == b"\x01"
    assert tree.get_root() == EMPTY_ROOT
    for size, data in enumerate(LEAF_INPUTS, start=1):
        tree.append_entry(data)
        assert tree.get_leaf(size) == LEAF_HASHES[size - 1]
    assert [tree.get_root(s) for s in range(9)] == KNOWN_ROOTS
    insecure = pymerkle.InmemoryTree(algorithm="sha256", disable_security=True)
    insecure.append_entries(LEAF_INPUTS)
    assert insecure.get_root() != KNOWN_ROOTS[8]


PYM_SIZE = 10_000


@pytest.fixture(scope="module")
def big_trees():
    rng = random.Random(20240607)
    data = [rng.randbytes(rng.randint(0, 40)) for _ in range(PYM_SIZE)]
    tree = pymerkle.InmemoryTree(algorithm="sha256")
    store = Store()
    for d in data:
        tree.append_entry(d)
        store.append(leaf_hash(d))
    return tree, store


def test_pymerkle_roots(big_trees):
    tree, store = big_trees
    rng = random.Random(1)
    sizes = list(range(65)) + rng.sample(range(65, PYM_SIZE + 1), 50) + [PYM_SIZE]
    for size in sizes:
        want = tree.get_root(size)
        assert root_at(size, store.get_nodes) == want, size
    assert store.range.root() == tree.get_root()
    assert root_from_leaf_hashes(store.leaves) == tree.get_root()


def test_pymerkle_inclusion_proofs(big_trees):
    """pymerkle's inclusion path is [leaf hash] + RFC 9162 PATH: compare hash by hash."""
    tree, store = big_trees
    rng = random.Random(2)
    pairs = [(0, 1), (0, PYM_SIZE), (PYM_SIZE - 1, PYM_SIZE)]
    pairs += [(i, s) for s in rng.sample(range(1, PYM_SIZE + 1), 150) for i in [rng.randrange(s)]]
    for index, size in pairs:
        ours = inclusion_proof(index, size, store.get_nodes)
        theirs = tree.prove_inclusion(index + 1, size)  # pymerkle counts from one
        assert theirs.path[0] == store.leaves[index]
        assert theirs.path[1:] == ours, (index, size)
        root = tree.get_root(size)
        verify_inclusion(store.leaves[index], index, size, ours, root)
        theirs.verify(store.leaves[index], root_at(size, store.get_nodes))


def test_pymerkle_consistency_proofs(big_trees):
    """pymerkle 7's consistency path is not RFC 9162's SUBPROOF (it descends to
    the first new leaf), so hashes are not comparable: cross-verify instead."""
    tree, store = big_trees
    rng = random.Random(3)
    pairs = [(1, 1), (1, PYM_SIZE), (PYM_SIZE, PYM_SIZE), (4096, PYM_SIZE), (PYM_SIZE - 1, PYM_SIZE)]
    for _ in range(150):
        s2 = rng.randint(1, PYM_SIZE)
        pairs.append((rng.randint(1, s2), s2))
    for size1, size2 in pairs:
        ours = consistency_proof(size1, size2, store.get_nodes)
        root1, root2 = tree.get_root(size1), tree.get_root(size2)
        verify_consistency(size1, size2, ours, root1, root2)
        theirs = tree.prove_consistency(size1, size2)
        theirs.verify(root_at(size1, store.get_nodes), root_at(size2, store.get_nodes))


# --------------------------------------------------------------------------
# Properties (hypothesis)

PROP_SIZE = 3000
_PROP_STORE = Store(distinct_leaves(PROP_SIZE, seed=4))
_PROP_ROOTS: dict[int, bytes] = {}


def prop_root(size: int) -> bytes:
    if size not in _PROP_ROOTS:
        _PROP_ROOTS[size] = root_at(size, _PROP_STORE.get_nodes)
    return _PROP_ROOTS[size]


sizes = st.integers(min_value=1, max_value=PROP_SIZE)


@st.composite
def index_size(draw):
    size = draw(sizes)
    return draw(st.integers(0, size - 1)), size


@st.composite
def size_pairs(draw):
    size2 = draw(sizes)
    return draw(st.integers(1, size2)), size2


@settings(max_examples=300, deadline=None)
@given(index_size(), st.data())
def test_property_inclusion(pair, data):
    index, size = pair
    leaf, root = _PROP_STORE.leaves[index], prop_root(size)
    proof = inclusion_proof(index, size, _PROP_STORE.get_nodes)
    verify_inclusion(leaf, index, size, proof, root)

    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), label="element")
        bit = data.draw(st.integers(0, 8 * HASH_SIZE - 1), label="bit")
        bad = proof[:i] + [flip_bit(proof[i], bit)] + proof[i + 1 :]
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, size, bad, root)
    with pytest.raises(ProofError):
        verify_inclusion(flip_bit(leaf, data.draw(st.integers(0, 255), label="leafbit")), index, size, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaf, index, size, proof + [root], root)

    # Another (index, size): the proof fails, with that size's true root too.
    index2, size2 = data.draw(index_size(), label="other")
    if (index2, size2) != (index, size) and not (
        index2 == index and inclusion_proof(index2, size2, _PROP_STORE.get_nodes) == proof
    ):
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index2, size2, proof, prop_root(size2))
    if size > 1:
        index3 = data.draw(st.integers(0, size - 1).filter(lambda j: j != index), label="index")
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index3, size, proof, root)


@settings(max_examples=300, deadline=None)
@given(size_pairs(), st.data())
def test_property_consistency(pair, data):
    size1, size2 = pair
    root1, root2 = prop_root(size1), prop_root(size2)
    proof = consistency_proof(size1, size2, _PROP_STORE.get_nodes)
    verify_consistency(size1, size2, proof, root1, root2)

    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), label="element")
        bit = data.draw(st.integers(0, 8 * HASH_SIZE - 1), label="bit")
        bad = proof[:i] + [flip_bit(proof[i], bit)] + proof[i + 1 :]
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, bad, root1, root2)
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, proof[:-1], root1, root2)
    with pytest.raises(ProofError):
        verify_consistency(size1, size2, proof + [root1], root1, root2)
    with pytest.raises(ProofError):
        verify_consistency(size1, size2, proof, flip_bit(root1, 0), root2)

    # Other sizes, checked against their true roots: the proof fails.
    s1, s2 = data.draw(size_pairs(), label="other")
    if consistency_proof(s1, s2, _PROP_STORE.get_nodes) != proof:  # e.g. not s1 == s2 with []
        with pytest.raises(ProofError):
            verify_consistency(s1, s2, proof, prop_root(s1), prop_root(s2))
