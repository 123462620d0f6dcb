"""Group commit: concurrent commands written in batches, one transaction each.

To make a batch deterministic, the committer thread is held up by a command
that waits on an event; the commands submitted meanwhile queue up, and are
written together (in submission order) once it is released.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest

from domain.errors import DomainError, RuleViolation
from domain.model import Authorization
from ledger.audit.verify import verify_ledger
from ledger.config import Settings, eventsourcing_env
from ledger.service.application import AlreadyDone, TransferLedger
from ledger.service.group_commit import GroupCommitter, Overloaded
from ledger.storage.idempotency import IdempotencyClaim
from tests.support.builders import granted_chain, onward, revocation, transfer
from tests.support.group_commit import Call, committer_held, queued
from tests.support.races import threads_racing_a_revocation, threads_racing_for_the_last_permitted_transfers


def submit_in_order(ledger: TransferLedger, *fns: Callable[[], Any]) -> list[Call]:
    """Start the calls one by one, each queued before the next starts (so the batch keeps this order)."""
    calls = []
    for i, fn in enumerate(fns, start=1):
        calls.append(Call(fn))
        queued(ledger, i)
    return calls


@pytest.fixture
def grouped(ledger: TransferLedger) -> TransferLedger:
    ledger.start_group_commit(max_batch=64, max_queue=8)
    return ledger


def _tree_size(ledger: TransferLedger) -> int:
    return ledger.store.head().size


def test_queued_commands_are_written_in_one_batch_and_each_answered_after_it(grouped: TransferLedger) -> None:
    committer = grouped.committer
    assert committer is not None
    with committer_held(grouped) as release:
        calls = submit_in_order(grouped, *[lambda i=i: grouped.record_transfer(
            transfer("DE", "FR", request_reference=f"R-{i}")) for i in range(5)])
        time.sleep(0.05)
        assert _tree_size(grouped) == 0  # nothing written, nobody answered yet
        assert all(call._thread.is_alive() for call in calls)
        release()
    answers = [call.outcome() for call in calls]
    # one batch (after the held one) wrote the five transfers, in submission order
    assert committer.stats.batches == 2 and committer.stats.largest_batch == 5
    assert [a["request_reference"] for a in answers] == [f"R-{i}" for i in range(5)]
    assert [a["leaf_index"] for a in answers] == list(range(5))
    for answer in answers:  # each answer is what was stored
        stored = grouped.get_transfer(answer["id"])
        assert stored["leaf_index"] == answer["leaf_index"] and stored["recorded_at"] == answer["recorded_at"]
    assert verify_ledger(grouped.store, None).ok


def test_two_uses_of_the_last_permitted_transfer_in_one_batch(grouped: TransferLedger) -> None:
    """The later one in the batch sees the earlier one's use: refused, never recorded."""
    root, auth = granted_chain(grouped, max_transfers=1)
    size = _tree_size(grouped)
    with committer_held(grouped):
        first, second, other = submit_in_order(
            grouped,
            lambda: grouped.record_transfer(onward("FR", "INTERPOL", root, auth)),
            lambda: grouped.record_transfer(onward("FR", "INTERPOL", root, auth)),
            lambda: grouped.record_transfer(transfer("DE", "BR")),
        )
    recorded, refused, unrelated = first.outcome(), second.outcome(), other.outcome()
    assert isinstance(refused, RuleViolation) and refused.rule == "authorization-exhausted"
    assert unrelated["recipient"]["party"] == "BR"  # the rest of the batch committed
    assert grouped.get_authorization(auth["id"])["uses"] == [recorded["id"]]
    assert _tree_size(grouped) == size + 3  # transfer, its use, the unrelated transfer
    assert grouped.committer is not None and grouped.committer.stats.batches_rerun == 0  # saved as one
    assert verify_ledger(grouped.store, None).ok


def test_a_revocation_earlier_in_the_batch_wins(grouped: TransferLedger) -> None:
    root, auth = granted_chain(grouped)
    with committer_held(grouped):
        revoke, use = submit_in_order(
            grouped,
            lambda: grouped.revoke(auth["id"], revocation("DE")),
            lambda: grouped.record_transfer(onward("FR", "INTERPOL", root, auth)),
        )
    assert revoke.outcome()["status"] == "revoked"
    refused = use.outcome()
    assert isinstance(refused, RuleViolation) and refused.rule == "authorization-revoked"
    assert grouped.get_authorization(auth["id"])["uses"] == []
    assert grouped.committer is not None and grouped.committer.stats.batches_rerun == 0


def test_a_repeated_idempotency_key_in_one_batch_records_once(grouped: TransferLedger) -> None:
    grouped.idempotency  # noqa: B018 - its table, as the API makes it at start-up
    claim = IdempotencyClaim("principal-1", "key-1", "hash-of-the-request", 201)
    body = transfer("DE", "FR")
    with committer_held(grouped):
        first, second = submit_in_order(
            grouped,
            lambda: grouped.record_transfer(body, idempotency=claim),
            lambda: grouped.record_transfer(body, idempotency=claim),
        )
    outcomes = [first.outcome(), second.outcome()]
    recorded = [o for o in outcomes if isinstance(o, dict)]
    repeated = [o for o in outcomes if isinstance(o, AlreadyDone)]
    assert len(recorded) == 1 and len(repeated) == 1, outcomes
    assert repeated[0].status == 201 and repeated[0].body == recorded[0]
    assert grouped.committer is not None and grouped.committer.stats.batches_rerun == 1
    assert _tree_size(grouped) == 1


def test_a_batch_that_loses_a_race_to_another_process_is_checked_again(
    settings: Settings, grouped: TransferLedger
) -> None:
    """Another writer (its own connections, as another process) revokes the grant
    after the batch was prepared and before it is saved: the batch's save fails,
    nothing of it is written, and each command runs again on its own: the
    unrelated transfer is recorded, the onward transfer refused."""
    root, auth = granted_chain(grouped)
    other = TransferLedger(eventsourcing_env(settings))
    draft_body = onward("FR", "INTERPOL", root, auth)
    committer = grouped.committer
    assert committer is not None
    try:
        from domain.values import TransferDraft

        def onward_then_revoked_elsewhere() -> Any:
            now = grouped.clock()
            prepared = grouped._prepare_transfer(TransferDraft.parse(draft_body, now=now), now, None)
            if other.get_authorization(auth["id"])["status"] == "granted":
                other.revoke(auth["id"], revocation("DE"))
            return prepared

        with committer_held(grouped):
            plain, raced = submit_in_order(
                grouped,
                lambda: grouped.record_transfer(transfer("DE", "BR")),
                lambda: committer.submit(onward_then_revoked_elsewhere),
            )
        assert plain.outcome()["recipient"]["party"] == "BR"
        refused = raced.outcome()
        assert isinstance(refused, RuleViolation) and refused.rule == "authorization-revoked"
    finally:
        other.close()
    history = [type(e).__name__ for e in grouped.events.get(UUID(auth["id"]))]
    assert "Used" not in history and history[-1] == "Revoked"
    assert committer.stats.batches_rerun == 1
    assert verify_ledger(grouped.store, None).ok


def test_a_full_queue_refuses_at_once_and_records_nothing(ledger: TransferLedger) -> None:
    ledger.start_group_commit(max_batch=64, max_queue=2)
    committer = ledger.committer
    assert committer is not None
    with committer_held(ledger):
        waiting = submit_in_order(ledger, *[lambda: ledger.record_transfer(transfer("DE", "FR"))] * 2)
        with pytest.raises(Overloaded) as refused:
            ledger.record_transfer(transfer("DE", "FR", request_reference="refused"))
        assert refused.value.retry_after >= 1
    assert all(call.outcome()["leaf_index"] in (0, 1) for call in waiting)
    assert _tree_size(ledger) == 2 and committer.stats.refused_overloaded == 1


def test_close_writes_every_queued_command_then_refuses(settings: Settings) -> None:
    ledger = TransferLedger(eventsourcing_env(settings))
    ledger.start_group_commit()
    committer = ledger.committer
    assert committer is not None
    with committer_held(ledger):
        waiting = submit_in_order(ledger, *[lambda i=i: ledger.record_transfer(
            transfer("DE", "FR", request_reference=f"R-{i}")) for i in range(3)])
        closing = Call(ledger.close)
        time.sleep(0.05)
        with pytest.raises(Overloaded):
            committer.submit(lambda: None)
    closing.outcome()
    assert sorted(call.outcome()["request_reference"] for call in waiting) == ["R-0", "R-1", "R-2"]
    reopened = TransferLedger(eventsourcing_env(settings))
    try:
        assert _tree_size(reopened) == 3 and verify_ledger(reopened.store, None).ok
    finally:
        reopened.close()


def test_an_error_in_the_batch_executor_reaches_every_caller_and_the_next_batch_is_written() -> None:
    calls = []

    def execute(prepares: Any) -> list[tuple[Any, BaseException | None]]:
        calls.append(len(prepares))
        if len(calls) == 1:
            raise RuntimeError("database unavailable")
        return [(p(), None) for p in prepares]

    committer = GroupCommitter(execute, max_batch=4, max_queue=4)
    committer.start()
    try:
        with pytest.raises(RuntimeError, match="database unavailable"):
            committer.submit(lambda: 1)
        assert committer.submit(lambda: 2) == 2
    finally:
        committer.close()


def test_refusals_in_a_batch_are_the_same_as_alone(grouped: TransferLedger) -> None:
    root, _ = granted_chain(grouped)
    with committer_held(grouped):
        bad, good = submit_in_order(
            grouped,
            lambda: grouped.record_transfer(onward("NL", "INTERPOL", root)),  # NL never received it
            lambda: grouped.record_transfer(transfer("DE", "FR")),
        )
    refused = bad.outcome()
    assert isinstance(refused, DomainError) and refused.rule == "not-holder"
    assert good.outcome()["sender"]["party"] == "DE"


def test_threads_racing_a_revocation_with_group_commit(grouped: TransferLedger) -> None:
    threads_racing_a_revocation(grouped)


def test_threads_racing_for_the_last_permitted_transfers_with_group_commit(grouped: TransferLedger) -> None:
    threads_racing_for_the_last_permitted_transfers(grouped)


def test_batches_keep_the_uses_next_to_their_transfers(grouped: TransferLedger) -> None:
    """Within a batch, each command's events stay together and in order: a use follows its transfer."""
    root, auth = granted_chain(grouped, max_transfers=3)
    with committer_held(grouped):
        calls = submit_in_order(grouped, *[lambda: grouped.record_transfer(onward("FR", "INTERPOL", root, auth))] * 3)
    ids = [call.outcome()["id"] for call in calls]
    uses = [e for e in grouped.events.get(UUID(auth["id"])) if isinstance(e, Authorization.Used)]
    assert [u.transfer_id for u in uses] == ids
    for use in uses:
        use_leaf = grouped.store.leaf_of_event(UUID(auth["id"]), use.originator_version)
        transfer_leaf = grouped.store.leaf_of_event(UUID(use.transfer_id), 1)
        assert use_leaf is not None and transfer_leaf is not None
        assert use_leaf.leaf_index == transfer_leaf.leaf_index + 1


def test_callers_on_an_event_loop_wait_without_threads_and_share_a_batch(grouped: TransferLedger) -> None:
    """The API's handlers await their commands: the committer's writer thread writes them."""
    import asyncio

    async def three() -> list[Any]:
        plans = [grouped.plan_record_transfer(transfer("DE", "FR", request_reference=f"A-{i}")) for i in range(3)]
        return await asyncio.gather(*(grouped.run_async(plan) for plan in plans), return_exceptions=True)

    committer = grouped.committer
    assert committer is not None
    with committer_held(grouped):
        answers = Call(lambda: asyncio.run(three()))
        queued(grouped, 3)
    recorded = answers.outcome()
    assert sorted(a["request_reference"] for a in recorded) == ["A-0", "A-1", "A-2"]
    assert committer.stats.largest_batch == 3 and _tree_size(grouped) == 3
    # refusals reach the awaiting caller too
    with pytest.raises(RuleViolation) as refused:
        asyncio.run(grouped.run_async(grouped.plan_record_transfer(onward("NL", "INTERPOL", recorded[0]))))
    assert refused.value.rule == "not-holder"
