"""Serving RFC 9162 proofs from an in-memory copy of the stored subtree hashes.

Complete subtree hashes never change once the tree has grown past them, so a
process that serves proofs can keep the stored ones in memory, one flat array
per level (32 bytes a node: about 64 bytes per leaf in all), and extend the
copy incrementally from the store when a proof asks for a larger tree. A proof
then reads its O(log n) nodes from memory instead of querying the database.
Works with several writer processes: whatever was committed is read on demand.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from ledger.storage.store import LedgerStore
from ledger.tlog.merkle import (
    HASH_SIZE,
    NodeId,
    _fold,
    _range_ids,
    consistency_proof_ids,
    inclusion_proof_ids,
)

_BATCH = 50_000
#: Right-edge subtree hashes remembered (they are shared by every proof
#: against the same tree size).
_EDGE_CACHE = 4096


class StoredNodesMissing(RuntimeError):
    """The store lacks subtree hashes it must have: run ``transfer-ledger verify``."""


class NodeCacheClosed(RuntimeError):
    """The cache was closed (its process is shutting down) while it was loading."""


assert HASH_SIZE == 32


class NodeCache:
    """The ledger's complete subtree hashes for ``size`` leaves, in memory."""

    def __init__(self, store: LedgerStore) -> None:
        self.store = store
        self.size = 0
        self.levels: list[bytearray] = [bytearray()]
        self._lock = threading.Lock()
        self._edges: dict[tuple[int, int], bytes] = {}
        self._closed = False

    def close(self) -> None:
        """Stop a load in progress at its next batch and refuse further loads; waits for it."""
        self._closed = True
        with self._lock:
            pass

    def ensure(self, size: int) -> None:
        """Load what the store holds for trees up to ``size`` leaves (committed ones).

        All or nothing: the copy grows only once every level read is complete, so a
        failed or stopped load leaves it as it was.
        """
        if size <= self.size:
            return
        with self._lock:
            if size <= self.size:
                return
            old = self.size
            grown: list[bytes] = []
            level = 0
            while level == 0 or size >> level:
                first, last = old >> level, (size >> level) - 1
                parts = []
                for start in range(first, last + 1, _BATCH):
                    if self._closed:
                        raise NodeCacheClosed("the proof cache was closed")
                    end = min(last, start + _BATCH - 1)
                    parts.extend(self._read_level(level, start, end))
                grown.append(b"".join(parts))
                level += 1
            for level, digests in enumerate(grown):
                if len(self.levels) <= level:
                    self.levels.append(bytearray())
                self.levels[level] += digests
            self.size = size

    def _read_level(self, level: int, first: int, last: int) -> list[bytes]:
        """The stored hashes of ``level`` at indexes ``first..last``, every one of them."""
        rows = self.store.read_level_range(level, first, last)
        if len(rows) != last - first + 1 or (rows and rows[0][0] != first):
            what = "leaves" if level == 0 else f"Merkle nodes at level {level}, indexes"
            raise StoredNodesMissing(f"the stored {what} {first}..{last} are incomplete")
        return [digest for _, digest in rows]

    def get_nodes(self, ids: Sequence[NodeId]) -> list[bytes]:
        return [self._node(level, index) for level, index in ids]

    def _node(self, level: int, index: int) -> bytes:
        start = index * HASH_SIZE
        return bytes(self.levels[level][start : start + HASH_SIZE])

    def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        """RFC 9162 §2.1.3.1 ``PATH(index, D[0:tree_size])``."""
        if not (type(index) is int and type(tree_size) is int and 0 <= index < tree_size):
            inclusion_proof_ids(index, tree_size)  # raises the precise error
        self.ensure(tree_size)
        return self._path(index, 0, tree_size)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """RFC 9162 §2.1.4.1 ``PROOF(first, D[0:second])``."""
        if not (type(first) is int and type(second) is int and 0 < first <= second):
            consistency_proof_ids(first, second)  # raises the precise error
        self.ensure(second)
        if first == second:
            return []
        # As merkle.consistency_proof_ids: the audit path of the largest perfect subtree
        # ending at ``first``, after that subtree's own hash unless it is all of tree ``first``.
        level = (first & -first).bit_length() - 1
        index = (first - 1) >> level
        path = self._path(index, level, second)
        if index:
            path.insert(0, self._node(level, index))
        return path

    def _path(self, index: int, level: int, size: int) -> list[bytes]:
        """The hashes of ``merkle._path_specs(index, level, size)``, read straight from the copy:
        the siblings up to the fork, the fork's right-edge sibling (folded, remembered), and
        the perfect subtrees left of the fork, lowest first."""
        levels = self.levels
        inner = (index ^ (size >> level)).bit_length() - 1
        fork_level = level + inner
        begin = (index >> inner) << fork_level
        end = begin + (1 << fork_level)
        # Sibling i is at (level + i, (index >> i) ^ 1); HASH_SIZE is 32 (<< 5).
        out = [
            bytes(levels[level + i][((index >> i) ^ 1) << 5 : (((index >> i) ^ 1) << 5) + 32])
            for i in range(inner)
        ]
        if end < size:
            out.append(self._right_edge(end, size))
        rest = begin
        while rest:
            low = rest & -rest
            node_level = low.bit_length() - 1
            start = ((rest - low) >> node_level) * HASH_SIZE
            out.append(bytes(levels[node_level][start : start + HASH_SIZE]))
            rest -= low
        return out

    def _right_edge(self, begin: int, end: int) -> bytes:
        """The fold of the perfect subtrees covering leaves ``[begin, end)`` (remembered)."""
        key = (begin, end)
        digest = self._edges.get(key)
        if digest is None:
            digest = _fold(self.get_nodes(_range_ids(begin, end)))
            if len(self._edges) >= _EDGE_CACHE:
                self._edges.clear()
            self._edges[key] = digest
        return digest

    def leaf_hash(self, index: int) -> bytes:
        self.ensure(index + 1)
        return self.get_nodes([(0, index)])[0]
