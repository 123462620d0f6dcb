"""Third-country referrals through the application (domain/referral.py, ledger/service/referrals.py).

FR, executing DE's request, finds that the data lead to NL: it informs NL (a transfer) and tells DE
to turn to NL (the notice), in one command. Each rule: allowed, and refused with its problem and
nothing recorded (the tree's size unchanged).
"""

from __future__ import annotations

from typing import Any

import pytest

from domain.errors import DomainError, InvalidInput, RuleViolation
from domain.referral import Referral, referral_id
from ledger.service.application import TransferLedger
from tests.support import builders


def _size(ledger: TransferLedger) -> int:
    return ledger.store.head().size


def _refused(ledger: TransferLedger, body: dict[str, Any], kind: type[DomainError], rule: str,
             field: str | None) -> DomainError:
    size = _size(ledger)
    with pytest.raises(kind) as caught:
        ledger.record_referral(body)
    assert caught.value.rule == rule and caught.value.field == field, caught.value
    assert _size(ledger) == size  # nothing recorded: neither the transfer nor the notice
    return caught.value


def test_an_own_finding_records_the_transfer_and_the_notice_in_one_commit(ledger: TransferLedger) -> None:
    size = _size(ledger)
    made = ledger.record_referral(builders.referral())
    assert _size(ledger) == size + 2
    transfer = made["transfer"]
    assert (made["requesting_party"], made["referring_party"], made["third_party"]) == ("DE", "FR", "NL")
    assert transfer["sender"]["party"] == "FR" and transfer["recipient"]["party"] == "NL"
    assert transfer["origin"] == "FR" and transfer["parent_transfer_id"] is None and made["origin"] == "FR"
    assert (transfer["leaf_index"], made["leaf_index"]) == (size, size + 1)
    assert made["id"] == str(referral_id(transfer["id"])) and made["transfer_id"] == transfer["id"]
    assert made["notice"]["recipient"]["party"] == "DE" and made["notice"]["notified_at"]
    # the transfer is a transfer like any other, and names its referral
    read = ledger.get_transfer(transfer["id"])
    assert read["referral_id"] == made["id"] and read["origin"] == "FR"
    assert ledger.get_transfer(ledger.record_transfer(builders.transfer("DE", "FR"))["id"])["referral_id"] is None
    assert ledger.get_referral(made["id"]) == made
    items, cursor = ledger.list_referrals(visible=lambda view: True)
    assert [i["id"] for i in items] == [made["id"]] and cursor is None


def test_passing_on_the_requesting_partys_data_needs_its_authorization(ledger: TransferLedger) -> None:
    """Art. 36 §3: FR passes on to NL data DE sent it: refused without DE's grant, as POST /v1/transfers."""
    root = ledger.record_transfer(builders.transfer("DE", "FR"))
    refused = _refused(ledger, builders.referral(parent=root), RuleViolation, "onward-transfer-not-authorized",
                       "authorization_id")
    assert refused.article == "art. 36 §3"
    with pytest.raises(RuleViolation) as same:
        ledger.record_transfer(builders.onward("FR", "NL", root, legal_basis="art40-4"))
    assert same.value.rule == refused.rule and same.value.detail.split(":")[0] == refused.detail.split(":")[0]
    auth = ledger.request_authorization(builders.request("FR", "NL", root))
    auth = ledger.decide(auth["id"], builders.grant("DE", max_transfers=1))
    size = _size(ledger)
    made = ledger.record_referral(builders.referral(parent=root, transfer_=builders.onward(
        "FR", "NL", root, auth, legal_basis="art40-4")))
    assert _size(ledger) == size + 3  # the transfer, the grant's use, the referral
    assert made["origin"] == "DE" and made["parent_transfer_id"] == root["id"]
    assert made["authorization_id"] == auth["id"] and made["transfer"]["depth"] == 1
    assert ledger.get_authorization(auth["id"])["uses"] == [made["transfer_id"]]
    # the grant is spent: a second referral under it is refused, and nothing recorded
    _refused(ledger, builders.referral(parent=root, transfer_=builders.onward(
        "FR", "NL", root, auth, legal_basis="art40-4")), RuleViolation, "authorization-exhausted", "authorization_id")


def test_a_referral_passes_on_only_data_its_party_received(ledger: TransferLedger) -> None:
    root = ledger.record_transfer(builders.transfer("DE", "INTERPOL"))
    _refused(ledger, builders.referral(parent=root), RuleViolation, "not-holder", "sender.party")


@pytest.mark.parametrize(("overrides", "rule", "field"), [
    ({"requesting_party": "FR"}, "referral-of-own-request", "requesting_party"),
    ({"third_party": "DE"}, "third-party-is-requesting-party", "third_party"),
    ({"third_party": "FR"}, "third-party-is-referring-party", "third_party"),
    ({"third_party": "BR"}, "referral-transfer-not-to-third-party", "transfer.recipient.party"),
    ({"notice": {"notified_by": builders.actor("BR"), "recipient": builders.actor("DE", officer=None)}},
     "referral-not-by-one-party", "notice.notified_by.party"),
    ({"notice": {"notified_by": builders.actor("FR"), "recipient": builders.actor("BR", officer=None)}},
     "notice-not-to-requesting-party", "notice.recipient.party"),
])
def test_a_referral_whose_parties_do_not_hold_together_is_refused(
    ledger: TransferLedger, overrides: dict[str, Any], rule: str, field: str
) -> None:
    error = _refused(ledger, builders.referral(**overrides), InvalidInput, rule, field)
    assert error.article in ("art. 43 §1", "art. 40 §4")
    assert f"[{rule}]" in str(error)


def test_a_notice_in_the_future_is_refused(ledger: TransferLedger) -> None:
    body = builders.referral()
    body["notice"]["notified_at"] = "2999-01-01T00:00:00Z"
    _refused(ledger, body, InvalidInput, "time-in-future", "notice.notified_at")


def test_the_finding_and_the_notice_text_are_sealed_and_erased_with_the_transfer(ledger: TransferLedger) -> None:
    made = ledger.record_referral(builders.referral())
    stored = ledger.recorder.select_events(referral_id(made["transfer_id"]))[0].state
    assert b"hosting provider" not in stored and b"Insp. K. Weber" not in stored  # event format 2
    ledger.erase_personal_data(made["transfer_id"], {"erased_by": builders.actor("FR"), "ground": "purpose-achieved",
                                                     "reasons": "proceeding closed"})
    after = ledger.get_referral(made["id"])
    assert "erased" in after["finding"] and "erased" in after["notice"]["text"]
    assert after["notice"]["notified_by"]["officer"] == "Insp. K. Weber"  # the actor log is kept apart
    assert isinstance(ledger.repository.get(referral_id(made["transfer_id"])), Referral)


def test_a_retry_with_the_same_idempotency_key_records_nothing_twice(ledger: TransferLedger) -> None:
    from ledger.storage.idempotency import IdempotencyClaim

    claim = IdempotencyClaim("p1", "k1", "d" * 64, 201)
    first = ledger.record_referral(builders.referral(), idempotency=claim)
    size = _size(ledger)
    replayed = ledger.replay(claim)
    assert replayed is not None and replayed[1]["id"] == first["id"] and _size(ledger) == size
