"""Parties, authorities and officers.

A **Party** is a State Party to the Convention, named by its ISO 3166-1
alpha-2 code (validated against the ISO code list shipped by ``pycountry``),
or an international organization, named by its registered short name
(``INTERPOL``). An **authority** is a body within a Party, written
``<PARTY>/<NAME>`` (``DE/BKA``). An **officer** is the person acting.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import pycountry
from pydantic import Field, ValidationInfo, field_validator

from domain.errors import InvalidInput
from domain.validation import FIELD, Value, checked, rule_error

#: International organizations that exchange data under the Convention and
#: comparable instruments. Art. 36 §3 names transfers "to a third country or
#: an international organization"; these are the organizations the ledger
#: knows by default.
INTERNATIONAL_ORGANIZATIONS: dict[str, str] = {
    "INTERPOL": "International Criminal Police Organization",
    "EUROPOL": "European Union Agency for Law Enforcement Cooperation",
    "EUROJUST": "European Union Agency for Criminal Justice Cooperation",
    "UNODC": "United Nations Office on Drugs and Crime",
    "AFRIPOL": "African Union Mechanism for Police Cooperation",
    "ASEANAPOL": "ASEAN Chiefs of National Police",
    "AMERIPOL": "Police Community of the Americas",
    "GCCPOL": "Gulf Cooperation Council Police",
    "ICC": "International Criminal Court",
}

_AUTHORITY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()&'-]{0,119}\Z")
_MAX_TEXT = 2000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


_COUNTRY_NAMES: dict[str, str] = {}


def _country_names() -> dict[str, str]:
    """ISO 3166-1 alpha-2 code -> country name, read from ``pycountry`` once.

    A look-up in ``pycountry`` lower-cases the key and walks its indexes on
    every call; every command names two or more Parties, so the table is
    built on first use and kept.
    """
    if not _COUNTRY_NAMES:
        _COUNTRY_NAMES.update((str(c.alpha_2), str(c.name)) for c in pycountry.countries)
    return _COUNTRY_NAMES


def party_name(code: str) -> str | None:
    """The name of a Party, or None if ``code`` is not a Party."""
    if code in INTERNATIONAL_ORGANIZATIONS:
        return INTERNATIONAL_ORGANIZATIONS[code]
    if len(code) == 2 and code.isascii() and code.isupper():
        return (_COUNTRY_NAMES or _country_names()).get(code)
    return None


def is_international_organization(code: str) -> bool:
    return code in INTERNATIONAL_ORGANIZATIONS


def parse_party(value: Any, field: str) -> str:
    """Validate a Party code: an ISO 3166-1 alpha-2 code or a known organization."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(
            "a Party is required: an ISO 3166-1 alpha-2 code (e.g. DE) "
            "or an international organization (e.g. INTERPOL)",
            rule="unknown-party",
            field=field,
            values={"value": value},
        )
    if party_name(value) is None:
        hint = ""
        if party_name(value.upper()) is not None:
            hint = f"; did you mean {value.upper()!r}?"
        raise InvalidInput(
            f"unknown Party {value!r}: not an ISO 3166-1 alpha-2 code nor a known "
            f"international organization{hint}",
            rule="unknown-party",
            field=field,
            values={"value": value},
        )
    return value


def is_plain_text(value: Any, max_len: int = _MAX_TEXT) -> bool:
    """Whether :func:`parse_text` accepts ``value`` as it is (the common case,
    checked without building the field's name for an error)."""
    return (
        type(value) is str
        and 0 < len(value) <= max_len
        and (value.isprintable() or _CONTROL.search(value) is None)
        and bool(value.strip())
    )


def parse_text(value: Any, field: str, *, required: bool = True, max_len: int = _MAX_TEXT) -> str | None:
    """A free-text field: a string without control characters other than newline."""
    if is_plain_text(value, max_len):
        return value  # type: ignore[no-any-return]
    if value is None or value == "":
        if required:
            raise InvalidInput(f"{field} is required", rule="missing-field", field=field)
        return None
    if not isinstance(value, str):
        raise InvalidInput(
            f"{field} must be a string, got {type(value).__name__}",
            rule="invalid-field",
            field=field,
        )
    if len(value) > max_len:
        raise InvalidInput(
            f"{field} is {len(value)} characters long; the limit is {max_len}",
            rule="invalid-field",
            field=field,
        )
    if _CONTROL.search(value):
        raise InvalidInput(
            f"{field} contains control characters", rule="invalid-field", field=field
        )
    if not value.strip():
        raise InvalidInput(f"{field} is blank", rule="missing-field", field=field)
    return value


class Actor(Value):
    """Who acts: a Party and one of its authorities, and the officer when named
    (required of whoever sends, requests or decides: :class:`Official`)."""

    NOUN = "actor"

    party: str = Field(min_length=1, max_length=16)
    authority: str = Field(min_length=3, max_length=140)
    officer: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("party")
    @classmethod
    def _known_party(cls, value: str) -> str:
        if party_name(value) is None:
            checked(parse_party)(value)
        return value

    @field_validator("authority")
    @classmethod
    def _authority_of_party(cls, value: str, info: ValidationInfo) -> str:
        party = info.data.get("party")
        if party is not None and not _is_authority_of(value, party):
            try:
                parse_authority(value, party, FIELD)
            except InvalidInput as error:
                raise rule_error(error) from None
        return value

    @field_validator("officer")
    @classmethod
    def _officer_text(cls, value: str | None) -> str | None:
        if value is not None and not is_plain_text(value, 200):
            checked(functools.partial(parse_text, max_len=200))(value)
        return value

    def as_dict(self) -> dict[str, str]:
        """The stored form (docs/FORMAT.md): no officer when none is named."""
        out = {"party": self.party, "authority": self.authority}
        if self.officer is not None:
            out["officer"] = self.officer
        return out

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Actor:
        """A stored actor, as recorded (not checked again)."""
        return cls.model_construct(party=data["party"], authority=data.get("authority"),
                                   officer=data.get("officer"))


class Official(Actor):
    """An actor whose officer is named: who sends, requests, decides or revokes."""

    officer: str = Field(min_length=1, max_length=200)


def _is_authority_of(value: Any, party: str) -> bool:
    """Whether :func:`parse_authority` accepts ``value`` for ``party`` as it is."""
    if type(value) is not str:
        return False
    prefix, sep, name = value.partition("/")
    return bool(sep) and prefix == party and _AUTHORITY_NAME.match(name) is not None


def parse_authority(value: Any, party: str, field: str) -> str:
    """An authority of ``party``, written ``<PARTY>/<NAME>`` (e.g. ``DE/BKA``)."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(
            f"{field} is required, written <PARTY>/<NAME>, e.g. {party}/BKA",
            rule="missing-field",
            field=field,
        )
    prefix, sep, name = value.partition("/")
    if not sep or not _AUTHORITY_NAME.match(name):
        raise InvalidInput(
            f"malformed authority {value!r}: expected <PARTY>/<NAME>, e.g. {party}/BKA",
            rule="invalid-field",
            field=field,
            values={"value": value},
        )
    if prefix != party:
        raise InvalidInput(
            f"authority {value!r} does not belong to Party {party!r}",
            rule="authority-not-of-party",
            field=field,
            values={"authority": value, "party": party},
        )
    return value
