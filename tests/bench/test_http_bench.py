"""The HTTP section of `make bench` runs end to end at a tiny size: both servers answer
every request with 201, and each row carries rates and latencies."""

from __future__ import annotations

import re

import pytest

from bench.http import bench_http
from tests.support.backends import PG_URL

ROW = re.compile(
    r"^(SQLite|PostgreSQL), (\d+) clients? +(\d+) +(\d+)/s +(\d+)/s +(\d+\.\d+)x  "
    r"p50 (\d+\.\d)\|(\d+\.\d)ms p99 (\d+\.\d)\|(\d+\.\d)ms non-201 (\d+)\|(\d+)"
)


def test_bench_http_at_a_tiny_size(capsys: pytest.CaptureFixture[str]) -> None:
    bench_http(30, single_save_rate=1.0, database_url=PG_URL, clients=(1, 4), warmup=10, seconds=30)
    out = capsys.readouterr().out
    rows = [m for m in (ROW.match(line) for line in out.splitlines()) if m]
    assert [int(m[2]) for m in rows] == [1, 4], out
    for m in rows:
        assert m[1] == ("PostgreSQL" if PG_URL else "SQLite")
        assert int(m[3]) == 30 and int(m[4]) > 0 and int(m[5]) > 0, out
        assert float(m[8]) > 0 and float(m[10]) >= float(m[8]), out
        assert (m[11], m[12]) == ("0", "0"), out  # every answer a 201
    assert "other than 201" not in out and "time limit" not in out, out
    assert "4 clients vs single saves" in out, out
