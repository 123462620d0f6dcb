"""The chain of custody after a transfer arrives: handling codes, specialty and use.

Data received under the Convention stay bound once they arrive. This module
holds the rules that bind them, one named check each, citing its article:

- **handling codes** (SIENA's H0-H3, carried in ``handling.use_restrictions``):
  what each code means, that codes are inherited down a lineage and never
  dropped, and what H1 and H2 demand of a use or an onward transfer;
- **specialty** (art. 40 §19): received data are used only in the proceeding
  the request stated, unless the requested Party (the transfer's sender, not
  the origin: this is not art. 36 §3) consented before; exculpatory
  information may be used in another proceeding without consent, after
  notice to the requested Party;
- **consent requests** and their decisions (art. 40 §19, §25).

Each check returns its violation (or None) where the read models also report
it as a finding, so that a refusal and a finding are one text
(:func:`domain.rules.refuse`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from domain.errors import InvalidInput, RuleViolation

ART_40_19 = "art. 40 §19"
ART_40_25 = "art. 40 §25"
HANDLING = "art. 40 §5, §19 (handling codes)"

# -- handling codes -------------------------------------------------------------------

#: The handling codes (SIENA's), each a first-class value of ``handling.use_restrictions``.
HANDLING_CODES: dict[str, str] = {
    "H0": "use only for the purpose of preventing and combating crime",
    "H1": "no use as evidence in judicial proceedings without the provider's permission",
    "H2": "no dissemination without the provider's permission",
    "H3": "other restrictions, stated in text",
}
_CODE_LIKE = re.compile(r"^\s*[Hh]\d+\b")
_H3_TEXT = re.compile(r"^\s*[Hh]3\s*[:\-\u2013]?\s*(.*)$", re.DOTALL)


def parse_use_restriction(value: str, field: str) -> str:
    """One item of ``handling.use_restrictions``: a code ``H0``, ``H1`` or ``H2``; ``H3: <text>``
    (an other restriction, stated); or free text, which is an H3 restriction as written (as
    ledgers recorded them before the codes). An item that looks like a code but is none, and an
    ``H3`` without its text, are refused."""
    if not _CODE_LIKE.match(value):
        return value
    code = value.strip().upper()
    if code in ("H0", "H1", "H2"):
        return code
    h3 = _H3_TEXT.match(value)
    if h3 is not None:
        text = h3.group(1).strip()
        if not text:
            raise InvalidInput(f"{field}: H3 states its restriction: \"H3: <text>\"",
                               rule="handling-code-without-text", field=field, article=HANDLING)
        return f"H3: {text}"
    raise InvalidInput(
        f"{field}: {value.strip()[:20]!r} is not a handling code: H0, H1, H2 or \"H3: <text>\"",
        rule="unknown-handling-code", field=field, article=HANDLING, values={"value": value[:40]},
    )


def handling_code(restriction: str) -> str:
    """The code of one recorded restriction: free text is an H3 restriction."""
    code = restriction[:2]
    return code if code in ("H0", "H1", "H2") and len(restriction) == 2 else "H3"


def handling_codes(restrictions: Iterable[str]) -> tuple[str, ...]:
    """The codes a list of restrictions carries, sorted, each once."""
    return tuple(sorted({handling_code(r) for r in restrictions}))


def inherited_restrictions(parent: Sequence[str], own: Sequence[str]) -> tuple[str, ...]:
    """An onward transfer's restrictions: every one its parent carried, then its own new ones
    (codes are inherited down the lineage and never dropped, art. 40 §5)."""
    out = list(dict.fromkeys(parent))
    out.extend(r for r in dict.fromkeys(own) if r not in out)
    return tuple(out)


def restrictions_dropped(parent: Sequence[str], child: Sequence[str], transfer_id: str,
                         parent_id: str) -> RuleViolation | None:
    """Art. 40 §5: an onward transfer that does not carry every restriction of its parent."""
    missing = [r for r in parent if r not in set(child)]
    if not missing:
        return None
    return RuleViolation(
        f"transfer {transfer_id} dropped the handling restrictions {', '.join(missing)} that its parent "
        f"{parent_id} carried: restrictions are inherited down the lineage",
        rule="handling-restrictions-dropped", article=HANDLING, values={"missing": missing},
    )


# -- confidentiality (art. 40 §20) -----------------------------------------------------


def transfer_readers(sender: str, recipient: str, origin: str, confidential: bool) -> set[str]:
    """The Parties that may read a transfer: its sender, recipient and origin; for a confidential
    one (art. 40 §20, ``handling.confidential``) its sender and recipient only. Auditors read it too
    (their share is judged by the read models, not here)."""
    return {sender, recipient} if confidential else {sender, recipient, origin}


# -- uses and specialty (art. 40 §19) -------------------------------------------------

UseKind = Literal["investigation", "evidence-in-proceedings", "disclosure"]
USE_KINDS: tuple[str, ...] = get_args(UseKind)
#: How long after an exculpatory use the requested Party's notice may come ("without delay").
EXCULPATORY_NOTICE_DEADLINE = timedelta(hours=24)


@dataclass(frozen=True)
class Use:
    """A use of received data, as the rules see it."""

    transfer_id: str
    proceeding: str
    kind: str
    exculpatory: bool
    consent_id: str | None


@dataclass(frozen=True)
class Consent:
    """A consent request of the requested Party, as the rules see it."""

    id: str
    transfer_id: str
    status: str  # pending, granted, refused
    proceeding: str
    uses: tuple[str, ...]  # the kinds of use it covers
    recipient: str | None = None  # set for a consent to pass the data on (H2), not to use them


def consent_reasons(use: Use, stated_proceeding: str, codes: Iterable[str]) -> list[str]:
    """Why a use needs the requested Party's prior consent (empty: it needs none).

    ``other-proceeding`` (art. 40 §19): used in a proceeding other than the one the request
    stated, unless the information is exculpatory (then notice suffices); ``h1-evidence``: used
    as evidence in proceedings while the data carry H1.
    """
    reasons = []
    if use.proceeding != stated_proceeding and not use.exculpatory:
        reasons.append("other-proceeding")
    if use.kind == "evidence-in-proceedings" and "H1" in set(codes):
        reasons.append("h1-evidence")
    return reasons


def use_not_consented(use: Use, stated_proceeding: str, codes: Iterable[str], sender: str,
                      consent: Consent | None) -> RuleViolation | None:
    """Art. 40 §19 (specialty) and H1: a use that needs the requested Party's prior consent and
    has no granted consent covering it (this transfer, this proceeding, this kind of use)."""
    reasons = consent_reasons(use, stated_proceeding, codes)
    if not reasons:
        return None
    why = " and ".join(
        {"other-proceeding": f"proceeding {use.proceeding!r} is not the one the request stated "
                             f"({stated_proceeding!r})",
         "h1-evidence": "the data carry H1 (no use as evidence without the provider's permission)"}[r]
        for r in reasons)
    values: dict[str, Any] = {"sender": sender, "proceeding": use.proceeding, "kind": use.kind,
                              "needs": reasons}
    if consent is None:
        problem = "no consent was named (consent_id)"
    elif consent.transfer_id != use.transfer_id:
        problem = f"consent {consent.id} concerns transfer {consent.transfer_id}, not {use.transfer_id}"
    elif consent.recipient is not None:
        problem = f"consent {consent.id} is to pass the data on to {consent.recipient}, not to use them"
    elif consent.status != "granted":
        problem = f"consent request {consent.id} is {consent.status}"
    elif consent.proceeding != use.proceeding:
        problem = f"consent {consent.id} covers proceeding {consent.proceeding!r} only"
    elif use.kind not in consent.uses:
        problem = f"consent {consent.id} covers {', '.join(consent.uses)} only"
    else:
        return None
    if consent is not None:
        values["consent_id"] = consent.id
    return RuleViolation(
        f"this use needs the prior consent of {sender}, the requested Party: {why}; {problem}",
        rule="specialty-consent-required", field="consent_id", article=ART_40_19, values=values,
    )


def use_not_by_recipient(party: str, recipient: str, transfer_id: str, field: str) -> RuleViolation | None:
    """Art. 40 §19: a use of received data is recorded by the Party that received them."""
    if party == recipient:
        return None
    return RuleViolation(
        f"{party} did not receive transfer {transfer_id}: only its recipient {recipient} records "
        "uses of its data", rule="use-by-recipient-only", field=field, article=ART_40_19,
        values={"party": party, "recipient": recipient},
    )


def h2_consent_needed(codes: Iterable[str], provider: str, origin: str, recipient: str) -> bool:
    """H2: whether an onward transfer needs the provider's consent: the data carry H2, they do not
    go back to the provider, and the provider is not the origin (whose authorization is that permission)."""
    return "H2" in set(codes) and recipient != provider and provider != origin


def onward_transfer_not_consented(codes: Iterable[str], provider: str, origin: str, recipient: str,
                                  proceeding: str, parent_id: str, consent: Consent | None) -> RuleViolation | None:
    """H2 (no dissemination without the provider's permission): an onward transfer of data that
    carry H2 needs the consent of the Party that sent them to the holder (``provider``), besides
    the origin's authorization under art. 36 §3. None is needed to give the data back to the
    provider, nor when the provider is the origin (its authorization is that permission)."""
    if not h2_consent_needed(codes, provider, origin, recipient):
        return None
    values: dict[str, Any] = {"provider": provider, "recipient": recipient, "proceeding": proceeding}
    if consent is None:
        problem = "no consent was named (consent_id)"
    elif consent.transfer_id != parent_id:
        problem = f"consent {consent.id} concerns transfer {consent.transfer_id}, not {parent_id}"
    elif consent.status != "granted":
        problem = f"consent request {consent.id} is {consent.status}"
    elif consent.recipient != recipient:
        problem = (f"consent {consent.id} is to pass the data on to {consent.recipient}, not to {recipient}"
                   if consent.recipient else f"consent {consent.id} is for a use, not to pass the data on")
    elif consent.proceeding != proceeding:
        problem = f"consent {consent.id} covers proceeding {consent.proceeding!r} only"
    else:
        return None
    if consent is not None:
        values["consent_id"] = consent.id
    return RuleViolation(
        f"the data of transfer {parent_id} carry H2 (no dissemination without the provider's permission): "
        f"passing them on to {recipient} needs the consent of {provider}, which sent them, besides the origin's "
        f"authorization; {problem}",
        rule="h2-consent-required", field="consent_id", article=HANDLING, values=values,
    )


def check_used_by_recipient(party: str, recipient: str, transfer_id: str, field: str) -> None:
    """:func:`use_not_by_recipient`, refused."""
    violation = use_not_by_recipient(party, recipient, transfer_id, field)
    if violation is not None:
        raise violation


def exculpatory_notice_problem(use: Use, stated_proceeding: str, prior_notice: datetime | None,
                               why_not_prior: str | None, used_at: datetime) -> InvalidInput | None:
    """Art. 40 §19, second sentence: exculpatory information used in another proceeding needs
    notice to the requested Party, prior (``notice.notified_at`` not after the use) or, when the
    use says why prior notice was impossible, without delay after (recorded later)."""
    if not use.exculpatory or use.proceeding == stated_proceeding:
        return None
    if prior_notice is not None:
        if prior_notice <= used_at:
            return None
        return InvalidInput(
            "notice.notified_at lies after the use: a prior notice comes before it (give "
            "notice.prior_impossible instead, and record the notice after)",
            rule="exculpatory-notice-required", field="notice.notified_at", article=ART_40_19,
        )
    if why_not_prior:
        return None
    return InvalidInput(
        "exculpatory information used in another proceeding needs notice to the requested Party: "
        "give notice.notified_at (prior notice) or notice.prior_impossible (why it could not be prior; "
        "then record the notice without delay after the use)",
        rule="exculpatory-notice-required", field="notice", article=ART_40_19,
    )


def after_notice_overdue(used_at: datetime, noticed_at: datetime | None, now: datetime,
                         deadline: timedelta = EXCULPATORY_NOTICE_DEADLINE) -> bool:
    """Art. 40 §19: an exculpatory use whose notice came (or has not come) later than the deadline."""
    return (noticed_at or now) > used_at + deadline


# -- consent requests and decisions (art. 40 §19, §25) --------------------------------------


def check_consent_decided_by_sender(party: str, sender: str, consent_id: str, field: str) -> None:
    """Art. 40 §19: the consent is the requested Party's, the sender of the data; no one else decides."""
    if party != sender:
        raise RuleViolation(
            f"{party} is not the requested Party of consent request {consent_id}: only {sender}, which "
            "sent the data, decides on it", rule="consent-decided-by-sender", field=field, article=ART_40_19,
            values={"party": party, "sender": sender},
        )


def check_consent_requested_by_recipient(party: str, recipient: str, transfer_id: str, field: str) -> None:
    """Art. 40 §19: the Party that received the data asks for consent to use them."""
    if party != recipient:
        raise RuleViolation(
            f"{party} did not receive transfer {transfer_id}: only its recipient {recipient} asks consent "
            "to use its data", rule="consent-requested-by-recipient", field=field, article=ART_40_19,
            values={"party": party, "recipient": recipient},
        )


def check_consent_pending(consent_id: str, status: str) -> None:
    """Art. 40 §25: a consent request is decided once."""
    if status != "pending":
        raise RuleViolation(f"consent request {consent_id} was already decided: it is {status}",
                            rule="consent-already-decided", article=ART_40_25, values={"status": status})
