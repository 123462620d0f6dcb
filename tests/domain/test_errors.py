"""Domain errors: every refusal names its rule, field, article and values."""

from __future__ import annotations

import pytest

from domain.errors import DomainError, InvalidInput, NotFound, RuleViolation


@pytest.mark.parametrize(
    ("kind", "rule"),
    [
        (DomainError, "domain-error"),
        (InvalidInput, "invalid-input"),
        (NotFound, "not-found"),
        (RuleViolation, "rule-violation"),
    ],
)
def test_each_kind_has_a_default_rule_name(kind: type[DomainError], rule: str) -> None:
    error = kind("something is wrong")
    assert error.rule == rule
    assert str(error) == f"something is wrong [{rule}]"
    assert error.as_dict() == {"rule": rule, "detail": "something is wrong"}


def test_the_kinds_are_domain_errors() -> None:
    for kind in (InvalidInput, NotFound, RuleViolation):
        assert issubclass(kind, DomainError)


def test_str_names_field_detail_rule_and_article() -> None:
    error = RuleViolation(
        "authorization 7 was revoked",
        rule="authorization-revoked",
        field="authorization_id",
        article="art. 36 §3",
        values={"status": "revoked"},
    )
    assert str(error) == "authorization_id: authorization 7 was revoked [authorization-revoked] (art. 36 §3)"


def test_as_dict_carries_rule_detail_field_article_and_values() -> None:
    error = InvalidInput(
        "unknown Party 'XX'",
        rule="unknown-party",
        field="sender.party",
        article="art. 2",
        values={"value": "XX"},
    )
    assert error.as_dict() == {
        "rule": "unknown-party",
        "detail": "unknown Party 'XX'",
        "field": "sender.party",
        "article": "art. 2",
        "values": {"value": "XX"},
    }


def test_a_rule_given_per_instance_does_not_change_the_class_default() -> None:
    InvalidInput("x", rule="unknown-party")
    assert InvalidInput("y").rule == "invalid-input"


def test_values_are_copied_so_later_changes_to_the_callers_dict_do_not_leak_in() -> None:
    values = {"value": "XX"}
    error = InvalidInput("bad", values=values)
    values["value"] = "changed"
    assert error.values == {"value": "XX"}
