"""The benchmark's synthetic ledger is made of the application's own events: every
one decodes with the application's mapper, and the read models find nothing wrong
in it but the requests it leaves pending."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.persistence import StoredEvent

from bench.__main__ import SyntheticLedger
from domain.model import Authorization, Transfer
from ledger.service.application import TransferLedger
from projections import queries
from tests.support.world import make_runner


def test_synthetic_events_are_the_applications(ledger: TransferLedger) -> None:
    synth = SyntheticLedger(seed=7)
    synth.mixed(400)
    root_id = synth.tree(60)
    ledger.recorder.insert_events(synth.events)
    for event in synth.events:
        domain_event = ledger.mapper.to_domain_event(
            StoredEvent(event.originator_id, event.originator_version, event.topic, event.state))
        assert isinstance(domain_event, (Transfer.Event, Authorization.Event))
    transfer = ledger.get_transfer(root_id)  # the application reads them as its own aggregates
    assert transfer["origin"] == "DE" and transfer["depth"] == 0
    grant = next(e for e in synth.events if e.topic == Authorization.Granted.TOPIC)
    assert ledger.get_authorization(UUID(str(grant.originator_id)))["status"] in ("granted", "revoked")
    runner = make_runner(ledger)
    runner.catch_up()
    found = queries.findings(runner.db, now="2030-01-01T00:00:00.000000Z", pending_deadline_days=1.0)
    # (no unit of the synthetic ledger has a control plan: each is found without one, Order 949 annex 3 §6)
    assert set(found["counts"]) <= {"request-pending-too-long", "control-plan-missing"}, found["counts"]
    lineage = queries.lineage(runner.db, root_id)
    assert lineage is not None and len(lineage["descendants"]) == 59
