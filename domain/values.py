"""Value objects and the parsing of every input field, with precise errors.

Every command's input is parsed here, once, into immutable values; the outer
layers (HTTP schemas, CLI) only shape requests. A parse error names the field
(dotted path) and the rule it breaks.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from domain.errors import InvalidInput
from domain.parties import Actor, is_plain_text, parse_text

#: Art. 2 (c), (d), (f), (g): traffic, content and subscriber data, and other
#: personal data. Whether a category counts as personal data is policy, not
#: code (docs/DOMAIN.md, the Ministry's letter): the ledger records them all.
DATA_CATEGORIES: tuple[str, ...] = ("subscriber", "traffic", "content", "other_personal")

#: Legal bases a transfer is recorded under (art. 40 §3 and arts. 41-47), or
#: ``treaty:<reference>`` for another instrument.
LEGAL_BASES: dict[str, str] = {
    "art40": "Mutual legal assistance (art. 40)",
    "art40-4": "Spontaneous information (art. 40 §4)",
    "art41": "24/7 network (art. 41)",
    "art42": "Expedited preservation of stored data (art. 42)",
    "art43": "Expedited disclosure of preserved traffic data (art. 43)",
    "art44": "Mutual legal assistance in accessing stored data (art. 44)",
    "art45": "Real-time collection of traffic data (art. 45)",
    "art46": "Interception of content data (art. 46)",
    "art47": "Law enforcement cooperation (art. 47)",
}

# ``\Z``, not ``$``: ``$`` also matches before a trailing newline.
_SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}\Z")
_TREATY = re.compile(r"^treaty:\S(.{0,198}\S)?\Z")
_RFC3339_DATE_TIME = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})?\Z"
)
_FULL_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")

#: How far in the future a reported time may lie (clock skew between systems).
CLOCK_SKEW = timedelta(minutes=5)

_MAX_LIST = 1000


def parse_uuid(value: Any, field: str) -> UUID:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
    raise InvalidInput(
        f"{field} must be a UUID, got {value!r}", rule="invalid-id", field=field,
        values={"value": value},
    )


def parse_optional_uuid(value: Any, field: str) -> UUID | None:
    if value is None or value == "":
        return None
    return parse_uuid(value, field)


def parse_categories(value: Any, field: str) -> tuple[str, ...]:
    """A non-empty set of art. 2 data categories, returned sorted."""
    if not isinstance(value, (list, tuple)) or not value:
        raise InvalidInput(
            f"{field} must be a non-empty list of data categories "
            f"({', '.join(DATA_CATEGORIES)})",
            rule="invalid-field",
            field=field,
        )
    out: set[str] = set()
    for i, item in enumerate(value):
        if item not in DATA_CATEGORIES:
            raise InvalidInput(
                f"unknown data category {item!r}; known: {', '.join(DATA_CATEGORIES)}",
                rule="unknown-data-category",
                field=f"{field}[{i}]",
                values={"value": item},
            )
        out.add(item)
    return tuple(sorted(out))


def parse_legal_basis(value: Any, field: str = "legal_basis") -> str:
    if isinstance(value, str) and (
        value in LEGAL_BASES or (_TREATY.match(value) and value.isprintable())
    ):
        return value
    raise InvalidInput(
        f"unknown legal basis {value!r}: expected one of {', '.join(LEGAL_BASES)} "
        "or treaty:<reference>",
        rule="unknown-legal-basis",
        field=field,
        values={"value": value},
    )


def parse_datetime(value: Any, field: str) -> datetime:
    """An RFC 3339 date-time with a time zone offset, returned in UTC."""
    parsed: datetime | None = None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and _RFC3339_DATE_TIME.match(value):
        try:
            parsed = datetime.fromisoformat(value.replace("z", "Z"))
        except ValueError:
            parsed = None
    if parsed is None:
        raise InvalidInput(
            f"malformed date-time {value!r}: expected RFC 3339, e.g. 2026-03-01T09:30:00Z",
            rule="malformed-date",
            field=field,
            values={"value": value},
        )
    if parsed.tzinfo is None:
        raise InvalidInput(
            f"date-time {value!r} has no time zone offset; add Z or +hh:mm",
            rule="malformed-date",
            field=field,
            values={"value": value},
        )
    return parsed.astimezone(UTC)


def parse_date(value: Any, field: str) -> date:
    """A calendar date, YYYY-MM-DD."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _FULL_DATE.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidInput(
        f"malformed date {value!r}: expected YYYY-MM-DD",
        rule="malformed-date",
        field=field,
        values={"value": value},
    )


def format_datetime(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix: the one form the ledger stores."""
    if moment.tzinfo is UTC:  # already in UTC (the ledger's clocks): isoformat ends in +00:00
        return moment.isoformat()[:-6] + "Z"
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def parse_sha256(value: Any, field: str) -> str:
    if isinstance(value, str) and _SHA256_HEX.match(value):
        return value.lower()
    raise InvalidInput(
        f"{field} must be 64 hexadecimal characters (a SHA-256 digest)",
        rule="invalid-digest",
        field=field,
        values={"value": value},
    )


def parse_string_list(value: Any, field: str, *, max_len: int = 500) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise InvalidInput(f"{field} must be a list of strings", rule="invalid-field", field=field)
    if len(value) > _MAX_LIST:
        raise InvalidInput(
            f"{field} has {len(value)} items; the limit is {_MAX_LIST}",
            rule="invalid-field",
            field=field,
        )
    return tuple(
        item if is_plain_text(item, max_len) else parse_text(item, f"{field}[{i}]", max_len=max_len) or ""
        for i, item in enumerate(value)
    )


def _require_object(value: Any, field: str, allowed: Iterable[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be an object", rule="invalid-field", field=field)
    allowed = allowed if isinstance(allowed, frozenset) else frozenset(allowed)
    if value.keys() <= allowed:
        return value
    unknown = set(value) - allowed
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidInput(
            f"unknown field {name!r} in {field}", rule="invalid-field", field=f"{field}.{name}"
        )
    return value


_PURPOSE_FIELDS = frozenset({"proceeding", "description"})
_HANDLING_FIELDS = frozenset({"confidential", "written_authorization_required", "use_restrictions"})


@dataclass(frozen=True)
class Purpose:
    """The proceeding and purpose the data serve (art. 40 §15, §19 specialty)."""

    proceeding: str
    description: str | None = None

    @classmethod
    def parse(cls, value: Any, field: str) -> Purpose:
        data = _require_object(value, field, _PURPOSE_FIELDS)
        if not data:
            raise InvalidInput(f"{field} is required", rule="missing-field", field=field)
        proceeding, description = data.get("proceeding"), data.get("description")
        if not is_plain_text(proceeding, 200):
            proceeding = parse_text(proceeding, f"{field}.proceeding", max_len=200) or ""
        if description is not None and not is_plain_text(description):
            description = parse_text(description, f"{field}.description", required=False)
        return cls(proceeding=str(proceeding), description=description)

    def as_dict(self) -> dict[str, Any]:
        return {"proceeding": self.proceeding, "description": self.description}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Purpose:
        return cls(data["proceeding"], data.get("description"))


@dataclass(frozen=True)
class Handling:
    """Handling conditions set by the sender (art. 40 §5, §20; art. 36 §3)."""

    confidential: bool = False
    written_authorization_required: bool = False
    use_restrictions: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: Any, field: str) -> Handling:
        data = _require_object(value, field, _HANDLING_FIELDS)
        for flag in ("confidential", "written_authorization_required"):
            if flag in data and not isinstance(data[flag], bool):
                raise InvalidInput(
                    f"{field}.{flag} must be true or false", rule="invalid-field",
                    field=f"{field}.{flag}",
                )
        return cls(
            confidential=bool(data.get("confidential", False)),
            written_authorization_required=bool(data.get("written_authorization_required", False)),
            use_restrictions=parse_string_list(
                data.get("use_restrictions"), f"{field}.use_restrictions"
            ),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "confidential": self.confidential,
            "written_authorization_required": self.written_authorization_required,
            "use_restrictions": list(self.use_restrictions),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Handling:
        return cls(
            data["confidential"],
            data["written_authorization_required"],
            tuple(data["use_restrictions"]),
        )


@dataclass(frozen=True)
class WrittenInstrument:
    """A document reference and the SHA-256 digest of that document (art. 36 §3)."""

    reference: str
    sha256: str

    @classmethod
    def parse(cls, value: Any, field: str) -> WrittenInstrument | None:
        if value is None:
            return None
        data = _require_object(value, field, ("reference", "sha256"))
        return cls(
            reference=parse_text(data.get("reference"), f"{field}.reference", max_len=500) or "",
            sha256=parse_sha256(data.get("sha256"), f"{field}.sha256"),
        )

    def as_dict(self) -> dict[str, str]:
        return {"reference": self.reference, "sha256": self.sha256}


@dataclass(frozen=True)
class GrantConditions:
    """Conditions the origin may set on a grant (docs/DOMAIN.md, point 4)."""

    valid_until: datetime | None = None
    max_transfers: int | None = None
    data_categories: tuple[str, ...] | None = None
    purpose: Purpose | None = None
    written_instrument: WrittenInstrument | None = None
    further_conditions: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: Any, field: str = "conditions") -> GrantConditions:
        data = _require_object(
            value,
            field,
            (
                "valid_until",
                "max_transfers",
                "data_categories",
                "purpose",
                "written_instrument",
                "further_conditions",
            ),
        )
        max_transfers = data.get("max_transfers")
        if max_transfers is not None and (
            not isinstance(max_transfers, int) or isinstance(max_transfers, bool) or max_transfers < 1
        ):
            raise InvalidInput(
                f"{field}.max_transfers must be a positive integer, got {max_transfers!r}",
                rule="invalid-field",
                field=f"{field}.max_transfers",
            )
        valid_until = data.get("valid_until")
        categories = data.get("data_categories")
        purpose = data.get("purpose")
        return cls(
            valid_until=(
                parse_datetime(valid_until, f"{field}.valid_until") if valid_until is not None else None
            ),
            max_transfers=max_transfers,
            data_categories=(
                parse_categories(categories, f"{field}.data_categories")
                if categories is not None
                else None
            ),
            purpose=Purpose.parse(purpose, f"{field}.purpose") if purpose is not None else None,
            written_instrument=WrittenInstrument.parse(
                data.get("written_instrument"), f"{field}.written_instrument"
            ),
            further_conditions=parse_string_list(
                data.get("further_conditions"), f"{field}.further_conditions"
            ),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "valid_until": format_datetime(self.valid_until) if self.valid_until else None,
            "max_transfers": self.max_transfers,
            "data_categories": list(self.data_categories) if self.data_categories is not None else None,
            "purpose": self.purpose.as_dict() if self.purpose else None,
            "written_instrument": self.written_instrument.as_dict() if self.written_instrument else None,
            "further_conditions": list(self.further_conditions),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GrantConditions:
        instrument = data.get("written_instrument")
        return cls(
            valid_until=datetime.fromisoformat(data["valid_until"]) if data.get("valid_until") else None,
            max_transfers=data.get("max_transfers"),
            data_categories=tuple(data["data_categories"]) if data.get("data_categories") is not None else None,
            purpose=Purpose.from_dict(data["purpose"]) if data.get("purpose") else None,
            written_instrument=WrittenInstrument(**instrument) if instrument else None,
            further_conditions=tuple(data.get("further_conditions") or ()),
        )


_EMPTY: tuple[Any, ...] = (None, "", [], {})  # what a required field may not be

TRANSFER_FIELDS = (
    "sender",
    "recipient",
    "legal_basis",
    "request_reference",
    "purpose",
    "data_categories",
    "subjects",
    "dataset_sha256",
    "item_count",
    "handling",
    "retention_until",
    "transferred_at",
    "justification",
    "ordered_by",
    "parent_transfer_id",
    "authorization_id",
)


_TRANSFER_FIELD_SET = frozenset(TRANSFER_FIELDS)
_TRANSFER_REQUIRED = ("sender", "recipient", "legal_basis", "purpose", "data_categories", "dataset_sha256")


@dataclass(frozen=True)
class TransferDraft:
    """A transfer as a recording system submits it, parsed and validated."""

    sender: Actor
    recipient: Actor
    legal_basis: str
    purpose: Purpose
    data_categories: tuple[str, ...]
    dataset_sha256: str
    transferred_at: datetime
    request_reference: str | None = None
    subjects: tuple[str, ...] = ()
    item_count: int | None = None
    handling: Handling = field(default_factory=Handling)
    retention_until: date | None = None
    justification: str | None = None
    ordered_by: str | None = None
    parent_transfer_id: UUID | None = None
    authorization_id: UUID | None = None

    @classmethod
    def parse(cls, data: Any, *, now: datetime) -> TransferDraft:
        data = _require_object(data, "transfer", _TRANSFER_FIELD_SET)
        for required in _TRANSFER_REQUIRED:
            if data.get(required) in _EMPTY:
                raise InvalidInput(f"{required} is required", rule="missing-field", field=required)
        item_count = data.get("item_count")
        if item_count is not None and (
            not isinstance(item_count, int) or isinstance(item_count, bool) or item_count < 0
        ):
            raise InvalidInput(
                f"item_count must be a non-negative integer, got {item_count!r}",
                rule="invalid-field",
                field="item_count",
            )
        transferred_at = (
            parse_datetime(data["transferred_at"], "transferred_at")
            if data.get("transferred_at") is not None
            else now
        )
        if transferred_at > now + CLOCK_SKEW:
            raise InvalidInput(
                f"transferred_at {format_datetime(transferred_at)} lies in the future "
                f"(ledger time {format_datetime(now)})",
                rule="time-in-future",
                field="transferred_at",
            )
        retention = data.get("retention_until")
        return cls(
            sender=Actor.parse(data["sender"], "sender", officer_required=True),
            recipient=Actor.parse(data["recipient"], "recipient", officer_required=False),
            legal_basis=parse_legal_basis(data["legal_basis"]),
            purpose=Purpose.parse(data["purpose"], "purpose"),
            data_categories=parse_categories(data["data_categories"], "data_categories"),
            dataset_sha256=parse_sha256(data["dataset_sha256"], "dataset_sha256"),
            transferred_at=transferred_at,
            request_reference=parse_text(
                data.get("request_reference"), "request_reference", required=False, max_len=200
            ),
            subjects=parse_string_list(data.get("subjects"), "subjects", max_len=200),
            item_count=item_count,
            handling=Handling.parse(data.get("handling"), "handling"),
            retention_until=parse_date(retention, "retention_until") if retention is not None else None,
            justification=parse_text(data.get("justification"), "justification", required=False),
            ordered_by=parse_text(data.get("ordered_by"), "ordered_by", required=False, max_len=200),
            parent_transfer_id=parse_optional_uuid(data.get("parent_transfer_id"), "parent_transfer_id"),
            authorization_id=parse_optional_uuid(data.get("authorization_id"), "authorization_id"),
        )


@dataclass(frozen=True)
class AuthorizationRequestDraft:
    """The holder's notification of intention and request (art. 36 §3)."""

    parent_transfer_id: UUID
    requested_by: Actor
    recipient: Actor
    purpose: Purpose
    data_categories: tuple[str, ...]
    justification: str

    @classmethod
    def parse(cls, data: Any) -> AuthorizationRequestDraft:
        data = _require_object(
            data,
            "authorization_request",
            ("parent_transfer_id", "requested_by", "recipient", "purpose", "data_categories", "justification"),
        )
        for required in ("parent_transfer_id", "requested_by", "recipient", "purpose", "data_categories"):
            if data.get(required) in (None, "", [], {}):
                raise InvalidInput(f"{required} is required", rule="missing-field", field=required)
        return cls(
            parent_transfer_id=parse_uuid(data["parent_transfer_id"], "parent_transfer_id"),
            requested_by=Actor.parse(data["requested_by"], "requested_by", officer_required=True),
            recipient=Actor.parse(data["recipient"], "recipient", officer_required=False),
            purpose=Purpose.parse(data["purpose"], "purpose"),
            data_categories=parse_categories(data["data_categories"], "data_categories"),
            justification=parse_text(data.get("justification"), "justification") or "",
        )


_KEY_REF = re.compile(r"^[^\s+]{1,200}\+[0-9a-f]{8}$")


@dataclass(frozen=True)
class DecisionSignature:
    """A Party's Ed25519 signature over the canonical decision document.

    ``key`` names the signing key as ``<key name>+<8 hex key id>`` (the first
    two parts of its C2SP vkey); ``value`` is the 64-byte signature.
    """

    key: str
    value: bytes

    @classmethod
    def parse(cls, value: Any, field: str) -> DecisionSignature | None:
        if value is None:
            return None
        data = _require_object(value, field, ("key", "value"))
        key = data.get("key")
        if not isinstance(key, str) or not _KEY_REF.match(key):
            raise InvalidInput(
                f"{field}.key must name a registered key as <key name>+<8 hex key id>",
                rule="invalid-field",
                field=f"{field}.key",
            )
        raw = data.get("value")
        try:
            signature = base64.b64decode(raw, validate=True) if isinstance(raw, str) else b""
        except binascii.Error:
            signature = b""
        if len(signature) != 64 or base64.b64encode(signature).decode() != raw:
            raise InvalidInput(
                f"{field}.value must be the standard base64 of a 64-byte Ed25519 signature",
                rule="invalid-field",
                field=f"{field}.value",
            )
        return cls(key, signature)

    def as_dict(self) -> dict[str, str]:
        return {"key": self.key, "value": base64.b64encode(self.value).decode()}


@dataclass(frozen=True)
class DecisionDraft:
    """The origin's answer to a request: granted with conditions, or refused with reasons."""

    decision: str
    decided_by: Actor
    reasons: str | None
    conditions: GrantConditions
    signature: DecisionSignature | None = None

    @classmethod
    def parse(cls, data: Any) -> DecisionDraft:
        data = _require_object(
            data, "decision", ("decision", "decided_by", "reasons", "conditions", "signature")
        )
        decision = data.get("decision")
        if decision not in ("granted", "refused"):
            raise InvalidInput(
                f"decision must be 'granted' or 'refused', got {decision!r}",
                rule="invalid-field",
                field="decision",
            )
        if data.get("decided_by") is None:
            raise InvalidInput("decided_by is required", rule="missing-field", field="decided_by")
        conditions = GrantConditions.parse(data.get("conditions"))
        if decision == "refused" and data.get("conditions"):
            raise InvalidInput(
                "a refusal carries reasons, not conditions", rule="invalid-field", field="conditions"
            )
        return cls(
            decision=decision,
            decided_by=Actor.parse(data["decided_by"], "decided_by", officer_required=True),
            reasons=parse_text(data.get("reasons"), "reasons", required=False),
            conditions=conditions,
            signature=DecisionSignature.parse(data.get("signature"), "signature"),
        )


@dataclass(frozen=True)
class RevocationDraft:
    revoked_by: Actor
    reasons: str

    @classmethod
    def parse(cls, data: Any) -> RevocationDraft:
        data = _require_object(data, "revocation", ("revoked_by", "reasons"))
        if data.get("revoked_by") is None:
            raise InvalidInput("revoked_by is required", rule="missing-field", field="revoked_by")
        return cls(
            revoked_by=Actor.parse(data["revoked_by"], "revoked_by", officer_required=True),
            reasons=parse_text(data.get("reasons"), "reasons") or "",
        )
