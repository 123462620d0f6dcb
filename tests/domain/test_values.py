"""Parsing of every input field into values (domain.values)."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidInput
from domain.parties import Actor, Official
from domain.values import (
    CLOCK_SKEW,
    DATA_CATEGORIES,
    LEGAL_BASES,
    AuthorizationRequestDraft,
    DecisionDraft,
    GrantConditions,
    Handling,
    Purpose,
    RevocationDraft,
    TransferDraft,
    WrittenInstrument,
    format_datetime,
    parse_categories,
    parse_date,
    parse_datetime,
    parse_legal_basis,
    parse_sha256,
)
from tests.support.builders import (
    DIGEST,
    INSTRUMENT,
    MISSING,
    NOW,
    PURPOSE,
    actor,
    assert_error,
    transfer,
)

# -- transfers ----------------------------------------------------------------------


def test_a_minimal_transfer_parses_with_defaults() -> None:
    parsed = TransferDraft.parse(transfer("DE", "FR"), now=NOW)
    assert parsed.sender == Official(party="DE", authority="DE/BKA", officer="Insp. K. Weber")
    assert parsed.recipient == Actor(party="FR", authority="FR/OFAC", officer=None)
    assert parsed.legal_basis == "art44"
    assert parsed.purpose == Purpose(proceeding="FR-PNC-2026-0417", description="ransomware")
    assert parsed.data_categories == ("subscriber", "traffic")
    assert parsed.dataset_sha256 == DIGEST
    assert parsed.transferred_at == NOW  # recorded now when not given
    assert parsed.handling is None  # none set: recorded as Handling(), no conditions
    assert parsed.subjects == ()
    assert (parsed.item_count, parsed.retention_until, parsed.request_reference) == (None, None, None)
    assert (parsed.justification, parsed.ordered_by) == (None, None)
    assert (parsed.parent_transfer_id, parsed.authorization_id) == (None, None)


def test_a_full_transfer_parses_to_normalized_values() -> None:
    parent, grant = uuid4(), uuid4()
    parsed = TransferDraft.parse(
        transfer(
            "FR",
            "BR",
            legal_basis="treaty:FR-BR MLAT 1996",
            request_reference="BR-PF-2026/0042",
            data_categories=["traffic", "content", "traffic"],
            subjects=["P-0001", "P-0002"],
            dataset_sha256="AB" * 32,
            item_count=0,
            handling={"confidential": True, "written_authorization_required": True, "use_restrictions": ["H2"]},
            retention_until="2027-03-01",
            transferred_at="2026-03-01T10:30:00+01:00",
            justification="suspect's accounts used in BR",
            ordered_by="Cmdt. Martin",
            parent_transfer_id=str(parent),
            authorization_id=str(grant).upper(),
        ),
        now=NOW,
    )
    assert parsed.legal_basis == "treaty:FR-BR MLAT 1996"
    assert parsed.request_reference == "BR-PF-2026/0042"
    assert parsed.data_categories == ("content", "traffic")  # a set, sorted
    assert parsed.subjects == ("P-0001", "P-0002")
    assert parsed.dataset_sha256 == "ab" * 32  # lower case
    assert parsed.item_count == 0
    assert parsed.handling == Handling(confidential=True, written_authorization_required=True,
                                       use_restrictions=("H2",))
    assert parsed.retention_until == date(2027, 3, 1)
    assert parsed.transferred_at == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    assert parsed.transferred_at.utcoffset() == timedelta(0)
    assert parsed.justification == "suspect's accounts used in BR"
    assert parsed.ordered_by == "Cmdt. Martin"
    assert parsed.parent_transfer_id == parent
    assert parsed.authorization_id == grant


BAD_TRANSFERS: list[tuple[str, dict[str, Any], str, str]] = [
    # (case, overrides, rule, field)
    ("no sender", {"sender": MISSING}, "missing-field", "sender"),
    ("no recipient", {"recipient": MISSING}, "missing-field", "recipient"),
    ("no legal basis", {"legal_basis": ""}, "missing-field", "legal_basis"),
    ("no purpose", {"purpose": MISSING}, "missing-field", "purpose"),
    ("empty purpose", {"purpose": {}}, "missing-field", "purpose.proceeding"),
    ("no categories", {"data_categories": []}, "missing-field", "data_categories"),
    ("no digest", {"dataset_sha256": MISSING}, "missing-field", "dataset_sha256"),
    ("unknown field", {"origin": "DE"}, "invalid-field", "origin"),
    ("unknown sender party", {"sender": actor("XX")}, "unknown-party", "sender.party"),
    ("lower-case party", {"recipient": {"party": "fr", "authority": "fr/OFAC"}}, "unknown-party", "recipient.party"),
    ("alpha-3 party", {"recipient": {"party": "FRA", "authority": "FRA/OFAC"}}, "unknown-party", "recipient.party"),
    ("authority of another party", {"sender": {"party": "DE", "authority": "FR/OFAC", "officer": "W"}},
     "authority-not-of-party", "sender.authority"),
    ("sender without officer", {"sender": actor("DE", officer=None)}, "missing-field", "sender.officer"),
    ("recipient not an object", {"recipient": "FR"}, "invalid-field", "recipient"),
    ("unknown key in sender", {"sender": {**actor("DE"), "role": "x"}}, "invalid-field", "sender.role"),
    ("unknown legal basis", {"legal_basis": "art48"}, "unknown-legal-basis", "legal_basis"),
    ("legal basis as number", {"legal_basis": 44}, "unknown-legal-basis", "legal_basis"),
    ("empty treaty", {"legal_basis": "treaty:"}, "unknown-legal-basis", "legal_basis"),
    ("categories not a list", {"data_categories": "traffic"}, "invalid-field", "data_categories"),
    ("unknown category", {"data_categories": ["traffic", "ip_address"]},
     "unknown-data-category", "data_categories[1]"),
    ("short digest", {"dataset_sha256": "ab" * 31}, "invalid-digest", "dataset_sha256"),
    ("non-hex digest", {"dataset_sha256": "zz" * 32}, "invalid-digest", "dataset_sha256"),
    ("digest and newline", {"dataset_sha256": DIGEST + "\n"}, "invalid-digest", "dataset_sha256"),
    ("date without time", {"transferred_at": "2026-03-01"}, "malformed-date", "transferred_at"),
    ("no time zone", {"transferred_at": "2026-03-01T09:30:00"}, "malformed-date", "transferred_at"),
    ("no such day", {"transferred_at": "2026-02-30T09:30:00Z"}, "malformed-date", "transferred_at"),
    ("epoch seconds", {"transferred_at": 1772357400}, "malformed-date", "transferred_at"),
    ("far future", {"transferred_at": "2030-01-01T00:00:00Z"}, "time-in-future", "transferred_at"),
    ("negative count", {"item_count": -1}, "invalid-field", "item_count"),
    ("boolean count", {"item_count": True}, "invalid-field", "item_count"),
    ("count as text", {"item_count": "3"}, "invalid-field", "item_count"),
    ("fractional count", {"item_count": 1.5}, "invalid-field", "item_count"),
    ("handling not an object", {"handling": "H2"}, "invalid-field", "handling"),
    ("handling flag not boolean", {"handling": {"confidential": "yes"}}, "invalid-field", "handling.confidential"),
    ("unknown handling key", {"handling": {"secret": True}}, "invalid-field", "handling.secret"),
    ("restrictions not a list", {"handling": {"use_restrictions": "H2"}}, "invalid-field", "handling.use_restrictions"),
    ("blank restriction", {"handling": {"use_restrictions": ["H1", ""]}},
     "missing-field", "handling.use_restrictions[1]"),
    ("retention not a date", {"retention_until": "next year"}, "malformed-date", "retention_until"),
    ("retention with time", {"retention_until": "2027-03-01T00:00:00Z"}, "malformed-date", "retention_until"),
    ("retention week date", {"retention_until": "2027-W09-1"}, "malformed-date", "retention_until"),
    ("parent not a uuid", {"parent_transfer_id": "transfer-1"}, "invalid-id", "parent_transfer_id"),
    ("authorization not a uuid", {"authorization_id": 42}, "invalid-id", "authorization_id"),
    ("purpose without proceeding", {"purpose": {"description": "x"}}, "missing-field", "purpose.proceeding"),
    ("purpose not an object", {"purpose": "ransomware"}, "invalid-field", "purpose"),
    ("unknown purpose key", {"purpose": {**PURPOSE, "basis": "x"}}, "invalid-field", "purpose.basis"),
    ("subjects not a list", {"subjects": "P-1"}, "invalid-field", "subjects"),
    ("subject not text", {"subjects": ["P-1", 2]}, "invalid-field", "subjects[1]"),
    ("control character", {"justification": "a\x00b"}, "invalid-field", "justification"),
    ("overlong reference", {"request_reference": "R" * 201}, "invalid-field", "request_reference"),
    ("overlong orderer", {"ordered_by": "O" * 201}, "invalid-field", "ordered_by"),
]


@pytest.mark.parametrize(
    ("overrides", "rule", "field"),
    [pytest.param(overrides, rule, field, id=case) for case, overrides, rule, field in BAD_TRANSFERS],
)
def test_a_bad_transfer_is_refused_naming_rule_and_field(overrides: dict[str, Any], rule: str, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        TransferDraft.parse(transfer(**overrides), now=NOW)
    assert_error(caught.value, rule=rule, field=field)


@pytest.mark.parametrize("body", [None, [], "transfer", 7])
def test_a_transfer_must_be_an_object(body: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        TransferDraft.parse(body, now=NOW)
    assert_error(caught.value, rule="invalid-field", field=None)
    assert caught.value.detail == f"the transfer must be an object, got {body!r}"


def test_an_unknown_category_error_carries_the_value() -> None:
    with pytest.raises(InvalidInput) as caught:
        TransferDraft.parse(transfer(data_categories=["ip_address"]), now=NOW)
    assert_error(caught.value, rule="unknown-data-category", field="data_categories[0]",
                 values={"value": "ip_address"})
    assert "subscriber, traffic, content, other_personal" in caught.value.detail


def test_a_transfer_may_be_dated_up_to_the_clock_skew_ahead() -> None:
    at_limit = format_datetime(NOW + CLOCK_SKEW)
    assert TransferDraft.parse(transfer(transferred_at=at_limit), now=NOW).transferred_at == NOW + CLOCK_SKEW
    beyond = format_datetime(NOW + CLOCK_SKEW + timedelta(microseconds=1))
    with pytest.raises(InvalidInput) as caught:
        TransferDraft.parse(transfer(transferred_at=beyond), now=NOW)
    assert_error(caught.value, rule="time-in-future", field="transferred_at")
    assert "ledger time 2026-03-01T12:00:00Z" in caught.value.detail


def test_a_transfer_in_the_past_is_accepted() -> None:
    parsed = TransferDraft.parse(transfer(transferred_at="2025-12-31T23:59:59Z"), now=NOW)
    assert parsed.transferred_at == datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize("count", [-1, -1000])
def test_item_count_error_names_the_value(count: int) -> None:
    with pytest.raises(InvalidInput) as caught:
        TransferDraft.parse(transfer(item_count=count), now=NOW)
    assert repr(count) in caught.value.detail


@given(st.integers(min_value=0, max_value=2**53 - 1))
def test_any_non_negative_item_count_is_kept(count: int) -> None:
    assert TransferDraft.parse(transfer(item_count=count), now=NOW).item_count == count


def test_an_item_count_beyond_what_json_numbers_keep_exactly_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        TransferDraft.parse(transfer(item_count=2**53), now=NOW)
    assert_error(caught.value, rule="invalid-field", field="item_count")


# -- legal bases -----------------------------------------------------------------------


@pytest.mark.parametrize("basis", [*LEGAL_BASES, "treaty:FR-BR MLAT 1996", "treaty:CETS 185", "treaty:x"])
def test_known_legal_bases_and_treaties_are_accepted(basis: str) -> None:
    assert parse_legal_basis(basis) == basis


def test_the_convention_bases_are_articles_40_to_47() -> None:
    assert set(LEGAL_BASES) == {"art40", "art40-4", *(f"art{n}" for n in range(41, 48))}


@pytest.mark.parametrize(
    "basis",
    ["ART44", "art 44", "art36", "art48", "treaty:", "treaty: MLAT", "treaty:MLAT ", "Treaty:MLAT",
     "treaty:MLAT\n", "treaty:a\x00b", "treaty:" + "x" * 201, None, ["art44"]],
)
def test_other_legal_bases_are_refused(basis: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_legal_basis(basis)
    assert_error(caught.value, rule="unknown-legal-basis", field="legal_basis", values={"value": basis})


def test_a_treaty_reference_may_be_200_characters_long() -> None:
    basis = "treaty:" + "x" * 200
    assert parse_legal_basis(basis) == basis


# -- data categories -----------------------------------------------------------------


def test_the_categories_are_those_of_art_2() -> None:
    assert set(DATA_CATEGORIES) == {"subscriber", "traffic", "content", "other_personal"}


@given(st.lists(st.sampled_from(DATA_CATEGORIES), min_size=1))
def test_known_categories_parse_to_a_sorted_set(categories: list[str]) -> None:
    parsed = parse_categories(categories, "data_categories")
    assert parsed == tuple(sorted(set(categories)))


@given(
    st.lists(st.sampled_from(DATA_CATEGORIES)),
    st.one_of(st.text(), st.integers(), st.none()).filter(lambda item: item not in DATA_CATEGORIES),
    st.lists(st.sampled_from(DATA_CATEGORIES)),
)
def test_an_unknown_category_is_refused_at_its_index(before: list[str], item: Any, after: list[str]) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_categories([*before, item, *after], "conditions.data_categories")
    assert_error(caught.value, rule="unknown-data-category",
                 field=f"conditions.data_categories[{len(before)}]", values={"value": item})


# -- dates and digests --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T09:30:00Z", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
        ("2026-03-01t09:30:00z", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
        ("2026-03-01 09:30:00Z", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
        ("2026-03-01T09:30:00.25Z", datetime(2026, 3, 1, 9, 30, 0, 250000, tzinfo=UTC)),
        ("2026-03-01T11:30:00+02:00", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
        ("2026-03-01T04:30:00-05:00", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
        ("2026-03-01T00:30:00+15:00", datetime(2026, 2, 28, 9, 30, tzinfo=UTC)),
    ],
)
def test_rfc_3339_date_times_are_returned_in_utc(text: str, expected: datetime) -> None:
    parsed = parse_datetime(text, "transferred_at")
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-01",
        "2026-03-01T09:30Z",  # no seconds
        "2026-03-01T09:30:00",  # no offset
        "2026-03-01T09:30:00+0100",  # offset without colon
        "2026-W09-7T09:30:00Z",  # ISO week date
        "2026-03-01T24:00:00Z",
        "2026-13-01T09:30:00Z",
        "20260301T093000Z",
        "2026-03-01T09:30:00Z\n",
        "yesterday",
        "",
        1772357400,
        None,
    ],
)
def test_other_date_times_are_malformed(text: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_datetime(text, "conditions.valid_until")
    assert_error(caught.value, rule="malformed-date", field="conditions.valid_until", values={"value": text})


def test_a_missing_time_zone_is_named_in_the_error() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_datetime("2026-03-01T09:30:00", "transferred_at")
    assert "no time zone offset" in caught.value.detail


def test_a_naive_datetime_object_is_refused_too() -> None:
    with pytest.raises(InvalidInput, match="no time zone offset"):
        parse_datetime(datetime(2026, 3, 1, 9, 30), "transferred_at")


offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
moments = st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2199, 12, 30), timezones=offsets)


@given(moments)
def test_date_times_round_trip_through_the_stored_form(moment: datetime) -> None:
    text = format_datetime(moment)
    assert text.endswith("Z")
    parsed = parse_datetime(text, "transferred_at")
    assert parsed == moment
    assert format_datetime(parsed) == text


@given(moments)
def test_any_offset_is_accepted_and_normalized_to_utc(moment: datetime) -> None:
    parsed = parse_datetime(moment.isoformat(), "transferred_at")
    assert parsed == moment
    assert parsed.utcoffset() == timedelta(0)


@given(st.dates())
def test_dates_round_trip(day: date) -> None:
    assert parse_date(day.isoformat(), "retention_until") == day


@pytest.mark.parametrize("text", ["2026-02-29", "2026-3-1", "20260301", "2026-W09-7", "2026-03-01 ", "01.03.2026", 20260301])
def test_malformed_dates_are_refused(text: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_date(text, "retention_until")
    assert_error(caught.value, rule="malformed-date", field="retention_until", values={"value": text})


@given(st.binary())
def test_any_sha256_hex_digest_is_accepted_in_lower_case(data: bytes) -> None:
    digest = hashlib.sha256(data).hexdigest()
    assert parse_sha256(digest.upper(), "dataset_sha256") == digest
    assert parse_sha256(digest, "dataset_sha256") == digest


@pytest.mark.parametrize(
    "value", ["", "ab" * 31, "ab" * 33, "ab" * 31 + "a ", "0x" + "ab" * 31, " " + "ab" * 32,
              hashlib.sha1(b"x").hexdigest(), None, 0]
)
def test_anything_but_64_hex_characters_is_not_a_digest(value: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_sha256(value, "conditions.written_instrument.sha256")
    assert_error(caught.value, rule="invalid-digest", field="conditions.written_instrument.sha256",
                 values={"value": value})


# -- handling ----------------------------------------------------------------------


def test_handling_defaults_to_no_conditions() -> None:
    assert Handling.parse({}, "handling") == Handling(
        confidential=False, written_authorization_required=False, use_restrictions=())


def test_handling_round_trips_through_its_stored_form() -> None:
    handling = Handling.parse(
        {"confidential": True, "written_authorization_required": True, "use_restrictions": ["H1", "H2"]},
        "handling",
    )
    assert handling == Handling(confidential=True, written_authorization_required=True,
                                use_restrictions=("H1", "H2"))
    assert handling.as_dict() == {
        "confidential": True,
        "written_authorization_required": True,
        "use_restrictions": ["H1", "H2"],
    }
    assert Handling.from_dict(handling.as_dict()) == handling


@pytest.mark.parametrize("flag", ["confidential", "written_authorization_required"])
@pytest.mark.parametrize("value", [1, 0, "true", None])
def test_handling_flags_must_be_booleans(flag: str, value: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        Handling.parse({flag: value}, "handling")
    assert_error(caught.value, rule="invalid-field", field=f"handling.{flag}")


# -- grant conditions ---------------------------------------------------------------


def test_no_conditions_means_none_set() -> None:
    assert GrantConditions.parse({}, "conditions") == GrantConditions()
    assert GrantConditions().as_dict() == {
        "valid_until": None,
        "max_transfers": None,
        "data_categories": None,
        "purpose": None,
        "written_instrument": None,
        "further_conditions": [],
    }


def test_all_conditions_parse_and_round_trip() -> None:
    conditions = GrantConditions.parse(
        {
            "valid_until": "2026-06-01T00:00:00+02:00",
            "max_transfers": 3,
            "data_categories": ["traffic", "subscriber"],
            "purpose": {"proceeding": "BR-PF-2026-17"},
            "written_instrument": {"reference": "DE-BfJ-2026-114", "sha256": "AB" * 32},
            "further_conditions": ["no further onward transfer"],
        }
    )
    assert conditions == GrantConditions(
        valid_until=datetime(2026, 5, 31, 22, 0, tzinfo=UTC),
        max_transfers=3,
        data_categories=("subscriber", "traffic"),
        purpose=Purpose(proceeding="BR-PF-2026-17", description=None),
        written_instrument=WrittenInstrument(reference="DE-BfJ-2026-114", sha256="ab" * 32),
        further_conditions=("no further onward transfer",),
    )
    assert conditions.as_dict()["valid_until"] == "2026-05-31T22:00:00Z"
    assert GrantConditions.from_dict(conditions.as_dict()) == conditions


@given(
    valid_until=st.none() | moments,
    max_transfers=st.none() | st.integers(min_value=1, max_value=10**6),
    categories=st.none() | st.lists(st.sampled_from(DATA_CATEGORIES), min_size=1, max_size=4),
)
def test_conditions_round_trip_through_their_stored_form(
    valid_until: datetime | None, max_transfers: int | None, categories: list[str] | None
) -> None:
    body: dict[str, Any] = {"max_transfers": max_transfers, "data_categories": categories}
    if valid_until is not None:
        body["valid_until"] = valid_until.isoformat()
    conditions = GrantConditions.parse(body)
    assert conditions.valid_until == valid_until
    assert conditions.max_transfers == max_transfers
    assert GrantConditions.from_dict(conditions.as_dict()) == conditions


BAD_CONDITIONS: list[tuple[str, Any, str, str]] = [
    ("not an object", ["max_transfers"], "invalid-field", "conditions"),
    ("unknown key", {"expires": "2026-06-01"}, "invalid-field", "conditions.expires"),
    ("zero transfers", {"max_transfers": 0}, "invalid-field", "conditions.max_transfers"),
    ("negative transfers", {"max_transfers": -2}, "invalid-field", "conditions.max_transfers"),
    ("boolean transfers", {"max_transfers": True}, "invalid-field", "conditions.max_transfers"),
    ("transfers as text", {"max_transfers": "2"}, "invalid-field", "conditions.max_transfers"),
    ("fractional transfers", {"max_transfers": 1.0}, "invalid-field", "conditions.max_transfers"),
    ("unknown category", {"data_categories": ["traffic", "location"]},
     "unknown-data-category", "conditions.data_categories[1]"),
    ("no categories", {"data_categories": []}, "missing-field", "conditions.data_categories"),
    ("validity a date", {"valid_until": "2026-06-01"}, "malformed-date", "conditions.valid_until"),
    ("validity without zone", {"valid_until": "2026-06-01T00:00:00"}, "malformed-date", "conditions.valid_until"),
    ("purpose without proceeding", {"purpose": {"description": "x"}},
     "missing-field", "conditions.purpose.proceeding"),
    ("instrument without reference", {"written_instrument": {"sha256": "ab" * 32}},
     "missing-field", "conditions.written_instrument.reference"),
    ("instrument without digest", {"written_instrument": {"reference": "R-1"}},
     "missing-field", "conditions.written_instrument.sha256"),
    ("instrument bad digest", {"written_instrument": {"reference": "R-1", "sha256": "ab"}},
     "invalid-digest", "conditions.written_instrument.sha256"),
    ("instrument unknown key", {"written_instrument": {**INSTRUMENT, "signed": True}},
     "invalid-field", "conditions.written_instrument.signed"),
    ("further conditions as text", {"further_conditions": "none"}, "invalid-field", "conditions.further_conditions"),
]


@pytest.mark.parametrize(
    ("body", "rule", "field"),
    [pytest.param(body, rule, field, id=case) for case, body, rule, field in BAD_CONDITIONS],
)
def test_bad_conditions_are_refused(body: Any, rule: str, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        GrantConditions.parse(body, "conditions")
    assert_error(caught.value, rule=rule, field=field)


def test_one_transfer_is_the_smallest_limit() -> None:
    assert GrantConditions.parse({"max_transfers": 1}).max_transfers == 1


# -- authorization requests ----------------------------------------------------------


def request_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "parent_transfer_id": "6f1c4c1e-7c1b-4c8f-9d7e-1b2a3c4d5e6f",
        "requested_by": actor("FR"),
        "recipient": actor("BR", officer=None),
        "purpose": dict(PURPOSE),
        "data_categories": ["traffic"],
        "justification": "cross-match against national databases",
    }
    for name, value in overrides.items():
        if value is MISSING:
            body.pop(name)
        else:
            body[name] = value
    return body


def test_an_authorization_request_parses() -> None:
    parsed = AuthorizationRequestDraft.parse(request_body(data_categories=["traffic", "subscriber"]))
    assert parsed == AuthorizationRequestDraft(
        parent_transfer_id=UUID("6f1c4c1e-7c1b-4c8f-9d7e-1b2a3c4d5e6f"),
        requested_by=Official(party="FR", authority="FR/OFAC", officer="Insp. K. Weber"),
        recipient=Actor(party="BR", authority="BR/PF", officer=None),
        purpose=Purpose(proceeding="FR-PNC-2026-0417", description="ransomware"),
        data_categories=("subscriber", "traffic"),
        justification="cross-match against national databases",
    )


BAD_REQUESTS: list[tuple[str, dict[str, Any], str, str]] = [
    ("no parent", {"parent_transfer_id": MISSING}, "missing-field", "parent_transfer_id"),
    ("parent not a uuid", {"parent_transfer_id": "t-1"}, "invalid-id", "parent_transfer_id"),
    ("no holder", {"requested_by": MISSING}, "missing-field", "requested_by"),
    ("holder without officer", {"requested_by": actor("FR", officer=None)}, "missing-field", "requested_by.officer"),
    ("unknown recipient", {"recipient": {"party": "ZZ", "authority": "ZZ/X"}}, "unknown-party", "recipient.party"),
    ("recipient authority of another party", {"recipient": {"party": "BR", "authority": "US/FBI"}},
     "authority-not-of-party", "recipient.authority"),
    ("no purpose", {"purpose": MISSING}, "missing-field", "purpose"),
    ("no categories", {"data_categories": []}, "missing-field", "data_categories"),
    ("unknown category", {"data_categories": ["metadata"]}, "unknown-data-category", "data_categories[0]"),
    ("no justification", {"justification": MISSING}, "missing-field", "justification"),
    ("blank justification", {"justification": "  "}, "missing-field", "justification"),
    ("unknown field", {"authorization_id": "x"}, "invalid-field", "authorization_id"),
]


@pytest.mark.parametrize(
    ("overrides", "rule", "field"),
    [pytest.param(overrides, rule, field, id=case) for case, overrides, rule, field in BAD_REQUESTS],
)
def test_a_bad_authorization_request_is_refused(overrides: dict[str, Any], rule: str, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        AuthorizationRequestDraft.parse(request_body(**overrides))
    assert_error(caught.value, rule=rule, field=field)


# -- decisions and revocations ---------------------------------------------------------


def test_a_grant_parses_with_its_conditions() -> None:
    parsed = DecisionDraft.parse(
        {"decision": "granted", "decided_by": actor("DE"), "conditions": {"max_transfers": 2}}
    )
    assert parsed == DecisionDraft(
        decision="granted", decided_by=Official(party="DE", authority="DE/BKA", officer="Insp. K. Weber"),
        conditions=GrantConditions(max_transfers=2),
    )
    assert parsed.granted_conditions == GrantConditions(max_transfers=2)


def test_a_grant_without_conditions_has_none() -> None:
    parsed = DecisionDraft.parse({"decision": "granted", "decided_by": actor("DE"), "reasons": "proportionate"})
    assert parsed.conditions is None
    assert parsed.granted_conditions == GrantConditions()  # a grant without conditions
    assert parsed.reasons == "proportionate"


def test_a_refusal_parses_with_its_reasons() -> None:
    parsed = DecisionDraft.parse({"decision": "refused", "decided_by": actor("DE"), "reasons": "death penalty risk"})
    assert (parsed.decision, parsed.reasons, parsed.conditions) == ("refused", "death penalty risk", None)


BAD_DECISIONS: list[tuple[str, Any, str, str]] = [
    ("not an object", "granted", "invalid-field", None),
    ("no decision", {"decided_by": actor("DE")}, "missing-field", "decision"),
    ("approved", {"decision": "approved", "decided_by": actor("DE")}, "invalid-field", "decision"),
    ("upper case", {"decision": "GRANTED", "decided_by": actor("DE")}, "invalid-field", "decision"),
    ("boolean", {"decision": True, "decided_by": actor("DE")}, "invalid-field", "decision"),
    ("no decider", {"decision": "granted"}, "missing-field", "decided_by"),
    ("decider without officer", {"decision": "granted", "decided_by": actor("DE", officer=None)},
     "missing-field", "decided_by.officer"),
    ("decider unknown party", {"decision": "granted", "decided_by": actor("XK")}, "unknown-party", "decided_by.party"),
    ("refusal with conditions", {"decision": "refused", "decided_by": actor("DE"), "reasons": "r",
                                 "conditions": {"max_transfers": 1}}, "invalid-field", "conditions"),
    ("bad condition", {"decision": "granted", "decided_by": actor("DE"), "conditions": {"max_transfers": 0}},
     "invalid-field", "conditions.max_transfers"),
    ("unknown field", {"decision": "granted", "decided_by": actor("DE"), "status": "granted"},
     "invalid-field", "status"),
]


@pytest.mark.parametrize(
    ("body", "rule", "field"),
    [pytest.param(body, rule, field, id=case) for case, body, rule, field in BAD_DECISIONS],
)
def test_a_bad_decision_is_refused(body: Any, rule: str, field: str | None) -> None:
    with pytest.raises(InvalidInput) as caught:
        DecisionDraft.parse(body)
    assert_error(caught.value, rule=rule, field=field)


def test_a_revocation_parses() -> None:
    parsed = RevocationDraft.parse({"revoked_by": actor("DE"), "reasons": "data found inaccurate"})
    assert parsed == RevocationDraft(revoked_by=Official(party="DE", authority="DE/BKA", officer="Insp. K. Weber"),
                                     reasons="data found inaccurate")


@pytest.mark.parametrize(
    ("body", "rule", "field"),
    [
        ({"reasons": "r"}, "missing-field", "revoked_by"),
        ({"revoked_by": actor("DE")}, "missing-field", "reasons"),
        ({"revoked_by": actor("DE"), "reasons": ""}, "missing-field", "reasons"),
        ({"revoked_by": actor("DE", officer=None), "reasons": "r"}, "missing-field", "revoked_by.officer"),
        ({"revoked_by": actor("DE"), "reasons": "r", "at": "now"}, "invalid-field", "at"),
        ("revoke", "invalid-field", None),
    ],
)
def test_a_bad_revocation_is_refused(body: Any, rule: str, field: str | None) -> None:
    with pytest.raises(InvalidInput) as caught:
        RevocationDraft.parse(body)
    assert_error(caught.value, rule=rule, field=field)
