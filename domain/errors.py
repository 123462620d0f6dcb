"""Domain errors: every refusal names the rule that failed and the values involved.

Three kinds, which outer layers map to their own vocabulary (HTTP status, exit
status):

- :class:`InvalidInput`: a field is malformed or unknown (HTTP 422, exit 2);
- :class:`NotFound`: an id names nothing recorded (HTTP 404, exit 2);
- :class:`RuleViolation`: well-formed input that a rule of the Convention
  refuses, e.g. an onward transfer without the origin's authorization
  (HTTP 409, exit 1).

``rule`` is a stable, machine-readable name (it becomes the last segment of
the problem ``type`` URI over HTTP); ``article`` cites the provision;
``field`` points at the offending input, dotted (``sender.party``).
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base class of every refusal raised by the domain."""

    rule: str = "domain-error"
    title: str = "Domain error"

    def __init__(
        self,
        detail: str,
        *,
        rule: str | None = None,
        field: str | None = None,
        article: str | None = None,
        values: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if rule is not None:
            self.rule = rule
        self.field = field
        self.article = article
        self.values = dict(values or {})

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        cite = f" ({self.article})" if self.article else ""
        return f"{where}{self.detail} [{self.rule}]{cite}"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule, "detail": self.detail}
        if self.field:
            out["field"] = self.field
        if self.article:
            out["article"] = self.article
        if self.values:
            out["values"] = self.values
        return out


class InvalidInput(DomainError):
    """A field is missing, malformed, or names something unknown."""

    rule = "invalid-input"
    title = "Invalid input"


class NotFound(DomainError):
    """An id does not name anything recorded in the ledger."""

    rule = "not-found"
    title = "Not found"


class RuleViolation(DomainError):
    """Well-formed input that a rule of the Convention refuses."""

    rule = "rule-violation"
    title = "Refused by a rule"
