"""Value objects and the parsing of every input field, with precise errors.

Every command's input is parsed here, once, into immutable values; the outer
layers (HTTP schemas, CLI) only shape requests. A parse error names the field
(dotted path) and the rule it breaks.
"""

from __future__ import annotations

import base64
import functools
import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal, Self, get_args
from uuid import UUID

from pydantic import (
    AfterValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticKnownError

from domain.custody import UseKind, parse_use_restriction
from domain.errors import InvalidInput
from domain.parties import Actor, Official, is_plain_text, parse_text
from domain.personal import ErasureGround
from domain.regimes import DEFAULT_REGIME, parse_regime
from domain.validation import FIELD, ShapeRule, Value, checked, refusal

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


def parse_categories(value: Any, field: str) -> tuple[str, ...]:
    """A non-empty set of art. 2 data categories, returned sorted."""
    if not isinstance(value, (list, tuple)) or not value:
        raise InvalidInput(
            f"{field} must be a non-empty list of data categories "
            f"({', '.join(DATA_CATEGORIES)})",
            rule="invalid-field",
            field=field,
        )
    return tuple(sorted({parse_category(item, f"{field}[{i}]") for i, item in enumerate(value)}))


def parse_category(value: Any, field: str) -> str:
    """One art. 2 data category."""
    if value not in DATA_CATEGORIES:
        raise InvalidInput(
            f"unknown data category {value!r}; known: {', '.join(DATA_CATEGORIES)}",
            rule="unknown-data-category",
            field=field,
            values={"value": value},
        )
    return str(value)


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


# -- the values of commands (domain/validation.py: one validation model) ----------

DataCategory = Literal["subscriber", "traffic", "content", "other_personal"]
assert get_args(DataCategory) == DATA_CATEGORIES


def _not_a_string(value: Any, max_length: int) -> None:
    """pydantic's own errors for a JSON text field that is not a string or too long."""
    if not isinstance(value, str):
        raise PydanticKnownError("string_type")
    if len(value) > max_length:
        raise PydanticKnownError("string_too_long", {"max_length": max_length})


def _date_time(value: Any) -> datetime:
    if not isinstance(value, datetime):
        _not_a_string(value, 40)
    return checked(parse_datetime)(value)


def _date(value: Any) -> date:
    if not isinstance(value, date):
        _not_a_string(value, 10)
    return checked(parse_date)(value)


def _id(value: Any) -> UUID:
    if not isinstance(value, UUID):
        _not_a_string(value, 64)
    return checked(parse_uuid)(value)


#: An RFC 3339 date-time in JSON (a string of at most 40 characters); a UTC ``datetime`` in the domain.
_NOT_TEXT = ("string_type", "string_too_long")
DateTimeText = Annotated[datetime, ShapeRule("malformed-date", _NOT_TEXT, parse_datetime),
                         PlainValidator(_date_time), PlainSerializer(format_datetime, when_used="json"),
                         WithJsonSchema({"type": "string", "maxLength": 40})]
#: A calendar date in JSON, YYYY-MM-DD; a ``date`` in the domain.
DateText = Annotated[date, ShapeRule("malformed-date", _NOT_TEXT, parse_date),
                     PlainValidator(_date), PlainSerializer(date.isoformat, when_used="json"),
                     WithJsonSchema({"type": "string", "maxLength": 10})]
#: An id in JSON (a string of at most 64 characters); a ``UUID`` in the domain.
IdText = Annotated[UUID, ShapeRule("invalid-id", _NOT_TEXT, parse_uuid),
                   PlainValidator(_id), PlainSerializer(str, when_used="json"),
                   WithJsonSchema({"type": "string", "maxLength": 64})]


def _text(max_len: int = 2000, required: bool = True) -> AfterValidator:
    """Free text (no control characters but newline and tab, not blank); optional text ``""`` is none."""
    def text(value: str | None) -> str | None:
        if value is None or is_plain_text(value, max_len):
            return value
        return checked(functools.partial(parse_text, max_len=max_len, required=required))(value)
    return AfterValidator(text)


def _categories(value: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(set(value)))


Text = Annotated[str, _text()]
OptionalText = Annotated[str | None, _text(required=False)]
#: A set of art. 2 data categories, kept sorted.
Categories = Annotated[tuple[DataCategory, ...], ShapeRule("unknown-data-category", ("literal_error",), parse_category),
                       Field(min_length=1, max_length=4, strict=False), AfterValidator(_categories)]
_SHA256_PATTERN = r"^[0-9a-fA-F]{64}$"
#: A SHA-256 digest, 64 hexadecimal characters, kept in lower case.
Sha256 = Annotated[str, ShapeRule("invalid-digest", ("string_type", "string_pattern_mismatch"), parse_sha256),
                   AfterValidator(str.lower)]


def _short_text_items(max_len: int) -> Any:
    return Annotated[str, _text(max_len)]


class Purpose(Value):
    """The proceeding and purpose the data serve (art. 40 §15, §19 specialty)."""

    NOUN = "purpose"

    proceeding: Annotated[str, _text(200)] = Field(min_length=1, max_length=200)
    description: OptionalText = Field(default=None, max_length=2000)

    def as_dict(self) -> dict[str, Any]:
        return {"proceeding": self.proceeding, "description": self.description}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Purpose:
        return cls.model_construct(proceeding=data["proceeding"], description=data.get("description"))


#: One handling restriction: a code, ``H3: <text>``, or free text (an H3 restriction).
UseRestriction = Annotated[str, _text(500), AfterValidator(checked(parse_use_restriction))]


class Handling(Value):
    """Handling conditions set by the sender (art. 40 §5, §20; art. 36 §3)."""

    NOUN = "handling"

    confidential: bool = False
    written_authorization_required: bool = Field(
        default=False, description="The sender requires onward transfers to be authorized in writing"
    )
    use_restrictions: tuple[UseRestriction, ...] = Field(
        default_factory=tuple, max_length=100, strict=False,
        description="Handling codes: H0, H1, H2, or \"H3: <text>\" (domain/custody.py); other text is an H3 "
        "restriction as written. An onward transfer carries its parent's restrictions and may add more")

    def as_dict(self) -> dict[str, Any]:
        return {
            "confidential": self.confidential,
            "written_authorization_required": self.written_authorization_required,
            "use_restrictions": list(self.use_restrictions),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Handling:
        return cls.model_construct(
            confidential=data["confidential"],
            written_authorization_required=data["written_authorization_required"],
            use_restrictions=tuple(data["use_restrictions"]),
        )


class WrittenInstrument(Value):
    """A document reference and the SHA-256 digest of that document (art. 36 §3)."""

    NOUN = "written instrument"

    reference: Annotated[str, _text(500)] = Field(min_length=1, max_length=500)
    sha256: Sha256 = Field(pattern=_SHA256_PATTERN)

    def as_dict(self) -> dict[str, str]:
        return {"reference": self.reference, "sha256": self.sha256}


class GrantConditions(Value):
    """Conditions the origin may set on a grant (docs/DOMAIN.md, point 4)."""

    NOUN = "conditions"

    valid_until: DateTimeText | None = Field(default=None, description="RFC 3339 date-time",
                                             json_schema_extra={"format": "date-time"})
    max_transfers: int | None = Field(default=None, ge=1, le=2**31 - 1)
    data_categories: Categories | None = None
    purpose: Purpose | None = None
    written_instrument: WrittenInstrument | None = None
    further_conditions: tuple[_short_text_items(500), ...] = Field(  # type: ignore[valid-type]
        default_factory=tuple, max_length=100, strict=False)

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
        return cls.model_construct(
            valid_until=datetime.fromisoformat(data["valid_until"]) if data.get("valid_until") else None,
            max_transfers=data.get("max_transfers"),
            data_categories=tuple(data["data_categories"]) if data.get("data_categories") is not None else None,
            purpose=Purpose.from_dict(data["purpose"]) if data.get("purpose") else None,
            written_instrument=WrittenInstrument.model_construct(**instrument) if instrument else None,
            further_conditions=tuple(data.get("further_conditions") or ()),
        )


def check_not_in_future(moment: datetime, now: datetime, field: str) -> None:
    """A reported time may lie at most :data:`CLOCK_SKEW` after the ledger's clock."""
    if moment > now + CLOCK_SKEW:
        raise InvalidInput(
            f"{field} {format_datetime(moment)} lies in the future (ledger time {format_datetime(now)})",
            rule="time-in-future",
            field=field,
        )


class UrgentGrounds(Value):
    """Why an onward transfer was made without prior authorization (LED art. 35(2) only)."""

    NOUN = "urgent"

    threat: Literal["public-security", "essential-interests"] = Field(
        description="An immediate and serious threat to public security, or to a Member State's essential interests")
    grounds: Text = Field(min_length=1, max_length=2000, description="The threat, in words")
    why_no_prior_authorization: Text = Field(min_length=1, max_length=2000,
                                             description="Why the authorization could not be obtained in good time")


class TransferDraft(Value):
    """A transfer as a recording system submits it (``POST /v1/transfers``), checked."""

    NOUN = "transfer"

    sender: Official
    recipient: Actor
    legal_basis: Annotated[str, ShapeRule("unknown-legal-basis", _NOT_TEXT, parse_legal_basis),
                           AfterValidator(checked(parse_legal_basis))] = Field(
        min_length=1, max_length=206,
        description="art40, art40-4 (spontaneous), art41 ... art47, or treaty:<reference>",
    )
    request_reference: Annotated[str | None, _text(200, required=False)] = Field(default=None, max_length=200)
    purpose: Purpose
    data_categories: Categories
    subjects: tuple[_short_text_items(200), ...] = Field(  # type: ignore[valid-type]
        default_factory=tuple, max_length=1000, description="References to persons", strict=False)
    dataset_sha256: Sha256 = Field(pattern=_SHA256_PATTERN, description="SHA-256 of the data transferred")
    item_count: int | None = Field(default=None, ge=0, le=2**53 - 1)
    handling: Handling | None = None
    retention_until: DateText | None = Field(default=None, description="YYYY-MM-DD",
                                             json_schema_extra={"format": "date"})
    transferred_at: DateTimeText | None = Field(
        default=None, description="RFC 3339 date-time; defaults to the time of recording",
        json_schema_extra={"format": "date-time"},
    )
    justification: OptionalText = Field(default=None, max_length=2000)
    ordered_by: Annotated[str | None, _text(200, required=False)] = Field(
        default=None, max_length=200, description="Who ordered the transfer")
    parent_transfer_id: IdText | None = Field(default=None, description="Set for onward transfers")
    authorization_id: IdText | None = Field(
        default=None, description="The origin's grant covering this onward transfer"
    )
    consent_id: IdText | None = Field(
        default=None, description="For an onward transfer of H2 data: the consent of the Party that sent them "
        "to the holder (a consent request naming this recipient)")
    regime: Annotated[str, ShapeRule("unknown-regime", _NOT_TEXT, parse_regime),
                      AfterValidator(checked(parse_regime))] = Field(
        default=DEFAULT_REGIME, max_length=208,
        description="un-cybercrime (default), eu-led, budapest-p2 or treaty:<reference> (domain/regimes.py)")
    urgent: UrgentGrounds | None = Field(
        default=None, description="eu-led only (LED art. 35(2)): an onward transfer made without prior "
        "authorization for an immediate and serious threat; the authorizing State is then informed without delay")

    @classmethod
    def parse(cls, value: Any, field: str | None = None, *, now: datetime | None = None) -> Self:
        """``value`` checked, and as of ``now`` (see :meth:`as_of`) when given."""
        draft = super().parse(value, field)
        return draft if now is None else draft.as_of(now)

    def as_of(self, now: datetime) -> Self:
        """The transfer as recorded at ``now``: made then unless it says when, and not later."""
        if self.transferred_at is None:
            return self.model_copy(update={"transferred_at": now})
        check_not_in_future(self.transferred_at, now, "transferred_at")
        return self


class AuthorizationRequestDraft(Value):
    """The holder's notification of intention and request (art. 36 §3)."""

    NOUN = "authorization request"

    parent_transfer_id: IdText = Field(description="The transfer whose data the holder received")
    requested_by: Official
    recipient: Actor
    purpose: Purpose
    data_categories: Categories
    justification: Text = Field(min_length=1, max_length=2000)


_KEY_REF = re.compile(r"^[^\s+]{1,200}\+[0-9a-f]{8}$")
_SIGNATURE_PATTERN = r"^[A-Za-z0-9+/]{86}==$"
_SIGNATURE = re.compile(_SIGNATURE_PATTERN)


def _key_ref(value: str) -> str:
    if not _KEY_REF.match(value):
        raise refusal("invalid-field", FIELD + " must name a registered key as <key name>+<8 hex key id>")
    return value


def _base64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _signature_value(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise PydanticKnownError("string_type")
    if not _SIGNATURE.match(value):
        raise PydanticKnownError("string_pattern_mismatch", {"pattern": _SIGNATURE_PATTERN})
    signature = base64.b64decode(value)
    if base64.b64encode(signature).decode() != value:
        raise refusal("invalid-field", FIELD + " must be the standard base64 of a 64-byte Ed25519 signature")
    return signature


class DecisionSignature(Value):
    """A Party's Ed25519 signature over the canonical decision document.

    ``key`` names the signing key as ``<key name>+<8 hex key id>`` (the first
    two parts of its C2SP vkey); ``value`` is the 64-byte signature (standard
    base64 in JSON).
    """

    NOUN = "signature"

    key: Annotated[str, AfterValidator(_key_ref)] = Field(
        min_length=3, max_length=400,
        description="<key name>+<8 hex key id>: a key the origin registered to sign decisions with")
    value: Annotated[bytes, PlainValidator(_signature_value), PlainSerializer(_base64, when_used="json"),
                     WithJsonSchema({"type": "string", "pattern": _SIGNATURE_PATTERN})] = Field(
        description="Standard base64 of the 64-byte Ed25519 signature over the canonical decision document "
        "(docs/FORMAT.md); a grant signed by the origin counts as its written instrument",
    )

    def as_dict(self) -> dict[str, str]:
        return {"key": self.key, "value": _base64(self.value)}


class DecisionDraft(Value):
    """The origin's answer to a request: granted with conditions, or refused with reasons."""

    NOUN = "decision"

    decision: Literal["granted", "refused"]
    decided_by: Official
    reasons: OptionalText = Field(default=None, max_length=2000, description="Required to refuse (art. 40 §25)")
    conditions: GrantConditions | None = None
    signature: DecisionSignature | None = Field(default=None, description="The origin's signature of the decision")

    @field_validator("conditions", mode="before")
    @classmethod
    def _no_conditions_on_refusal(cls, value: Any, info: ValidationInfo) -> Any:
        if value and info.data.get("decision") == "refused":
            raise refusal("invalid-field", "a refusal carries reasons, not conditions")
        return value

    @property
    def granted_conditions(self) -> GrantConditions:
        """The conditions of a grant (none set: a grant without conditions)."""
        return self.conditions or GrantConditions()


class RevocationDraft(Value):
    """The origin revokes its grant, with reasons."""

    NOUN = "revocation"

    revoked_by: Official
    reasons: Text = Field(min_length=1, max_length=2000)


class ErasureDraft(Value):
    """An authority of the sender or recipient erases a transfer's personal data (Order 949 §15)."""

    NOUN = "erasure"

    erased_by: Official
    ground: ErasureGround = Field(description="Why the data are erased (Order 949 §15)")
    reasons: Text = Field(min_length=1, max_length=2000)


class RestrictionDraft(Value):
    """An evidence hold placed on, or lifted from, a transfer's personal data (LED art. 16(3))."""

    NOUN = "restriction"

    by: Official = Field(description="Who places or lifts the hold")
    reasons: Text = Field(min_length=1, max_length=2000)


class AcknowledgementDraft(Value):
    """The addressee of an erasure notice acknowledges it."""

    NOUN = "acknowledgement"

    acknowledged_by: Official


class UseNotice(Value):
    """The notice to the requested Party of an exculpatory use in another proceeding (art. 40 §19)."""

    NOUN = "notice"

    notified_at: DateTimeText | None = Field(
        default=None, description="When the requested Party was told (prior notice: not after the use)",
        json_schema_extra={"format": "date-time"})
    prior_impossible: OptionalText = Field(
        default=None, max_length=2000,
        description="Why prior notice was impossible: the notice is then recorded without delay after the use")


class UseDraft(Value):
    """The recipient records a use of received data (art. 40 §19: specialty)."""

    NOUN = "use"

    proceeding: Annotated[str, _text(200)] = Field(min_length=1, max_length=200,
                                                   description="The proceeding the data are used in")
    kind: UseKind
    used_by: Official
    description: Text = Field(min_length=1, max_length=2000)
    exculpatory: bool = Field(default=False, description="The information is exculpatory for a person (art. 40 "
                              "§19, second sentence): another proceeding needs notice, not consent")
    consent_id: IdText | None = Field(default=None, description="The requested Party's consent covering this use")
    notice: UseNotice | None = None
    used_at: DateTimeText | None = Field(default=None, description="RFC 3339; defaults to the time of recording",
                                         json_schema_extra={"format": "date-time"})

    def as_of(self, now: datetime) -> Self:
        if self.used_at is None:
            return self.model_copy(update={"used_at": now})
        check_not_in_future(self.used_at, now, "used_at")
        return self


class AfterNoticeDraft(Value):
    """The notice of an exculpatory use, given after it (art. 40 §19)."""

    NOUN = "notice"

    notified_by: Official
    notified_at: DateTimeText | None = Field(default=None, description="Defaults to the time of recording",
                                             json_schema_extra={"format": "date-time"})


class ConsentRequestDraft(Value):
    """The recipient asks the requested Party's consent to use data in another way (art. 40 §19)."""

    NOUN = "consent request"

    transfer_id: IdText = Field(description="The transfer whose data would be used")
    proceeding: Annotated[str, _text(200)] = Field(min_length=1, max_length=200)
    requested_by: Official
    reasons: Text = Field(min_length=1, max_length=2000)
    uses: tuple[UseKind, ...] = Field(default=("investigation", "evidence-in-proceedings", "disclosure"),
                                      min_length=1, max_length=3, strict=False,
                                      description="The kinds of use asked for (all by default)")
    recipient: Actor | None = Field(default=None, description="H2: the Party the holder would pass the data on "
                                    "to; the consent is then to pass them on (in this proceeding), not to use them")


class ConsentDecisionDraft(Value):
    """The requested Party grants (with conditions) or refuses (with reasons) a consent (art. 40 §25)."""

    NOUN = "decision"

    decision: Literal["granted", "refused"]
    decided_by: Official
    conditions: tuple[_short_text_items(500), ...] = Field(  # type: ignore[valid-type]
        default_factory=tuple, max_length=50, strict=False, description="Conditions of a grant")
    reasons: OptionalText = Field(default=None, max_length=2000, description="Required for a refusal")
