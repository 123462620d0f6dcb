"""An erasure racing an evidence hold on the same transfer: one order, never both (LED art. 16(3))."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from domain.errors import RuleViolation
from ledger.service.application import TransferLedger
from tests.support.builders import actor, transfer


def _racing(go: threading.Barrier, results: dict[str, str], name: str, command: Callable[[], Any]) -> None:
    go.wait()
    try:
        command()
        results[name] = "done"
    except RuleViolation as e:
        results[name] = e.rule


def test_an_erasure_and_a_hold_racing_take_one_order(ledger: TransferLedger) -> None:
    for _ in range(12):
        t = ledger.record_transfer(transfer("DE", "FR", subjects=["Race Subject"]))
        go, results = threading.Barrier(2), {}
        erase = functools.partial(ledger.erase_personal_data, t["id"], {
            "erased_by": actor("FR"), "ground": "court-order", "reasons": "order of the court"})
        hold = functools.partial(ledger.restrict_processing, t["id"], {"by": actor("DE"), "reasons": "appeal"})
        threads = [threading.Thread(target=_racing, args=(go, results, "erase", erase)),
                   threading.Thread(target=_racing, args=(go, results, "hold", hold))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        after = ledger.get_transfer(t["id"])
        if results["erase"] == "done":  # the erasure committed first: the hold came too late
            assert results["hold"] == "personal-data-erased" and after["restriction"] is None
            assert "erased" in after["subjects"]
        else:  # the hold committed first: the erasure was refused, nothing destroyed
            assert (results["erase"], results["hold"]) == ("processing-restricted", "done")
            assert after["erasure"] is None and after["subjects"] == ["Race Subject"]
