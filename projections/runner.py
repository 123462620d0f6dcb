"""The runner: follows the ledger feed and keeps the read models, exactly once.

Position = the ledger's **leaf index** (gap-free and the same on both
backends; eventsourcing's notification ids are neither). Each read model's
row in ``proj_tracking`` holds the last leaf index it applied. A batch of
leaves (``read_feed(position + 1, batch_size)``) is applied in memory by the
pure logic of ``projections.model``; then, in **one transaction**, the
positions move from the old value to the new one (a compare-and-set: if
another runner moved them first, the transaction rolls back and nothing is
written) and the batch's rows are written. A crash between batches loses
nothing and applies nothing twice: the next run starts after the last
committed position.

SQLite recorders have no ``subscribe()``: :meth:`ProjectionRunner.follow`
polls. On PostgreSQL it also LISTENs to the channel eventsourcing NOTIFYs on
every insert, and wakes up at once.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from itertools import islice
from typing import Any

from projections.control import CONTROL_COLUMNS
from projections.custody import CONSENT_COLUMNS, USE_COLUMNS, ConsentRec
from projections.db import (
    DDL_LOCK,
    Db,
    Exec,
    add_clause,
    insert_rows,
    upsert_clause,
)
from projections.events import (
    GRANTED,
    REFUSED,
    REQUESTED,
    REVOKED,
    TRANSFER_RECORDED,
    USED,
    Decode,
    FeedEvent,
    Undecodable,
    feed_events,
    feed_rows,
    now_time,
)
from projections.model import (
    AUTH_COLUMNS,
    FINDING_COLUMNS,
    REFERRAL_COLUMNS,
    TRANSFER_COLUMNS,
    AuthRec,
    PolicyRec,
    State,
    TransferRec,
    apply_all,
    evidence,
)
from projections.preservation import PRESERVATION_COLUMNS, PreservationRec
from projections.schema import MODEL_TABLES, MODELS, TABLES, TRACKING, statements

DEFAULT_BATCH = 2000
#: Leaves per batch when rebuilding from zero: fewer, larger transactions.
REBUILD_BATCH = 20000
#: Records kept in memory between batches (transfers and authorizations each).
DEFAULT_CACHE = 200_000
_AUTH_TOPICS = frozenset({GRANTED, REFUSED, REVOKED, USED, REQUESTED})
_IN_CHUNK = 500

Progress = Callable[[int, int], None]


class ProjectionError(Exception):
    """The read models cannot advance (e.g. a leaf without its event): run ``verify``."""


class PositionConflict(Exception):
    """Another runner moved the positions first; this batch was rolled back."""


class ProjectionRunner:
    """Keeps the read models of ``projections.schema.MODELS`` in ``db``.

    ``store`` is the ledger's store (``read_feed``, ``head``); ``db`` a
    :class:`~projections.db.LedgerDb` on the same database (or a
    :class:`~projections.db.MemoryDb` for a replay); ``decode`` undoes the
    mapper's cipher or compressor, if any.
    """

    def __init__(
        self,
        store: Any,
        db: Db,
        *,
        decode: Decode | None = None,
        batch_size: int = DEFAULT_BATCH,
        cache_limit: int = DEFAULT_CACHE,
        read_only: bool = False,
    ) -> None:
        self.store = store
        #: A read-only database (a replica): the read models are read as the primary wrote them
        #: (replicated), never written here; :meth:`ensure` only checks they are there.
        self.read_only = read_only
        self.db = db
        self.decode = decode
        self.batch_size = batch_size
        self.cache_limit = cache_limit
        self._lock = threading.RLock()
        self._ready = False
        self._transfers: dict[str, TransferRec | None] = {}
        self._authorizations: dict[str, AuthRec | None] = {}
        self._consents: dict[str, ConsentRec | None] = {}
        self._policies: dict[str, PolicyRec] | None = None
        self._preservations: dict[str, PreservationRec | None] = {}
        #: The position the cached records stand at (the last batch this runner wrote).
        self._cached_at: int | None = None

    # -- schema and tracking ------------------------------------------------------

    def ensure(self) -> None:
        """Create the tables once; rebuild from zero if a model's version changed."""
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            if self.read_only:
                self._check_built()
                return
            with self.db.transaction() as run:
                self._lock_ddl(run)
                for statement in TABLES[TRACKING]:
                    run(statement)
                rows = {r["name"]: r for r in run("SELECT name, position, version FROM {proj_tracking}")}
                current = all(
                    m.name in rows and int(rows[m.name]["version"]) == m.version for m in MODELS
                ) and len({int(rows[m.name]["position"]) for m in MODELS}) == 1
                if not current:
                    for table in MODEL_TABLES:
                        run(f"DROP TABLE IF EXISTS {{{table}}}")
                for table in MODEL_TABLES:
                    for statement in statements(table, self.db.backend):
                        run(statement)
                if not current:
                    run("DELETE FROM {proj_tracking}")
                    insert_rows(run, TRACKING, ("name", "position", "version", "updated_at"),
                                [(m.name, -1, m.version, now_time()) for m in MODELS])
            self._forget()
            self._ready = True

    def _check_built(self) -> None:
        """Read-only: the read models are there, at this version, as the primary built them."""
        try:
            rows = {r["name"]: r for r in self.db.query("SELECT name, version FROM {proj_tracking}")}
        except Exception as e:  # noqa: BLE001 - the table is missing: never built on the primary
            raise ProjectionError("the read models were never built on the primary and this server is "
                                  "read-only: run `transfer-ledger projections run` on the primary") from e
        if not all(m.name in rows and int(rows[m.name]["version"]) == m.version for m in MODELS):
            raise ProjectionError("the primary's read models are of another version and this server is "
                                  "read-only: run `transfer-ledger projections rebuild` on the primary")
        self._ready = True

    def _lock_ddl(self, run: Exec) -> None:
        if self.db.backend == "postgresql":
            run("SELECT pg_advisory_xact_lock(?)", (DDL_LOCK,))

    def positions(self) -> dict[str, int]:
        self.ensure()
        return {r["name"]: int(r["position"]) for r in self.db.query("SELECT name, position FROM {proj_tracking}")}

    def position(self) -> int:
        """The last leaf index every read model has applied (-1: none)."""
        return min(self.positions().values())

    def status(self) -> dict[str, Any]:
        """Each model's position, the ledger's size and how far behind the models are."""
        self.ensure()
        rows = self.db.query("SELECT name, position, version, updated_at FROM {proj_tracking} ORDER BY name")
        size = self.store.head().size
        by_name = {r["name"]: r for r in rows}
        models = []
        for model in MODELS:
            row = by_name.get(model.name)
            position = int(row["position"]) if row else -1
            models.append({
                "name": model.name, "position": position, "applied": position + 1,
                "behind": max(0, size - position - 1), "version": model.version,
                "updated_at": row["updated_at"] if row else None, "tables": list(model.tables),
                "description": model.description,
            })
        return {"tree_size": size, "models": models, "up_to_date": all(m["behind"] == 0 for m in models)}

    # -- running ------------------------------------------------------------------

    def run_batch(self, *, until: int | None = None) -> int:
        """Apply the next batch of leaves (up to leaf ``until``); how many were applied
        (none on a read-only database: the primary applies them)."""
        self.ensure()
        if self.read_only:
            return 0
        with self._lock:
            positions = self.positions()
            position = min(positions.values())
            if len(set(positions.values())) != 1:
                raise ProjectionError(
                    f"the read models stand at different leaves ({positions}): run `projections rebuild`"
                )
            if self._cached_at != position:
                self._forget()  # another runner moved on (or reset): the cached records are stale
            limit = self.batch_size if until is None else min(self.batch_size, until - position)
            if limit <= 0:
                return 0
            with _gc_paused():
                return self._apply_batch(position, limit, until)

    def _apply_batch(self, position: int, limit: int, until: int | None) -> int:
        """One batch from leaf ``position + 1``: read, apply in memory, write with the new position."""
        rows = feed_rows(self.store, position + 1, limit)
        if not rows:
            size = self.store.head().size
            if size <= position + 1:
                return 0
            # The leaf may have committed between the two reads: read again before concluding.
            rows = feed_rows(self.store, position + 1, limit)
            if not rows:
                raise ProjectionError(
                    f"leaf {position + 1} of {size} has no event row: run `transfer-ledger verify`"
                )
        events = feed_events(rows, self.decode)
        try:
            state = self._state_for(events)
            missing = _gaps(position, events)
            apply_all(state, events)
            for index, before in missing:
                _missing_event(state, index, before)
            last = events[-1].leaf_index
            self._write(state, position, last)
        except BaseException:
            self._forget()
            raise
        self._cached_at = last
        for cache in (self._transfers, self._authorizations):  # (policies are few: kept)
            if len(cache) > self.cache_limit:
                for key in list(islice(cache, len(cache) // 2)):  # the oldest half
                    del cache[key]
        return last - position

    def _pipelined(self, progress: Progress | None, total: int) -> int:
        """Apply batches up to the head, writing each one while the next is read and applied.

        SQLite and PostgreSQL do their work outside Python's lock, so a batch's
        write overlaps the next batch's reading and decoding. The rows are
        snapshotted before they go to the writer, the writes run one after the
        other, each with its compare-and-set, and a batch's records leave the
        cache only once it is committed.
        """
        self.ensure()
        with self._lock, _gc_paused(), ThreadPoolExecutor(1, thread_name_prefix="projections-writer") as writer:
            positions = self.positions()
            position = min(positions.values())
            if len(set(positions.values())) != 1:
                raise ProjectionError(
                    f"the read models stand at different leaves ({positions}): run `projections rebuild`"
                )
            if self._cached_at != position:
                self._forget()
            start, pending = position, None
            try:
                while True:
                    rows = feed_rows(self.store, position + 1, self.batch_size)
                    if not rows:
                        break
                    events = feed_events(rows, self.decode)
                    state = self._state_for(events)
                    missing = _gaps(position, events)
                    apply_all(state, events)
                    for index, before in missing:
                        _missing_event(state, index, before)
                    last = events[-1].leaf_index
                    writes = prepare_writes(state)
                    if pending is not None:
                        pending.result()
                    pending = writer.submit(self._write, writes, position, last)
                    position = last
                    if progress is not None:
                        progress(min(position - start, total), total)
                    if any(len(c) > self.cache_limit for c in (self._transfers, self._authorizations)):
                        pending.result()
                        for cache in (self._transfers, self._authorizations):
                            if len(cache) > self.cache_limit:
                                for key in list(islice(cache, len(cache) // 2)):
                                    del cache[key]
                if pending is not None:
                    pending.result()
            except BaseException:
                if pending is not None:
                    try:
                        pending.result()
                    except BaseException:  # noqa: BLE001 - the first error is the one to report
                        pass
                self._forget()
                raise
            self._cached_at = position
            return position - start

    def catch_up(
        self,
        *,
        until: int | None = None,
        deadline: float | None = None,
        progress: Progress | None = None,
    ) -> int:
        """Apply batches until the head (or leaf ``until``, or ``deadline`` by ``time.monotonic()``).

        Without ``until`` and ``deadline``, when the models are a batch or more behind, batches
        are written while the next ones are read and applied (:meth:`_pipelined`).
        """
        if self.read_only:
            self.ensure()
            return 0  # the primary applies them; they replicate
        done = 0
        total = None
        if until is None and deadline is None:
            size = self.store.head().size
            behind = size - self.position() - 1
            if behind > self.batch_size:
                try:
                    done = self._pipelined(progress, behind)
                except PositionConflict:
                    pass  # another runner moved on: go on below from where it stopped
        while True:
            try:
                applied = self.run_batch(until=until)
            except PositionConflict:
                continue  # another runner moved on: start again from where it stopped
            done += applied
            if progress is not None:
                if total is None:
                    total = max(self.store.head().size, done)
                progress(min(done, total), total)
            if applied == 0 or (deadline is not None and time.monotonic() >= deadline):
                return done

    def rebuild(self, *, progress: Progress | None = None) -> int:
        """Empty every read model and apply the whole ledger again, from leaf 0."""
        self.reset()
        size, self.batch_size = self.batch_size, max(self.batch_size, REBUILD_BATCH)
        try:
            return self.catch_up(progress=progress)
        finally:
            self.batch_size = size

    def reset(self) -> None:
        """Empty every read model and set the positions to -1, in one transaction."""
        self.ensure()
        with self._lock:
            with self.db.transaction() as run:
                for table in MODEL_TABLES:
                    run(f"TRUNCATE TABLE {{{table}}}" if self.db.backend == "postgresql"
                        else f"DELETE FROM {{{table}}}")
                run("UPDATE {proj_tracking} SET position = -1, updated_at = ?", (now_time(),))
            self._forget()

    def wait_for(self, index: int, timeout: float) -> int:
        """Catch up until leaf ``index`` is applied or ``timeout`` seconds pass; the position."""
        deadline = time.monotonic() + timeout
        while True:
            position = self.position()
            if position >= index or time.monotonic() >= deadline:
                return position
            if self.catch_up(until=max(index, position), deadline=deadline) == 0:
                position = self.position()
                if position >= index:
                    return position
                time.sleep(0.02)  # the leaf is not committed yet, or another runner holds the batch

    def follow(
        self,
        stop: threading.Event,
        *,
        interval: float = 1.0,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        """Keep the read models up to date until ``stop`` is set."""
        with _waiter(self.store, stop) as wait:
            while not stop.is_set():
                applied = self.catch_up(deadline=time.monotonic() + interval)
                if applied and on_batch is not None:
                    on_batch(applied, self.position())
                if not applied:
                    wait(interval)

    # -- one batch ----------------------------------------------------------------

    def _forget(self) -> None:
        self._transfers.clear()
        self._authorizations.clear()
        self._consents.clear()
        self._policies = None
        self._preservations.clear()
        self._cached_at = None

    def _state_for(self, events: Sequence[FeedEvent]) -> State:
        """A state over the caches, with every record the batch reads loaded."""
        if self._policies is None:
            self._policies = {
                r["party"]: PolicyRec(r["party"], int(r["written_required"]), int(r["leaf_index"]))
                for r in self.db.query("SELECT party, written_required, leaf_index FROM {proj_policies}")
            }
        transfers, auths = self._transfers, self._authorizations
        want_t: set[str] = set()
        want_a: set[str] = set()
        created: set[str] = set()
        for ev in events:
            if ev.topic == TRANSFER_RECORDED:
                created.add(ev.originator_id)
                if isinstance(ev.data, Undecodable):
                    continue
                parent = ev.data.parent_transfer_id
                if parent is not None and parent not in transfers:
                    want_t.add(parent)
                grant = ev.data.authorization_id
                if grant is not None and grant not in auths:
                    want_a.add(grant)
            elif ev.topic in _AUTH_TOPICS and ev.originator_id not in auths:
                want_a.add(ev.originator_id)
        # Parents, and their ancestors (the lineage walks up to the root), with their grants.
        want_t -= created
        while want_t:
            loaded = self._load_transfers(want_t)
            want_t = set()
            for rec in loaded:
                if rec.authorization_id is not None and rec.authorization_id not in auths:
                    want_a.add(rec.authorization_id)
                if rec.parent_id is not None and rec.parent_id not in transfers:
                    want_t.add(rec.parent_id)
        want_a -= created
        if want_a:
            self._load_authorizations(want_a)
        return State(transfers, auths, self._policies,
                     load_transfer=self._load_transfer, load_authorization=self._load_authorization,
                     consents=self._consents, load_consent=self._load_consent,
                     preservations=self._preservations, load_preservation=self._load_preservation)

    def _load_transfers(self, ids: Iterable[str]) -> list[TransferRec]:
        loaded = []
        columns = ", ".join(TRANSFER_COLUMNS)
        for chunk in _chunks(sorted(ids), _IN_CHUNK):
            found = {}
            for row in self.db.rows(
                f"SELECT {columns} FROM {{proj_transfers}} WHERE id IN ({','.join('?' * len(chunk))})", chunk
            ):
                rec = TransferRec.from_row(row)
                found[rec.id] = rec
            for ident in chunk:
                self._transfers[ident] = found.get(ident)
            loaded.extend(found.values())
        return loaded

    def _load_authorizations(self, ids: Iterable[str]) -> None:
        columns = ", ".join(AUTH_COLUMNS)
        for chunk in _chunks(sorted(ids), _IN_CHUNK):
            found = {}
            for row in self.db.rows(
                f"SELECT {columns} FROM {{proj_authorizations}} WHERE id IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                rec = AuthRec.from_row(row)
                found[rec.id] = rec
            for ident in chunk:
                self._authorizations[ident] = found.get(ident)

    def _load_consent(self, ident: str) -> ConsentRec | None:
        columns = ", ".join(CONSENT_COLUMNS)
        rows = self.db.rows(f"SELECT {columns} FROM {{proj_consents}} WHERE id = ?", (ident,))
        rec = ConsentRec.from_row(rows[0]) if rows else None
        self._consents[ident] = rec
        return rec

    def _load_transfer(self, ident: str) -> TransferRec | None:
        self._load_transfers([ident])
        return self._transfers.get(ident)

    def _load_authorization(self, ident: str) -> AuthRec | None:
        self._load_authorizations([ident])
        return self._authorizations.get(ident)

    def _load_preservation(self, ident: str) -> PreservationRec | None:
        rows = self.db.rows(f"SELECT {', '.join(PRESERVATION_COLUMNS)} FROM {{proj_preservations}} WHERE id = ?",
                            (ident,))
        return PreservationRec.from_row(rows[0]) if rows else None

    def _write(self, state: State | Writes, old: int, new: int) -> None:
        """The batch's rows and the new positions, in one transaction (compare-and-set)."""
        writes = prepare_writes(state) if isinstance(state, State) else state
        with self.db.transaction() as run:
            moved = run(
                "UPDATE {proj_tracking} SET position = ?, updated_at = ? WHERE position = ? RETURNING name",
                (new, now_time(), old),
            )
            if len(moved) != len(MODELS):
                raise PositionConflict(f"the read models were moved from {old} by another runner")
            write_changes(run, writes)


#: A batch's writes, ready to run: (table, columns, rows, ON CONFLICT clause) each.
Writes = list[tuple[str, tuple[str, ...], list[Any], str]]


def prepare_writes(state: State) -> Writes:
    """The rows a batch adds or changes, snapshotted (the records go on changing in memory)."""
    out: Writes = [
        ("proj_transfers", TRANSFER_COLUMNS, [t.row() for t in state.new_transfers], "ON CONFLICT (id) DO NOTHING"),
        ("proj_authorizations", AUTH_COLUMNS, [a.row() for a in state.dirty_authorizations.values()],
         upsert_clause(("id",), AUTH_COLUMNS)),
        ("proj_authorization_uses", ("authorization_id", "transfer_id", "leaf_index"), list(state.uses),
         "ON CONFLICT DO NOTHING"),
        ("proj_policies", PolicyRec.COLUMNS, [p.row() for p in state.dirty_policies.values()],
         upsert_clause(("party",), PolicyRec.COLUMNS)),
        ("proj_findings", FINDING_COLUMNS, list(state.findings), "ON CONFLICT (id) DO NOTHING"),
        ("proj_erasures", ("transfer_id", "retention_class", "erased_at", "leaf_index"), list(state.erasures),
         "ON CONFLICT DO NOTHING"),
        ("proj_notices", ("id", "transfer_id", "party", "erased_at", "leaf_index"), list(state.notices),
         "ON CONFLICT DO NOTHING"),
        ("proj_notice_acks", ("notice_id", "acknowledged_at", "leaf_index"), list(state.acknowledgements),
         "ON CONFLICT DO NOTHING"),
        ("proj_consents", CONSENT_COLUMNS, [c.row() for c in state.dirty_consents.values()],
         upsert_clause(("id",), CONSENT_COLUMNS)),
        ("proj_uses", USE_COLUMNS, list(state.new_uses), "ON CONFLICT DO NOTHING"),
        ("proj_use_notices", ("use_id", "notified_at", "leaf_index"), list(state.use_notices),
         "ON CONFLICT DO NOTHING"),
        ("proj_urgent_notices", ("transfer_id", "notified_at", "leaf_index"), list(state.urgent_notices),
         "ON CONFLICT DO NOTHING"),
        ("proj_preservations", PRESERVATION_COLUMNS, [p.row() for p in state.dirty_preservations.values()],
         upsert_clause(("id",), PRESERVATION_COLUMNS)),
        ("proj_referrals", REFERRAL_COLUMNS, list(state.referrals), "ON CONFLICT (id) DO NOTHING"),
    ]
    out += [(table, columns, list(state.control.get(table, ())), "ON CONFLICT DO NOTHING")
            for table, columns in CONTROL_COLUMNS.items()]
    key = ("month", "origin", "sender", "recipient", "legal_basis")
    out.append(("proj_stats_transfers", (*key, "transfers", "onward"),
                [(*k, v[0], v[1]) for k, v in state.stats_transfers.items()], add_clause(key, ("transfers", "onward"))))
    key = ("month", "origin", "sender", "recipient", "category")
    out.append(("proj_stats_categories", (*key, "transfers"), [(*k, v) for k, v in state.stats_categories.items()],
                add_clause(key, ("transfers",))))
    key = ("month", "origin", "holder", "recipient")
    counters = ("requested", "granted", "refused", "revoked", "decided_seconds")
    out.append(("proj_stats_requests", (*key, *counters),
                [(*k, int(v[0]), int(v[1]), int(v[2]), int(v[3]), float(v[4]))
                 for k, v in state.stats_requests.items()],
                add_clause(key, counters)))
    key = ("month", "requesting_party", "referring_party", "third_party")
    out.append(("proj_stats_referrals", (*key, "referrals", "onward"),
                [(*k, v[0], v[1]) for k, v in state.stats_referrals.items()], add_clause(key, ("referrals", "onward"))))
    return out


def write_changes(run: Exec, writes: Writes) -> None:
    """Run a batch's writes, as multi-row statements."""
    for table, columns, rows, conflict in writes:
        insert_rows(run, table, columns, rows, conflict)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a batch is applied.

    A batch allocates many small objects and frees them all by reference
    counting (the records hold no cycles); meanwhile the collector would
    repeatedly traverse every cached record, in proportion to the cache.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _chunks(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


def _gaps(position: int, events: Sequence[FeedEvent]) -> list[tuple[int, FeedEvent]]:
    """Leaf indexes the feed skipped (a leaf whose event row is gone), each with the next event."""
    out = []
    expected = position + 1
    for ev in events:
        while expected < ev.leaf_index:
            out.append((expected, ev))
            expected += 1
        expected = ev.leaf_index + 1
    return out


def _missing_event(state: State, index: int, after: FeedEvent) -> None:
    state.add_finding(
        "malformed-event", f"{index}", after, reason="event-missing",
        detail=f"leaf {index} has no event row in the ledger (the feed skips from it to leaf "
        f"{after.leaf_index}): run `transfer-ledger verify`",
        origin=None, sender=None, recipient=None, evidence=[evidence(index, "missing", None)],
    )


class _waiter:
    """``wait(timeout)``: LISTEN/NOTIFY on PostgreSQL, else sleep (SQLite has no subscribe)."""

    def __init__(self, store: Any, stop: threading.Event) -> None:
        self.store, self.stop = store, stop
        self._conn_cm: Any = None
        self._conn: Any = None

    def __enter__(self) -> Callable[[float], None]:
        channel = getattr(self.store, "channel_name", None)
        datastore = getattr(self.store, "datastore", None)
        if channel and datastore is not None and hasattr(datastore, "get_connection") and (
            type(datastore).__module__.startswith("eventsourcing.postgres")
        ):
            try:
                from psycopg.sql import SQL, Identifier

                self._conn_cm = datastore.get_connection()
                self._conn = self._conn_cm.__enter__()
                self._conn.execute(SQL("LISTEN {0}").format(Identifier(channel)))
            except Exception:  # noqa: BLE001 - fall back to polling
                self._close()
        return self.wait

    def wait(self, timeout: float) -> None:
        if self._conn is None:
            self.stop.wait(timeout)
            return
        end = time.monotonic() + timeout
        while not self.stop.is_set() and time.monotonic() < end:
            for _ in self._conn.notifies(timeout=min(0.2, max(0.0, end - time.monotonic())), stop_after=1):
                return

    def _close(self) -> None:
        if self._conn_cm is not None:
            try:
                self._conn_cm.__exit__(None, None, None)
            finally:
                self._conn_cm = self._conn = None

    def __exit__(self, *exc: object) -> None:
        self._close()
