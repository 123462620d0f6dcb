"""The verification section of `make bench` runs end to end at a tiny size: the ledger
verifies, and the rows carry both rates, their ratio and the peak memory at both sizes."""

from __future__ import annotations

import re

import pytest

from bench.verify import bench_verify

RATE = re.compile(r"^(read rows \+ SHA-256 \(baseline\)|full verify) +(\d+) +(\d+)/s  \((\d+\.\d)s")
RATIO = re.compile(r"^verify / baseline +(\d+) +(\d+\.\d\d)x  \(goal >= 0\.50x\)")
MEMORY = re.compile(r"^peak memory, (baseline|verify) +(\d+) +(\d+) MiB  \(\+(\d+) MiB while reading\)")


def test_bench_verify_at_a_tiny_size(capsys: pytest.CaptureFixture[str]) -> None:
    bench_verify(2000)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert any(line.startswith("  (write the ledger)") and " 2000 " in line and "signed decisions" in line
               for line in lines), out
    rates = {m[1]: m for m in (RATE.match(line) for line in lines) if m}
    assert set(rates) == {"read rows + SHA-256 (baseline)", "full verify"}, out
    for m in rates.values():
        assert int(m[2]) == 2000 and int(m[3]) > 0, out
    assert "checkpoints" in rates["full verify"].string and "signatures" in rates["full verify"].string
    ratio = [m for m in (RATIO.match(line) for line in lines) if m]
    assert len(ratio) == 1 and float(ratio[0][2]) > 0, out
    # what is timed, said once: the same span on both sides, the same rows read
    assert [line for line in lines if line.startswith("  (both timed from an open connection")] == [
        lines[lines.index(ratio[0].string) + 1]], out
    assert "fastest of 3 interleaved runs each" in out and "stored nodes" in out, out
    memory = [m for m in (MEMORY.match(line) for line in lines) if m]
    # baseline and verify, each at a tenth of the size and at the full size
    assert [(m[1], int(m[2])) for m in memory] == [
        ("baseline", 200), ("baseline", 2000), ("verify", 200), ("verify", 2000)
    ], out
    assert all(int(m[3]) > 0 for m in memory), out
    assert any(line.startswith("verify memory, n vs n/10") for line in lines), out
