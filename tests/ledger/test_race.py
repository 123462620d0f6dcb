"""Revocations and last permitted uses race onward transfers (docs/DOMAIN.md, point 7).

Several threads (and several processes, each with its own connections) try
to record onward transfers under one grant while the origin revokes it. The
check and the recording are one atomic save, so whatever the interleaving:
no transfer is recorded against a grant that was already revoked, and no
more transfers than a grant permits. Asserted from what was committed: the
grant's own event history and the ledger's leaf order.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

from ledger.config import Settings, eventsourcing_env
from ledger.service.application import TransferLedger
from tests.support.builders import granted_chain, revocation
from tests.support.races import (
    ATTEMPTS,
    _assert_no_use_after_revocation,
    _attempt_transfers,
    _wait_for_uses,
    threads_racing_a_revocation,
    threads_racing_for_the_last_permitted_transfers,
)


def _process_worker(data_dir: str, url: str | None, root: dict[str, Any], auth: dict[str, Any],
                    attempts: int, go: Any, out: Any) -> None:
    ledger = TransferLedger(eventsourcing_env(Settings(Path(data_dir), url)))
    try:
        out.put(_attempt_transfers(ledger, root, auth, attempts, go))
    except BaseException as e:  # report, so the parent fails clearly
        out.put(([], [f"crashed: {e!r}"]))
    finally:
        ledger.close()










def test_processes_racing_a_revocation(settings: Settings, ledger: TransferLedger) -> None:
    root, auth = granted_chain(ledger)
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    out = context.Queue()
    workers = [
        context.Process(
            target=_process_worker,
            args=(str(settings.data_dir), settings.database_url, root, auth, ATTEMPTS, go, out),
        )
        for _ in range(4)
    ]
    for p in workers:
        p.start()
    go.set()
    _wait_for_uses(ledger, auth["id"], 4)
    ledger.revoke(auth["id"], revocation("DE"))
    results = [out.get(timeout=120) for _ in workers]
    for p in workers:
        p.join(timeout=60)
    recorded = [i for ids, _ in results for i in ids]
    rules = [r for _, rs in results for r in rs]
    assert set(rules) <= {"authorization-revoked"}, rules
    _assert_no_use_after_revocation(ledger, auth["id"], recorded)


def test_threads_racing_a_revocation(ledger: TransferLedger) -> None:
    threads_racing_a_revocation(ledger)


def test_threads_racing_for_the_last_permitted_transfers(ledger: TransferLedger) -> None:
    threads_racing_for_the_last_permitted_transfers(ledger)
