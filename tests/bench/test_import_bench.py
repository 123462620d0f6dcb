"""The bulk-import row of `make bench` runs end to end at a tiny size, on the suite's backend: both
sides save every transfer, and the row carries both rates and their ratio against the goal."""

from __future__ import annotations

import re

import pytest

from bench.__main__ import _bench_import
from ledger.config import Settings, eventsourcing_env, postgres_env

ROW = re.compile(r"^import +(\d+) +(\d+)/s +(\d+)/s +(\d+\.\d\d)x  \(goal >= 0\.80x\)")


def test_bench_import_at_a_tiny_size(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    if settings.database_url:
        raw_env = postgres_env(settings.database_url)
    else:
        raw_env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                   "SQLITE_DBNAME": str(settings.data_dir / "raw.sqlite3")}
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _bench_import("import", raw_env, eventsourcing_env(settings), 3000)
    out = capsys.readouterr().out
    row = ROW.match(out.strip().splitlines()[-1])
    assert row is not None, out
    assert int(row[1]) == 3000 and int(row[2]) > 0 and int(row[3]) > 0 and float(row[4]) > 0
