"""Parties, authorities and officers (domain.parties)."""

from __future__ import annotations

from typing import Any

import pycountry
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidInput
from domain.parties import (
    INTERNATIONAL_ORGANIZATIONS,
    Actor,
    Official,
    is_international_organization,
    parse_authority,
    parse_party,
    parse_text,
    party_name,
)
from tests.support.builders import assert_error

ISO_3166_ALPHA_2 = frozenset(country.alpha_2 for country in pycountry.countries)
KNOWN_PARTIES = ISO_3166_ALPHA_2 | frozenset(INTERNATIONAL_ORGANIZATIONS)


# -- Parties -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("DE", "Germany"),
        ("FR", "France"),
        ("BR", "Brazil"),
        ("RU", "Russian Federation"),
        ("US", "United States"),
        ("NG", "Nigeria"),
        ("JP", "Japan"),
        ("GB", "United Kingdom"),
    ],
)
def test_iso_3166_alpha_2_codes_are_parties(code: str, name: str) -> None:
    assert parse_party(code, "sender.party") == code
    assert party_name(code) == name
    assert not is_international_organization(code)


@pytest.mark.parametrize("code", sorted(INTERNATIONAL_ORGANIZATIONS))
def test_international_organizations_are_parties(code: str) -> None:
    assert parse_party(code, "recipient.party") == code
    assert is_international_organization(code)
    assert party_name(code) == INTERNATIONAL_ORGANIZATIONS[code]


def test_interpol_is_known_by_its_full_name() -> None:
    assert party_name("INTERPOL") == "International Criminal Police Organization"


@pytest.mark.parametrize(
    "value",
    [
        "de",  # lower case
        "De",
        "DEU",  # alpha-3
        "276",  # numeric
        "UK",  # not ISO 3166-1 (GB is)
        "EU",  # exceptionally reserved, not a country
        "XX",
        "D",
        "Germany",
        "interpol",
        "Interpol",
        " DE",
        "DE ",
        "DE\n",
        "",
        None,
        49,
        ["DE"],
    ],
)
def test_anything_else_is_an_unknown_party(value: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_party(value, "sender.party")
    assert_error(caught.value, rule="unknown-party", field="sender.party", values={"value": value})


@pytest.mark.parametrize(("value", "suggestion"), [("de", "DE"), ("interpol", "INTERPOL"), ("Fr", "FR")])
def test_a_wrongly_cased_party_gets_a_suggestion(value: str, suggestion: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_party(value, "recipient.party")
    assert f"did you mean {suggestion!r}?" in caught.value.detail


def test_an_unknown_party_gets_no_suggestion() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_party("QQ", "recipient.party")
    assert "did you mean" not in caught.value.detail


near_misses = st.one_of(
    st.text(),
    st.from_regex(r"[A-Za-z]{1,4}", fullmatch=True),
    st.sampled_from(sorted(KNOWN_PARTIES)).map(str.lower),
    st.sampled_from(sorted(KNOWN_PARTIES)).map(lambda code: code + " "),
)


@given(near_misses.filter(lambda value: value not in KNOWN_PARTIES))
def test_any_string_that_is_not_a_known_party_is_rejected(value: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_party(value, "recipient.party")
    assert_error(caught.value, rule="unknown-party", field="recipient.party", values={"value": value})


@given(st.from_regex(r"[A-Z]{2}", fullmatch=True))
def test_a_two_letter_code_is_a_party_exactly_when_iso_3166_lists_it(code: str) -> None:
    if code in ISO_3166_ALPHA_2:
        assert parse_party(code, "party") == code
    else:
        with pytest.raises(InvalidInput, match=r"\[unknown-party\]"):
            parse_party(code, "party")


# -- authorities ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authority", "party"),
    [
        ("DE/BKA", "DE"),
        ("FR/OFAC", "FR"),
        ("BR/Policia Federal", "BR"),
        ("US/FBI (Cyber Division)", "US"),
        ("INTERPOL/IPSG", "INTERPOL"),
        ("GB/NCA-NCCU", "GB"),
    ],
)
def test_an_authority_is_written_party_slash_name(authority: str, party: str) -> None:
    assert parse_authority(authority, party, "sender.authority") == authority


@pytest.mark.parametrize(
    ("authority", "party"),
    [
        ("FR/OFAC", "DE"),
        ("de/BKA", "DE"),
        ("DEU/BKA", "DE"),
        ("EUROPOL/EC3", "INTERPOL"),
    ],
)
def test_an_authority_of_another_party_is_refused(authority: str, party: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_authority(authority, party, "sender.authority")
    assert_error(
        caught.value,
        rule="authority-not-of-party",
        field="sender.authority",
        values={"authority": authority, "party": party},
    )


@pytest.mark.parametrize(
    "authority",
    ["BKA", "DE/", "DE/BKA/SO41", "DE/ BKA", "DE/-BKA", "DE/BKA\n", "DE/BKA;DROP", "DE/" + "B" * 121],
)
def test_a_malformed_authority_is_refused(authority: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_authority(authority, "DE", "recipient.authority")
    assert_error(caught.value, rule="invalid-field", field="recipient.authority", values={"value": authority})


@pytest.mark.parametrize("authority", [None, "", 7])
def test_an_authority_is_required(authority: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_authority(authority, "DE", "sender.authority")
    assert_error(caught.value, rule="missing-field", field="sender.authority")
    assert "DE/BKA" in caught.value.detail


# -- actors -------------------------------------------------------------------------


def test_a_sender_parses_to_party_authority_and_officer() -> None:
    parsed = Official.parse({"party": "DE", "authority": "DE/BKA", "officer": "KHK Weber"}, "sender")
    assert parsed == Official(party="DE", authority="DE/BKA", officer="KHK Weber")
    assert parsed.as_dict() == {"party": "DE", "authority": "DE/BKA", "officer": "KHK Weber"}
    assert Actor.from_dict(parsed.as_dict()).as_dict() == parsed.as_dict()


def test_an_official_is_an_actor_with_an_officer() -> None:
    official = Official.parse({"party": "DE", "authority": "DE/BKA", "officer": "KHK Weber"}, "sender")
    assert isinstance(official, Actor)
    assert Actor.parse(official, "sender") is official


def test_a_recipient_needs_no_officer() -> None:
    parsed = Actor.parse({"party": "FR", "authority": "FR/OFAC"}, "recipient")
    assert parsed == Actor(party="FR", authority="FR/OFAC", officer=None)
    assert parsed.as_dict() == {"party": "FR", "authority": "FR/OFAC"}


@pytest.mark.parametrize("officer", [None, "", "   "])
def test_a_sender_needs_an_officer(officer: str | None) -> None:
    body = {"party": "DE", "authority": "DE/BKA", "officer": officer}
    with pytest.raises(InvalidInput) as caught:
        Official.parse(body, "sender")
    assert_error(caught.value, rule="missing-field", field="sender.officer")


@pytest.mark.parametrize(
    ("body", "rule", "field"),
    [
        ("DE", "invalid-field", "sender"),
        (None, "invalid-field", "sender"),
        ({"authority": "DE/BKA", "officer": "W"}, "missing-field", "sender.party"),
        ({"party": "XX", "authority": "XX/BKA", "officer": "W"}, "unknown-party", "sender.party"),
        ({"party": "DE", "officer": "W"}, "missing-field", "sender.authority"),
        ({"party": "DE", "authority": "FR/OFAC", "officer": "W"}, "authority-not-of-party", "sender.authority"),
        ({"party": "DE", "authority": "DE/BKA", "officer": "W", "email": "w@bka"}, "invalid-field", "sender.email"),
        ({"party": "DE", "authority": "DE/BKA", "officer": "W\x00"}, "invalid-field", "sender.officer"),
        ({"party": "DE", "authority": "DE/BKA", "officer": "W" * 201}, "invalid-field", "sender.officer"),
        ({"party": "DE", "authority": "DE/BKA", "officer": 12}, "invalid-field", "sender.officer"),
    ],
)
def test_a_bad_actor_names_the_field(body: Any, rule: str, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Official.parse(body, "sender")
    assert_error(caught.value, rule=rule, field=field)


# -- free text --------------------------------------------------------------------


def test_text_keeps_newlines_and_tabs() -> None:
    assert parse_text("line one\n\tline two", "justification") == "line one\n\tline two"


def test_optional_text_may_be_absent() -> None:
    assert parse_text(None, "justification", required=False) is None
    assert parse_text("", "justification", required=False) is None


@pytest.mark.parametrize(
    ("value", "rule"),
    [("", "missing-field"), (" \n ", "missing-field"), ("a\x1bb", "invalid-field"), ("a\x7f", "invalid-field"),
     ("x" * 2001, "invalid-field"), (42, "invalid-field")],
)
def test_bad_text_is_refused(value: Any, rule: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_text(value, "justification")
    assert_error(caught.value, rule=rule, field="justification")


def test_text_at_the_length_limit_is_accepted() -> None:
    assert parse_text("x" * 2000, "justification") == "x" * 2000
