"""Decisions signed with the origin's registered key (art. 36 §3 written form)."""

from __future__ import annotations

import base64
from typing import Any
from uuid import UUID

import pytest

from domain.errors import InvalidInput, RuleViolation
from domain.parties import Actor
from domain.values import DecisionDraft
from ledger.audit.verify import verify_ledger
from ledger.service.application import TransferLedger, signed_decision_bytes
from ledger.service.checkpoints import sign_current_checkpoint
from ledger.tlog.note import Signer, open_checkpoint
from tests.support.builders import actor, grant, onward, refuse, request, transfer

DE_KEY = Signer.from_seed("bfj.bund.example/decisions", bytes(range(32)))
FR_KEY = Signer.from_seed("ofac.example/decisions", bytes(range(1, 33)))
LEDGER_KEY = Signer.from_seed("transfer-ledger.example/ledger", bytes(32))


def key_ref(signer: Signer) -> str:
    return f"{signer.name}+{signer.key_id:08x}"


def signed(ledger_auth_id: str, body: dict[str, Any], signer: Signer, origin: str = "DE") -> dict[str, Any]:
    draft = DecisionDraft.parse(body)
    message = signed_decision_bytes(ledger_auth_id, origin, draft)
    sig = signer.sign_raw(message)
    return {**body, "signature": {"key": key_ref(signer), "value": base64.b64encode(sig).decode()}}


@pytest.fixture
def pending(ledger: TransferLedger) -> tuple[dict[str, Any], dict[str, Any]]:
    ledger.register_party_key("DE", DE_KEY.vkey(), registered_by=actor("DE"))
    ledger.register_party_key("FR", FR_KEY.vkey(), registered_by=actor("FR"))
    root = ledger.record_transfer(transfer("DE", "FR", handling={"written_authorization_required": True}))
    return root, ledger.request_authorization(request("FR", "INTERPOL", root))


def test_a_signed_grant_is_the_written_instrument(ledger: TransferLedger, pending: Any) -> None:
    root, req = pending
    with pytest.raises(RuleViolation) as unsigned:
        ledger.decide(req["id"], grant("DE"))
    assert unsigned.value.rule == "written-instrument-required"
    auth = ledger.decide(req["id"], signed(req["id"], grant("DE", max_transfers=2), DE_KEY))
    assert auth["status"] == "granted"
    assert auth["decision"]["signature"]["key"] == key_ref(DE_KEY)
    out = ledger.record_transfer(onward("FR", "INTERPOL", root, auth))
    assert out["origin"] == "DE"


def test_a_signed_refusal_is_recorded(ledger: TransferLedger, pending: Any) -> None:
    _, req = pending
    auth = ledger.decide(req["id"], signed(req["id"], refuse("DE", "specialty"), DE_KEY))
    assert auth["status"] == "refused" and auth["decision"]["signature"] is not None


def test_a_decision_signed_by_anyone_but_the_origin_is_refused(ledger: TransferLedger, pending: Any) -> None:
    _, req = pending
    before = ledger.store.head()
    with pytest.raises(RuleViolation) as caught:
        ledger.decide(req["id"], signed(req["id"], grant("DE"), FR_KEY))
    assert caught.value.rule == "decision-signature-invalid" and caught.value.field == "signature.key"
    assert caught.value.values == {"key": key_ref(FR_KEY), "origin": "DE"}
    assert ledger.store.head() == before


def test_a_signature_over_another_document_is_refused(ledger: TransferLedger, pending: Any) -> None:
    _, req = pending
    body = signed(req["id"], grant("DE", max_transfers=1), DE_KEY)
    body["conditions"] = {"max_transfers": 5}  # not what DE signed
    with pytest.raises(RuleViolation) as caught:
        ledger.decide(req["id"], body)
    assert caught.value.rule == "decision-signature-invalid" and caught.value.field == "signature.value"


def test_malformed_signatures_and_keys_are_invalid_input(ledger: TransferLedger, pending: Any) -> None:
    _, req = pending
    for bad in ({"key": "no-id", "value": "AAAA"}, {"key": key_ref(DE_KEY), "value": "not base64!"},
                {"key": key_ref(DE_KEY), "value": base64.b64encode(b"short").decode()}):
        with pytest.raises(InvalidInput):
            ledger.decide(req["id"], {**grant("DE"), "signature": bad})
    with pytest.raises(InvalidInput) as caught:
        ledger.register_party_key("DE", "example.com+00000000+AAAA", registered_by=actor("DE"))
    assert caught.value.rule == "invalid-vkey"
    with pytest.raises(InvalidInput) as other:
        ledger.register_party_key("DE", DE_KEY.vkey(), registered_by=actor("FR"))
    assert other.value.rule == "not-own-policy"


def test_verify_rechecks_every_signature(ledger: TransferLedger, pending: Any) -> None:
    _, req = pending
    ledger.decide(req["id"], signed(req["id"], grant("DE"), DE_KEY))
    checkpoint = open_checkpoint(sign_current_checkpoint(ledger.store, LEDGER_KEY).note, LEDGER_KEY.verifier())
    report = verify_ledger(ledger.store, LEDGER_KEY.verifier(), LEDGER_KEY.name, open_state=ledger.open_event_state)
    assert report.ok and report.signatures_checked == 1
    # The decision's officer and reasons are sealed (event format 2): without the data keys
    # the signature cannot be re-verified, and the report says so rather than failing it.
    sealed = verify_ledger(ledger.store, LEDGER_KEY.verifier(), LEDGER_KEY.name)
    assert sealed.ok and (sealed.signatures_checked, sealed.signatures_sealed) == (0, 1)
    # a grant written around the application, with a forged signature: the
    # leaves are sound, the signature is not
    root2 = ledger.record_transfer(transfer("DE", "FR"))
    req2 = ledger.request_authorization(request("FR", "INTERPOL", root2))
    auth = ledger.repository.get(UUID(req2["id"]))
    auth.grant(Actor.from_dict(actor("DE")),
               DecisionDraft.parse(grant("DE")).conditions, None,
               {"key": key_ref(DE_KEY), "value": base64.b64encode(bytes(64)).decode()})
    ledger.save(auth)
    forged_index = ledger.store.head().size - 1
    report = verify_ledger(ledger.store, LEDGER_KEY.verifier(), LEDGER_KEY.name, open_state=ledger.open_event_state)
    assert not report.ok and report.first_bad_index == forged_index
    assert report.problems[0].startswith("invalid-signature")
    # incremental verification knows the keys registered before its start
    incremental = verify_ledger(ledger.store, LEDGER_KEY.verifier(), LEDGER_KEY.name, since=checkpoint,
                                open_state=ledger.open_event_state)
    assert not incremental.ok and incremental.first_bad_index == forged_index
    assert incremental.signatures_checked == 1


def test_the_documented_example_is_what_the_code_computes() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "FORMAT.md").read_text("utf-8")
    section = text[text.index("## 16. Signed decisions"):]
    body = {"decision": "granted", "decided_by": {"party": "DE", "authority": "DE/BfJ", "officer": "M. Brandt"},
            "conditions": {"max_transfers": 1, "data_categories": ["traffic"]}}
    message = signed_decision_bytes("8c0c2d38-2bd9-4d57-9d2c-4b0e6f3f8f11", "DE", DecisionDraft.parse(body))
    signer = Signer.from_seed("bfj.bund.example/decisions", bytes(range(32)))
    assert message.decode() in section
    assert signer.vkey() in section
    assert base64.b64encode(signer.sign_raw(message)).decode() in section
