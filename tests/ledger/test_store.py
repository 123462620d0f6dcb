"""The tamper-evident store on a real database: leaves, nodes, head, roots.

Roots are checked against the known RFC 6962 roots in
tests/testdata/rfc6962/README.md and against ``pymerkle`` on trees of
up to 10,000 leaves appended through the real recorder, in one transaction
per batch, as the application does.
"""

from __future__ import annotations

import random
from uuid import uuid4

import pymerkle
import pytest
from eventsourcing.persistence import StoredEvent

from ledger.service.application import TransferLedger
from ledger.service.checkpoints import current_tree, stored_root_at
from ledger.tlog.leaf import ZERO_HASH, encode_leaf
from ledger.tlog.merkle import (
    CompactRange,
    inclusion_proof,
    leaf_hash,
    verify_inclusion,
)
from tests.scenario import transfer
from tests.support.backends import RFC6962_VECTORS, Backend

KNOWN_ROOTS = {
    0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}


def append_events(ledger: TransferLedger, count: int, batch: int = 250) -> None:
    for start in range(0, count, batch):
        events = [
            StoredEvent(uuid4(), 1, "bench:Event:v1", f'{{"n":{i}}}'.encode())
            for i in range(start, min(count, start + batch))
        ]
        ledger.recorder.insert_events(events)


def stored_leaf_bytes(ledger: TransferLedger) -> list[bytes]:
    """Recompute every leaf's bytes from the rows, following the chain."""
    leaves = ledger.store.read_leaves(0, 1_000_000)
    events = {e.notification_id: e for e in ledger.store.read_events(0, 1_000_000)}
    out, prev = [], ZERO_HASH
    for leaf in leaves:
        e = events[leaf.notification_id]
        data = encode_leaf(leaf.leaf_index, prev, e.originator_id, e.originator_version, e.topic,
                           e.state, leaf.recorded_at)
        prev = leaf_hash(data)
        assert prev == leaf.leaf_hash
        out.append(data)
    return out


def test_known_roots_of_the_rfc6962_vectors() -> None:
    assert (RFC6962_VECTORS / "README.md").exists()
    inputs = [bytes.fromhex(h) for h in
              ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
               "606162636465666768696a6b6c6d6e6f"]]
    tree = CompactRange()
    roots = {0: tree.root().hex()}
    for data in inputs:
        tree.append(leaf_hash(data))
        roots[tree.size] = tree.root().hex()
    for size, root in KNOWN_ROOTS.items():
        assert roots[size] == root


def test_empty_ledger_has_the_empty_root(ledger: TransferLedger) -> None:
    assert current_tree(ledger.store) == (0, bytes.fromhex(KNOWN_ROOTS[0]))


def test_roots_equal_pymerkle_up_to_10000_leaves(ledger: TransferLedger) -> None:
    total = 10_000
    append_events(ledger, total)
    size, root = current_tree(ledger.store)
    assert size == total
    reference = pymerkle.InmemoryTree(algorithm="sha256")
    for data in stored_leaf_bytes(ledger):
        reference.append_entry(data)
    assert root == reference.get_root()
    rng = random.Random(9162)
    for size in sorted(rng.sample(range(1, total + 1), 40)) + [1, 2, 3, 1023, 1024, 1025, total]:
        assert stored_root_at(ledger.store, size) == reference.get_root(size), size


def test_leaf_indexes_are_gap_free_and_nodes_serve_proofs(ledger: TransferLedger) -> None:
    append_events(ledger, 300, batch=7)
    leaves = ledger.store.read_leaves(0, 1000)
    assert [leaf.leaf_index for leaf in leaves] == list(range(300))
    notification_ids = [leaf.notification_id for leaf in leaves]
    assert notification_ids == sorted(notification_ids)
    size, root = current_tree(ledger.store)

    def get_nodes(ids):  # type: ignore[no-untyped-def]
        found = ledger.store.read_nodes(ids)
        assert None not in found
        return found

    for index in (0, 1, 150, 255, 256, 299):
        proof = inclusion_proof(index, size, get_nodes)
        verify_inclusion(leaves[index].leaf_hash, index, size, proof, root)


def test_head_tracks_the_tree(ledger: TransferLedger) -> None:
    append_events(ledger, 37, batch=5)
    head = ledger.store.head()
    tree = CompactRange()
    for leaf in ledger.store.read_leaves(0, 100):
        tree.append(leaf.leaf_hash)
    assert head.size == 37
    assert head.frontier == tree.to_bytes()
    assert head.last_leaf_hash == ledger.store.read_leaves(36, 1)[0].leaf_hash


def test_a_failed_save_appends_no_leaf(ledger: TransferLedger) -> None:
    event = StoredEvent(uuid4(), 1, "t", b"{}")
    ledger.recorder.insert_events([event])
    before = ledger.store.head()
    try:
        ledger.recorder.insert_events([StoredEvent(uuid4(), 1, "t", b"{}"), event])  # duplicate version
    except Exception:
        pass
    else:
        raise AssertionError("a conflicting insert was accepted")
    assert ledger.store.head() == before
    assert len(ledger.store.read_leaves(0, 10)) == 1
    assert ledger.store.count_events() == 1


def test_one_leaf_per_event_on_both_backends(ledger: TransferLedger, backend: Backend) -> None:
    """Both schemas refuse a second leaf for one event (originator id and version): the
    backends' schemas say the same (PostgreSQL by a table constraint, SQLite by an index)."""
    ledger.record_transfer(transfer("DE", "FR"))
    index, notification, originator, version, at, leaf_hash = backend.execute(
        "SELECT leaf_index, notification_id, originator_id, originator_version, recorded_at, leaf_hash"
        " FROM ledger_leaves ORDER BY leaf_index LIMIT 1")[0]
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        backend.execute("INSERT INTO ledger_leaves VALUES (?, ?, ?, ?, ?, ?)",
                        (index + 1, notification + 1, originator, version, at, leaf_hash))
