"""Public request and response schemas (docs/API.md, "Bodies": field names are a contract).

These shape and document the JSON; the domain parses the values (Party
codes, dates, categories...) and refuses bad ones with a precise rule, so
constraints here stay at the level of JSON types, lengths and enumerations.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DataCategory = Literal["subscriber", "traffic", "content", "other_personal"]

_TEXT = Field(min_length=1, max_length=2000)
_SHORT = Field(min_length=1, max_length=200)


class Strict(BaseModel):
    """Input: no unknown fields, and no coercion (``"yes"`` is not a boolean, ``"5"`` not an integer),
    so the API accepts exactly what its schema describes."""

    model_config = ConfigDict(extra="forbid", strict=True)


class SenderIn(Strict):
    party: str = Field(min_length=1, max_length=16, description="ISO 3166-1 alpha-2 code or organization, e.g. DE")
    authority: str = Field(min_length=3, max_length=140, description="<PARTY>/<NAME>, e.g. DE/BKA")
    officer: str = Field(min_length=1, max_length=200, description="The person acting")


class RecipientIn(Strict):
    party: str = Field(min_length=1, max_length=16)
    authority: str = Field(min_length=3, max_length=140)
    officer: str | None = Field(default=None, min_length=1, max_length=200)


class PurposeIn(Strict):
    proceeding: str = _SHORT
    description: str | None = Field(default=None, max_length=2000)


class HandlingIn(Strict):
    confidential: bool = False
    written_authorization_required: bool = Field(
        default=False, description="The sender requires onward transfers to be authorized in writing"
    )
    use_restrictions: list[str] = Field(default_factory=list, max_length=100)


class TransferIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "sender": {"party": "DE", "authority": "DE/BKA", "officer": "KHK Weber"},
        "recipient": {"party": "FR", "authority": "FR/OFAC"},
        "legal_basis": "art44",
        "request_reference": "FR-MLA-2026-117",
        "purpose": {"proceeding": "FR-PNC-2026-0417", "description": "ransomware investigation"},
        "data_categories": ["subscriber", "traffic"],
        "subjects": ["subject-1"],
        "dataset_sha256": "5d" * 32,
        "handling": {"written_authorization_required": True},
    }]})

    sender: SenderIn
    recipient: RecipientIn
    legal_basis: str = Field(
        min_length=1, max_length=206,
        description="art40, art40-4 (spontaneous), art41 ... art47, or treaty:<reference>",
    )
    request_reference: str | None = Field(default=None, max_length=200)
    purpose: PurposeIn
    data_categories: list[DataCategory] = Field(min_length=1, max_length=4)
    subjects: list[str] = Field(default_factory=list, max_length=1000, description="References to persons")
    dataset_sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$", description="SHA-256 of the data transferred")
    item_count: int | None = Field(default=None, ge=0, le=2**53 - 1)
    handling: HandlingIn | None = None
    retention_until: str | None = Field(default=None, description="YYYY-MM-DD", max_length=10,
                                         json_schema_extra={"format": "date"})
    transferred_at: str | None = Field(
        default=None, max_length=40, description="RFC 3339 date-time; defaults to the time of recording",
        json_schema_extra={"format": "date-time"},
    )
    justification: str | None = Field(default=None, max_length=2000)
    ordered_by: str | None = Field(default=None, max_length=200, description="Who ordered the transfer")
    parent_transfer_id: str | None = Field(default=None, max_length=64, description="Set for onward transfers")
    authorization_id: str | None = Field(
        default=None, max_length=64, description="The origin's grant covering this onward transfer"
    )


class TransferOut(BaseModel):
    id: str
    sender: dict[str, str]
    recipient: dict[str, str]
    legal_basis: str
    request_reference: str | None
    purpose: dict[str, Any]
    data_categories: list[str]
    subjects: list[str]
    dataset_sha256: str
    item_count: int | None
    handling: dict[str, Any]
    retention_until: str | None
    transferred_at: str
    justification: str | None
    ordered_by: str | None
    parent_transfer_id: str | None
    authorization_id: str | None
    origin: str = Field(description="The first transferring Party of the data's lineage (art. 36 §3)")
    root_transfer_id: str
    depth: int = Field(description="Hops from the lineage's root (0 for a first transfer)")
    leaf_index: int | None = Field(description="Index of the transfer's leaf in the ledger")
    recorded_at: str | None


class TransferDetailOut(TransferOut):
    ancestors: list[TransferOut] = Field(
        description="Parent first, up to the lineage's root: those the key may read (a Party reads the "
        "transfers it sent, received or originated)"
    )


class LineageOut(BaseModel):
    id: str = Field(description="The transfer asked about")
    origin: str = Field(description="The first transferring Party of the lineage (art. 36 §3)")
    root_transfer_id: str
    transfer: TransferOut
    ancestors: list[TransferOut] = Field(description="Parent first, up to the root: those the key may read")
    descendants: list[TransferOut] = Field(
        description="Onward transfers of its data, at any depth, in commit order: those the key may read"
    )


class TransferPage(BaseModel):
    items: list[TransferOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at the end")


class ActorIn(Strict):
    party: str = Field(min_length=1, max_length=16)
    authority: str = Field(min_length=3, max_length=140)
    officer: str = Field(min_length=1, max_length=200)


class AuthorizationRequestIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "parent_transfer_id": "0b5c6a4e-3f4d-4b8a-9c1e-2d7f8a9b0c1d",
        "requested_by": {"party": "FR", "authority": "FR/OFAC", "officer": "Cdt Martin"},
        "recipient": {"party": "INTERPOL", "authority": "INTERPOL/IPSG"},
        "purpose": {"proceeding": "FR-PNC-2026-0417"},
        "data_categories": ["traffic"],
        "justification": "cross-match against INTERPOL databases",
    }]})

    parent_transfer_id: str = Field(max_length=64, description="The transfer whose data the holder received")
    requested_by: ActorIn
    recipient: RecipientIn
    purpose: PurposeIn
    data_categories: list[DataCategory] = Field(min_length=1, max_length=4)
    justification: str = _TEXT


class WrittenInstrumentIn(Strict):
    reference: str = Field(min_length=1, max_length=500)
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")


class ConditionsIn(Strict):
    valid_until: str | None = Field(default=None, max_length=40, description="RFC 3339 date-time",
                                     json_schema_extra={"format": "date-time"})
    max_transfers: int | None = Field(default=None, ge=1, le=2**31 - 1)
    data_categories: list[DataCategory] | None = Field(default=None, min_length=1, max_length=4)
    purpose: PurposeIn | None = None
    written_instrument: WrittenInstrumentIn | None = None
    further_conditions: list[str] = Field(default_factory=list, max_length=100)


class DecisionSignatureIn(Strict):
    key: str = Field(min_length=3, max_length=400,
                     description="<key name>+<8 hex key id>: a key the origin registered to sign decisions with")
    value: str = Field(
        pattern=r"^[A-Za-z0-9+/]{86}==$",
        description="Standard base64 of the 64-byte Ed25519 signature over the canonical decision document "
        "(docs/FORMAT.md); a grant signed by the origin counts as its written instrument",
    )


class DecisionIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "decision": "granted",
        "decided_by": {"party": "DE", "authority": "DE/BfJ", "officer": "Dr. Schulz"},
        "conditions": {
            "max_transfers": 1,
            "data_categories": ["traffic"],
            "written_instrument": {"reference": "BfJ-2026-0311", "sha256": "ab" * 32},
        },
    }]})

    decision: Literal["granted", "refused"]
    decided_by: ActorIn
    reasons: str | None = Field(default=None, max_length=2000, description="Required to refuse (art. 40 §25)")
    conditions: ConditionsIn | None = None
    signature: DecisionSignatureIn | None = Field(default=None, description="The origin's signature of the decision")


class RevocationIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "revoked_by": {"party": "DE", "authority": "DE/BfJ", "officer": "Dr. Schulz"},
        "reasons": "the proceeding was closed",
    }]})

    revoked_by: ActorIn
    reasons: str = _TEXT


class AuthorizationOut(BaseModel):
    id: str = Field(description="The request's id, which is also the grant's")
    status: Literal["pending", "granted", "refused", "revoked"]
    origin: str
    parent_transfer_id: str
    root_transfer_id: str
    requested_by: dict[str, str]
    recipient: dict[str, str]
    purpose: dict[str, Any]
    data_categories: list[str]
    justification: str
    requested_at: str
    decision: dict[str, Any] | None
    conditions: dict[str, Any] | None
    revocation: dict[str, Any] | None
    uses: list[str] = Field(description="Ids of the onward transfers made under the grant")
    remaining_transfers: int | None
    version: int


class AuthorizationPage(BaseModel):
    items: list[AuthorizationOut]
    next_cursor: str | None


class FeedEvent(BaseModel):
    leaf_index: int
    leaf_hash: str = Field(description="Base64 of the RFC 9162 leaf hash")
    recorded_at: str
    originator_id: str
    originator_version: int
    topic: str
    event: dict[str, Any]


class FeedPage(BaseModel):
    items: list[FeedEvent]
    next_after: int | None = Field(description="Pass as ?after= for the next page; null at the end")


class InclusionProofOut(BaseModel):
    leaf_index: int
    tree_size: int
    leaf_hash: str
    proof: list[str]


class ConsistencyProofOut(BaseModel):
    first: int
    second: int
    proof: list[str]


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(description="/problems/<rule>, a URI reference stable per rule")
    title: str
    status: int
    detail: str = Field(description="What went wrong, for people")
    rule: str = Field(description="The rule's stable name, the last segment of type")
    field: str | None = Field(default=None, description="The offending field, dotted (sender.party)")
    instance: str | None = Field(default=None, description="The request's path")
    article: str | None = Field(default=None, description="The provision applied, e.g. art. 36 §3")
    values: dict[str, Any] | None = Field(default=None, description="The values a rule refused")
    errors: list[dict[str, str]] | None = Field(
        default=None, description="invalid-input: every offending field, with its message"
    )


class GroupCommitStats(BaseModel):
    batches: int = Field(description="Transactions written by this process's committer")
    commands: int = Field(description="Commands in them")
    largest_batch: int
    refused_overloaded: int = Field(description="Commands answered 503 `overloaded` (queue full)")
    batches_rerun: int = Field(description="Batches that could not be saved as one (another process wrote "
                               "first, or a repeated idempotency key): their commands ran again one by one")


class Health(BaseModel):
    status: Literal["ok"]
    tree_size: int
    group_commit: GroupCommitStats | None = Field(
        None, description="Group commit in this API process (each `serve` worker process has its own)"
    )
