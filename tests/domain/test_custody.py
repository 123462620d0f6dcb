"""domain/custody.py: handling codes, specialty (art. 40 §19) and consents, rule by rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.custody import (
    Consent,
    Use,
    after_notice_overdue,
    consent_reasons,
    exculpatory_notice_problem,
    handling_code,
    handling_codes,
    inherited_restrictions,
    onward_transfer_not_consented,
    parse_use_restriction,
    restrictions_dropped,
    use_not_by_recipient,
    use_not_consented,
)
from domain.errors import InvalidInput
from domain.values import Handling
from tests.support.builders import assert_error, draft, record

STATED = "FR-PNC-2026-0417"
OTHER = "FR-PNC-2026-0999"
USED_AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _use(proceeding: str = STATED, kind: str = "investigation", exculpatory: bool = False,
         consent_id: str | None = None) -> Use:
    return Use("t1", proceeding, kind, exculpatory, consent_id)


def _consent(status: str = "granted", proceeding: str = OTHER, uses: tuple[str, ...] = (
        "investigation", "evidence-in-proceedings", "disclosure"), transfer_id: str = "t1") -> Consent:
    return Consent("c1", transfer_id, status, proceeding, uses)


@pytest.mark.parametrize(("given_", "stored"), [
    ("H0", "H0"), ("h1", "H1"), (" H2 ", "H2"), ("H3: no press", "H3: no press"), ("h3 - no press", "H3: no press"),
    ("H3 no press", "H3: no press"), ("only for proceeding X", "only for proceeding X"),
    ("Hold for review", "Hold for review"),  # not a code: free text, an H3 restriction as written
])
def test_a_restriction_is_a_code_or_text(given_: str, stored: str) -> None:
    assert parse_use_restriction(given_, "r") == stored


@pytest.mark.parametrize(("given_", "rule"), [("H7", "unknown-handling-code"), ("H12 x", "unknown-handling-code"),
                                              ("H3", "handling-code-without-text"),
                                              ("H3:  ", "handling-code-without-text")])
def test_a_restriction_that_looks_like_a_code_but_is_none_is_refused(given_: str, rule: str) -> None:
    with pytest.raises(InvalidInput) as error:
        parse_use_restriction(given_, "handling.use_restrictions[0]")
    assert error.value.rule == rule and error.value.field == "handling.use_restrictions[0]"


def test_handling_parses_codes_through_the_one_validation_model() -> None:
    assert Handling.parse({"use_restrictions": ["h2", "H3 - x"]}).use_restrictions == ("H2", "H3: x")
    with pytest.raises(InvalidInput) as error:
        Handling.parse({"use_restrictions": ["free text", "H9"]})
    assert_error(error.value, rule="unknown-handling-code", field="use_restrictions[1]")


def test_the_code_of_a_recorded_restriction() -> None:
    assert [handling_code(r) for r in ("H0", "H1", "H2", "H3: x", "free text", "H2x")] == [
        "H0", "H1", "H2", "H3", "H3", "H3"]
    assert handling_codes(["H2", "a", "H3: b", "H2"]) == ("H2", "H3")


restriction = st.one_of(st.sampled_from(["H0", "H1", "H2", "H3: no press", "H3: not to the media"]),
                        st.text(min_size=1, max_size=8))


@given(st.lists(restriction, max_size=6), st.lists(restriction, max_size=6))
def test_an_onward_transfer_keeps_every_restriction_of_its_parent(parent: list[str], own: list[str]) -> None:
    child = inherited_restrictions(parent, own)
    assert set(parent) | set(own) == set(child) and len(child) == len(set(child))
    assert list(child[:len(set(parent))]) == list(dict.fromkeys(parent))  # the parent's first, in its order
    assert restrictions_dropped(parent, child, "t2", "t1") is None


def test_dropped_restrictions_are_named() -> None:
    violation = restrictions_dropped(["H2", "H3: x"], ["H3: x"], "t2", "t1")
    assert violation is not None and violation.rule == "handling-restrictions-dropped"
    assert violation.values == {"missing": ["H2"]}


def test_the_lineage_inherits_restrictions_when_a_transfer_is_recorded() -> None:
    root = record("DE", "FR", handling={"use_restrictions": ["H2"]})
    child = record("FR", "INTERPOL", parent=root, handling={"use_restrictions": ["H1"]})
    assert child.handling.use_restrictions == ("H2", "H1")
    assert draft("FR", "INTERPOL", parent=root).handling is None  # the draft is what was asked; the record inherits


@pytest.mark.parametrize(("use", "codes", "reasons"), [
    (_use(), (), []),
    (_use(OTHER), (), ["other-proceeding"]),
    (_use(OTHER, exculpatory=True), (), []),  # notice, not consent
    (_use(kind="evidence-in-proceedings"), ("H1",), ["h1-evidence"]),
    (_use(kind="evidence-in-proceedings"), ("H2", "H3"), []),
    (_use(OTHER, kind="evidence-in-proceedings", exculpatory=True), ("H1",), ["h1-evidence"]),
    (_use(OTHER, kind="evidence-in-proceedings"), ("H1",), ["other-proceeding", "h1-evidence"]),
])
def test_when_a_use_needs_the_requested_partys_consent(use: Use, codes: tuple[str, ...], reasons: list[str]) -> None:
    assert consent_reasons(use, STATED, codes) == reasons


@pytest.mark.parametrize(("consent", "covered", "says"), [
    (None, False, "no consent was named"),
    (_consent(), True, ""),
    (_consent(status="pending"), False, "is pending"),
    (_consent(status="refused"), False, "is refused"),
    (_consent(proceeding="FR-PNC-2026-1234"), False, "covers proceeding 'FR-PNC-2026-1234' only"),
    (_consent(uses=("disclosure",)), False, "covers disclosure only"),
    (_consent(transfer_id="t9"), False, "concerns transfer t9"),
])
def test_a_consent_covers_its_transfer_proceeding_and_kinds_only(consent: Consent | None, covered: bool,
                                                                 says: str) -> None:
    violation = use_not_consented(_use(OTHER), STATED, (), "DE", consent)
    assert (violation is None) == covered
    if violation is not None:
        assert violation.rule == "specialty-consent-required" and violation.article == "art. 40 §19"
        assert says in violation.detail and "prior consent of DE" in violation.detail


def test_only_the_recipient_uses() -> None:
    assert use_not_by_recipient("FR", "FR", "t1", "used_by.party") is None
    violation = use_not_by_recipient("DE", "FR", "t1", "used_by.party")
    assert violation is not None and violation.rule == "use-by-recipient-only"


def test_an_exculpatory_use_in_another_proceeding_needs_notice() -> None:
    use = _use(OTHER, exculpatory=True)
    assert exculpatory_notice_problem(_use(), STATED, None, None, USED_AT) is None
    assert exculpatory_notice_problem(use, STATED, USED_AT - timedelta(hours=1), None, USED_AT) is None
    assert exculpatory_notice_problem(use, STATED, None, "hearing the same day", USED_AT) is None
    missing = exculpatory_notice_problem(use, STATED, None, None, USED_AT)
    assert missing is not None and missing.rule == "exculpatory-notice-required" and missing.field == "notice"
    after = exculpatory_notice_problem(use, STATED, USED_AT + timedelta(minutes=1), None, USED_AT)
    assert after is not None and after.field == "notice.notified_at"


def test_a_notice_after_the_use_is_due_within_the_deadline() -> None:
    assert not after_notice_overdue(USED_AT, USED_AT + timedelta(hours=23), USED_AT + timedelta(days=9))
    assert after_notice_overdue(USED_AT, USED_AT + timedelta(hours=25), USED_AT + timedelta(days=9))
    assert not after_notice_overdue(USED_AT, None, USED_AT + timedelta(hours=23))
    assert after_notice_overdue(USED_AT, None, USED_AT + timedelta(hours=25))


@pytest.mark.parametrize(("codes", "provider", "recipient", "consent", "needed", "says"), [
    ((), "FR", "BR", None, False, ""),
    (("H2",), "DE", "BR", None, False, ""),  # the provider is the origin: its authorization is the permission
    (("H2",), "FR", "FR", None, False, ""),  # back to the provider
    (("H2",), "FR", "BR", None, True, "no consent was named"),
    (("H2",), "FR", "BR", _consent(proceeding=STATED, transfer_id="t1"), True, "is for a use"),
    (("H2",), "FR", "BR", Consent("c1", "t1", "granted", STATED, (), "NL"), True, "not to BR"),
    (("H2",), "FR", "BR", Consent("c1", "t1", "pending", STATED, (), "BR"), True, "is pending"),
    (("H2",), "FR", "BR", Consent("c1", "t1", "granted", OTHER, (), "BR"), True, "covers proceeding"),
    (("H2",), "FR", "BR", Consent("c1", "t1", "granted", STATED, (), "BR"), False, ""),
])
def test_h2_data_are_passed_on_with_the_providers_consent(codes: tuple[str, ...], provider: str, recipient: str,
                                                          consent: Consent | None, needed: bool, says: str) -> None:
    violation = onward_transfer_not_consented(codes, provider, "DE", recipient, STATED, "t1", consent)
    assert (violation is not None) == needed
    if violation is not None:
        assert violation.rule == "h2-consent-required" and says in violation.detail
