"""Consultation logs: who read personal data through the ledger, when, what, and why.

LED 2016/680 art. 25(1) requires logs of every *consultation* and disclosure of
personal data, showing its justification, its date and time, and as far as
possible who consulted; Order 949, annex 3 §13 has the internal-control
commission check them. The ledger logs every read of personal data through its
API and CLI (docs/API.md, "Consultation logs"): one entry per read, never the
personal values read, only their ids.

Entries are written as :class:`ConsultationLog` events, many entries to an event
(so a read costs no durable commit of its own): tamper-evident like every other
leaf, so an auditor can prove that no consultation was removed.

The log is itself personal data (who read, and the justification given): those
two fields are sealed as an actor log (``domain.personal``) kept until the event's
``log_until`` (its own period, by default three years), then destroyed with the
other actor logs of that day by the retention job.

Rules:

- :func:`justification_missing` — a Party's policy may require a justification for
  every read by its principals (LED art. 25(1): the log shows the justification);
- :func:`log_purpose_problem` — the logs are read only to verify the lawfulness of
  processing, for self-monitoring, to ensure integrity and security, and in criminal
  proceedings (LED art. 25(2)): the purpose is a required field of every query of the logs.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal, get_args
from uuid import uuid4

from eventsourcing.domain import Aggregate

from domain.errors import InvalidInput, RuleViolation
from domain.personal import ACTOR_LOG, add_years

if TYPE_CHECKING:
    from collections.abc import Sequence

ART_25_1 = "LED 2016/680 art. 25(1)"
ART_25_2 = "LED 2016/680 art. 25(2)"

#: LED art. 25: consultation logs are kept three years unless configured otherwise.
DEFAULT_CONSULTATION_LOG_YEARS = 3

#: The purposes for which the logs may be read (LED art. 25(2)).
LogPurpose = Literal["lawfulness", "self-monitoring", "integrity", "criminal-proceedings"]
LOG_PURPOSES: tuple[str, ...] = get_args(LogPurpose)

#: The longest justification kept, in characters (a header or a query parameter).
MAX_JUSTIFICATION = 500

_PREFIX = "transfer-ledger:"


def justification_missing(required: bool, justification: str | None, party: str) -> RuleViolation | None:
    """A read by a principal of a Party whose policy requires a justification, without one."""
    if not required or (justification is not None and justification.strip()):
        return None
    return RuleViolation(
        f"the policy of {party} requires a justification for every read of personal data: send it in "
        "the X-Justification header or the justification query parameter",
        rule="justification-required",
        field="X-Justification",
        values={"party": party},
        article=ART_25_1,
    )


def log_purpose_problem(purpose: str | None) -> InvalidInput | None:
    """A query of the consultation logs without one of the purposes LED art. 25(2) allows."""
    if purpose in LOG_PURPOSES:
        return None
    allowed = ", ".join(LOG_PURPOSES)
    if purpose is None:
        detail = f"the logs are read only for a stated purpose: give purpose, one of {allowed}"
        rule = "purpose-required"
    else:
        detail = f"{purpose!r} is not a purpose the logs may be read for; one of {allowed}"
        rule = "unknown-log-purpose"
    return InvalidInput(detail, rule=rule, field="purpose", values={"purpose": purpose}, article=ART_25_2)


def consultation_log_until(at: datetime, years: int) -> date:
    """The last day a consultation logged at ``at`` is kept: ``years`` after it."""
    return add_years(at.date(), years)


def object_ref(kind: str, ident: str) -> str:
    """How an entry names what was read: ``transfer:<id>``, ``leaves:<first>-<last>``..."""
    return f"{kind}:{ident}"


class ConsultationLog(Aggregate):
    """One batch of consultation log entries, as one event (``ConsultationsLogged:v1``).

    ``entries`` hold what is not personal (when, which principal of which Party, the route,
    the status answered, the ids of what was read and the Parties they involve, the purpose
    of a read of the logs); ``readers`` the personal part of each entry, in the same order
    (the officer named, the justification given), sealed as an actor log until ``log_until``.
    """

    TOPIC = _PREFIX + "ConsultationLog"

    if TYPE_CHECKING:
        entries: list[dict[str, Any]]
        readers: list[dict[str, Any]]
        log_until: str

    class Event(Aggregate.Event):
        TOPIC = _PREFIX + "ConsultationLog.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = _PREFIX + "ConsultationLog.Created"

    class Logged(Created):
        TOPIC = _PREFIX + "ConsultationsLogged:v1"
        PERSONAL = {"readers": ACTOR_LOG}
        #: The actor log's last day is the event's own (the logs' period), not the acting Party's.
        LOG_UNTIL = "log_until"
        entries: list[dict[str, Any]]
        readers: list[dict[str, Any]]
        log_until: str

        def apply(self, aggregate: Any) -> None:
            aggregate.entries = self.entries
            aggregate.readers = self.readers
            aggregate.log_until = self.log_until

    @classmethod
    def logged(cls, entries: Sequence[dict[str, Any]], readers: Sequence[dict[str, Any]],
               log_until: date) -> ConsultationLog:
        if len(entries) != len(readers) or not entries:
            raise ValueError("one reader per entry, and at least one entry")
        return cls._create(cls.Logged, id=uuid4(), entries=list(entries), readers=list(readers),
                           log_until=log_until.isoformat())
