"""Proofs served from the in-memory copy of the stored nodes (ledger.service.node_cache)."""

from __future__ import annotations

import random
from uuid import uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from ledger.service.application import TransferLedger
from ledger.service.checkpoints import current_tree, stored_root_at
from ledger.service.node_cache import NodeCache, NodeCacheClosed, StoredNodesMissing
from ledger.tlog.merkle import (
    consistency_proof,
    inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from tests.support.backends import Backend


def append(ledger: TransferLedger, count: int) -> None:
    ledger.recorder.insert_events(
        [StoredEvent(uuid4(), 1, "t:E:v1", f'{{"i":{i}}}'.encode()) for i in range(count)]
    )


def test_cached_proofs_equal_proofs_from_sql_and_verify(ledger: TransferLedger) -> None:
    append(ledger, 300)
    cache = NodeCache(ledger.store)
    rng = random.Random(1)

    def get_nodes(ids):  # type: ignore[no-untyped-def]
        return ledger.store.read_nodes(ids)

    for _ in range(400):
        size = rng.randrange(1, 301)
        index = rng.randrange(size)
        root = stored_root_at(ledger.store, size)
        proof = cache.inclusion_proof(index, size)
        assert proof == inclusion_proof(index, size, get_nodes)
        verify_inclusion(cache.leaf_hash(index), index, size, proof, root)
        first = rng.randrange(1, size + 1)
        proof = cache.consistency_proof(first, size)
        assert proof == consistency_proof(first, size, get_nodes)
        verify_consistency(first, size, proof, stored_root_at(ledger.store, first), root)


def test_the_copy_grows_with_the_ledger(ledger: TransferLedger) -> None:
    append(ledger, 5)
    cache = NodeCache(ledger.store)
    cache.ensure(5)
    assert cache.size == 5
    append(ledger, 100)
    size, root = current_tree(ledger.store)
    proof = cache.inclusion_proof(77, size)  # loads only what is new
    assert cache.size == size == 105
    verify_inclusion(cache.leaf_hash(77), 77, size, proof, root)


def test_a_tree_larger_than_the_store_is_refused(ledger: TransferLedger) -> None:
    append(ledger, 4)
    with pytest.raises(StoredNodesMissing):
        NodeCache(ledger.store).inclusion_proof(0, 9)


def test_missing_stored_nodes_are_reported(ledger: TransferLedger, backend: Backend) -> None:
    append(ledger, 16)
    backend.execute("DELETE FROM ledger_nodes WHERE level = 2 AND idx = 1")
    with pytest.raises(StoredNodesMissing):
        NodeCache(ledger.store).ensure(16)


def test_a_failed_load_leaves_the_copy_as_it_was(ledger: TransferLedger, backend: Backend) -> None:
    append(ledger, 16)
    cache = NodeCache(ledger.store)
    cache.ensure(5)
    before = [bytes(level) for level in cache.levels]
    backend.execute("DELETE FROM ledger_nodes WHERE level = 2 AND idx = 3")
    for _ in range(2):  # a retry fails the same way, and still changes nothing
        with pytest.raises(StoredNodesMissing):
            cache.ensure(16)
        assert cache.size == 5
        assert [bytes(level) for level in cache.levels] == before
    root = stored_root_at(ledger.store, 8)
    verify_inclusion(cache.leaf_hash(6), 6, 8, cache.inclusion_proof(6, 8), root)


def test_a_closed_copy_loads_nothing_more(ledger: TransferLedger) -> None:
    append(ledger, 8)
    cache = NodeCache(ledger.store)
    cache.ensure(4)
    cache.close()
    with pytest.raises(NodeCacheClosed):
        cache.ensure(8)
    assert cache.size == 4
    cache.inclusion_proof(1, 4)  # what it holds still answers


def test_argument_errors() -> None:
    cache = NodeCache(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        cache.inclusion_proof(5, 5)
    with pytest.raises(ValueError):
        cache.consistency_proof(0, 3)
