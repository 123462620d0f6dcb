"""Verification reads the ledger in pages and keeps the JSON of the record
times it has seen between pages (a write batch shares one record time, and a
batch may straddle two pages). Whatever the page size, the batches and the
size of that cache, the whole-page check must give the report the careful
two-stream loop gives: the same verdict and the same first bad index, on
intact and on tampered ledgers, on both backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.audit.verify import (
    BATCH,
    RECORD_TIME_CACHE,
    VerificationIncomplete,
    verify_ledger,
)
from ledger.config import Settings, eventsourcing_env
from ledger.service.application import TransferLedger
from tests.support.backends import PG_URL, Backend, fresh_backend
from tests.support.builders import transfer
from tests.support.tamper import TwoStreamsOnly


def record_batches(ledger: TransferLedger, sizes: Sequence[int]) -> None:
    """One write transaction per size (one record time shared by its leaves),
    as group commit writes concurrent requests."""
    for b, size in enumerate(sizes):
        plans = [ledger.plan_record_transfer(transfer("DE", "FR", request_reference=f"B-{b}-{i}"))
                 for i in range(size)]
        for _, error in ledger._execute_batch(plans):
            assert error is None, error


def record_times(backend: Backend) -> list[str]:
    return [row[0] for row in backend.execute("SELECT recorded_at FROM ledger_leaves ORDER BY leaf_index")]


def both_paths(ledger: TransferLedger, **options: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    fast = verify_ledger(ledger.store, None, **options).as_dict()
    careful = verify_ledger(TwoStreamsOnly(ledger.store), None, **options).as_dict()  # type: ignore[arg-type]
    return fast, careful


def test_a_batch_across_the_page_boundary_after_a_cache_reset(backend: Backend) -> None:
    """The ledger the load campaign found: more than 1,024 record times in the
    first page, and one batch over leaves 4095 and 4096, its record time seen
    in the first page and again in the second, after the cache was reset."""
    sizes = [3] * 1364 + [2]  # leaves 0..4093
    sizes += [3]  # leaves 4094, 4095 | 4096: across the boundary of pages of 4,096
    sizes += [1] * 20
    ledger = TransferLedger(eventsourcing_env(backend.settings))
    try:
        record_batches(ledger, sizes)
        times = record_times(backend)
        assert len(times) == sum(sizes) > BATCH
        assert len(set(times[:BATCH])) > RECORD_TIME_CACHE  # the cache is reset at the second page
        assert times[BATCH - 1] == times[BATCH] and times[BATCH] not in times[BATCH + 1:]
        fast, careful = both_paths(ledger)
        assert fast == careful
        assert fast["ok"] and fast["events_checked"] == len(times), fast
    finally:
        ledger.close()


def test_a_record_time_recurring_after_the_cache_reset_in_small_pages(backend: Backend) -> None:
    """The same with small pages and a small cache: every batch of three
    straddles a boundary of pages of four, and the cache of two is reset on
    almost every page."""
    ledger = TransferLedger(eventsourcing_env(backend.settings))
    try:
        record_batches(ledger, [3] * 12)
        times = record_times(backend)
        for page in range(1, len(times) // 4):
            assert times[4 * page - 1] == times[4 * page] or times[4 * page] == times[4 * page + 1]
        for batch in (2, 3, 4, 5):
            for cache in (1, 2, 3):
                fast, careful = both_paths(ledger, batch=batch, record_time_cache=cache)
                assert fast == careful, (batch, cache)
                assert fast["ok"], (batch, cache, fast)
    finally:
        ledger.close()


def _tamper(backend: Backend, kind: str, at: int, size: int) -> int:
    """Change the stored ledger at leaf ``at``; the first index a report must name."""
    events, nid = backend.events_table, backend.notification_id
    row = backend.execute("SELECT notification_id, recorded_at FROM ledger_leaves WHERE leaf_index = ?", (at,))[0]
    if kind == "state":
        backend.execute(f"UPDATE {events} SET state = ? WHERE {nid} = ?", (b'{"x":1}', row[0]))
    elif kind == "event-gone":
        backend.execute(f"DELETE FROM {events} WHERE {nid} = ?", (row[0],))
    elif kind == "leaf-gone":
        backend.execute("DELETE FROM ledger_leaves WHERE leaf_index = ?", (at,))
    elif kind == "leaf-hash":
        backend.execute("UPDATE ledger_leaves SET leaf_hash = ? WHERE leaf_index = ?", (bytes(32), at))
    elif kind == "record-time":  # another leaf's record time (one from another batch, when there is one)
        other = next((t for t in record_times(backend) if t != row[1]), row[1][:-1] + "1Z")
        backend.execute("UPDATE ledger_leaves SET recorded_at = ? WHERE leaf_index = ?", (other, at))
    elif kind == "version":
        backend.execute(f"UPDATE {events} SET originator_version = originator_version + 7 WHERE {nid} = ?",
                        (row[0],))
    else:
        raise AssertionError(kind)
    return at


KINDS = ["intact", "state", "event-gone", "leaf-gone", "leaf-hash", "record-time", "version"]


@settings(max_examples=150 if PG_URL is None else 50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sizes=st.lists(st.integers(1, 7), min_size=1, max_size=12),
    pages=st.lists(st.integers(1, 9), min_size=1, max_size=3),
    cache=st.integers(1, 6),
    kind=st.sampled_from(KINDS),
    where=st.floats(0, 1, exclude_max=True),
)
def test_fast_and_careful_paths_agree(
    tmp_path: Path, sizes: list[int], pages: list[int], cache: int, kind: str, where: float,
) -> None:
    with fresh_backend(tmp_path / uuid.uuid4().hex) as backend:
        ledger = TransferLedger(eventsourcing_env(backend.settings))
        try:
            record_batches(ledger, sizes)
            size = sum(sizes)
            bad = None if kind == "intact" else _tamper(backend, kind, int(where * size), size)
            reference = verify_ledger(TwoStreamsOnly(ledger.store), None).as_dict()  # type: ignore[arg-type]
            assert reference["ok"] == (bad is None), reference
            if kind == "leaf-hash":  # the stored nodes over it differ too, named by their first leaf
                assert reference["first_bad_index"] <= bad, reference
            else:
                assert reference["first_bad_index"] == bad, reference
            for page in pages:
                fast, careful = both_paths(ledger, batch=page, record_time_cache=cache)
                assert fast == careful, (page, cache)
                assert (fast["ok"], fast["first_bad_index"]) == (reference["ok"], reference["first_bad_index"]), page
        finally:
            ledger.close()


class Failing:
    """A store whose page reads fail after some pages (a verifier defect or a
    database gone away, as verification sees it)."""

    def __init__(self, store: Any, pages: int, error: BaseException) -> None:
        self.store, self.pages, self.error = store, pages, error

    def read_leaves_with_events(self, start: int, limit: int) -> Any:
        if self.pages == 0:
            raise self.error
        self.pages -= 1
        return self.store.read_leaves_with_events(start, limit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_an_error_inside_verification_is_not_a_finding(ledger: TransferLedger) -> None:
    record_batches(ledger, [2, 3, 1])
    failing = Failing(ledger.store, 2, TypeError("%b requires a bytes-like object"))
    with pytest.raises(VerificationIncomplete) as stopped:
        verify_ledger(failing, None, batch=2)  # type: ignore[arg-type]
    assert stopped.value.report.events_checked == 4  # two pages of two checked before it stopped
    assert stopped.value.report.problem_count == 0
    assert isinstance(stopped.value.error, TypeError)


def run_cli(settings: Settings, *args: str, patch: str = "") -> subprocess.CompletedProcess[str]:
    """``transfer-ledger ARGS`` as a real process; ``patch``, Python run first in it."""
    code = f"{patch}\nfrom ledger.cli import app\napp(prog_name='transfer-ledger')"
    argv = [sys.executable, "-c", code, *args, "--data-dir", str(settings.data_dir)]
    if settings.database_url:
        argv += ["--database-url", settings.database_url]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRANSFER_LEDGER_")}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)


#: A defect in the whole-page check, from its third page on (as the record-time bug was).
DEFECT = """
import ledger.audit.verify as v
clean, pages = v._clean_page, []
def broken(*args):
    pages.append(1)
    if len(pages) > 2:
        return b"%b" % None
    return clean(*args)
v._clean_page = broken
"""
#: Pages of four leaves (the defect is met on the third).
PAGES_OF_FOUR = "v.verify_ledger.__kwdefaults__['batch'] = 4"


def test_a_defect_of_verify_exits_2_with_what_it_had_checked(backend: Backend) -> None:
    initialized = run_cli(backend.settings, "init")
    assert initialized.returncode == 0, initialized.stderr
    ledger = TransferLedger(eventsourcing_env(backend.settings))
    try:
        record_batches(ledger, [3, 3, 3, 3])
    finally:
        ledger.close()
    done = run_cli(backend.settings, "verify", "--json", patch=DEFECT)
    assert done.returncode == 0, done.stderr  # one page of 4,096 leaves: the defect is not reached
    for args in (["verify", "--json"], ["verify"]):
        done = run_cli(backend.settings, *args, patch=DEFECT + PAGES_OF_FOUR)
        assert done.returncode == 2, (done.stdout, done.stderr)
        error = done.stderr.strip().splitlines()[-1]
        assert error.startswith("transfer-ledger: error: verification did not complete after 8 leaves"), error
        assert "it proves nothing either way" in error and "TypeError" in error, error
        assert "Traceback" not in done.stderr
        if "--json" in args:
            report = json.loads(done.stdout)
            assert report["ok"] is False and report["error"] in error
            assert report["events_checked"] == 8 and report["problem_count"] == 0, report


def test_a_database_error_during_verify_exits_2(backend: Backend) -> None:
    assert run_cli(backend.settings, "init").returncode == 0
    ledger = TransferLedger(eventsourcing_env(backend.settings))
    try:
        record_batches(ledger, [2, 2])
    finally:
        ledger.close()
    backend.execute("ALTER TABLE ledger_leaves RENAME COLUMN recorded_at TO recorded")
    done = run_cli(backend.settings, "verify", "--json")
    assert done.returncode == 2, (done.stdout, done.stderr)
    report = json.loads(done.stdout)
    assert report["ok"] is False and "database:" in report["error"], report
    assert "Traceback" not in done.stderr
