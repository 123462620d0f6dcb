"""Threads racing for a grant: used by the race tests and, in one batch, by the group commit tests."""

from __future__ import annotations

import threading
import time
from typing import Any
from uuid import UUID

from domain.errors import RuleViolation
from domain.model import Authorization, Transfer
from ledger.service.application import TransferLedger
from tests.support.builders import granted_chain, onward, revocation


def threads_racing_a_revocation(ledger: TransferLedger) -> None:
    root, auth = granted_chain(ledger)
    go = threading.Event()
    results: list[tuple[list[str], list[str]]] = []
    lock = threading.Lock()

    def worker() -> None:
        outcome = _attempt_transfers(ledger, root, auth, ATTEMPTS, go)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    go.set()
    _wait_for_uses(ledger, auth["id"], 5)
    ledger.revoke(auth["id"], revocation("DE"))
    for t in threads:
        t.join(timeout=120)
    recorded = [i for ids, _ in results for i in ids]
    rules = [r for _, rs in results for r in rs]
    assert len(results) == WORKERS
    assert len(recorded) >= 5
    # every worker that stopped early was stopped by the revocation, nothing else
    assert set(rules) <= {"authorization-revoked"}, rules
    _assert_no_use_after_revocation(ledger, auth["id"], recorded)


def threads_racing_for_the_last_permitted_transfers(ledger: TransferLedger) -> None:
    root, auth = granted_chain(ledger, max_transfers=5)
    go = threading.Event()
    results: list[tuple[list[str], list[str]]] = []

    def worker() -> None:
        results.append(_attempt_transfers(ledger, root, auth, 3, go))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join(timeout=120)
    recorded = [i for ids, _ in results for i in ids]
    rules = [r for _, rs in results for r in rs]
    assert len(recorded) == 5
    assert set(rules) == {"authorization-exhausted"}
    assert sorted(ledger.get_authorization(auth["id"])["uses"]) == sorted(recorded)


WORKERS = 6


ATTEMPTS = 40


def _attempt_transfers(ledger: TransferLedger, root: dict[str, Any], auth: dict[str, Any],
                       attempts: int, go: Any) -> tuple[list[str], list[str]]:
    """Try onward transfers until refused; returns (recorded ids, refusal rules)."""
    recorded: list[str] = []
    rules: list[str] = []
    go.wait()
    for _ in range(attempts):
        try:
            recorded.append(ledger.record_transfer(onward("FR", "INTERPOL", root, auth))["id"])
        except RuleViolation as e:
            rules.append(e.rule)
            break
    return recorded, rules


def _wait_for_uses(ledger: TransferLedger, auth_id: str, at_least: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(ledger.get_authorization(auth_id)["uses"]) < at_least:
        assert time.monotonic() < deadline, "workers made no progress"
        time.sleep(0.005)


def _assert_no_use_after_revocation(ledger: TransferLedger, auth_id: str, recorded: list[str]) -> None:
    history = list(ledger.events.get(UUID(auth_id)))
    kinds = [type(e).__name__ for e in history]
    assert kinds.count("Revoked") == 1, kinds
    revoked_at = kinds.index("Revoked")
    used = [e for e in history if isinstance(e, Authorization.Used)]
    assert all(history.index(e) < revoked_at for e in used), kinds
    # what the workers were told was recorded is exactly what the grant counts
    assert sorted(e.transfer_id for e in used) == sorted(recorded)
    # and in the ledger's order too: every use's leaf precedes the revocation's
    revoked_leaf = ledger.store.leaf_of_event(UUID(auth_id), history[revoked_at].originator_version)
    assert revoked_leaf is not None
    for event in used:
        leaf = ledger.store.leaf_of_event(UUID(auth_id), event.originator_version)
        assert leaf is not None and leaf.leaf_index < revoked_leaf.leaf_index
        transfer_leaf = ledger.store.leaf_of_event(UUID(event.transfer_id), 1)
        assert transfer_leaf is not None and transfer_leaf.leaf_index < revoked_leaf.leaf_index
    # no transfer under this grant exists beyond those uses
    under_grant = [
        n for n in ledger.notification_log.recorder.select_notifications(start=1, limit=100_000)
        if n.topic == Transfer.Recorded.TOPIC and auth_id.encode() in n.state
    ]
    assert len(under_grant) == len(recorded)
