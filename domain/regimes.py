"""Legal regimes: the named set of rules a transfer is made under.

Each transfer records its ``regime``. The UN Convention against Cybercrime is
the default, and the rules of art. 36 §3 (``domain.rules``) apply under every
regime; what differs is named here, one entry per regime:

- ``un-cybercrime``: the Convention. Art. 36 §3 allows **no** urgent exception.
- ``eu-led``: Directive (EU) 2016/680. Art. 35(2) allows an onward transfer
  without prior authorization only where it is necessary to prevent an
  immediate and serious threat to public security (of a Member State or a
  third country) or to the essential interests of a Member State, and the
  authorization cannot be obtained in good time; the authority responsible
  for it is informed without delay.
- ``budapest-p2``: the Second Additional Protocol to the Budapest Convention,
  art. 14 §10: onward transfer only with the prior authorization of the
  transferring authority; no urgent exception.
- ``treaty:<reference>``: another instrument; the Convention's rules unless a
  later version of the ledger names that treaty's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from domain.errors import DomainError, InvalidInput, RuleViolation

DEFAULT_REGIME = "un-cybercrime"
#: How soon the authorizing State must be told of an urgent transfer ("without delay"), by default.
URGENT_NOTICE_DEADLINE = timedelta(hours=24)
_TREATY = re.compile(r"^treaty:[A-Za-z0-9][A-Za-z0-9 ._/()-]{0,199}$")


@dataclass(frozen=True)
class Regime:
    """What a regime says about onward transfers."""

    name: str
    title: str
    #: The provision on onward transfers.
    onward_article: str
    #: The provision allowing an urgent onward transfer without prior authorization, or None.
    urgent_article: str | None = None


REGIMES: dict[str, Regime] = {
    "un-cybercrime": Regime("un-cybercrime", "UN Convention against Cybercrime", "art. 36 §3"),
    "eu-led": Regime("eu-led", "Directive (EU) 2016/680", "LED art. 35(1)(e)", urgent_article="LED art. 35(2)"),
    "budapest-p2": Regime("budapest-p2", "Second Additional Protocol to the Budapest Convention",
                          "Second Protocol art. 14 §10"),
}


def parse_regime(value: Any, field: str = "regime") -> str:
    """``un-cybercrime``, ``eu-led``, ``budapest-p2`` or ``treaty:<reference>``."""
    if isinstance(value, str) and (value in REGIMES or _TREATY.match(value)):
        return value
    raise InvalidInput(
        f"{field} must be one of {', '.join(REGIMES)} or treaty:<reference>, got {str(value)[:40]!r}",
        rule="unknown-regime", field=field, values={"value": str(value)[:40]},
    )


def regime_rules(regime: str) -> Regime:
    """The rules of ``regime``: a treaty's are the Convention's."""
    return REGIMES.get(regime) or Regime(regime, f"treaty {regime.split(':', 1)[1]}", "art. 36 §3")


def urgent_exception_problem(received_under: str | None) -> DomainError | None:
    """An onward transfer claimed urgent (made without prior authorization): allowed only where the
    regime the holder received the data under has the exception (LED art. 35(2)); the Convention has
    none (art. 36 §3), nor has the Second Protocol. ``received_under``: the parent transfer's regime
    (None for a first transfer, which needs no authorization at all)."""
    if received_under is None:
        return InvalidInput("urgent is for an onward transfer made without prior authorization; a first transfer "
                            "needs none", rule="urgent-not-onward", field="urgent")
    rules = regime_rules(received_under)
    if rules.urgent_article is not None:
        return None
    return RuleViolation(
        f"the data were received under the {rules.title} ({received_under}), which has no urgent exception: an "
        f"onward transfer needs the prior authorization of the first transferring Party ({rules.onward_article}), "
        "however urgent", rule="no-urgent-exception", field="urgent", article=rules.onward_article,
        values={"regime": received_under},
    )


def urgent_notice_overdue(transferred_at: datetime, notified_at: datetime | None, now: datetime,
                          deadline: timedelta = URGENT_NOTICE_DEADLINE) -> bool:
    """LED art. 35(2): the authorizing State was told of an urgent transfer later than the deadline,
    or has not been told by ``now`` and the deadline has passed."""
    return (notified_at or now) > transferred_at + deadline


def check_urgent_notice_by_sender(party: str, sender: str, transfer_id: str, field: str) -> None:
    """LED art. 35(2): the Party that made the urgent transfer informs the authorizing State."""
    if party != sender:
        raise RuleViolation(f"{party} did not make transfer {transfer_id}: its sender {sender} informs the "
                            "authorizing State", rule="urgent-notice-by-sender", field=field,
                            article="LED art. 35(2)", values={"party": party, "sender": sender})


def check_urgent_notice_possible(urgent: bool, notified: bool, transfer_id: str) -> None:
    """LED art. 35(2): only an urgent transfer is notified, and once."""
    if not urgent:
        raise RuleViolation(f"transfer {transfer_id} was not made under the urgent exception: there is nothing "
                            "to notify", rule="not-urgent", article="LED art. 35(2)")
    if notified:
        raise RuleViolation(f"the authorizing State was already informed of transfer {transfer_id}",
                            rule="urgent-notice-already-given", article="LED art. 35(2)")
