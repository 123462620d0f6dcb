"""RFC 9162 §2.1 Merkle tree: hashing, compact ranges, proofs and verifiers.

Exact, pure (no I/O) and storage-agnostic, after the ``rfc6962``, ``compact``
and ``proof`` packages of transparency-dev/merkle:

- hashing (RFC 9162 §2.1.1): ``leaf_hash(d) = SHA-256(0x00 || d)``,
  ``node_hash(l, r) = SHA-256(0x01 || l || r)``, empty tree = ``SHA-256("")``;
- :class:`CompactRange`: the append-only frontier of a tree; each append
  returns the nodes it completes, so that the caller can store them;
- proof generation from stored nodes: ``*_ids`` functions give the node ids
  needed (pure integer arithmetic, O(log n)); ``inclusion_proof``,
  ``consistency_proof`` and ``root_at`` fetch them with a single call to a
  caller-supplied ``get_nodes`` and assemble the RFC 9162 §2.1.3.1 ``PATH`` /
  §2.1.4.1 ``SUBPROOF``;
- verifiers (RFC 9162 §2.1.3.2, §2.1.4.2) raising :class:`ProofError`.

Node addressing: ``NodeId = (level, index)`` names the perfect subtree of
``2**level`` leaves covering leaves ``[index * 2**level, (index + 1) *
2**level)``; level 0 holds the leaf hashes. Only such perfect subtrees are
ever stored: they never change once complete.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from hashlib import sha256

__all__ = [
    "HASH_SIZE",
    "EMPTY_ROOT",
    "NodeId",
    "NodeSpec",
    "GetNodes",
    "ProofError",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
    "CompactRange",
    "root_ids",
    "root_at",
    "inclusion_proof_ids",
    "inclusion_proof",
    "consistency_proof_ids",
    "consistency_proof",
    "root_from_inclusion_proof",
    "verify_inclusion",
    "verify_consistency",
]

#: Size in bytes of every hash (SHA-256).
HASH_SIZE = 32

#: Merkle Tree Hash of the empty tree, ``SHA-256("")`` (RFC 9162 §2.1.1).
EMPTY_ROOT: bytes = sha256(b"").digest()

#: ``(level, index)``: the perfect subtree of ``2**level`` leaves starting at
#: leaf ``index * 2**level``.
NodeId = tuple[int, int]

#: One proof element as the stored perfect subtrees it is made of, left to
#: right; their hashes are folded right to left with :func:`node_hash`. A
#: single id for an ordinary node; several for an incomplete right-edge
#: subtree (an "ephemeral" node).
NodeSpec = list[NodeId]

#: Fetches the hashes of the given stored nodes, in the same order.
GetNodes = Callable[[Sequence[NodeId]], Sequence[bytes]]

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


class ProofError(ValueError):
    """A proof failed verification, or its parameters are invalid."""


# --------------------------------------------------------------------------
# Hashing (RFC 9162 §2.1.1)


def leaf_hash(data: bytes) -> bytes:
    """Leaf hash ``SHA-256(0x00 || data)`` (RFC 9162 §2.1.1)."""
    return sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Interior node hash ``SHA-256(0x01 || left || right)`` (RFC 9162 §2.1.1)."""
    return sha256(_NODE_PREFIX + left + right).digest()


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Fold non-empty ``hashes`` right to left: ``h0 . (h1 . (... . hn))``."""
    acc = hashes[-1]
    for i in range(len(hashes) - 2, -1, -1):
        acc = node_hash(hashes[i], acc)
    return acc


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Reference Merkle Tree Hash over already-hashed leaves (RFC 9162 §2.1.1).

    Iterative: hashes adjacent pairs level by level and carries a lone last
    node up unchanged, which yields exactly the MTH's left-balanced tree.
    """
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    for h in level:
        _check_hash(h, "leaf hash", ValueError)
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) & 1:
            nxt.append(level[-1])
        level = nxt
    return level[0]


# --------------------------------------------------------------------------
# Argument checks


def _check_int(value: object, name: str, exc: type[ValueError]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise exc(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise exc(f"{name} must be >= 0, got {value}")
    return value


def _check_hash(value: object, name: str, exc: type[ValueError]) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise exc(f"{name} must be bytes, got {type(value).__name__}")
    if len(value) != HASH_SIZE:
        raise exc(f"{name} has {len(value)} bytes, want {HASH_SIZE}")
    return bytes(value)


# --------------------------------------------------------------------------
# Node id arithmetic (pure integers, O(log n))


def _range_ids(begin: int, end: int) -> list[NodeId]:
    """Perfect subtrees covering ``[begin, end)``, left to right (largest first).

    ``begin`` must be a multiple of ``2**bit_length(end - begin)`` (true for
    ``begin == 0`` and for the right edge used by proofs).
    """
    ids: list[NodeId] = []
    n = end - begin
    pos = begin
    for level in range(n.bit_length() - 1, -1, -1):
        if (n >> level) & 1:
            ids.append((level, pos >> level))
            pos += 1 << level
    return ids


def _path_specs(index: int, level: int, size: int) -> list[NodeSpec]:
    """Audit path of node ``(level, index)`` in the tree of ``size`` leaves.

    As ``proof.nodes`` of transparency-dev/merkle: siblings up to the "fork"
    (where the path to the node leaves the path to the right edge), then
    the possibly ephemeral sibling of the fork, then the perfect subtrees
    left of the fork, lowest first. Requires ``index < size >> level``.
    """
    inner = (index ^ (size >> level)).bit_length() - 1
    fork_level = level + inner
    begin = (index >> inner) << fork_level
    end = begin + (1 << fork_level)
    specs: list[NodeSpec] = [[(level + i, (index >> i) ^ 1)] for i in range(inner)]
    if end < size:
        specs.append(_range_ids(end, size))
    specs.extend([node] for node in reversed(_range_ids(0, begin)))
    return specs


def root_ids(size: int) -> list[NodeId]:
    """Stored nodes whose right-to-left fold is the root of tree ``size``.

    Same as :meth:`CompactRange.frontier_ids`; empty for ``size == 0``
    (whose root is :data:`EMPTY_ROOT`).
    """
    _check_int(size, "size", ValueError)
    return _range_ids(0, size)


def inclusion_proof_ids(index: int, size: int) -> list[NodeSpec]:
    """Node specs of the inclusion proof ``PATH(index, D[0:size])`` (RFC 9162 §2.1.3.1)."""
    _check_int(index, "index", ValueError)
    _check_int(size, "size", ValueError)
    if index >= size:
        raise ValueError(f"index {index} is out of range for tree size {size} (need index < size)")
    return _path_specs(index, 0, size)


def consistency_proof_ids(size1: int, size2: int) -> list[NodeSpec]:
    """Node specs of the consistency proof ``PROOF(size1, D[0:size2])`` (RFC 9162 §2.1.4.1).

    Empty when ``size1 == size2``.
    """
    _check_int(size1, "size1", ValueError)
    _check_int(size2, "size2", ValueError)
    if size1 == 0:
        raise ValueError("size1 must be > 0: a consistency proof from the empty tree is meaningless")
    if size1 > size2:
        raise ValueError(f"size1 {size1} is greater than size2 {size2} (need 0 < size1 <= size2)")
    if size1 == size2:
        return []
    # The largest perfect subtree ending at size1: the proof is its audit path
    # in tree size2, preceded by the node itself unless it is the whole tree
    # size1 (size1 a power of two: the verifier knows it as root1).
    level = (size1 & -size1).bit_length() - 1
    index = (size1 - 1) >> level
    specs = _path_specs(index, level, size2)
    if index:
        specs.insert(0, [(level, index)])
    return specs


# --------------------------------------------------------------------------
# Proof assembly from stored nodes


def _resolve(specs: Sequence[NodeSpec], get_nodes: GetNodes) -> list[bytes]:
    """Fetch all distinct nodes of ``specs`` with one ``get_nodes`` call and fold each spec."""
    ids = list(dict.fromkeys(node for spec in specs for node in spec))
    if not ids:
        return []
    hashes = list(get_nodes(ids))
    if len(hashes) != len(ids):
        raise ValueError(f"get_nodes returned {len(hashes)} hashes for {len(ids)} node ids")
    table: dict[NodeId, bytes] = {}
    for node, h in zip(ids, hashes):
        table[node] = _check_hash(h, f"stored hash of node {node}", ValueError)
    return [_fold([table[node] for node in spec]) for spec in specs]


def root_at(size: int, get_nodes: GetNodes) -> bytes:
    """Merkle Tree Hash of the first ``size`` leaves from stored nodes (RFC 9162 §2.1.1)."""
    ids = root_ids(size)
    if not ids:
        return EMPTY_ROOT
    return _resolve([ids], get_nodes)[0]


def inclusion_proof(index: int, size: int, get_nodes: GetNodes) -> list[bytes]:
    """Inclusion proof ``PATH(index, D[0:size])`` (RFC 9162 §2.1.3.1) from stored nodes."""
    return _resolve(inclusion_proof_ids(index, size), get_nodes)


def consistency_proof(size1: int, size2: int, get_nodes: GetNodes) -> list[bytes]:
    """Consistency proof ``PROOF(size1, D[0:size2])`` (RFC 9162 §2.1.4.1) from stored nodes."""
    return _resolve(consistency_proof_ids(size1, size2), get_nodes)


# --------------------------------------------------------------------------
# Compact range


class CompactRange:
    """Append-only frontier (compact range ``[0, size)``) of a Merkle tree.

    ``hashes`` are the roots of the perfect subtrees for the set bits of
    ``size``, largest (leftmost) first; their right-to-left fold is the root.
    """

    __slots__ = ("size", "hashes")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        _check_int(size, "size", ValueError)
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"compact range of size {size} needs {size.bit_count()} hashes, got {len(hashes)}"
            )
        self.size: int = size
        self.hashes: list[bytes] = [_check_hash(h, "frontier hash", ValueError) for h in hashes]

    @staticmethod
    def frontier_ids(size: int) -> list[NodeId]:
        """Node ids of the frontier of tree ``size``, in ``hashes`` order."""
        return root_ids(size)

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Append one leaf hash; O(log n).

        Returns every node completed by this append as ``(level, index,
        hash)``, lowest first, starting with the leaf itself ``(0, i, h)``.
        """
        if type(leaf_hash) is bytes and len(leaf_hash) == HASH_SIZE:
            h = leaf_hash  # the common case, checked without a call
        else:
            h = _check_hash(leaf_hash, "leaf hash", ValueError)
        index = self.size
        completed = [(0, index, h)]
        level = 0
        while (index >> level) & 1:
            h = node_hash(self.hashes.pop(), h)
            level += 1
            completed.append((level, index >> level, h))
        self.hashes.append(h)
        self.size = index + 1
        return completed

    def root(self) -> bytes:
        """Merkle Tree Hash of the ``size`` leaves (RFC 9162 §2.1.1)."""
        return _fold(self.hashes) if self.hashes else EMPTY_ROOT

    def to_bytes(self) -> bytes:
        """Concatenation of ``hashes`` (``32 * popcount(size)`` bytes)."""
        return b"".join(self.hashes)

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> CompactRange:
        """Inverse of :meth:`to_bytes` for a tree of ``size`` leaves."""
        _check_int(size, "size", ValueError)
        want = HASH_SIZE * size.bit_count()
        if len(data) != want:
            raise ValueError(
                f"compact range of size {size} needs {want} bytes "
                f"({size.bit_count()} hashes of {HASH_SIZE}), got {len(data)}"
            )
        data = bytes(data)
        tree = cls.__new__(cls)  # the length check above validates every slice
        tree.size = size
        tree.hashes = [data[i : i + HASH_SIZE] for i in range(0, want, HASH_SIZE)]
        return tree

    def copy(self) -> CompactRange:
        """Independent copy."""
        return CompactRange(self.size, self.hashes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self.size == other.size and self.hashes == other.hashes

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CompactRange(size={self.size}, root={self.root().hex()})"


# --------------------------------------------------------------------------
# Verification (RFC 9162 §2.1.3.2, §2.1.4.2)


def _hex(value: object) -> str:
    return value.hex() if isinstance(value, (bytes, bytearray)) else repr(value)


def _decomp_inclusion(index: int, size: int) -> tuple[int, int]:
    """Split an inclusion proof's length into (inner, border) parts.

    ``inner`` elements lie below the point where the leaf's path meets the
    right edge of the tree (hashed on either side per the index bits);
    ``border`` elements above it are all left siblings.
    """
    inner = (index ^ (size - 1)).bit_length()
    return inner, (index >> inner).bit_count()


def _check_proof(proof: Sequence[bytes], want: int) -> list[bytes]:
    if len(proof) != want:
        raise ProofError(f"wrong proof size: got {len(proof)} hashes, want {want}")
    return [_check_hash(h, f"proof[{i}]", ProofError) for i, h in enumerate(proof)]


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """Root implied by an inclusion proof (RFC 9162 §2.1.3.2).

    Raises :class:`ProofError` if ``index >= size``, the leaf hash is not 32
    bytes, or the proof does not have exactly the length the sizes imply.
    """
    _check_int(index, "index", ProofError)
    _check_int(size, "size", ProofError)
    if index >= size:
        raise ProofError(f"index {index} is beyond tree size {size}")
    h = _check_hash(leaf_hash, "leaf hash", ProofError)
    inner, border = _decomp_inclusion(index, size)
    hashes = _check_proof(proof, inner + border)
    for i in range(inner):
        if (index >> i) & 1:
            h = node_hash(hashes[i], h)
        else:
            h = node_hash(h, hashes[i])
    for i in range(inner, inner + border):
        h = node_hash(hashes[i], h)
    return h


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Verify that ``leaf_hash`` is leaf ``index`` of tree ``size`` with ``root`` (RFC 9162 §2.1.3.2)."""
    calc = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if calc != root:
        raise ProofError(
            f"inclusion proof of leaf {index} in tree size {size} yields root "
            f"{calc.hex()}, want {_hex(root)}"
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Verify that tree ``size1``/``root1`` is a prefix of tree ``size2``/``root2`` (RFC 9162 §2.1.4.2).

    ``size1 == 0`` is rejected; ``size1 == size2`` needs an empty proof and
    ``root1 == root2``.
    """
    _check_int(size1, "size1", ProofError)
    _check_int(size2, "size2", ProofError)
    if size1 == 0:
        raise ProofError("size1 is 0: a consistency proof from the empty tree is meaningless")
    if size2 < size1:
        raise ProofError(f"size2 {size2} is smaller than size1 {size1}")
    if size1 == size2:
        if len(proof):
            raise ProofError(f"size1 == size2 == {size1}, but the proof has {len(proof)} hashes, want 0")
        if not isinstance(root1, (bytes, bytearray)) or not isinstance(root2, (bytes, bytearray)):
            raise ProofError("root1 and root2 must be bytes")
        if bytes(root1) != bytes(root2):
            raise ProofError(f"size1 == size2 == {size1}, but root1 != root2")
        return
    r1 = _check_hash(root1, "root1", ProofError)
    r2 = _check_hash(root2, "root2", ProofError)

    # The proof is the audit path, in tree size2, of the largest perfect
    # subtree ending at size1 (its lowest `shift` levels elided), preceded by
    # that subtree's hash unless it is tree size1 itself (size1 = 2**shift).
    shift = (size1 & -size1).bit_length() - 1
    known = size1 == 1 << shift
    inner, border = _decomp_inclusion(size1 - 1, size2)
    inner -= shift
    hashes = _check_proof(proof, (0 if known else 1) + inner + border)
    if known:
        seed = r1
    else:
        seed, hashes = hashes[0], hashes[1:]

    mask = (size1 - 1) >> shift
    h1 = h2 = seed
    for i in range(inner):
        if (mask >> i) & 1:
            h1 = node_hash(hashes[i], h1)
            h2 = node_hash(hashes[i], h2)
        else:
            h2 = node_hash(h2, hashes[i])
    for i in range(inner, inner + border):
        h1 = node_hash(hashes[i], h1)
        h2 = node_hash(hashes[i], h2)
    if h1 != r1:
        raise ProofError(
            f"consistency proof {size1}->{size2} yields root1 {h1.hex()}, want {r1.hex()}"
        )
    if h2 != r2:
        raise ProofError(
            f"consistency proof {size1}->{size2} yields root2 {h2.hex()}, want {r2.hex()}"
        )
