"""``transfer-ledger import``: JSON lines recorded in batches, each checked by art. 36 §3 as if
recorded alone; refusals named by line and rule; idempotent by each line's key (on the suite's backend)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ledger.config import Settings, eventsourcing_env
from ledger.service.application import TransferLedger
from tests.support import builders
from tests.support.api import run_init
from tests.support.cli import one_line_error, run


def lines(path: Path, docs: list[Any]) -> Path:
    path.write_text("".join((d if isinstance(d, str) else json.dumps(d)) + "\n" for d in docs), encoding="utf-8")
    return path


def transfers_in(settings: Settings) -> list[dict[str, Any]]:
    ledger = TransferLedger(eventsourcing_env(settings))
    try:
        return ledger.list_transfers(visible=lambda v: True, limit=500)[0]
    finally:
        ledger.close()


def imported(settings: Settings, path: Path, *extra: str, check: int) -> dict[str, Any]:
    done = run("import", str(path), "--json", *extra, settings=settings, check=check)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_lines_are_recorded_in_batches_and_refusals_named_by_line_and_rule(settings: Settings,
                                                                           tmp_path: Path) -> None:
    run_init(settings)
    root_id = "4b0e8a5c-6a43-4b6c-9a0a-2b8f3f1e0001"
    docs = [{"key": f"old-{i}", "transfer": builders.transfer("DE", "FR", request_reference=f"OLD-{i}",
                                                              transferred_at="2024-05-01T10:00:00Z")}
            for i in range(7)]
    docs.insert(3, "{not json")
    docs.insert(5, {"key": "onward-1", "transfer": builders.onward("FR", "INTERPOL", {"id": root_id})})
    docs.append({"key": "to-self", "transfer": builders.transfer("DE", "DE")})
    report = imported(settings, lines(tmp_path / "old.jsonl", docs), "--batch", "3", check=1)
    assert report["recorded"] == 7 and report["lines"] == 10
    assert [(r["line"], r["rule"]) for r in report["refused"]] == [
        (4, "malformed-json"), (6, "transfer-not-found"), (10, "transfer-to-self")]
    assert report["batches"] == 3
    assert sorted(t["request_reference"] for t in transfers_in(settings)) == [f"OLD-{i}" for i in range(7)]
    run("verify", settings=settings)

    olds = [d for d in docs if isinstance(d, dict) and d["key"].startswith("old-")]
    again = imported(settings, lines(tmp_path / "again.jsonl", olds), check=0)
    assert again["recorded"] == 0 and again["already"] == 7  # the keys: nothing recorded twice
    assert len(transfers_in(settings)) == 7


def test_all_or_nothing_records_nothing_when_a_line_is_refused(settings: Settings, tmp_path: Path) -> None:
    run_init(settings)
    docs = [{"key": "a", "transfer": builders.transfer("DE", "FR")},
            {"key": "b", "transfer": builders.transfer("FR", "FR")}]
    report = imported(settings, lines(tmp_path / "x.jsonl", docs), "--all-or-nothing", check=1)
    assert report["rolled_back"] and report["recorded"] == 0
    assert [r["line"] for r in report["refused"]] == [2]
    assert transfers_in(settings) == []
    ok = imported(settings, lines(tmp_path / "y.jsonl", docs[:1]), "--all-or-nothing", check=0)
    assert ok["recorded"] == 1


def test_a_key_repeated_within_the_file_and_a_missing_file(settings: Settings, tmp_path: Path) -> None:
    run_init(settings)
    docs = [{"key": "k", "transfer": builders.transfer("DE", "FR")},
            {"key": "k", "transfer": builders.transfer("DE", "NL")}]
    report = imported(settings, lines(tmp_path / "d.jsonl", docs), check=1)
    assert report["recorded"] == 1 and [(r["line"], r["rule"]) for r in report["refused"]] == [(2, "duplicate-key")]
    missing = run("import", str(tmp_path / "none.jsonl"), settings=settings, check=2)
    assert "cannot read" in one_line_error(missing)


def test_a_key_used_before_for_another_transfer_is_refused(settings: Settings, tmp_path: Path) -> None:
    run_init(settings)
    imported(settings, lines(tmp_path / "a.jsonl", [{"key": "k", "transfer": builders.transfer("DE", "FR")}]),
             check=0)
    other = imported(settings, lines(tmp_path / "b.jsonl", [{"key": "k", "transfer": builders.transfer("DE", "NL")}]),
                     check=1)
    assert [(r["line"], r["rule"]) for r in other["refused"]] == [(1, "idempotency-key-reused")]
    assert len(transfers_in(settings)) == 1
