"""Public request and response schemas (docs/API.md, "Bodies": field names are a contract).

A request body is one of the domain's own values (``domain/values.py``), under
the name the OpenAPI document has always given it: FastAPI validates it once,
with every check of the domain, and the route hands the validated value to the
application. Answers are shaped here.
"""

from __future__ import annotations

import copy
import functools
import operator
import types
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model

from domain.model import Transfer
from domain.parties import Actor, Official
from domain.referral import ReferralDraft, ReferralNoticeDraft
from domain.validation import Value
from domain.values import (
    AcknowledgementDraft,
    AfterNoticeDraft,
    AuthorizationRequestDraft,
    ConsentDecisionDraft,
    ConsentRequestDraft,
    DecisionDraft,
    DecisionSignature,
    ErasureDraft,
    GrantConditions,
    Handling,
    Purpose,
    RestrictionDraft,
    RevocationDraft,
    TransferDraft,
    UrgentGrounds,
    UseDraft,
    UseNotice,
    WrittenInstrument,
)

# -- requests: the domain's own values (domain/validation.py), under the contract's names --


def _swap(annotation: Any, names: dict[type, type]) -> Any:
    """``annotation`` with each domain model in ``names`` replaced by its contract model."""
    if isinstance(annotation, type) and annotation in names:
        return names[annotation]
    args = get_args(annotation)
    if not args:
        return annotation
    swapped = tuple(_swap(arg, names) for arg in args)
    if swapped == args:
        return annotation
    if isinstance(annotation, types.UnionType) or get_origin(annotation) is Union:
        return functools.reduce(operator.or_, swapped)
    return get_origin(annotation)[swapped]


def contract(model: type[Value], name: str, *, names: dict[type, type] | None = None,
             descriptions: dict[str, str] | None = None, example: dict[str, Any] | None = None) -> type[Value]:
    """The domain model ``model``, named ``name`` in the OpenAPI document (docs/API.md, "Bodies").

    It validates exactly as ``model`` does (it is a subclass that adds no check); nested domain
    models are replaced by their contract models (``names``), ``descriptions`` document fields,
    and ``example`` is the schema's example.
    """
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {"__module__": __name__, "__doc__": None}  # no description
    for field_name, info in model.model_fields.items():
        annotation = _swap(info.annotation, names or {})
        description = (descriptions or {}).get(field_name)
        if annotation is info.annotation and description is None:
            continue
        field = copy.copy(info)
        if description is not None:
            field.description = description
        annotations[field_name] = annotation
        namespace[field_name] = field
    namespace["__annotations__"] = annotations
    if example is not None:
        namespace["model_config"] = ConfigDict(json_schema_extra={"examples": [example]})
    return type(name, (model,), namespace)


SenderIn = contract(Official, "SenderIn", descriptions={
    "party": "ISO 3166-1 alpha-2 code or organization, e.g. DE",
    "authority": "<PARTY>/<NAME>, e.g. DE/BKA",
    "officer": "The person acting",
})
RecipientIn = contract(Actor, "RecipientIn")
ActorIn = contract(Official, "ActorIn")
PurposeIn = contract(Purpose, "PurposeIn")
HandlingIn = contract(Handling, "HandlingIn")
WrittenInstrumentIn = contract(WrittenInstrument, "WrittenInstrumentIn")
ConditionsIn = contract(GrantConditions, "ConditionsIn",
                        names={Purpose: PurposeIn, WrittenInstrument: WrittenInstrumentIn})
DecisionSignatureIn = contract(DecisionSignature, "DecisionSignatureIn")

UrgentIn = contract(UrgentGrounds, "UrgentIn")
TransferIn = contract(TransferDraft, "TransferIn", names={
    Official: SenderIn, Actor: RecipientIn, Purpose: PurposeIn, Handling: HandlingIn, UrgentGrounds: UrgentIn,
}, example={
    "sender": {"party": "DE", "authority": "DE/BKA", "officer": "KHK Weber"},
    "recipient": {"party": "FR", "authority": "FR/OFAC"},
    "legal_basis": "art44",
    "request_reference": "FR-MLA-2026-117",
    "purpose": {"proceeding": "FR-PNC-2026-0417", "description": "ransomware investigation"},
    "data_categories": ["subscriber", "traffic"],
    "subjects": ["subject-1"],
    "dataset_sha256": "5d" * 32,
    "handling": {"written_authorization_required": True},
})
AuthorizationRequestIn = contract(AuthorizationRequestDraft, "AuthorizationRequestIn", names={
    Official: ActorIn, Actor: RecipientIn, Purpose: PurposeIn,
}, example={
    "parent_transfer_id": "0b5c6a4e-3f4d-4b8a-9c1e-2d7f8a9b0c1d",
    "requested_by": {"party": "FR", "authority": "FR/OFAC", "officer": "Cdt Martin"},
    "recipient": {"party": "INTERPOL", "authority": "INTERPOL/IPSG"},
    "purpose": {"proceeding": "FR-PNC-2026-0417"},
    "data_categories": ["traffic"],
    "justification": "cross-match against INTERPOL databases",
})
DecisionIn = contract(DecisionDraft, "DecisionIn", names={
    Official: ActorIn, GrantConditions: ConditionsIn, DecisionSignature: DecisionSignatureIn,
}, example={
    "decision": "granted",
    "decided_by": {"party": "DE", "authority": "DE/BfJ", "officer": "Dr. Schulz"},
    "conditions": {
        "max_transfers": 1,
        "data_categories": ["traffic"],
        "written_instrument": {"reference": "BfJ-2026-0311", "sha256": "ab" * 32},
    },
})
RevocationIn = contract(RevocationDraft, "RevocationIn", names={Official: ActorIn}, example={
    "revoked_by": {"party": "DE", "authority": "DE/BfJ", "officer": "Dr. Schulz"},
    "reasons": "the proceeding was closed",
})
ErasureIn = contract(ErasureDraft, "ErasureIn", names={Official: ActorIn}, example={
    "erased_by": {"party": "FR", "authority": "FR/OFAC", "officer": "Cdt Martin"},
    "ground": "purpose-achieved",
    "reasons": "proceeding FR-PNC-2026-0417 closed by judgment of 2026-11-30",
})
AcknowledgementIn = contract(AcknowledgementDraft, "AcknowledgementIn", names={Official: ActorIn}, example={
    "acknowledged_by": {"party": "INTERPOL", "authority": "INTERPOL/IPSG", "officer": "A. Rossi"},
})
RestrictionIn = contract(RestrictionDraft, "RestrictionIn", names={Official: ActorIn}, example={
    "by": {"party": "FR", "authority": "FR/OFAC", "officer": "Cdt Martin"},
    "reasons": "evidence in proceeding FR-PNC-2026-0417, appeal pending",
})


_ACTOR = {"party": "FR", "authority": "FR/OFAC", "officer": "Cdt Martin"}
UseNoticeIn = contract(UseNotice, "UseNoticeIn")
UseIn = contract(UseDraft, "UseIn", names={Official: ActorIn, UseNotice: UseNoticeIn}, example={
    "proceeding": "FR-PNC-2026-0417", "kind": "evidence-in-proceedings", "used_by": _ACTOR,
    "description": "subscriber records produced at the hearing of 2026-12-01",
})
AfterNoticeIn = contract(AfterNoticeDraft, "AfterNoticeIn", names={Official: ActorIn}, example={
    "notified_by": _ACTOR,
})
ConsentRequestIn = contract(ConsentRequestDraft, "ConsentRequestIn", names={Official: ActorIn}, example={
    "transfer_id": "0b5c6a4e-3f4d-4b8a-9c1e-2d7f8a9b0c1d", "proceeding": "FR-PNC-2026-0999",
    "requested_by": _ACTOR, "reasons": "the same account appears in a fraud case",
})
ConsentDecisionIn = contract(ConsentDecisionDraft, "ConsentDecisionIn", names={Official: ActorIn}, example={
    "decision": "granted", "decided_by": {"party": "DE", "authority": "DE/BfJ", "officer": "Dr. Schulz"},
    "conditions": ["no disclosure to the press"],
})

ReferralNoticeIn = contract(ReferralNoticeDraft, "ReferralNoticeIn", names={Official: ActorIn, Actor: RecipientIn})
ReferralIn = contract(ReferralDraft, "ReferralIn", names={
    TransferDraft: TransferIn, ReferralNoticeDraft: ReferralNoticeIn,
}, example={
    "request_reference": "DE-MLA-2026-031", "requesting_party": "DE", "third_party": "NL",
    "finding": "the IP addresses of the request lead to a hosting provider in NL",
    "transfer": {"sender": _ACTOR, "recipient": {"party": "NL", "authority": "NL/NHTCU"}, "legal_basis": "art40-4",
                 "purpose": {"proceeding": "FR-PNC-2026-0417"}, "data_categories": ["traffic"],
                 "dataset_sha256": "5d" * 32},
    "notice": {"notified_by": _ACTOR, "recipient": {"party": "DE", "authority": "DE/BKA"},
               "text": "address your request for the subscriber data to NL"},
})



# -- answers ---------------------------------------------------------------------


#: A transfer's answer: its id, the fields of its TransferRecorded event as stored (domain/model.py,
#: but whether the origin requires written form, which the authorization shows), where it is in the ledger.
_TRANSFER_DESCRIPTIONS = {
    "origin": "The first transferring Party of the data's lineage (art. 36 §3)",
    "depth": "Hops from the lineage's root (0 for a first transfer)",
}
class ErasedOut(BaseModel):
    """A personal value that was destroyed: when, by which erasure, and the commitment that stays."""

    erased: dict[str, Any] = Field(description="erased_at, the erasure's leaf_index, the erasure event (originator_id, "
                                   "version) and the retention_class")
    commitment: str = Field(description="The salted commitment the leaf keeps (docs/FORMAT.md)")


def _erasable(name: str, hint: Any, personal: dict[str, str]) -> Any:
    """A field's type, widened where a personal value (or one inside it) may read as erased."""
    if name in personal:
        return hint | ErasedOut
    if any(path.startswith(name + ".") for path in personal) and get_origin(hint) is dict:
        key, value = get_args(hint)
        return dict[key, value | ErasedOut]  # type: ignore[valid-type]
    return hint


class UseOut(BaseModel):
    id: str
    transfer_id: str
    proceeding: str
    kind: str
    used_by: dict[str, str | ErasedOut]
    description: str | ErasedOut
    exculpatory: bool
    consent_id: str | None = Field(description="The requested Party's consent the use was made under")
    notice: dict[str, Any] | None = Field(description="An exculpatory use's notice: notified_at (prior), or "
                                          "prior_impossible and, once given, notified_at, notified_by, leaf_index")
    used_at: str
    leaf_index: int | None


class ConsentOut(BaseModel):
    id: str
    status: str = Field(description="pending, granted or refused")
    transfer_id: str
    sender: str = Field(description="The requested Party, which decides (the transfer's sender)")
    proceeding: str
    uses: list[str] = Field(description="The kinds of use the consent covers")
    recipient: dict[str, Any] | None = Field(description="H2: the Party the data may be passed on to; null for a "
                                             "consent to use them")
    transfers: list[str] = Field(description="Ids of the onward transfers made under it (H2)")
    requested_by: dict[str, str | ErasedOut]
    reasons: str | ErasedOut
    requested_at: str
    leaf_index: int | None
    decision: dict[str, Any] | None = Field(description="decision, decided_by, conditions, reasons, decided_at, "
                                            "leaf_index")


TransferOut: type[BaseModel] = create_model(
    "TransferOut",
    id=(str, ...),
    **{name: (_erasable(name, hint, Transfer.Recorded.PERSONAL),
              Field(description=_TRANSFER_DESCRIPTIONS.get(name)))
       for name, hint in get_type_hints(Transfer.Recorded).items()
       if name in Transfer.Recorded.__annotations__ and name != "origin_requires_written_form"},
    leaf_index=(int | None, Field(description="Index of the transfer's leaf in the ledger")),
    recorded_at=(str | None, ...),
    erasure=(dict[str, Any] | None, Field(
        default=None, description="Event format 2: the erasure of the transfer's subject data (ground, who, "
        "when, the destroyed key ids, its leaf), if erased")),
    restriction=(dict[str, Any] | None, Field(
        default=None, description="Event format 2: the evidence hold on its data (LED art. 16(3)), if any")),
    urgent_notice=(dict[str, Any] | None, Field(
        default=None, description="LED art. 35(2): when the authorizing State was informed of this urgent onward "
        "transfer (notified_by, notified_party, notified_at, leaf_index)")),
    uses=(list[UseOut], Field(default_factory=list, description="The recipient's recorded uses of the data "
                              "(art. 40 §19), in commit order")),
)


class UsePage(BaseModel):
    items: list[UseOut]


class TransferDetailOut(TransferOut):
    ancestors: list[TransferOut] = Field(
        description="Parent first, up to the lineage's root: those the key may read (a Party reads the "
        "transfers it sent, received or originated)"
    )
    referral_id: str | None = Field(default=None, description="The third-country referral the transfer was "
                                    "made under (GET /v1/referrals/{id}), or null")


class ReferralOut(BaseModel):
    """A third-country referral: its transfer to the third Party and its notice to the requesting Party."""

    id: str
    request_reference: str
    requesting_party: str
    referring_party: str = Field(description="The Party that executed the request and refers (the transfer's "
                                 "sender)")
    third_party: str
    finding: str | ErasedOut
    transfer_id: str
    parent_transfer_id: str | None = Field(description="The transfer whose data the referral passes on; null "
                                           "for the referring Party's own finding")
    origin: str = Field(description="The origin of the transfer's lineage (art. 36 §3)")
    authorization_id: str | None = Field(description="The origin's grant the transfer was made under")
    notice: dict[str, Any] = Field(description="notified_by, recipient, notified_at, text")
    leaf_index: int | None
    recorded_at: str | None
    transfer: TransferOut | None = Field(description="The referral's transfer, when the key may read it "
                                         "(its sender, recipient and origin; auditors)")


class ReferralPage(BaseModel):
    items: list[ReferralOut]
    next_cursor: str | None


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


class AuthorizationOut(BaseModel):
    id: str = Field(description="The request's id, which is also the grant's")
    status: Literal["pending", "granted", "refused", "revoked"]
    origin: str
    parent_transfer_id: str
    root_transfer_id: str
    requested_by: dict[str, str | ErasedOut]
    recipient: dict[str, str | ErasedOut]
    purpose: dict[str, Any]
    data_categories: list[str]
    justification: str | ErasedOut
    requested_at: str
    decision: dict[str, Any] | None
    conditions: dict[str, Any] | None
    revocation: dict[str, Any] | None
    uses: list[str] = Field(description="Ids of the onward transfers made under the grant")
    remaining_transfers: int | None
    version: int


class ErasureCertificateOut(BaseModel):
    """An erasure certificate (docs/FORMAT.md section 17.7): check it with `transfer-ledger verify-certificate`."""

    format: Literal["transfer-ledger/erasure-certificate/v1"]
    transfer_id: str
    leaf_index: int
    leaf: str = Field(description="Standard base64 of the erasure's leaf bytes (docs/FORMAT.md section 4)")
    erasure: dict[str, Any] = Field(description="retention_class, ground, erased_at, key_ids and the commitments "
                                    "erased, by event, as the leaf says")
    tlog_proof: str = Field(description="C2SP tlog-proof of the leaf against a signed, where witnessed cosigned, "
                            "checkpoint")
    cosigned_by: list[str] = Field(description="`<name>+<key id>` of each witness cosignature line of the "
                                   "checkpoint, in order; empty when no witness cosigned it")
    witnessing: str = Field(description="In words: which witnesses cosigned the checkpoint, or that none did")
    cannot_prove: str = Field(description="What the certificate cannot prove (copies outside the ledger)")


class NoticeOut(BaseModel):
    """A notice to a Party that data it received onward were erased (Order 949 §15)."""

    id: str
    party: str = Field(description="The Party told")
    transfer_id: str = Field(description="The transfer whose data were erased")
    ground: str
    erased_at: str
    erasure_leaf_index: int | None
    acknowledgement: dict[str, Any] | None = Field(description="acknowledged_by, acknowledged_at, leaf_index")


class NoticePage(BaseModel):
    items: list[NoticeOut]
    next_cursor: str | None


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
    request_id: str | None = Field(default=None, description="The request's id, as in the X-Request-Id header "
                                   "and the server's log lines")


class GroupCommitStats(BaseModel):
    batches: int = Field(description="Transactions written by this process's committer")
    commands: int = Field(description="Commands in them")
    largest_batch: int
    refused_overloaded: int = Field(description="Commands answered 503 `overloaded` (queue full)")
    batches_rerun: int = Field(description="Batches that could not be saved as one (another process wrote "
                               "first, or a repeated idempotency key): their commands ran again one by one")


class ConsultationLogStats(BaseModel):
    buffered: int = Field(description="Reads logged and not yet written")
    written: int = Field(description="Entries this process wrote")
    failed_flushes: int = Field(description="Writes of the log that failed (retried)")


class Health(BaseModel):
    status: Literal["ok"]
    tree_size: int
    read_only: bool = Field(False, description="Whether this server is read-only (`serve --read-only`, a replica)")
    group_commit: GroupCommitStats | None = Field(
        None, description="Group commit in this API process (each `serve` worker process has its own)"
    )
    consultation_log: ConsultationLogStats | None = Field(
        None, description="The consultation log of this API process (docs/API.md, \"Consultation logs\")"
    )
