"""The tamper-evident store's contract: leaves, events, nodes, head, checkpoints, on both backends.

:class:`LedgerStoreContract` holds what a user of the store
(``ledger.storage.store.LedgerStore`` and the recorder's ``insert_events``)
relies on, written once; :class:`TestSQLiteStore` runs it on a SQLite file and
:class:`TestPostgresStore` on a schema of its own on the PostgreSQL server of
TRANSFER_LEDGER_TEST_DATABASE_URL (skipped without it), as eventsourcing runs
its recorder test cases on each of its recorders. Each store is opened the way
the application opens it (its infrastructure factory, the ledger's
environment), on a real database.

Roots are checked against the known RFC 6962 roots in
tests/testdata/rfc6962/README.md and against ``pymerkle`` on trees of
up to 10,000 leaves appended through the real recorder, in one transaction
per batch, as the application does.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID, uuid4

import pymerkle
import pytest
from eventsourcing.persistence import InfrastructureFactory, StoredEvent
from eventsourcing.utils import Environment

from ledger.config import eventsourcing_env
from ledger.service.checkpoints import current_tree, stored_root_at
from ledger.storage.cosignatures import CosignatureStore
from ledger.storage.idempotency import IdempotencyClaim, IdempotencyStore
from ledger.storage.principals import PrincipalStore
from ledger.storage.sql import SqlAccess
from ledger.storage.store import EventRow, Head, LeafRow, StoredCheckpoint
from ledger.tlog.leaf import ZERO_HASH, AppendedLeaf, encode_leaf, originator_id_text
from ledger.tlog.merkle import (
    CompactRange,
    inclusion_proof,
    leaf_hash,
    node_hash,
    verify_inclusion,
)
from tests.support.backends import PG_URL, RFC6962_VECTORS, Backend, postgres_backend, sqlite_backend

KNOWN_ROOTS = {
    0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z\Z")

#: The store as its users see it: the recorder (``insert_events``) that is the ledger's store.
Store = Any


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


def events(count: int, start: int = 0, originator_id: UUID | None = None) -> list[StoredEvent]:
    """``count`` events: each of an aggregate of its own, or versions 1.. of ``originator_id``."""
    return [
        StoredEvent(originator_id or uuid4(), i + 1 if originator_id else 1, f"bench:Event{i % 3}:v1",
                    f'{{"n":{i}}}'.encode())
        for i in range(start, start + count)
    ]


def append_events(store: Store, count: int, batch: int = 250) -> None:
    for start in range(0, count, batch):
        store.insert_events(events(min(batch, count - start), start))


def stored_leaf_bytes(store: Store) -> list[bytes]:
    """Recompute every leaf's bytes from the rows, following the chain."""
    leaves = store.read_leaves(0, 1_000_000)
    by_id = {e.notification_id: e for e in store.read_events(0, 1_000_000)}
    out, prev = [], ZERO_HASH
    for leaf in leaves:
        e = by_id[leaf.notification_id]
        data = encode_leaf(leaf.leaf_index, prev, e.originator_id, e.originator_version, e.topic,
                           e.state, leaf.recorded_at)
        prev = leaf_hash(data)
        assert prev == leaf.leaf_hash
        out.append(data)
    return out


def pages(read: Callable[[int, int], list[Any]], size: int, key: Callable[[Any], int]) -> list[Any]:
    """Every row, read ``size`` at a time from the cursor ``key`` gives after each page."""
    out: list[Any] = []
    cursor = 0
    while rows := read(cursor, size):
        assert len(rows) <= size
        out += rows
        cursor = key(rows[-1])
    return out


class LedgerStoreContract:
    """The store's behaviour on any backend. Not collected itself: a subclass per
    backend says where its database comes from (:attr:`database`)."""

    #: Makes a fresh, empty ledger database in a data dir (a context manager from tests.support.backends).
    database: ClassVar[Callable[[Path], AbstractContextManager[Backend]]]

    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[Backend]:
        with type(self).database(tmp_path / "data") as made:
            yield made

    @pytest.fixture
    def open_store(self, backend: Backend) -> Iterator[Callable[[], Store]]:
        """Opens the store on the test's database as the application does (each call another
        recorder on the same database, its tables created if missing)."""
        factories: list[InfrastructureFactory[Any]] = []

        def open_() -> Store:
            factory = InfrastructureFactory.construct(Environment("TransferLedger", eventsourcing_env(backend.settings)))
            factories.append(factory)
            return factory.application_recorder()

        yield open_
        for factory in factories:
            factory.close()

    @pytest.fixture
    def store(self, open_store: Callable[[], Store]) -> Store:
        return open_store()

    # -- an empty store ----------------------------------------------------------------

    def test_an_empty_store_has_the_empty_tree_and_nothing_to_read(self, store: Store) -> None:
        assert store.head() == Head.empty()
        assert current_tree(store) == (0, bytes.fromhex(KNOWN_ROOTS[0]))
        assert store.read_leaves(0, 10) == []
        assert store.read_events(0, 10) == []
        assert store.read_leaves_with_events(0, 10) == []
        assert store.read_feed(0, 10) == []
        assert store.read_feed_rows(0, 10) == []
        assert store.count_events() == 0
        assert store.checkpoints() == []
        assert store.leaf_of_event(uuid4(), 1) is None
        assert store.read_nodes([(0, 0), (1, 0)]) == [None, None]
        assert store.read_level_range(0, 0, 10) == []
        assert store.read_level_range(1, 0, 10) == []

    # -- append and read -----------------------------------------------------------------

    def test_each_saved_event_gets_the_next_leaf(self, store: Store) -> None:
        saved = events(4)
        sink: list[AppendedLeaf] = []
        notification_ids = store.insert_events(saved, leaf_sink=sink)
        leaves = store.read_leaves(0, 10)
        assert [leaf.leaf_index for leaf in leaves] == [0, 1, 2, 3]
        assert [leaf.notification_id for leaf in leaves] == list(notification_ids)
        assert [(leaf.originator_id, leaf.originator_version) for leaf in leaves] == [
            (str(e.originator_id), e.originator_version) for e in saved]
        assert all(type(leaf) is LeafRow and type(leaf.leaf_hash) is bytes for leaf in leaves)
        # One batch, one transaction, one record time: RFC 3339 in UTC, as in the leaf.
        assert len({leaf.recorded_at for leaf in leaves}) == 1
        assert RFC3339_UTC.match(leaves[0].recorded_at)
        # The writer is told the leaves it appended, as they are stored.
        assert [tuple(a) for a in sink] == [tuple(leaf) for leaf in leaves]
        assert len(stored_leaf_bytes(store)) == 4  # every hash is the chain's, from the event's bytes

    def test_saved_events_read_back_as_stored(self, store: Store) -> None:
        saved = events(3)
        notification_ids = store.insert_events(saved)
        assert store.read_events(0, 10) == [
            EventRow(n, str(e.originator_id), e.originator_version, e.topic, e.state)
            for n, e in zip(notification_ids, saved, strict=True)
        ]
        assert all(type(e) is EventRow and type(e.state) is bytes for e in store.read_events(0, 10))
        assert store.count_events() == 3

    def test_an_empty_save_appends_nothing(self, store: Store) -> None:
        store.insert_events(events(2))
        before = store.head()
        store.insert_events([])
        assert store.head() == before
        assert len(store.read_leaves(0, 10)) == 2

    def test_rows_saved_beside_the_events_commit_with_them(self, store: Store) -> None:
        store.insert_events(events(1), also_insert=[("ledger_checkpoints", (7, b"\x01" * 32, "note\n", "at"))])
        assert store.checkpoints() == [StoredCheckpoint(7, b"\x01" * 32, "note\n", "at")]
        assert store.head().size == 1

    # -- ordering -----------------------------------------------------------------------

    def test_leaves_follow_the_order_of_saving(self, store: Store) -> None:
        first, second = uuid4(), uuid4()
        saved: list[StoredEvent] = []
        for batch in range(4):  # two aggregates' versions interleaved, over several transactions
            part = [StoredEvent(first, batch * 2 + 1, "t", b"a"), StoredEvent(second, batch + 1, "t", b"b"),
                    StoredEvent(first, batch * 2 + 2, "t", b"c")]
            store.insert_events(part)
            saved += part
        leaves = store.read_leaves(0, 100)
        assert [(leaf.originator_id, leaf.originator_version) for leaf in leaves] == [
            (str(e.originator_id), e.originator_version) for e in saved]
        assert [leaf.leaf_index for leaf in leaves] == list(range(len(saved)))
        notification_ids = [leaf.notification_id for leaf in leaves]
        assert notification_ids == sorted(set(notification_ids))
        assert [e.notification_id for e in store.read_events(0, 100)] == notification_ids
        assert [leaf.leaf_index for leaf, _ in store.read_feed(0, 100)] == list(range(len(saved)))

    # -- pages --------------------------------------------------------------------------

    @pytest.mark.parametrize("size", [1, 4, 23, 100])
    def test_pages_of_any_size_read_everything_once(self, store: Store, size: int) -> None:
        for batch in (5, 1, 10, 7):
            store.insert_events(events(batch))
        leaves = store.read_leaves(0, 1000)
        assert len(leaves) == 23
        assert pages(store.read_leaves, size, lambda r: r.leaf_index + 1) == leaves
        assert pages(store.read_events, size, lambda r: r.notification_id) == store.read_events(0, 1000)
        assert pages(store.read_feed, size, lambda r: r[0].leaf_index + 1) == store.read_feed(0, 1000)
        assert pages(store.read_feed_rows, size, lambda r: r[0] + 1) == store.read_feed_rows(0, 1000)
        assert pages(store.read_leaves_with_events, size, lambda r: r[0] + 1) == store.read_leaves_with_events(0, 1000)
        assert store.read_leaves(10, 3) == leaves[10:13]
        assert store.read_leaves(23, 10) == []
        assert store.read_events(leaves[-1].notification_id, 10) == []

    def test_the_feed_joins_each_leaf_to_its_event(self, store: Store) -> None:
        store.insert_events(events(3))
        store.insert_events(events(2, 3))
        leaves, stored = store.read_leaves(0, 10), store.read_events(0, 10)
        assert store.read_feed(0, 10) == list(zip(leaves, stored, strict=True))
        assert store.read_feed_rows(0, 10) == [
            (leaf.leaf_index, leaf.recorded_at, leaf.originator_id, leaf.originator_version, e.topic, e.state)
            for leaf, e in zip(leaves, stored, strict=True)
        ]
        rows = store.read_leaves_with_events(0, 10)
        assert [(r[0], r[1], originator_id_text(r[2]), *r[3:6]) for r in rows] == [tuple(leaf) for leaf in leaves]
        assert [(originator_id_text(r[6]), *r[7:]) for r in rows] == [
            (e.originator_id, e.originator_version, e.topic, e.state) for e in stored]

    def test_a_leaf_whose_event_row_is_gone_reads_without_it(self, store: Store, backend: Backend) -> None:
        store.insert_events(events(3))
        gone = store.read_leaves(1, 1)[0]
        backend.execute(f"DELETE FROM {backend.events_table} WHERE {backend.notification_id} = ?",
                        (gone.notification_id,))
        rows = store.read_leaves_with_events(0, 10)
        assert [r[0] for r in rows] == [0, 1, 2]
        assert rows[1][6:] == (None, None, None, None)
        assert [leaf.leaf_index for leaf, _ in store.read_feed(0, 10)] == [0, 2]
        assert [r[0] for r in store.read_feed_rows(0, 10)] == [0, 2]
        assert store.count_events() == 2

    # -- the tree -------------------------------------------------------------------------

    def test_head_tracks_the_tree(self, store: Store) -> None:
        append_events(store, 37, batch=5)
        head = store.head()
        tree = CompactRange()
        for leaf in store.read_leaves(0, 100):
            tree.append(leaf.leaf_hash)
        assert head.size == 37
        assert head.frontier == tree.to_bytes()
        assert head.last_leaf_hash == store.read_leaves(36, 1)[0].leaf_hash
        assert current_tree(store) == (37, tree.root())

    def test_roots_equal_pymerkle_up_to_10000_leaves(self, store: Store) -> None:
        total = 10_000
        append_events(store, total)
        size, root = current_tree(store)
        assert size == total
        reference = pymerkle.InmemoryTree(algorithm="sha256")
        for data in stored_leaf_bytes(store):
            reference.append_entry(data)
        assert root == reference.get_root()
        rng = random.Random(9162)
        for size in sorted(rng.sample(range(1, total + 1), 40)) + [1, 2, 3, 1023, 1024, 1025, total]:
            assert stored_root_at(store, size) == reference.get_root(size), size

    def test_leaf_indexes_are_gap_free_and_nodes_serve_proofs(self, store: Store) -> None:
        append_events(store, 300, batch=7)
        leaves = store.read_leaves(0, 1000)
        assert [leaf.leaf_index for leaf in leaves] == list(range(300))
        notification_ids = [leaf.notification_id for leaf in leaves]
        assert notification_ids == sorted(notification_ids)
        size, root = current_tree(store)

        def get_nodes(ids):  # type: ignore[no-untyped-def]
            found = store.read_nodes(ids)
            assert None not in found
            return found

        for index in (0, 1, 150, 255, 256, 299):
            proof = inclusion_proof(index, size, get_nodes)
            verify_inclusion(leaves[index].leaf_hash, index, size, proof, root)

    def test_nodes_are_the_complete_subtrees_by_level(self, store: Store) -> None:
        store.insert_events(events(7))
        hashes = [leaf.leaf_hash for leaf in store.read_leaves(0, 10)]
        level1 = [node_hash(hashes[2 * i], hashes[2 * i + 1]) for i in range(3)]
        level2 = node_hash(level1[0], level1[1])
        assert store.read_level_range(0, 0, 6) == list(enumerate(hashes))
        assert store.read_level_range(0, 2, 4) == [(2, hashes[2]), (3, hashes[3]), (4, hashes[4])]
        assert store.read_level_range(1, 0, 9) == list(enumerate(level1))  # (1, 3) is not complete at 7
        assert store.read_level_range(1, 1, 1) == [(1, level1[1])]
        assert store.read_level_range(2, 0, 1) == [(0, level2)]
        assert store.read_nodes([(1, 2), (0, 6), (3, 0), (2, 0), (0, 7), (0, 0), (1, 2)]) == [
            level1[2], hashes[6], None, level2, None, hashes[0], level1[2]]

    # -- lookups -----------------------------------------------------------------------------

    def test_the_leaf_of_an_event_is_found_by_its_originator_and_version(self, store: Store) -> None:
        aggregate = uuid4()
        store.insert_events(events(2))
        store.insert_events(events(3, originator_id=aggregate))
        leaves = store.read_leaves(0, 10)
        for version in (1, 2, 3):
            assert store.leaf_of_event(aggregate, version) == leaves[1 + version]
        assert store.leaf_of_event(UUID(leaves[0].originator_id), 1) == leaves[0]
        assert store.leaf_of_event(aggregate, 4) is None
        assert store.leaf_of_event(uuid4(), 1) is None

    # -- refusals change nothing ----------------------------------------------------------------

    def test_a_failed_save_appends_no_leaf(self, store: Store) -> None:
        event = StoredEvent(uuid4(), 1, "t", b"{}")
        store.insert_events([event])
        before = store.head()
        try:
            store.insert_events([StoredEvent(uuid4(), 1, "t", b"{}"), event])  # duplicate version
        except Exception:
            pass
        else:
            raise AssertionError("a conflicting insert was accepted")
        assert store.head() == before
        assert len(store.read_leaves(0, 10)) == 1
        assert store.count_events() == 1
        assert store.read_nodes([(1, 0)]) == [None]

    def test_a_refused_row_beside_the_events_writes_none_of_them(self, store: Store) -> None:
        store.save_checkpoint(0, ZERO_HASH, "first\n")
        store.insert_events(events(1))
        before = store.head(), store.read_events(0, 10), store.checkpoints()
        with pytest.raises(Exception, match="(?i)unique|duplicate"):
            store.insert_events(events(2), also_insert=[("ledger_checkpoints", (0, ZERO_HASH, "again\n", "at"))])
        assert (store.head(), store.read_events(0, 10), store.checkpoints()) == before
        assert len(store.read_leaves(0, 10)) == 1
        store.insert_events(events(1))  # and the store goes on from where it was
        assert [leaf.leaf_index for leaf in store.read_leaves(0, 10)] == [0, 1]
        stored_leaf_bytes(store)

    def test_one_leaf_per_event(self, store: Store, backend: Backend) -> None:
        """Both schemas refuse a second leaf for one event (originator id and version): the
        backends' schemas say the same (PostgreSQL by a table constraint, SQLite by an index)."""
        store.insert_events(events(1))
        index, notification, originator, version, at, digest = backend.execute(
            "SELECT leaf_index, notification_id, originator_id, originator_version, recorded_at, leaf_hash"
            " FROM ledger_leaves ORDER BY leaf_index LIMIT 1")[0]
        with pytest.raises(Exception, match="(?i)unique|duplicate"):
            backend.execute("INSERT INTO ledger_leaves VALUES (?, ?, ?, ?, ?, ?)",
                            (index + 1, notification + 1, originator, version, at, digest))
        assert len(store.read_leaves(0, 10)) == 1

    # -- checkpoints -------------------------------------------------------------------------------

    def test_checkpoints_are_kept_one_per_tree_size_in_size_order(self, store: Store) -> None:
        first = store.save_checkpoint(5, b"\x05" * 32, "five\n")
        assert (first.tree_size, first.root_hash, first.note) == (5, b"\x05" * 32, "five\n")
        assert RFC3339_UTC.match(first.created_at)
        store.save_checkpoint(2, b"\x02" * 32, "two\n")
        # A second checkpoint of a size keeps the first, and says so.
        assert store.save_checkpoint(5, b"\x06" * 32, "another five\n") == first
        assert store.checkpoints() == [StoredCheckpoint(2, b"\x02" * 32, "two\n", store.checkpoints()[0].created_at),
                                       first]

    # -- the schema --------------------------------------------------------------------------------

    def test_opening_the_store_creates_the_tables_beside_the_events(self, store: Store) -> None:
        """The principals, idempotency records and cosignatures have their tables once the store
        is open: their stores create nothing."""
        sql = SqlAccess(store)
        principals = PrincipalStore(sql)
        principal, key = principals.add("DE", "auditor")
        assert principals.authenticate(key) == principal
        assert IdempotencyStore(sql).lookup(IdempotencyClaim("p_1", "key-1", "hash")) is None
        assert CosignatureStore(sql).lines(1) == []

    # -- opened again ---------------------------------------------------------------------------------

    def test_a_store_opened_again_continues_the_same_chain(self, open_store: Callable[[], Store]) -> None:
        first = open_store()
        first.insert_events(events(5))
        first.save_checkpoint(5, current_tree(first)[1], "five\n")
        again = open_store()
        assert again.head() == first.head()
        assert again.checkpoints() == first.checkpoints()
        again.insert_events(events(3, 5))
        assert [leaf.leaf_index for leaf in first.read_leaves(0, 10)] == list(range(8))
        assert len(stored_leaf_bytes(first)) == 8
        assert current_tree(first) == current_tree(again)
        assert stored_root_at(again, 5) == first.checkpoints()[0].root_hash
        principal, key = PrincipalStore(SqlAccess(first)).add("FR", "verifier")
        assert PrincipalStore(SqlAccess(open_store())).authenticate(key) == principal  # its schema, kept


class TestSQLiteStore(LedgerStoreContract):
    """The contract on a SQLite file (whatever the suite's backend)."""

    database = staticmethod(sqlite_backend)

    def test_cells_of_another_type_read_as_the_store_types(self, store: Store, backend: Backend) -> None:
        """SQLite columns are dynamically typed: a tampered state or topic reads as bytes
        and text (for verification to find modified), not as what the cell holds."""
        store.insert_events(events(2))
        backend.execute(f"UPDATE {backend.events_table} SET state = 'text', topic = 12 WHERE rowid = "
                        f"(SELECT MIN(rowid) FROM {backend.events_table})")
        event = store.read_events(0, 10)[0]
        assert (event.topic, event.state) == ("12", b"text")
        assert store.read_feed(0, 1)[0][1] == event
        assert store.read_feed_rows(0, 1)[0][4:] == ("12", b"text")


@pytest.mark.skipif(not PG_URL, reason="TRANSFER_LEDGER_TEST_DATABASE_URL is not set")
class TestPostgresStore(LedgerStoreContract):
    """The contract on a PostgreSQL schema of its own."""

    database = staticmethod(postgres_backend)
