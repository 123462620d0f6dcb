"""Personal data in the ledger: what is personal, how long it is kept, and who may erase it.

The ledger is immutable, yet personal data must be destroyed when the purpose
of processing is achieved or its period ends (Order 949 §12, §15; LED
2016/680 arts. 5, 16; Budapest Second Protocol art. 14). A ledger of event
format 2 (docs/FORMAT.md, "Personal data") therefore never puts a personal
value in a leaf: each is replaced there by a salted **commitment**, and its
opening (the salt and the value) is kept apart, encrypted under a data key
that erasure destroys. This module says which fields are personal, in which
retention class, and holds the rules of erasure and restriction.

Two retention classes:

- **subject data** (``subject-data``): the data subjects' data and the free
  texts that may describe them, kept until the transfer's ``retention_until``;
- **actor log** (``actor-log``): who acted (officers, ``ordered_by``), kept for
  the log-retention period of the Party that acted (LED art. 25: logs; by
  default three years after the event).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal, get_args

from domain.errors import RuleViolation

if TYPE_CHECKING:
    from domain.parties import Actor

SUBJECT_DATA = "subject-data"
ACTOR_LOG = "actor-log"
RETENTION_CLASSES = (SUBJECT_DATA, ACTOR_LOG)

#: A personal value as a leaf holds it: ``commitment:`` and 64 lowercase hex digits (docs/FORMAT.md).
COMMITMENT_PREFIX = "commitment:"
_COMMITMENT = re.compile(r"commitment:[0-9a-f]{64}")

#: LED art. 25 logs: kept three years after the event unless a Party's policy says otherwise.
DEFAULT_LOG_RETENTION_YEARS = 3

#: Why personal data are erased (Order 949 §15; LED art. 16).
ErasureGround = Literal["purpose-achieved", "retention-expired", "unlawful-processing", "subject-request",
                        "court-order"]
ERASURE_GROUNDS: tuple[str, ...] = get_args(ErasureGround)


def is_commitment(value: Any) -> bool:
    """Whether a stored value is a commitment in place of a personal value."""
    return type(value) is str and _COMMITMENT.fullmatch(value) is not None


def strings_in(doc: Any, keep: Callable[[str], Any]) -> set[str]:
    """Every string of a JSON-like document that ``keep`` keeps."""
    found: set[str] = set()
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, str) and keep(item):
            found.add(item)
    return found


def commitments_in(doc: Any) -> set[str]:
    """Every commitment in a JSON-like document."""
    return strings_in(doc, is_commitment)


def quotable(text: str | None) -> str | None:
    """A free text to quote in a message, or None when the store holds only its commitment."""
    return None if text is None or is_commitment(text) else text


def get_path(state: dict[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` of an event state (None where a step is missing)."""
    value: Any = state
    for step in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value


def set_path(state: dict[str, Any], path: str, value: Any) -> None:
    """Set the value at a dotted ``path`` of ``state`` (every step but the last exists), copying
    the objects along the way: the ones ``state`` shared with others stay as they were."""
    *parents, last = path.split(".")
    target = state
    for step in parents:
        target[step] = dict(target[step])
        target = target[step]
    target[last] = value


def add_years(day: date, years: int) -> date:
    """The same calendar day ``years`` later (29 February becomes 28 February)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def actor_log_until(acted_at: datetime, years: int) -> date:
    """The last day the log of who acted is kept: ``years`` after the event (LED art. 25)."""
    return add_years(acted_at.date(), years)


def is_due(until: date | None, today: date) -> bool:
    """Whether a period that ends on ``until`` (kept through that day) has ended by ``today``
    (Order 949 §15: destroyed when the period ends). No date: no period, erased only on a decision."""
    return until is not None and until < today


def check_erasure_possible(sealed: bool, transfer_id: str) -> None:
    """Erasure needs the transfer's personal data stored as commitments (event format 2)."""
    if not sealed:
        raise RuleViolation(
            f"transfer {transfer_id} was recorded in event format 1: its personal data are inside "
            "its hashed leaf, so they cannot be destroyed without breaking the ledger; a ledger "
            "started in event format 2 stores them apart (docs/FORMAT.md)",
            rule="erasure-not-possible",
            field="transfer_id",
            values={"transfer_id": transfer_id, "event_format": 1},
            article="Order 949 §15",
        )


def check_erasure_by_party(erased_by: Actor, sender: str, recipient: str, field: str = "erased_by.party") -> None:
    """Only an authority of the transfer's sender or recipient erases its data (Order 949 §15)."""
    if erased_by.party not in (sender, recipient):
        raise RuleViolation(
            f"{erased_by.party} is neither the sender ({sender}) nor the recipient ({recipient}) "
            "of the transfer",
            rule="not-a-party-to-transfer",
            field=field,
            values={"party": erased_by.party, "sender": sender, "recipient": recipient},
            article="Order 949 §15",
        )


def check_not_restricted(restricted: bool, transfer_id: str) -> None:
    """A transfer under an evidence hold is not erased (restriction of processing, LED art. 16(3))."""
    if restricted:
        raise RuleViolation(
            f"processing of transfer {transfer_id}'s data is restricted (an evidence hold): "
            "lift the restriction before erasing",
            rule="processing-restricted",
            field="transfer_id",
            values={"transfer_id": transfer_id},
            article="LED art. 16(3)",
        )


def check_not_erased(erased: bool, transfer_id: str, field: str = "transfer_id") -> None:
    """Data already erased are not erased again, nor restricted, nor passed on (Order 949 §15)."""
    if erased:
        raise RuleViolation(
            f"the personal data of transfer {transfer_id} were erased",
            rule="personal-data-erased",
            field=field,
            values={"transfer_id": transfer_id},
            article="Order 949 §15",
        )


def check_restricted(restricted: bool, transfer_id: str) -> None:
    """Only a hold placed is lifted."""
    if not restricted:
        raise RuleViolation(
            f"processing of transfer {transfer_id}'s data is not restricted",
            rule="not-restricted",
            field="transfer_id",
            values={"transfer_id": transfer_id},
            article="LED art. 16(3)",
        )


def notice_parties(erased_by: str, origin: str, sender: str, descendant_recipients: list[str]) -> list[str]:
    """Whom an erasure is told to (Order 949 §15, LED art. 16(6)): every Party that received the
    data onward (each descendant's recipient), and the origin when the data came from it through
    others; not the Party that erases."""
    parties = set(descendant_recipients)
    if origin != sender:
        parties.add(origin)
    parties.discard(erased_by)
    return sorted(parties)


def check_notice_addressed_to(party: str, notice_party: str, notice: str) -> None:
    """Only the Party a notice is addressed to acknowledges it."""
    if party != notice_party:
        raise RuleViolation(
            f"notice {notice} is addressed to {notice_party}, not {party}",
            rule="not-addressee", field="acknowledged_by.party",
            values={"party": party, "addressee": notice_party}, article="Order 949 §15",
        )


def check_notice_unacknowledged(acknowledged: bool, notice: str) -> None:
    if acknowledged:
        raise RuleViolation(f"notice {notice} was already acknowledged", rule="notice-already-acknowledged",
                            field="notice_id", values={"notice_id": notice}, article="Order 949 §15")
