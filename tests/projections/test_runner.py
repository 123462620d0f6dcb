"""The runner: exactly once, resumable, rebuildable; the same on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from ledger.service.application import TransferLedger
from projections import runner as runner_module
from projections.replay import replay
from projections.runner import PositionConflict, ProjectionError, ProjectionRunner
from projections.schema import MODELS
from tests.support import builders
from tests.support.backends import Backend
from tests.support.world import build_world, dump, make_runner


def test_live_equals_rebuilt_equals_replayed(ledger: TransferLedger) -> None:
    """Following the feed batch by batch while events arrive gives the same rows as
    a rebuild from zero, and as a replay of the whole ledger in memory."""
    live = make_runner(ledger, batch_size=3)
    live.catch_up()  # nothing yet
    root, a1 = builders.granted_chain(ledger, max_transfers=2)
    live.run_batch()
    t1 = ledger.record_transfer(builders.onward("FR", "INTERPOL", root, a1))
    live.catch_up()
    build_world(ledger)
    ledger.record_transfer(builders.onward("FR", "INTERPOL", root, a1))  # a second use
    while live.run_batch():
        pass
    assert live.position() == ledger.store.head().size - 1
    live_rows = dump(live.db)
    assert live_rows["proj_transfers"] and live_rows["proj_findings"] and live_rows["proj_stats_requests"]
    assert t1["id"] in {row[0] for row in live_rows["proj_transfers"]}

    rebuilt = make_runner(ledger)
    assert rebuilt.rebuild() == ledger.store.head().size
    assert dump(rebuilt.db) == live_rows

    replayed = replay(ledger.store)
    try:
        assert replayed.at_index == ledger.store.head().size - 1
        assert dump(replayed.db) == live_rows
    finally:
        replayed.close()


def test_resume_after_a_stop_between_batches_counts_nothing_twice(ledger: TransferLedger) -> None:
    build_world(ledger)
    first = make_runner(ledger, batch_size=4)
    assert first.run_batch() == 4
    assert first.run_batch() == 4
    assert first.position() == 7
    del first  # stopped between batches: its caches are gone with it
    second = make_runner(ledger, batch_size=5)
    assert second.position() == 7
    applied = second.catch_up()
    assert applied == ledger.store.head().size - 8
    resumed = dump(second.db)
    assert dump(_rebuilt(ledger).db) == resumed
    totals = second.db.query("SELECT SUM(transfers) AS n FROM {proj_stats_transfers}")[0]
    assert int(totals["n"]) == len(second.db.query("SELECT id FROM {proj_transfers}"))


def _rebuilt(ledger: TransferLedger) -> ProjectionRunner:
    other = make_runner(ledger)
    other.rebuild()
    return other


def test_a_crash_inside_a_batch_leaves_nothing_behind(ledger: TransferLedger,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The position and the rows commit together: a failure half-way through a batch's
    writes rolls both back, and the next run applies that batch once."""
    build_world(ledger)
    runner = make_runner(ledger, batch_size=6)
    runner.run_batch()
    before = dump(runner.db)
    real = runner_module.insert_rows

    def failing(run: Any, table: str, *args: Any, **kwargs: Any) -> None:
        real(run, table, *args, **kwargs)
        if table == "proj_authorizations":  # the transfers are written, then the process dies
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(runner_module, "insert_rows", failing)
    with pytest.raises(KeyboardInterrupt):
        runner.run_batch()
    monkeypatch.setattr(runner_module, "insert_rows", real)
    assert runner.position() == 5
    assert dump(runner.db) == before
    restarted = make_runner(ledger, batch_size=6)
    restarted.catch_up()
    assert dump(restarted.db) == dump(_rebuilt(ledger).db)


def test_a_crash_while_batches_are_written_in_the_background(ledger: TransferLedger,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Catching up writes each batch while the next is applied: a failure in the second
    batch's write leaves the first committed, the second not, and nothing of the third."""
    build_world(ledger)
    runner = make_runner(ledger, batch_size=4)
    real = runner_module.insert_rows
    calls = {"authorizations": 0}

    def failing(run: Any, table: str, *args: Any, **kwargs: Any) -> None:
        real(run, table, *args, **kwargs)
        if table == "proj_authorizations":
            calls["authorizations"] += 1
            if calls["authorizations"] == 2:
                raise RuntimeError("disk full")

    monkeypatch.setattr(runner_module, "insert_rows", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        runner.catch_up()
    monkeypatch.setattr(runner_module, "insert_rows", real)
    assert runner.position() == 3
    first = make_runner(ledger, batch_size=4)
    first.rebuild()
    restarted = make_runner(ledger, batch_size=3)
    restarted.catch_up()
    assert dump(restarted.db) == dump(first.db)


def test_two_runners_never_apply_a_batch_twice(ledger: TransferLedger) -> None:
    build_world(ledger)
    one, two = make_runner(ledger, batch_size=5), make_runner(ledger, batch_size=5)
    one.ensure()
    two.ensure()
    # Both read position -1 and prepare the same batch; the first to commit wins.
    rows = runner_module.feed_rows(ledger.store, 0, 5)
    events = runner_module.feed_events(rows)
    state = two._state_for(events)
    runner_module.apply_all(state, events)
    assert one.run_batch() == 5
    with pytest.raises(PositionConflict):
        two._write(state, -1, 4)
    two._forget()
    assert dump(two.db) == dump(one.db)
    assert two.catch_up() == ledger.store.head().size - 5  # resumes after the winner's batch
    assert dump(two.db) == dump(_rebuilt(ledger).db)


def test_threads_following_together(ledger: TransferLedger) -> None:
    """Several threads (and processes: the same compare-and-set) catching up at once."""
    build_world(ledger)
    runners = [make_runner(ledger, batch_size=2) for _ in range(3)]
    for r in runners:
        r.ensure()
    threads = [threading.Thread(target=r.catch_up) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert runners[0].position() == ledger.store.head().size - 1
    assert dump(runners[0].db) == dump(_rebuilt(ledger).db)


def test_status_and_rebuild(ledger: TransferLedger) -> None:
    build_world(ledger)
    runner = make_runner(ledger)
    status = runner.status()
    size = ledger.store.head().size
    assert status["tree_size"] == size and not status["up_to_date"]
    assert [m["name"] for m in status["models"]] == [m.name for m in MODELS]
    assert all(m["position"] == -1 and m["behind"] == size for m in status["models"])
    runner.catch_up()
    status = runner.status()
    assert status["up_to_date"] and all(m["applied"] == size for m in status["models"])
    seen: list[tuple[int, int]] = []
    assert runner.rebuild(progress=lambda done, total: seen.append((done, total))) == size
    assert seen[-1] == (size, size)


def test_a_new_model_version_rebuilds(ledger: TransferLedger) -> None:
    build_world(ledger)
    runner = make_runner(ledger)
    runner.catch_up()
    expected = dump(runner.db)
    with runner.db.transaction() as run:
        run("UPDATE {proj_tracking} SET version = 0 WHERE name = ?", ("findings",))
    fresh = make_runner(ledger)
    assert fresh.position() == -1  # dropped and recreated: it starts again from zero
    fresh.catch_up()
    assert dump(fresh.db) == expected


def test_a_leaf_whose_event_row_is_gone(ledger: TransferLedger, backend: Backend) -> None:
    """Tampering that removes an event row: the read models report it and go on."""
    w = build_world(ledger)
    leaf = ledger.get_transfer(w["t1"]["id"])["leaf_index"]
    notification = backend.execute("SELECT notification_id FROM ledger_leaves WHERE leaf_index = ?", (leaf,))[0][0]
    backend.execute(f"DELETE FROM {backend.events_table} WHERE {backend.notification_id} = ?", (notification,))
    runner = make_runner(ledger, batch_size=4)
    runner.catch_up()
    assert runner.position() == ledger.store.head().size - 1
    found = runner.db.query("SELECT * FROM {proj_findings} WHERE rule = 'malformed-event'")
    assert [(f["reason"], int(f["leaf_index"])) for f in found] == [("event-missing", leaf + 1)]
    assert f"leaf {leaf} has no event row" in found[0]["detail"]


def test_the_last_leaf_without_its_event_stops_the_runner(ledger: TransferLedger, backend: Backend) -> None:
    ledger.record_transfer(builders.transfer("DE", "FR"))
    backend.execute(f"DELETE FROM {backend.events_table}")
    with pytest.raises(ProjectionError, match="leaf 0 of 1 has no event row"):
        make_runner(ledger).catch_up()


def test_follow_keeps_up_until_stopped(ledger: TransferLedger) -> None:
    runner = make_runner(ledger)
    stop = threading.Event()
    batches: list[int] = []
    thread = threading.Thread(target=runner.follow, args=(stop,),
                              kwargs={"interval": 0.05, "on_batch": lambda n, p: batches.append(p)})
    thread.start()
    try:
        root = ledger.record_transfer(builders.transfer("DE", "FR"))
        _until(lambda: runner.position() == 0)
        ledger.request_authorization(builders.request("FR", "INTERPOL", root))
        _until(lambda: runner.position() == 1)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert batches and batches[-1] == 1


def test_wait_for_a_leaf(ledger: TransferLedger) -> None:
    runner = make_runner(ledger)
    root = ledger.record_transfer(builders.transfer("DE", "FR"))
    assert runner.wait_for(root["leaf_index"], timeout=5) >= root["leaf_index"]
    assert runner.wait_for(5, timeout=0.1) == 0  # not in the ledger: gives up after the timeout


def _until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
