"""The ledger application on a real database: commands, queries, refusals.

Every refusal is checked twice: the error names the rule and the field, and
nothing was recorded (the ledger's head did not move).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.errors import DomainError, InvalidInput, NotFound, RuleViolation
from ledger.config import Settings, eventsourcing_env
from ledger.service.application import TransferLedger
from tests.support.builders import (
    actor,
    grant,
    granted_chain,
    onward,
    refuse,
    request,
    revocation,
    transfer,
)


def refused(ledger: TransferLedger, action: Any, kind: type[DomainError], rule: str,
            field: str | None = None) -> DomainError:
    """Run ``action``; it must raise ``kind`` with ``rule`` and record nothing."""
    before = ledger.store.head()
    with pytest.raises(kind) as caught:
        action()
    assert caught.value.rule == rule, str(caught.value)
    if field is not None:
        assert caught.value.field == field, str(caught.value)
    assert ledger.store.head() == before, "a refused command recorded something"
    return caught.value


# -- recording and lineage -----------------------------------------------------


def test_first_transfer_is_its_own_origin_and_first_leaf(ledger: TransferLedger) -> None:
    out = ledger.record_transfer(transfer("DE", "FR", transferred_at="2026-03-01T09:30:00+01:00"))
    assert out["origin"] == "DE"
    assert out["leaf_index"] == 0
    assert out["depth"] == 0
    assert out["root_transfer_id"] == out["id"]
    assert out["parent_transfer_id"] is None
    assert out["transferred_at"] == "2026-03-01T08:30:00Z"  # normalized to UTC
    assert out["recorded_at"].endswith("Z")
    assert ledger.store.head().size == 1


def test_lists_pass_over_transfers_that_do_not_mention_what_they_look_for(
    ledger: TransferLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan loads only the transfers whose recorded event names the Party or root asked
    for; what it answers is what a full scan answers."""
    trees = [ledger.record_transfer(transfer(sender, "FR")) for sender in ("DE", "NL", "DE", "IT", "NL")]
    root, auth = granted_chain(ledger)  # DE -> FR, FR asks DE, DE grants
    child = ledger.record_transfer(onward("FR", "INTERPOL", root, auth))
    loaded: list[Any] = []
    get = ledger.repository.get
    monkeypatch.setattr(ledger.repository, "get", lambda ident, *a, **k: loaded.append(ident) or get(ident, *a, **k))

    def ids(visible: Any = lambda view: True, **kwargs: Any) -> list[str]:
        loaded.clear()
        page, _ = ledger.list_transfers(visible=visible, limit=500, **kwargs)
        return [view["id"] for view in page]

    def parties(view: dict[str, Any]) -> set[str]:
        return {view["sender"]["party"], view["recipient"]["party"], view["origin"]}

    in_tree = lambda view: view["root_transfer_id"] == root["id"]  # noqa: E731
    assert ids(in_tree, mentions=(root["id"],)) == [root["id"], child["id"]] and len(loaded) == 2
    assert ids(party="NL") == [trees[1]["id"], trees[4]["id"]] and len(loaded) == 2
    assert ids(lambda v: "FR" in parties(v), party="IT", mentions=("FR",)) == [trees[3]["id"]]
    assert len(loaded) == 1
    everything = ids()
    assert len(everything) == 7 and len(loaded) == 7
    assert ids(in_tree) == [root["id"], child["id"]] and len(loaded) == 7  # no mention: all loaded
    # a value a JSON encoder might write otherwise is not used to pass over anything
    assert ids(lambda v: True, mentions=("D\\E",)) == everything and len(loaded) == 7


def test_onward_transfer_under_the_origins_grant(ledger: TransferLedger) -> None:
    root, auth = granted_chain(ledger)
    assert auth["status"] == "granted" and auth["origin"] == "DE"
    out = ledger.record_transfer(onward("FR", "INTERPOL", root, auth))
    assert out["origin"] == "DE"
    assert out["depth"] == 1
    assert out["parent_transfer_id"] == root["id"]
    assert out["root_transfer_id"] == root["id"]
    # the transfer and the grant's use are one save: two consecutive leaves
    assert ledger.store.head().size == out["leaf_index"] + 2
    used = ledger.get_authorization(auth["id"])
    assert used["uses"] == [out["id"]]


def test_returning_data_to_the_origin_needs_no_authorization(ledger: TransferLedger) -> None:
    root = ledger.record_transfer(transfer("DE", "FR"))
    back = ledger.record_transfer(onward("FR", "DE", root))
    assert back["origin"] == "DE" and back["authorization_id"] is None


def test_origin_passing_on_its_own_returned_data_needs_no_authorization(ledger: TransferLedger) -> None:
    root = ledger.record_transfer(transfer("DE", "FR"))
    back = ledger.record_transfer(onward("FR", "DE", root))
    again = ledger.record_transfer(onward("DE", "NL", back))
    assert again["origin"] == "DE" and again["depth"] == 2


def test_multi_hop_needs_the_origins_grant_again_not_the_intermediates(ledger: TransferLedger) -> None:
    root, auth = granted_chain(ledger)
    to_interpol = ledger.record_transfer(onward("FR", "INTERPOL", root, auth))
    # INTERPOL cannot reuse FR's grant for its own onward transfer
    refused(
        ledger, lambda: ledger.record_transfer(onward("INTERPOL", "BR", to_interpol, auth)),
        RuleViolation, "authorization-not-for-this-transfer", "authorization_id",
    )
    brazil = ledger.request_authorization(request("INTERPOL", "BR", to_interpol))
    assert brazil["origin"] == "DE"
    # FR, the Party that passed the data on, may not decide
    error = refused(ledger, lambda: ledger.decide(brazil["id"], grant("FR")), RuleViolation, "not-origin",
                    "decided_by.party")
    assert error.values == {"party": "FR", "origin": "DE"}
    refused(ledger, lambda: ledger.decide(brazil["id"], grant("INTERPOL")), RuleViolation, "not-origin")
    brazil = ledger.decide(brazil["id"], grant("DE"))
    out = ledger.record_transfer(onward("INTERPOL", "BR", to_interpol, brazil))
    assert out["origin"] == "DE" and out["depth"] == 2


def test_get_transfer_lists_ancestors_parent_first(ledger: TransferLedger) -> None:
    root, auth = granted_chain(ledger)
    hop1 = ledger.record_transfer(onward("FR", "INTERPOL", root, auth))
    req = ledger.decide(ledger.request_authorization(request("INTERPOL", "BR", hop1))["id"], grant("DE"))
    hop2 = ledger.record_transfer(onward("INTERPOL", "BR", hop1, req))
    view = ledger.get_transfer(hop2["id"])
    assert [a["id"] for a in view["ancestors"]] == [hop1["id"], root["id"]]
    assert view["leaf_index"] == hop2["leaf_index"]
    assert [a["leaf_index"] for a in view["ancestors"]] == [hop1["leaf_index"], root["leaf_index"]]


# -- refusals of onward transfers ----------------------------------------------


def test_onward_transfer_without_authorization_is_refused(ledger: TransferLedger) -> None:
    root = ledger.record_transfer(transfer("DE", "FR"))
    error = refused(ledger, lambda: ledger.record_transfer(onward("FR", "US", root)), RuleViolation,
                    "onward-transfer-not-authorized", "authorization_id")
    assert error.article == "art. 36 §3"
    assert error.values["origin"] == "DE"


def test_pending_and_refused_requests_do_not_authorize(ledger: TransferLedger) -> None:
    root = ledger.record_transfer(transfer("DE", "FR"))
    pending = ledger.request_authorization(request("FR", "INTERPOL", root))
    assert pending["status"] == "pending"
    refused(ledger, lambda: ledger.record_transfer(onward("FR", "INTERPOL", root, pending)),
            RuleViolation, "authorization-pending")
    no = ledger.decide(pending["id"], refuse("DE", "specialty (art. 40 §19)"))
    assert no["status"] == "refused" and no["decision"]["reasons"] == "specialty (art. 40 §19)"
    refused(ledger, lambda: ledger.record_transfer(onward("FR", "INTERPOL", root, no)),
            RuleViolation, "authorization-refused")


def test_revocation_refuses_later_transfers(ledger: TransferLedger) -> None:
    root, auth = granted_chain(ledger)
    ledger.record_transfer(onward("FR", "INTERPOL", root, auth))
    refused(ledger, lambda: ledger.revoke(auth["id"], revocation("FR")), RuleViolation, "not-origin")
    revoked = ledger.revoke(auth["id"], revocation("DE", "proceeding closed"))
    assert revoked["status"] == "revoked"
    assert revoked["revocation"]["reasons"] == "proceeding closed"
    error = refused(ledger, lambda: ledger.record_transfer(onward("FR", "INTERPOL", root, auth)),
                    RuleViolation, "authorization-revoked")
    # the reasons are sealed in the ledger (event format 2): the refusal points to the record
    assert "(its reasons are in the authorization's record)" in error.detail
    refused(ledger, lambda: ledger.revoke(auth["id"], revocation("DE")), RuleViolation,
            "authorization-not-granted")


def test_grant_is_exhausted_after_max_transfers(ledger: TransferLedger) -> None:
    root, auth = granted_chain(ledger, max_transfers=2)
    ledger.record_transfer(onward("FR", "INTERPOL", root, auth))
    ledger.record_transfer(onward("FR", "INTERPOL", root, auth))
    assert ledger.get_authorization(auth["id"])["remaining_transfers"] == 0
    error = refused(ledger, lambda: ledger.record_transfer(onward("FR", "INTERPOL", root, auth)),
                    RuleViolation, "authorization-exhausted")
    assert error.values == {"max_transfers": 2, "uses": 2}


def test_grant_expires(settings: Settings) -> None:
    now = [datetime(2026, 3, 1, 12, 0, tzinfo=UTC)]
    app = TransferLedger(eventsourcing_env(settings), clock=lambda: now[0])
    try:
        root, auth = granted_chain(app, valid_until="2026-03-02T00:00:00Z")
        app.record_transfer(onward("FR", "INTERPOL", root, auth))
        now[0] += timedelta(days=1)
        refused(app, lambda: app.record_transfer(onward("FR", "INTERPOL", root, auth)),
                RuleViolation, "authorization-expired")
    finally:
        app.close()


def test_grant_narrows_categories_and_purpose(ledger: TransferLedger) -> None:
    root = ledger.record_transfer(transfer("DE", "FR"))
    req = ledger.request_authorization(request("FR", "INTERPOL", root, data_categories=["subscriber", "traffic"]))
    auth = ledger.decide(req["id"], grant("DE", data_categories=["traffic"],
                                          purpose={"proceeding": "FR-PNC-2026-0417"}))
    refused(ledger, lambda: ledger.record_transfer(
        onward("FR", "INTERPOL", root, auth, data_categories=["subscriber"])),
        RuleViolation, "category-not-authorized", "data_categories")
    refused(ledger, lambda: ledger.record_transfer(
        onward("FR", "INTERPOL", root, auth, purpose={"proceeding": "OTHER-1"})),
        RuleViolation, "purpose-not-authorized", "purpose.proceeding")
    refused(ledger, lambda: ledger.record_transfer(onward("FR", "US", root, auth)),
            RuleViolation, "recipient-not-authorized", "recipient.party")
    assert ledger.record_transfer(onward("FR", "INTERPOL", root, auth))["depth"] == 1


def test_written_form_required_by_handling_condition(ledger: TransferLedger) -> None:
    root = ledger.record_transfer(transfer("DE", "FR", handling={"written_authorization_required": True}))
    req = ledger.request_authorization(request("FR", "INTERPOL", root))
    refused(ledger, lambda: ledger.decide(req["id"], grant("DE")), RuleViolation,
            "written-instrument-required", "conditions.written_instrument")
    instrument = {"reference": "BfJ II B 4 - 9350/26", "sha256": "ab" * 32}
    auth = ledger.decide(req["id"], grant("DE", written_instrument=instrument))
    assert auth["conditions"]["written_instrument"] == instrument
    assert ledger.record_transfer(onward("FR", "INTERPOL", root, auth))["origin"] == "DE"


def test_written_form_required_by_standing_policy_applies_to_existing_grants(ledger: TransferLedger) -> None:
    root, auth = granted_chain(ledger)
    ledger.set_party_policy("DE", written_authorization_required=True, set_by=actor("DE"))
    refused(ledger, lambda: ledger.record_transfer(onward("FR", "INTERPOL", root, auth)),
            RuleViolation, "written-instrument-required")
    refused(ledger, lambda: ledger.set_party_policy("DE", written_authorization_required=False,
                                                     set_by=actor("FR")),
            InvalidInput, "not-own-policy")


# -- decisions -----------------------------------------------------------------


def test_a_request_is_decided_once_and_refusals_are_reasoned(ledger: TransferLedger) -> None:
    root = ledger.record_transfer(transfer("DE", "FR"))
    req = ledger.request_authorization(request("FR", "INTERPOL", root))
    refused(ledger, lambda: ledger.decide(req["id"], {"decision": "refused", "decided_by": actor("DE")}),
            InvalidInput, "refusal-without-reasons", "reasons")
    ledger.decide(req["id"], grant("DE"))
    refused(ledger, lambda: ledger.decide(req["id"], refuse("DE")), RuleViolation,
            "authorization-already-decided")


def test_requests_only_by_the_holder_for_what_it_received(ledger: TransferLedger) -> None:
    root = ledger.record_transfer(transfer("DE", "FR", data_categories=["traffic"]))
    refused(ledger, lambda: ledger.request_authorization(request("NL", "INTERPOL", root)),
            RuleViolation, "not-holder", "requested_by.party")
    refused(ledger, lambda: ledger.request_authorization(
        request("FR", "INTERPOL", root, data_categories=["content"])),
        RuleViolation, "category-not-received", "data_categories")
    refused(ledger, lambda: ledger.request_authorization(request("FR", "DE", root)),
            RuleViolation, "authorization-not-needed")
    req = ledger.request_authorization(request("FR", "INTERPOL", root))
    refused(ledger, lambda: ledger.decide(
        req["id"], grant("DE", data_categories=["traffic", "content"])),
        InvalidInput, "category-not-requested", "conditions.data_categories")


# -- bad input: precise error, nothing recorded ---------------------------------


@pytest.mark.parametrize(
    ("change", "kind", "rule", "field"),
    [
        ({"sender": actor("XX")}, InvalidInput, "unknown-party", "sender.party"),
        ({"recipient": {"party": "Interpol", "authority": "Interpol/X"}}, InvalidInput, "unknown-party",
         "recipient.party"),
        ({"data_categories": ["traffic", "biometric"]}, InvalidInput, "unknown-data-category",
         "data_categories[1]"),
        ({"transferred_at": "2026-13-01T00:00:00Z"}, InvalidInput, "malformed-date", "transferred_at"),
        ({"retention_until": "01/03/2031"}, InvalidInput, "malformed-date", "retention_until"),
        ({"recipient": actor("DE", officer=None)}, InvalidInput, "transfer-to-self", "recipient.party"),
        ({"parent_transfer_id": "00000000-0000-4000-8000-000000000000"}, NotFound, "transfer-not-found",
         "parent_transfer_id"),
        ({"parent_transfer_id": "not-a-uuid"}, InvalidInput, "invalid-id", "parent_transfer_id"),
        ({"legal_basis": "art99"}, InvalidInput, "unknown-legal-basis", "legal_basis"),
        ({"dataset_sha256": "xyz"}, InvalidInput, "invalid-digest", "dataset_sha256"),
        ({"sender": {"party": "DE", "authority": "FR/OFAC", "officer": "x"}}, InvalidInput,
         "authority-not-of-party", "sender.authority"),
        ({"colour": "blue"}, InvalidInput, "invalid-field", "colour"),
    ],
)
def test_bad_transfer_input_is_refused_precisely(
    ledger: TransferLedger, change: dict[str, Any], kind: type[DomainError], rule: str, field: str
) -> None:
    ledger.record_transfer(transfer("DE", "FR"))
    refused(ledger, lambda: ledger.record_transfer(transfer("DE", "FR", **change)), kind, rule, field)


def test_onward_transfer_by_a_party_that_did_not_receive_the_parent(ledger: TransferLedger) -> None:
    root = ledger.record_transfer(transfer("DE", "FR"))
    refused(ledger, lambda: ledger.record_transfer(onward("NL", "US", root)), RuleViolation,
            "not-holder", "sender.party")


def test_onward_transfer_of_categories_not_received(ledger: TransferLedger) -> None:
    root = ledger.record_transfer(transfer("DE", "FR", data_categories=["traffic"]))
    refused(ledger, lambda: ledger.record_transfer(onward("FR", "DE", root, data_categories=["content"])),
            RuleViolation, "category-not-received", "data_categories")


def test_unknown_ids_are_not_found(ledger: TransferLedger) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    refused(ledger, lambda: ledger.get_transfer(missing), NotFound, "transfer-not-found")
    refused(ledger, lambda: ledger.get_authorization(missing), NotFound, "authorization-not-found")
    refused(ledger, lambda: ledger.decide(missing, grant("DE")), NotFound, "authorization-not-found")
    refused(ledger, lambda: ledger.revoke(missing, revocation("DE")), NotFound, "authorization-not-found")
    root = ledger.record_transfer(transfer("DE", "FR"))
    # a transfer's id is not an authorization's
    refused(ledger, lambda: ledger.get_authorization(root["id"]), NotFound, "authorization-not-found")


def test_authorization_id_on_a_first_transfer_is_refused(ledger: TransferLedger) -> None:
    root, auth = granted_chain(ledger)
    refused(ledger, lambda: ledger.record_transfer(transfer("DE", "NL", authorization_id=auth["id"])),
            InvalidInput, "authorization-not-needed", "authorization_id")


def test_leaf_indexes_are_gap_free_across_refusals(ledger: TransferLedger) -> None:
    root = ledger.record_transfer(transfer("DE", "FR"))
    with pytest.raises(RuleViolation):
        ledger.record_transfer(onward("FR", "US", root))
    second = ledger.record_transfer(transfer("NL", "FR"))
    assert second["leaf_index"] == 1
    leaves = ledger.store.read_leaves(0, 10)
    assert [leaf.leaf_index for leaf in leaves] == [0, 1]
