"""The rules of art. 36 §3 (domain.rules), on real aggregates.

The running example: DE (the origin) sends subscriber and traffic data to FR;
FR asks DE for authorization to pass the traffic data on to BR.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from domain.errors import InvalidInput, RuleViolation
from domain.model import Authorization, Transfer
from domain.parties import Actor
from domain.rules import (
    ART_36_3,
    authorization_required,
    check_categories_received,
    check_conditions_within_request,
    check_decided_by_origin,
    check_holder_received_parent,
    check_not_to_self,
    check_onward_transfer_authorized,
    check_pending,
    check_refusal_reasoned,
    check_request_consistent,
    check_revocable,
    check_written_instrument,
    origin_of,
    written_form_required,
)
from domain.values import (
    AuthorizationRequestDraft,
    DecisionDraft,
    GrantConditions,
    TransferDraft,
    format_datetime,
)
from tests.support.builders import (
    INSTRUMENT,
    NOW,
    PURPOSE,
    actor,
    assert_error,
    decider,
    draft,
    grant_authorization,
    pending_authorization,
    record,
    refuse_authorization,
    request,
    revoke_authorization,
)

OTHER_PURPOSE = {"proceeding": "BR-PF-2026-17", "description": "fraud"}


@pytest.fixture
def first() -> Transfer:
    """DE sends subscriber and traffic data to FR: DE is the origin."""
    return record("DE", "FR", data_categories=["subscriber", "traffic"])


@pytest.fixture
def pending(first: Transfer) -> Authorization:
    """FR asks DE to pass the traffic data on to BR."""
    return pending_authorization("FR", "BR", first)


def onward(parent: Transfer, authorization: Authorization | None, *, sender: str = "FR",
           recipient: str = "BR", **overrides: Any) -> TransferDraft:
    return draft(sender, recipient, parent=parent, authorization=authorization, **overrides)


def check(transfer: TransferDraft, authorization: Authorization | None, *, origin: str = "DE",
          written_required: bool = False, now: Any = NOW) -> None:
    check_onward_transfer_authorized(
        transfer, origin, authorization, written_required=written_required, now=now
    )


def refused(transfer: TransferDraft, authorization: Authorization | None, **kwargs: Any) -> RuleViolation:
    with pytest.raises(RuleViolation) as caught:
        check(transfer, authorization, **kwargs)
    assert caught.value.article is not None and ART_36_3 in caught.value.article
    return caught.value


# -- point 1: lineage and origin ---------------------------------------------------


def test_the_origin_of_a_first_transfer_is_its_sender() -> None:
    assert origin_of("DE", None) == "DE"


def test_the_origin_never_changes_along_a_lineage(first: Transfer) -> None:
    to_br = record("FR", "BR", parent=first)
    to_us = record("BR", "US", parent=to_br)
    to_interpol = record("US", "INTERPOL", parent=to_us)
    assert [t.origin for t in (first, to_br, to_us, to_interpol)] == ["DE"] * 4
    assert origin_of("US", to_us) == "DE"
    assert origin_of("INTERPOL", to_interpol) == "DE"


def test_data_returned_to_the_origin_keep_their_origin(first: Transfer) -> None:
    back = record("FR", "DE", parent=first)
    assert origin_of("DE", back) == "DE"
    assert origin_of("FR", record("FR", "NL")) == "FR"


def test_a_transfer_to_self_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_not_to_self(Actor(party="DE", authority="DE/BKA", officer="W"), Actor(party="DE", authority="DE/BSI"))
    assert_error(caught.value, rule="transfer-to-self", field="recipient.party",
                 values={"sender": "DE", "recipient": "DE"})


def test_a_transfer_between_parties_is_not_to_self() -> None:
    check_not_to_self(Actor(party="DE", authority="DE/BKA", officer="W"), Actor(party="INTERPOL", authority="INTERPOL/IPSG"))


def test_only_the_recipient_of_the_parent_may_pass_it_on(first: Transfer) -> None:
    check_holder_received_parent("FR", first, "sender.party")
    with pytest.raises(RuleViolation) as caught:
        check_holder_received_parent("NL", first, "sender.party")
    assert_error(
        caught.value,
        rule="not-holder",
        field="sender.party",
        article=ART_36_3,
        values={"holder": "NL", "parent_transfer_id": str(first.id), "parent_recipient": "FR"},
    )
    assert "from DE to FR" in caught.value.detail


def test_the_origin_itself_is_not_the_holder_of_what_it_sent(first: Transfer) -> None:
    with pytest.raises(RuleViolation, match=r"\[not-holder\]"):
        check_holder_received_parent("DE", first, "requested_by.party")


def test_an_onward_transfer_carries_only_categories_received(first: Transfer) -> None:
    check_categories_received(("subscriber", "traffic"), first)
    check_categories_received(("traffic",), first)
    with pytest.raises(RuleViolation) as caught:
        check_categories_received(("content", "other_personal", "traffic"), first)
    assert_error(
        caught.value,
        rule="category-not-received",
        field="data_categories",
        article=ART_36_3,
        values={"not_received": ["content", "other_personal"], "received": ["subscriber", "traffic"]},
    )


# -- point 2: who must authorize -------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "holder", "recipient", "needed"),
    [
        pytest.param("DE", "FR", "BR", True, id="third country"),
        pytest.param("DE", "FR", "INTERPOL", True, id="international organization"),
        pytest.param("DE", "BR", "US", True, id="further hop"),
        pytest.param("DE", "FR", "DE", False, id="return to origin"),
        pytest.param("DE", "BR", "DE", False, id="return to origin from further hop"),
        pytest.param("DE", "DE", "BR", False, id="origin sends its own data again"),
    ],
)
def test_authorization_is_required_for_third_parties_only(
    origin: str, holder: str, recipient: str, needed: bool
) -> None:
    assert authorization_required(origin, holder, recipient) is needed


# -- point 6: the onward transfer against its authorization -----------------------------


def test_a_transfer_under_a_valid_grant_passes(first: Transfer, pending: Authorization) -> None:
    grant_authorization(pending)
    check(onward(first, pending), pending)


def test_a_transfer_without_authorization_is_refused(first: Transfer) -> None:
    error = refused(onward(first, None), None)
    assert_error(
        error,
        rule="onward-transfer-not-authorized",
        field="authorization_id",
        values={"origin": "DE", "holder": "FR", "recipient": "BR"},
    )
    assert "authorization of DE, the first transferring Party" in error.detail


def test_a_pending_request_does_not_authorize(first: Transfer, pending: Authorization) -> None:
    error = refused(onward(first, pending), pending)
    assert_error(error, rule="authorization-pending", field="authorization_id", values={"status": "pending"})


def test_a_refused_request_does_not_authorize(first: Transfer, pending: Authorization) -> None:
    refuse_authorization(pending, "proceeding closed")
    error = refused(onward(first, pending), pending)
    assert_error(error, rule="authorization-refused", field="authorization_id",
                 values={"status": "refused", "reasons": "proceeding closed"})
    assert "DE refused" in error.detail


def test_a_revoked_grant_does_not_authorize(first: Transfer, pending: Authorization) -> None:
    revoke_authorization(grant_authorization(pending), "data found inaccurate")
    error = refused(onward(first, pending), pending)
    assert_error(error, rule="authorization-revoked", field="authorization_id",
                 values={"status": "revoked", "reasons": "data found inaccurate"})


def test_a_revoked_grant_does_not_authorize_even_with_uses_left(first: Transfer, pending: Authorization) -> None:
    grant_authorization(pending, max_transfers=5)
    pending.record_use(record("FR", "BR", parent=first).id)
    revoke_authorization(pending)
    assert refused(onward(first, pending), pending).rule == "authorization-revoked"


def test_a_grant_expires_when_the_ledger_time_passes_valid_until(first: Transfer, pending: Authorization) -> None:
    grant_authorization(pending, valid_until=format_datetime(NOW + timedelta(hours=1)))
    transfer = onward(first, pending)
    check(transfer, pending, now=NOW + timedelta(hours=1))
    error = refused(transfer, pending, now=NOW + timedelta(hours=1, seconds=1))
    assert_error(error, rule="authorization-expired", field="authorization_id",
                 values={"valid_until": "2026-03-01T13:00:00Z"})


def test_a_grant_does_not_cover_a_transfer_dated_after_valid_until(first: Transfer, pending: Authorization) -> None:
    grant_authorization(pending, valid_until=format_datetime(NOW))
    check(onward(first, pending, transferred_at=format_datetime(NOW)), pending)
    late = onward(first, pending, transferred_at=format_datetime(NOW + timedelta(minutes=2)))
    error = refused(late, pending, now=NOW)
    assert_error(error, rule="authorization-expired", field="authorization_id",
                 values={"valid_until": "2026-03-01T12:00:00Z"})


def test_a_grant_is_used_up_after_max_transfers(first: Transfer, pending: Authorization) -> None:
    grant_authorization(pending, max_transfers=2)
    pending.record_use(record("FR", "BR", parent=first).id)
    check(onward(first, pending), pending)
    pending.record_use(record("FR", "BR", parent=first).id)
    error = refused(onward(first, pending), pending)
    assert_error(error, rule="authorization-exhausted", field="authorization_id",
                 values={"max_transfers": 2, "uses": 2})


def test_a_grant_without_a_limit_is_never_used_up(first: Transfer, pending: Authorization) -> None:
    grant_authorization(pending)
    for _ in range(5):
        pending.record_use(record("FR", "BR", parent=first).id)
    check(onward(first, pending), pending)


def test_a_grant_covers_only_the_categories_it_names(first: Transfer) -> None:
    authorization = grant_authorization(
        pending_authorization("FR", "BR", first, data_categories=["subscriber", "traffic"]),
        data_categories=["traffic"])
    check(onward(first, authorization, data_categories=["traffic"]), authorization)
    error = refused(onward(first, authorization, data_categories=["subscriber", "traffic"]), authorization)
    assert_error(error, rule="category-not-authorized", field="data_categories",
                 values={"not_authorized": ["subscriber"], "authorized": ["traffic"]})


def test_a_grant_without_categories_covers_those_requested(first: Transfer, pending: Authorization) -> None:
    grant_authorization(pending)
    error = refused(onward(first, pending, data_categories=["subscriber", "traffic"]), pending)
    assert_error(error, rule="category-not-authorized", field="data_categories",
                 values={"not_authorized": ["subscriber"], "authorized": ["traffic"]})


def test_a_grant_for_another_proceeding_does_not_cover_this_one(first: Transfer, pending: Authorization) -> None:
    grant_authorization(pending, purpose=OTHER_PURPOSE)
    check(onward(first, pending, purpose=OTHER_PURPOSE), pending)
    error = refused(onward(first, pending, purpose=PURPOSE), pending)
    assert_error(error, rule="purpose-not-authorized", field="purpose.proceeding",
                 values={"authorized": "BR-PF-2026-17", "purpose": "FR-PNC-2026-0417"})
    assert error.article == "art. 36 §3; art. 40 §19"


def test_a_grant_without_a_purpose_covers_the_purpose_requested(first: Transfer, pending: Authorization) -> None:
    grant_authorization(pending)
    check(onward(first, pending, purpose={"proceeding": PURPOSE["proceeding"], "description": "other words"}),
          pending)
    error = refused(onward(first, pending, purpose=OTHER_PURPOSE), pending)
    assert_error(error, rule="purpose-not-authorized", field="purpose.proceeding",
                 values={"authorized": "FR-PNC-2026-0417", "purpose": "BR-PF-2026-17"})


def test_a_grant_covers_only_the_recipient_requested(first: Transfer, pending: Authorization) -> None:
    grant_authorization(pending)
    error = refused(onward(first, pending, recipient="US"), pending)
    assert_error(error, rule="recipient-not-authorized", field="recipient.party",
                 values={"authorized": "BR", "recipient": "US"})


def test_a_grant_for_another_parent_does_not_cover_this_transfer(first: Transfer) -> None:
    other_parent = record("DE", "FR", data_categories=["traffic"])
    authorization = grant_authorization(pending_authorization("FR", "BR", other_parent))
    error = refused(onward(first, authorization), authorization)
    assert_error(error, rule="authorization-not-for-this-transfer", field="authorization_id",
                 values={"authorization_parent": str(other_parent.id), "authorization_holder": "FR"})


def test_a_grant_to_another_holder_does_not_cover_this_transfer(first: Transfer, pending: Authorization) -> None:
    grant_authorization(pending)
    error = refused(onward(first, pending, sender="NL"), pending)
    assert_error(error, rule="authorization-not-for-this-transfer", field="authorization_id",
                 values={"authorization_parent": str(first.id), "authorization_holder": "FR"})


def test_a_grant_by_anyone_but_the_origin_does_not_authorize(first: Transfer, pending: Authorization) -> None:
    grant_authorization(pending, by="FR")  # the intermediate Party, not the origin
    error = refused(onward(first, pending), pending)
    assert_error(error, rule="not-origin", field="authorization_id", values={"granted_by": "FR", "origin": "DE"})


def test_written_form_needs_a_written_instrument(first: Transfer, pending: Authorization) -> None:
    grant_authorization(pending)
    check(onward(first, pending), pending, written_required=False)
    error = refused(onward(first, pending), pending, written_required=True)
    assert_error(error, rule="written-instrument-required", field="conditions.written_instrument",
                 values={"origin": "DE"})


def test_a_grant_in_writing_satisfies_written_form(first: Transfer, pending: Authorization) -> None:
    grant_authorization(pending, written_instrument=INSTRUMENT)
    check(onward(first, pending), pending, written_required=True)


def test_a_grant_with_every_condition_met_passes(first: Transfer, pending: Authorization) -> None:
    grant_authorization(pending, valid_until=format_datetime(NOW + timedelta(days=30)), max_transfers=1,
          data_categories=["traffic"], purpose=PURPOSE, written_instrument=INSTRUMENT)
    check(onward(first, pending), pending, written_required=True)


def test_a_multi_hop_transfer_needs_the_origins_grant_not_the_intermediates(first: Transfer) -> None:
    to_br = record("FR", "BR", parent=first)
    authorization = pending_authorization("BR", "US", to_br)
    assert authorization.origin == "DE"
    grant_authorization(authorization, by="FR")
    transfer = onward(to_br, authorization, sender="BR", recipient="US")
    assert refused(transfer, authorization).rule == "not-origin"
    granted_by_origin = grant_authorization(pending_authorization("BR", "US", to_br))
    check(onward(to_br, granted_by_origin, sender="BR", recipient="US"), granted_by_origin)


# -- point 3: requests ------------------------------------------------------------------


def request_draft(holder: str, recipient: str, parent: Transfer, **overrides: Any) -> AuthorizationRequestDraft:
    return AuthorizationRequestDraft.parse(request(holder, recipient, parent, **overrides))


def test_a_request_by_the_holder_for_a_third_party_is_consistent(first: Transfer) -> None:
    check_request_consistent(request_draft("FR", "BR", first), first)


@pytest.mark.parametrize(
    ("holder", "recipient", "overrides", "kind", "rule", "field"),
    [
        pytest.param("FR", "FR", {}, InvalidInput, "transfer-to-self", "recipient.party", id="to self"),
        pytest.param("NL", "BR", {}, RuleViolation, "not-holder", "requested_by.party", id="not the holder"),
        pytest.param("FR", "BR", {"data_categories": ["content"]}, RuleViolation, "category-not-received",
                     "data_categories", id="category not received"),
        pytest.param("FR", "DE", {}, RuleViolation, "authorization-not-needed", "recipient.party",
                     id="return to origin"),
    ],
)
def test_an_inconsistent_request_is_refused(
    first: Transfer, holder: str, recipient: str, overrides: dict[str, Any],
    kind: type[Exception], rule: str, field: str,
) -> None:
    with pytest.raises(kind) as caught:
        check_request_consistent(request_draft(holder, recipient, first, **overrides), first)
    assert_error(caught.value, rule=rule, field=field)  # type: ignore[arg-type]


def test_the_origin_needs_no_authorization_for_data_it_got_back(first: Transfer) -> None:
    back = record("FR", "DE", parent=first)
    with pytest.raises(RuleViolation) as caught:
        check_request_consistent(request_draft("DE", "BR", back), back)
    assert_error(caught.value, rule="authorization-not-needed", field="recipient.party",
                 values={"origin": "DE", "holder": "DE", "recipient": "BR"})


# -- point 4: decisions -------------------------------------------------------------------


def test_the_origin_decides(pending: Authorization) -> None:
    check_decided_by_origin(decider("DE"), pending, "decided_by")


@pytest.mark.parametrize("field", ["decided_by", "revoked_by"])
def test_no_one_but_the_origin_decides_or_revokes(pending: Authorization, field: str) -> None:
    with pytest.raises(RuleViolation) as caught:
        check_decided_by_origin(decider("FR"), pending, field)
    assert_error(caught.value, rule="not-origin", field=f"{field}.party", article=ART_36_3,
                 values={"party": "FR", "origin": "DE"})
    assert "only DE, the first transferring Party" in caught.value.detail


def test_the_origin_decides_on_a_further_hop_too(first: Transfer) -> None:
    authorization = pending_authorization("BR", "US", record("FR", "BR", parent=first))
    check_decided_by_origin(decider("DE"), authorization, "decided_by")
    with pytest.raises(RuleViolation, match=r"\[not-origin\]"):
        check_decided_by_origin(decider("FR"), authorization, "decided_by")


def test_a_pending_request_can_be_decided(pending: Authorization) -> None:
    check_pending(pending)


@pytest.mark.parametrize(
    ("decide", "status"),
    [(grant_authorization, "granted"), (refuse_authorization, "refused"),
     (lambda a: revoke_authorization(grant_authorization(a)), "revoked")],
)
def test_a_decided_request_cannot_be_decided_again(pending: Authorization, decide: Any, status: str) -> None:
    decide(pending)
    with pytest.raises(RuleViolation) as caught:
        check_pending(pending)
    assert_error(caught.value, rule="authorization-already-decided", field=None, article=ART_36_3,
                 values={"status": status})


def decision(**body: Any) -> DecisionDraft:
    return DecisionDraft.parse({"decided_by": actor("DE"), **body})


def test_a_refusal_must_be_reasoned() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_refusal_reasoned(decision(decision="refused"))
    assert_error(caught.value, rule="refusal-without-reasons", field="reasons", article="art. 40 §25")


def test_a_reasoned_refusal_and_an_unreasoned_grant_pass() -> None:
    check_refusal_reasoned(decision(decision="refused", reasons="dual criminality not met"))
    check_refusal_reasoned(decision(decision="granted"))


def test_a_grant_may_narrow_the_requested_categories(first: Transfer) -> None:
    authorization = pending_authorization("FR", "BR", first, data_categories=["subscriber", "traffic"])
    check_conditions_within_request(GrantConditions(data_categories=("traffic",)), authorization)
    check_conditions_within_request(GrantConditions(data_categories=("subscriber", "traffic")), authorization)
    check_conditions_within_request(GrantConditions(), authorization)


def test_a_grant_may_not_widen_the_requested_categories(pending: Authorization) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_conditions_within_request(GrantConditions(data_categories=("content", "traffic")), pending)
    assert_error(caught.value, rule="category-not-requested", field="conditions.data_categories",
                 article=ART_36_3, values={"not_requested": ["content"]})


def test_a_grant_can_be_revoked(pending: Authorization) -> None:
    check_revocable(grant_authorization(pending))


@pytest.mark.parametrize(
    ("decide", "status"),
    [(lambda a: a, "pending"), (refuse_authorization, "refused"),
     (lambda a: revoke_authorization(grant_authorization(a)), "revoked")],
)
def test_only_a_grant_can_be_revoked(pending: Authorization, decide: Any, status: str) -> None:
    decide(pending)
    with pytest.raises(RuleViolation) as caught:
        check_revocable(pending)
    assert_error(caught.value, rule="authorization-not-granted", field=None, article=ART_36_3,
                 values={"status": status})


# -- point 5: written form -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("lineage", "policy", "required"),
    [(False, False, False), (True, False, True), (False, True, True), (True, True, True)],
)
def test_written_form_is_required_by_the_lineage_or_the_origins_policy(
    lineage: bool, policy: bool, required: bool
) -> None:
    assert written_form_required(lineage, policy) is required


WRITTEN = GrantConditions.parse({"written_instrument": INSTRUMENT})


@pytest.mark.parametrize(
    ("conditions", "required", "passes"),
    [
        pytest.param(None, False, True, id="no conditions, not required"),
        pytest.param(GrantConditions(), False, True, id="no instrument, not required"),
        pytest.param(WRITTEN, False, True, id="instrument, not required"),
        pytest.param(WRITTEN, True, True, id="instrument, required"),
        pytest.param(None, True, False, id="no conditions, required"),
        pytest.param(GrantConditions(max_transfers=1), True, False, id="no instrument, required"),
    ],
)
def test_a_written_instrument_is_needed_where_written_form_is_required(
    conditions: GrantConditions | None, required: bool, passes: bool
) -> None:
    if passes:
        check_written_instrument(conditions, required, "DE")
        return
    with pytest.raises(RuleViolation) as caught:
        check_written_instrument(conditions, required, "DE")
    assert_error(caught.value, rule="written-instrument-required", field="conditions.written_instrument",
                 article=ART_36_3, values={"origin": "DE"})
    assert "DE requires authorization in writing" in caught.value.detail

