"""Referrals in the read models: counted, marked in the lineage, and checked when written around
the application (projections/model.py: ``referral-inconsistent``; a referral's transfer passing on
data without the origin's grant is the existing ``onward-transfer-not-authorized``)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from domain.referral import Referral, ReferralDraft
from ledger.service.application import TransferLedger
from projections import queries
from projections.events import now_time
from projections.runner import ProjectionRunner
from tests.support import builders
from tests.support.world import around


def _findings(runner: ProjectionRunner) -> list[dict[str, Any]]:
    runner.catch_up()
    return queries.findings(runner.db, now=now_time())["items"]  # type: ignore[no-any-return]


def _referral_around(ledger: TransferLedger, transfer_id: str, origin: str, **overrides: Any) -> str:
    """Save a ReferralMade naming ``transfer_id`` straight through eventsourcing, bypassing every rule."""
    body = builders.referral(**overrides)
    draft = ReferralDraft.parse(body).as_of(ledger.clock())
    referral = Referral.made(draft, UUID(transfer_id), origin)
    ledger.save(referral)
    return str(referral.id)


def test_the_application_alone_raises_no_finding_and_counts_each_referral(
    ledger: TransferLedger, runner: ProjectionRunner
) -> None:
    root = ledger.record_transfer(builders.transfer("DE", "FR"))
    grant = ledger.decide(ledger.request_authorization(builders.request("FR", "NL", root))["id"], builders.grant("DE"))
    own = ledger.record_referral(builders.referral())
    onward = ledger.record_referral(builders.referral(
        parent=root, transfer_=builders.onward("FR", "NL", root, grant, legal_basis="art40-4")))
    assert _findings(runner) == []
    stats = queries.statistics(runner.db)["referrals"]
    assert (stats["total"], stats["onward"], stats["own_findings"]) == (2, 1, 1)
    assert stats["by_route"] == [{"requesting_party": "DE", "referring_party": "FR", "third_party": "NL",
                                  "referrals": 2, "onward": 1}]
    assert queries.statistics(runner.db, share="BR")["referrals"]["total"] == 0
    tree = queries.lineage(runner.db, root["id"])
    assert tree is not None and tree["transfer"]["referral_id"] is None
    assert [(d["id"], d["referral_id"]) for d in tree["descendants"]] == [(onward["transfer_id"], onward["id"])]
    assert queries.lineage(runner.db, own["transfer_id"])["transfer"]["referral_id"] == own["id"]  # type: ignore[index]


def test_a_referral_passing_on_data_without_the_origins_grant_written_around_is_found(
    ledger: TransferLedger, runner: ProjectionRunner
) -> None:
    root = ledger.record_transfer(builders.transfer("DE", "FR"))
    tid = around(ledger, "FR", "NL", root)
    rid = _referral_around(ledger, tid, "DE", parent=root)
    found = [f for f in _findings(runner) if f["transfer_id"] == tid]
    assert [f["rule"] for f in found] == ["onward-transfer-not-authorized"]
    assert queries.lineage(runner.db, tid)["transfer"]["referral_id"] == rid  # type: ignore[index]


def test_a_referral_whose_transfer_goes_elsewhere_written_around_is_found(
    ledger: TransferLedger, runner: ProjectionRunner
) -> None:
    tid = around(ledger, "FR", "BR")
    rid = _referral_around(ledger, tid, "FR")  # names NL as the third country
    finding = next(f for f in _findings(runner) if f["rule"] == "referral-inconsistent")
    assert finding["reason"] == "referral-transfer-not-to-third-party" and finding["article"] == "art. 43 §1"
    assert rid in finding["detail"] and "goes to BR" in finding["detail"] and finding["transfer_id"] == tid
    assert [e["event"] for e in finding["evidence"]] == ["ReferralMade", "TransferRecorded"]


def test_a_referral_naming_no_recorded_transfer_written_around_is_found(
    ledger: TransferLedger, runner: ProjectionRunner
) -> None:
    _referral_around(ledger, "3f0c7e9a-5b1d-4c2e-8f6a-9d0b1c2e3f4a", "FR")
    finding = next(f for f in _findings(runner) if f["rule"] == "referral-inconsistent")
    assert finding["reason"] == "referral-transfer-unknown"
