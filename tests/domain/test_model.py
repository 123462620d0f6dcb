"""Aggregates (domain.model): what a recorded transfer and an authorization expose."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic, resolve_topic

from domain.model import Authorization, PartyPolicy, Transfer, party_policy_id
from domain.parties import Actor
from domain.values import GrantConditions, Handling, Purpose
from tests.support.builders import (
    INSTRUMENT,
    NOW,
    actor,
    decider,
    grant_authorization,
    pending_authorization,
    record,
    refuse_authorization,
    revoke_authorization,
)


def replay(aggregate: Aggregate) -> Any:
    """Rebuild an aggregate from the events it has triggered, as a repository would."""
    rebuilt = None
    for event in aggregate.collect_events():
        rebuilt = event.mutate(rebuilt)
    return rebuilt


# -- transfers -------------------------------------------------------------------------


def test_a_transfer_exposes_what_was_recorded() -> None:
    first = record(
        "DE", "FR",
        data_categories=["traffic", "subscriber"],
        handling={"confidential": True, "use_restrictions": ["H2"]},
        retention_until="2027-03-01",
        item_count=12,
    )
    assert first.sender == Actor(party="DE", authority="DE/BKA", officer="Insp. K. Weber")
    assert first.recipient == Actor(party="FR", authority="FR/OFAC")
    assert first.data_categories == ("subscriber", "traffic")
    assert first.purpose == Purpose(proceeding="FR-PNC-2026-0417", description="ransomware")
    assert first.handling == Handling(confidential=True, use_restrictions=("H2",))
    assert first.data["retention_until"] == date(2027, 3, 1).isoformat()
    assert first.data["item_count"] == 12
    assert first.data["transferred_at"] == "2026-03-01T12:00:00Z"
    assert first.recorded_at == first.created_on


def test_a_first_transfer_is_the_root_of_its_lineage() -> None:
    first = record("DE", "FR")
    assert first.origin == "DE"
    assert first.parent_transfer_id is None
    assert first.root_transfer_id == first.id
    assert first.depth == 0
    assert first.authorization_id is None


def test_an_onward_transfer_names_its_parent_root_and_authorization() -> None:
    first = record("DE", "FR")
    authorization = grant_authorization(pending_authorization("FR", "BR", first))
    onward = record("FR", "BR", parent=first, authorization_id=str(authorization.id))
    assert onward.parent_transfer_id == first.id
    assert isinstance(onward.parent_transfer_id, UUID)
    assert onward.root_transfer_id == first.id
    assert onward.depth == 1
    assert onward.origin == "DE"
    assert onward.authorization_id == authorization.id


def test_the_recorded_data_cannot_be_changed_through_the_view() -> None:
    first = record("DE", "FR")
    view = first.data
    view["origin"] = "FR"
    view["data_categories"] = ["content"]
    assert first.origin == "DE"
    assert first.data_categories == ("subscriber", "traffic")


def test_a_transfer_replays_from_its_event() -> None:
    first = record("DE", "FR", handling={"written_authorization_required": True})
    rebuilt = replay(first)
    assert isinstance(rebuilt, Transfer)
    assert rebuilt.id == first.id
    assert rebuilt.data == first.data
    assert rebuilt.origin_requires_written_form is True


# -- authorizations ----------------------------------------------------------------------


@pytest.fixture
def pending() -> Authorization:
    return pending_authorization("FR", "BR", record("DE", "FR"), data_categories=["subscriber", "traffic"])


def test_a_request_is_pending_with_no_decision(pending: Authorization) -> None:
    assert pending.status == "pending"
    assert pending.origin == "DE"
    assert pending.holder == "FR"
    assert pending.recipient == Actor(party="BR", authority="BR/PF")
    assert pending.requested_categories == ("subscriber", "traffic")
    assert pending.requested_purpose == Purpose(proceeding="FR-PNC-2026-0417", description="ransomware")
    assert pending.request["justification"] == "cross-match against national databases"
    assert (pending.decision, pending.conditions, pending.granted_by, pending.revocation) == (None, None, None, None)
    assert pending.uses == []


def test_a_grant_records_who_decided_and_the_conditions(pending: Authorization) -> None:
    grant_authorization(pending, reasons="proportionate", max_transfers=2, data_categories=["traffic"],
          written_instrument=INSTRUMENT)
    assert pending.status == "granted"
    assert pending.granted_by == "DE"
    assert pending.conditions == GrantConditions.parse(
        {"max_transfers": 2, "data_categories": ["traffic"], "written_instrument": INSTRUMENT}
    )
    decision = pending.decision
    assert decision is not None
    assert decision["decision"] == "granted"
    assert decision["decided_by"] == actor("DE")
    assert decision["reasons"] == "proportionate"
    assert decision["decided_at"] >= pending.created_on


def test_a_grants_validity_is_kept_in_utc(pending: Authorization) -> None:
    grant_authorization(pending, valid_until="2026-03-31T23:59:59+02:00")
    assert pending.conditions is not None
    assert pending.conditions.valid_until is not None
    assert pending.conditions.valid_until.isoformat() == "2026-03-31T21:59:59+00:00"
    assert pending.conditions.valid_until > NOW


def test_a_refusal_records_its_reasons_and_grants_nothing(pending: Authorization) -> None:
    refuse_authorization(pending, "dual criminality not met")
    assert pending.status == "refused"
    assert pending.granted_by is None
    assert pending.conditions is None
    assert pending.decision is not None
    assert pending.decision["reasons"] == "dual criminality not met"


def test_a_revocation_keeps_the_grant_in_the_history(pending: Authorization) -> None:
    revoke_authorization(grant_authorization(pending, max_transfers=3), "data found inaccurate")
    assert pending.status == "revoked"
    assert pending.granted_by == "DE"
    assert pending.conditions == GrantConditions(max_transfers=3)
    revocation = pending.revocation
    assert revocation is not None
    assert revocation["revoked_by"] == actor("DE")
    assert revocation["reasons"] == "data found inaccurate"


def test_uses_are_counted_in_order_and_move_the_version(pending: Authorization) -> None:
    grant_authorization(pending)
    first_use, second_use = record("FR", "BR").id, record("FR", "BR").id
    version = pending.version
    pending.record_use(first_use)
    pending.record_use(second_use)
    assert pending.uses == [str(first_use), str(second_use)]
    assert pending.version == version + 2


def test_an_authorization_replays_from_its_events(pending: Authorization) -> None:
    grant_authorization(pending, max_transfers=2)
    use = record("FR", "BR").id
    pending.record_use(use)
    revoke_authorization(pending, "withdrawn")
    rebuilt = replay(pending)
    assert isinstance(rebuilt, Authorization)
    assert (rebuilt.id, rebuilt.version) == (pending.id, pending.version)
    assert rebuilt.status == "revoked"
    assert rebuilt.uses == [str(use)]
    assert rebuilt.conditions == GrantConditions(max_transfers=2)
    assert rebuilt.revocation == pending.revocation


def test_decision_views_are_copies(pending: Authorization) -> None:
    grant_authorization(pending)
    assert pending.decision is not None
    pending.decision["decision"] = "refused"
    pending.request["origin"] = "FR"
    assert pending.granted_by == "DE"
    assert pending.origin == "DE"


# -- party policies ----------------------------------------------------------------------


def test_a_party_policy_starts_without_written_form_and_can_require_it() -> None:
    policy = PartyPolicy._create(PartyPolicy.Registered, id=party_policy_id("DE"), party="DE")
    assert policy.written_authorization_required is False
    policy.set_written_form_requirement(True, decider("DE"))
    assert policy.written_authorization_required is True
    policy.set_written_form_requirement(False, decider("DE"))
    assert replay(policy).written_authorization_required is False


def test_a_party_policys_id_is_derived_from_the_party_alone() -> None:
    # Stored histories find a Party's policy by this id: it must never change.
    assert party_policy_id("DE") == UUID("d55df8e0-6483-5ed3-a84d-0593d6e9b2a5")
    assert party_policy_id("FR") != party_policy_id("DE")


# -- stored event names ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_class", "topic"),
    [
        (Transfer.Recorded, "transfer-ledger:TransferRecorded:v1"),
        (Authorization.Requested, "transfer-ledger:AuthorizationRequested:v1"),
        (Authorization.Granted, "transfer-ledger:AuthorizationGranted:v1"),
        (Authorization.Refused, "transfer-ledger:AuthorizationRefused:v1"),
        (Authorization.Revoked, "transfer-ledger:AuthorizationRevoked:v1"),
        (Authorization.Used, "transfer-ledger:AuthorizationUsed:v1"),
        (PartyPolicy.Registered, "transfer-ledger:PartyPolicyRegistered:v1"),
        (PartyPolicy.WrittenFormRequirementSet, "transfer-ledger:WrittenFormRequirementSet:v1"),
    ],
)
def test_every_stored_event_has_a_stable_explicit_topic(event_class: type, topic: str) -> None:
    assert get_topic(event_class) == topic
    assert resolve_topic(topic) is event_class
