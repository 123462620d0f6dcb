"""Every read model "as of" a leaf index N, or as of a time, by replaying leaves 0..N.

The replay runs the same logic as the live runner (``projections.model``)
into an in-memory database with the same tables, so the same queries
(``projections.queries``) answer it. Only leaves 0..N are read: the state as
of N never changes when later events arrive. The time-dependent findings are
judged at the time of leaf N (or at the time asked for).

As of a time T: the longest prefix of the ledger whose leaves were all
recorded at or before T (leaf record times, the server's clock).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from projections.db import MemoryDb
from projections.events import Decode, feed_rows, norm_time
from projections.queries import ALL_MODELS, DEFAULT_PENDING_DEADLINE_DAYS, audit_state
from projections.runner import ProjectionRunner

REPLAY_BATCH = 5000


class ReplayError(ValueError):
    """The point asked for is not in the ledger (e.g. an index beyond its size)."""


@dataclass(frozen=True)
class _Head:
    size: int


class _Prefix:
    """The ledger's feed cut at leaf ``last`` and at record time ``until`` (inclusive)."""

    def __init__(self, store: Any, last: int, until: str | None,
                 observe: Callable[[Sequence[Sequence[Any]]], None] | None = None) -> None:
        self.store, self.last, self.until, self.observe = store, last, until, observe
        self.last_time: str | None = None

    def head(self) -> _Head:
        return _Head(self.last + 1)

    def read_feed_rows(self, start: int, limit: int) -> list[Any]:
        limit = min(limit, self.last + 1 - start)
        if limit <= 0:
            return []
        rows = feed_rows(self.store, start, limit)
        if self.until is not None:
            for i, row in enumerate(rows):
                if norm_time(row[1]) > self.until:
                    self.last = row[0] - 1
                    rows = rows[:i]
                    break
        if rows:
            self.last_time = norm_time(rows[-1][1])
            if self.observe is not None:
                self.observe(rows)
        return rows


@dataclass
class Replay:
    """The read models as of ``at_index`` (-1: before the first leaf), in memory."""

    db: MemoryDb
    at_index: int
    at_time: str | None  # the time asked for, or the record time of leaf at_index
    leaf_time: str | None  # the record time of leaf at_index

    @property
    def tree_size(self) -> int:
        return self.at_index + 1

    @property
    def now(self) -> str:
        """The moment the time-dependent findings are judged at."""
        return self.at_time or self.leaf_time or "0001-01-01T00:00:00.000000Z"

    def state(
        self, *, share: str | None = None, models: tuple[str, ...] = ALL_MODELS, transfer_id: str | None = None,
        pending_deadline_days: float = DEFAULT_PENDING_DEADLINE_DAYS, limit: int = 1000,
    ) -> dict[str, Any]:
        return audit_state(self.db, now=self.now, share=share, models=models, transfer_id=transfer_id,
                           pending_deadline_days=pending_deadline_days, limit=limit)

    def close(self) -> None:
        self.db.close()


def replay(
    store: Any, *, at_index: int | None = None, at_time: str | None = None, decode: Decode | None = None,
    observe: Callable[[Sequence[Sequence[Any]]], None] | None = None, progress: Any = None,
) -> Replay:
    """Replay leaves 0..N into memory. N is ``at_index``, or the last leaf recorded at or
    before ``at_time`` (RFC 3339), whichever comes first; the current head if neither.
    ``observe`` sees every batch of plain feed rows replayed (leaf_index, recorded_at,
    originator_id, version, topic, state), e.g. to read leaves no read model keeps;
    ``progress(done, total)`` is told how far the replay is."""
    size = store.head().size
    if at_index is not None:
        if at_index < 0 or at_index >= size:
            raise ReplayError(f"at_index {at_index} is not a leaf of the ledger (it has {size} leaves: 0..{size - 1})")
        last = at_index
    else:
        last = size - 1
    until = None
    if at_time is not None:
        try:
            until = norm_time(at_time)
        except (ValueError, OverflowError):
            raise ReplayError(f"at_time {at_time!r} is not an RFC 3339 time") from None
    prefix = _Prefix(store, last, until, observe)
    db = MemoryDb()
    try:
        runner = ProjectionRunner(prefix, db, decode=decode, batch_size=REPLAY_BATCH)
        runner.catch_up(progress=progress)
        position = runner.position()
    except BaseException:
        db.close()
        raise
    return Replay(db, position, until, prefix.last_time if position >= 0 else None)


def covering_checkpoint(store: Any, index: int) -> Any | None:
    """The first stored checkpoint whose tree contains leaf ``index`` (tree size > index)."""
    for checkpoint in store.checkpoints():
        if checkpoint.tree_size > index:
            return checkpoint
    return None
