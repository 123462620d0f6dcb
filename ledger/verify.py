"""Full verification: re-read every event and leaf, recompute everything.

:func:`verify_ledger` streams the leaves (in leaf order) and the stored
events (in notification order) side by side, in batches, with constant
memory. For each leaf it recomputes the canonical bytes from the event row
and the previous leaf's *recomputed* hash, the leaf hash, and the RFC 9162
tree (a compact range); it compares the subtree hashes stored for proofs,
the head row, and every stored checkpoint (signature, origin, and root at
its size). It reports the **first leaf index** where anything differs and
what differs:

- ``modified``: an event row no longer hashes to its leaf (state, topic,
  id, version or record time changed; or the chain before it was rewritten);
- ``missing``: a leaf index is absent, or a leaf's event row is gone;
- ``inserted``: an event row that no leaf records;
- ``reordered``: leaves whose event rows are out of commit order, or an event
  row that holds another leaf's event;
- ``truncated``: a stored checkpoint, or the head, covers more leaves than
  exist;
- ``forked``: a stored checkpoint whose root differs from the tree at its
  size, or whose signature does not verify.

Leaves and events appended after verification starts are not its business:
it checks the ledger up to the head it read first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from ledger.leaf import ZERO_HASH, encode_leaf
from ledger.merkle import CompactRange, leaf_hash
from ledger.note import NoteError, Verifier, open_checkpoint
from ledger.store import EventRow, LedgerStore, LeafRow, StoredCheckpoint, iter_batches

#: How many problems a report lists (the count is always complete).
MAX_LISTED_PROBLEMS = 100
BATCH = 4096


@dataclass
class VerifyReport:
    ok: bool = True
    tree_size: int = 0
    root_hash: bytes | None = None
    first_bad_index: int | None = None
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    checkpoints_checked: int = 0
    events_checked: int = 0

    def problem(self, index: int | None, kind: str, text: str) -> None:
        self.ok = False
        self.problem_count += 1
        if index is not None and (self.first_bad_index is None or index < self.first_bad_index):
            self.first_bad_index = index
        if len(self.problems) < MAX_LISTED_PROBLEMS:
            where = f"leaf {index}: " if index is not None else ""
            self.problems.append(f"{kind}: {where}{text}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex() if self.root_hash is not None else None,
            "first_bad_index": self.first_bad_index,
            "problems": self.problems,
            "problem_count": self.problem_count,
            "checkpoints_checked": self.checkpoints_checked,
            "events_checked": self.events_checked,
        }


Progress = Callable[[int, int], None]


class _Checkpoints:
    """Stored checkpoints, checked against the tree as it grows past their sizes."""

    def __init__(
        self, stored: list[StoredCheckpoint], verifier: Verifier | None, origin: str | None,
        report: VerifyReport,
    ) -> None:
        self.pending = sorted(stored, key=lambda c: c.tree_size)
        self.verifier, self.origin, self.report = verifier, origin, report
        self.covered = 0  # leaves [0, covered) agree with a verified checkpoint

    def check_due(self, tree: CompactRange) -> None:
        while self.pending and self.pending[0].tree_size == tree.size:
            self._check(self.pending.pop(0), tree.root())

    def _check(self, stored: StoredCheckpoint, root: bytes) -> None:
        self.report.checkpoints_checked += 1
        size = stored.tree_size
        if self.verifier is not None:
            try:
                signed = open_checkpoint(stored.note, self.verifier, self.origin)
            except NoteError as e:
                self.report.problem(None, "forked", f"stored checkpoint at size {size} does not verify: {e}")
                return
            if signed.size != size or signed.root_hash != stored.root_hash:
                self.report.problem(
                    None, "forked",
                    f"stored checkpoint at size {size}: its row says size {size} root "
                    f"{stored.root_hash.hex()}, but the signed note says size {signed.size} "
                    f"root {signed.root_hash.hex()}",
                )
                return
        if stored.root_hash != root:
            self.report.problem(
                self.covered, "forked",
                f"the tree of size {size} has root {root.hex()}, but the checkpoint signed at "
                f"that size has root {stored.root_hash.hex()}: some leaf in [{self.covered}, {size}) "
                "was rewritten",
            )
            return
        self.covered = size

    def finish(self, tree_size: int) -> None:
        for stored in self.pending:
            self.report.checkpoints_checked += 1
            self.report.problem(
                tree_size, "truncated",
                f"a checkpoint was signed at size {stored.tree_size}, but the ledger has only "
                f"{tree_size} leaves",
            )


class _NodeCheck:
    """Compares the subtree hashes stored for proofs with the recomputed ones."""

    def __init__(self, store: LedgerStore, report: VerifyReport) -> None:
        self.store, self.report = store, report
        self.computed: dict[tuple[int, int], bytes] = {}

    def add(self, nodes: list[tuple[int, int, bytes]]) -> None:
        for level, idx, digest in nodes:
            if level > 0:
                self.computed[(level, idx)] = digest

    def flush(self) -> None:
        by_level: dict[int, dict[int, bytes]] = {}
        for (level, idx), digest in self.computed.items():
            by_level.setdefault(level, {})[idx] = digest
        for level, wanted in sorted(by_level.items()):
            stored = dict(self.store.read_level_range(level, min(wanted), max(wanted)))
            for idx, digest in sorted(wanted.items()):
                got = stored.get(idx)
                if got != digest:
                    first_leaf = idx << level
                    what = "missing" if got is None else "modified"
                    self.report.problem(
                        first_leaf, what,
                        f"stored Merkle node (level {level}, index {idx}) covering leaves "
                        f"[{first_leaf}, {(idx + 1) << level}) is {what}",
                    )
        self.computed.clear()


def _leaf_of(store: LedgerStore, event: EventRow) -> LeafRow | None:
    """The leaf that records this event's id and version, if any."""
    try:
        originator_id = UUID(event.originator_id)
    except ValueError:
        return None
    return store.leaf_of_event(originator_id, event.originator_version)


def _describe(row: EventRow | LeafRow) -> str:
    return f"{row.originator_id} v{row.originator_version}"


def verify_ledger(
    store: LedgerStore,
    verifier: Verifier | None,
    origin: str | None = None,
    *,
    progress: Progress | None = None,
    batch: int = BATCH,
) -> VerifyReport:
    """Verify the whole ledger; see the module docstring for what is checked."""
    report = VerifyReport()
    head = store.head()
    total = head.size
    checkpoints = _Checkpoints(store.checkpoints(), verifier, origin, report)
    nodes = _NodeCheck(store, report)
    tree = CompactRange()
    prev = ZERO_HASH
    expected = 0
    last_notification = 0
    checkpoints.check_due(tree)

    leaves: Iterator[LeafRow] = iter_batches(
        store.read_leaves, 0, lambda r: r.leaf_index + 1, batch
    )
    events: Iterator[EventRow] = iter_batches(
        store.read_events, 0, lambda r: r.notification_id, batch
    )
    event = next(events, None)

    for leaf in leaves:
        if leaf.leaf_index >= total:
            break
        index = leaf.leaf_index
        if index != expected:
            report.problem(expected, "missing", f"leaves {expected}..{index - 1} are gone")
            prev = ZERO_HASH if index == 0 else prev
        if leaf.notification_id <= last_notification:
            report.problem(
                index, "reordered",
                f"its event row {leaf.notification_id} comes before the row of the previous leaf "
                f"({last_notification})",
            )
        while event is not None and event.notification_id < leaf.notification_id:
            if event.notification_id > last_notification:
                report.problem(
                    index, "inserted",
                    f"event row {event.notification_id} ({_describe(event)}) has no leaf",
                )
            event = next(events, None)
        digest = leaf.leaf_hash
        if event is None or event.notification_id != leaf.notification_id:
            report.problem(
                index, "missing",
                f"its event row {leaf.notification_id} ({_describe(leaf)}) is gone",
            )
        else:
            report.events_checked += 1
            if (event.originator_id, event.originator_version) != (
                leaf.originator_id, leaf.originator_version,
            ):
                kind = "reordered" if _leaf_of(store, event) is not None else "modified"
                report.problem(
                    index, kind,
                    f"event row {event.notification_id} holds {_describe(event)}, but the leaf "
                    f"recorded {_describe(leaf)}",
                )
            digest = leaf_hash(
                encode_leaf(
                    index, prev, event.originator_id, event.originator_version,
                    event.topic, event.state, leaf.recorded_at,
                )
            )
            if digest != leaf.leaf_hash:
                report.problem(
                    index, "modified",
                    f"event row {event.notification_id} ({_describe(event)}) does not hash to the "
                    "stored leaf hash: its topic, state, id, version or record time, or an "
                    "earlier leaf, was changed",
                )
            event = next(events, None)
        last_notification = max(last_notification, leaf.notification_id)
        nodes.add(tree.append(digest))
        prev = digest
        expected = index + 1
        checkpoints.check_due(tree)
        if expected % batch == 0:
            nodes.flush()
            if progress is not None:
                progress(expected, total)
    nodes.flush()

    if expected < total:
        report.problem(
            expected, "truncated",
            f"the head records {total} leaves, but only {expected} exist",
        )
    while event is not None:
        if event.notification_id > last_notification and _leaf_of(store, event) is None:
            report.problem(
                expected, "inserted",
                f"event row {event.notification_id} ({_describe(event)}) has no leaf",
            )
        event = next(events, None)
    if expected == total and (head.last_leaf_hash != prev or head.frontier != tree.to_bytes()):
        report.problem(
            max(0, total - 1), "modified",
            "the head row (last leaf hash, frontier) does not match the recomputed tree",
        )
    checkpoints.finish(expected)
    report.tree_size = expected
    report.root_hash = tree.root()
    if progress is not None:
        progress(expected, total)
    return report
