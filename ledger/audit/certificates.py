"""Erasure certificates: proof, checkable offline, that a transfer's personal data were erased.

A certificate (docs/FORMAT.md section 17.7) is one JSON document:

- the erasure's leaf, byte for byte (docs/FORMAT.md section 4), and its index;
- what the leaf's ``PersonalDataErased`` event says: the retention class, the
  ground, the destroyed key ids and every commitment erased, by event;
- a C2SP ``tlog-proof`` of that leaf against a signed checkpoint, with the
  witnesses' cosignatures the ledger holds for it;
- who cosigned that checkpoint (``cosigned_by``), and in a sentence
  (``witnessing``) what that means, saying so plainly when no witness did;
- what it cannot prove, in plain words.

:func:`verify_certificate` checks it with the ledger's verifier key: the
checkpoint's signature, the inclusion proof of the leaf, that the leaf's event
says exactly what the certificate claims, and that ``cosigned_by`` names the
checkpoint's cosignature lines. Given the witnesses' vkeys it also checks their
cosignatures (a known witness's line that does not verify fails the
certificate) and that at least a quorum of them cosigned.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from domain.errors import NotFound
from domain.model import Transfer
from ledger.service.application import TransferLedger
from ledger.storage.cosignatures import cosigned_note
from ledger.storage.store import LedgerStore
from ledger.tlog.cosignature import CosignatureVerifier, verify_cosignatures
from ledger.tlog.leaf import encode_leaf
from ledger.tlog.merkle import inclusion_proof, leaf_hash
from ledger.tlog.note import NoteError, Verifier, open_note
from ledger.tlog.tlog_proof import TlogProofError, format_tlog_proof, parse_tlog_proof, verify_tlog_proof

CERTIFICATE_FORMAT = "transfer-ledger/erasure-certificate/v1"
ERASURE_TOPIC = Transfer.PersonalDataErased.TOPIC

#: Said in every certificate: what a ledger cannot know.
CANNOT_PROVE = (
    "This certificate proves that the ledger recorded the erasure in the leaf above, that the leaf is "
    "in the signed tree, and which data keys and commitments the erasure destroyed. It cannot prove "
    "that no copy exists outside the ledger: answers already read, exports made with personal data, "
    "backups kept with their key-encryption keys, or the data in the Parties' own systems. Those are "
    "the holders' to destroy; the ledger notifies the Parties that received the data."
)


#: ``witnessing`` when no witness cosigned the checkpoint: whether the ledger has ever been witnessed.
NOT_WITNESSED = (
    "Not witnessed: no witness has cosigned any checkpoint of this ledger. The checkpoint below is signed "
    "by the ledger's own key alone, so this certificate shows what the ledger signed, not that anyone "
    "else saw the same tree."
)
NOT_YET_WITNESSED = (
    "Not witnessed yet: no witness has cosigned a checkpoint that covers this erasure. The checkpoint "
    "below is signed by the ledger's own key alone; a certificate made after the next witness round "
    "carries the witnesses' cosignatures."
)


def witnessing(cosigned_by: list[str], ledger_witnessed: bool) -> str:
    """The certificate's sentence on who, besides the ledger, vouches for its checkpoint."""
    if not cosigned_by:
        return NOT_YET_WITNESSED if ledger_witnessed else NOT_WITNESSED
    return (f"Cosigned by {len(cosigned_by)} witness(es): {', '.join(cosigned_by)}. Each saw this tree "
            "and checked it extends every earlier one it cosigned; check their cosignatures with their "
            "own vkeys (transfer-ledger verify-certificate --witness VKEY).")


class CertificateError(Exception):
    """A certificate cannot be made (no erasure), or does not verify."""


def certify_erasure(ledger: TransferLedger, transfer_id: Any, cosignatures: Any,
                    sign_now: Callable[[], Any]) -> dict[str, Any]:
    """The certificate of a transfer's erasure, against the best checkpoint that covers it
    (:func:`certificate_note`). NotFound (``erasure-not-found``) if it was not erased."""
    view = ledger.get_transfer(transfer_id)
    erasure = view.get("erasure")
    if erasure is None:
        raise NotFound(f"transfer {view['id']} has no erasure to certify", rule="erasure-not-found",
                       field="transfer_id", values={"id": view["id"]})
    chosen = certificate_note(ledger.store, cosignatures, erasure["leaf_index"], sign_now)
    return erasure_certificate(ledger.store, UUID(view["id"]), erasure["leaf_index"], chosen.note,
                               ledger_witnessed=chosen.ledger_witnessed)


def erasure_certificate(store: LedgerStore, transfer_id: UUID, leaf_index: int, note: str, *,
                        ledger_witnessed: bool = False) -> dict[str, Any]:
    """The certificate of the erasure leaf ``leaf_index`` of ``transfer_id`` against ``note``
    (a signed checkpoint, cosignature lines appended, that covers the leaf). ``ledger_witnessed``:
    whether any checkpoint of the ledger was ever cosigned (it only words ``witnessing``)."""
    [(leaf, event)] = store.read_feed(leaf_index, 1) or [(None, None)]
    if leaf is None or event is None or leaf.originator_id != str(transfer_id) or event.topic != ERASURE_TOPIC:
        raise CertificateError(f"leaf {leaf_index} is not an erasure of transfer {transfer_id}")
    data, hashes = leaf_inclusion(store, leaf, event, note)
    state = json.loads(event.state)
    cosigners = _signers(note)[1:]  # the first line is the ledger's own signature
    return {
        "format": CERTIFICATE_FORMAT,
        "transfer_id": str(transfer_id),
        "leaf_index": leaf.leaf_index,
        "leaf": base64.b64encode(data).decode("ascii"),
        "erasure": _claims(state),
        "tlog_proof": format_tlog_proof(leaf.leaf_index, hashes, note),
        "cosigned_by": cosigners,
        "witnessing": witnessing(cosigners, ledger_witnessed or bool(cosigners)),
        "cannot_prove": CANNOT_PROVE,
    }


def leaf_inclusion(store: LedgerStore, leaf: Any, event: Any, note: str) -> tuple[bytes, list[bytes]]:
    """The bytes of ``leaf`` (with its ``event``, as ``store.read_feed`` gives them) and its RFC 9162
    inclusion proof in the tree of the signed checkpoint ``note``, from the stored nodes."""
    prev = bytes(32) if leaf.leaf_index == 0 else store.read_leaves(leaf.leaf_index - 1, 1)[0].leaf_hash
    data = encode_leaf(leaf.leaf_index, prev, leaf.originator_id, leaf.originator_version, event.topic,
                       event.state, leaf.recorded_at)
    size = int(note.split("\n")[1])
    if leaf.leaf_index >= size:
        raise CertificateError(f"the checkpoint of size {size} does not cover leaf {leaf.leaf_index}")

    def nodes(ids: Any) -> list[bytes]:
        found = store.read_nodes(ids)
        if any(h is None for h in found):
            raise CertificateError("stored Merkle nodes are missing: run transfer-ledger verify")
        return found  # type: ignore[return-value]

    return data, inclusion_proof(leaf.leaf_index, size, nodes)


def _signers(note: str) -> list[str]:
    """``<name>+<8 hex key id>`` of each signature line of a signed note, in order."""
    block = note[note.rfind("\n\n") + 2:]
    out = []
    for line in block.splitlines():
        name, blob = line.removeprefix("\u2014 ").rsplit(" ", 1)
        out.append(f"{name}+{base64.b64decode(blob)[:4].hex()}")
    return out


def _claims(state: dict[str, Any]) -> dict[str, Any]:
    """What an erasure event says, as a certificate repeats it."""
    return {
        "retention_class": state.get("retention_class"),
        "ground": state.get("ground"),
        "erased_at": (state.get("timestamp") or {}).get("_data_"),
        "key_ids": state.get("key_ids"),
        "erased": state.get("erased"),
    }


@dataclass(frozen=True)
class CertificateReport:
    transfer_id: str
    leaf_index: int
    tree_size: int
    root_hash: str
    key_ids: list[str]
    commitments: int
    #: How many cosignature lines the checkpoint carries (checked or not).
    cosignatures: int
    cosigned_by: list[str]
    #: The witnesses given whose cosignature verified, with its time (POSIX seconds).
    witnesses_verified: list[dict[str, Any]] = field(default_factory=list)
    #: How many of the given witnesses had to have cosigned; None when no witness was given.
    quorum: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": True, **self.__dict__}


def verify_certificate(doc: Any, verifier: Verifier, origin: str | None = None, *,
                       witnesses: Iterable[CosignatureVerifier] = (), quorum: int | None = None
                       ) -> CertificateReport:
    """Check a certificate offline; :class:`CertificateError` saying what is wrong.

    With ``witnesses`` (their cosigner vkeys), also check the checkpoint's cosignatures by them:
    a known witness's line that does not verify fails it, and at least ``quorum`` of them (default:
    all given) must have cosigned. Lines of witnesses not given are counted, not checked."""
    if not isinstance(doc, dict) or doc.get("format") != CERTIFICATE_FORMAT:
        raise CertificateError(f"not an erasure certificate: format is not {CERTIFICATE_FORMAT!r}")
    for name, kind in (("transfer_id", str), ("leaf_index", int), ("leaf", str), ("erasure", dict),
                       ("tlog_proof", str), ("cosigned_by", list), ("witnessing", str), ("cannot_prove", str)):
        if not isinstance(doc.get(name), kind) or isinstance(doc.get(name), bool):
            raise CertificateError(f"{name} is missing or not a {kind.__name__}")
    try:
        data = base64.b64decode(doc["leaf"], validate=True)
        leaf = json.loads(data)
        state = json.loads(base64.b64decode(leaf["state"], validate=True))
    except (ValueError, KeyError, TypeError) as e:
        raise CertificateError(f"leaf is not a ledger leaf: {e}") from None
    if leaf.get("leaf_index") != doc["leaf_index"]:
        raise CertificateError(f"the leaf is leaf {leaf.get('leaf_index')}, not {doc['leaf_index']}")
    if leaf.get("originator_id") != doc["transfer_id"] or leaf.get("topic") != ERASURE_TOPIC:
        raise CertificateError(f"the leaf is not the erasure of transfer {doc['transfer_id']} "
                               f"(it is {leaf.get('topic')} of {leaf.get('originator_id')})")
    if _claims(state) != doc["erasure"]:
        raise CertificateError("the certificate's erasure differs from what its leaf says")
    try:
        proof = parse_tlog_proof(doc["tlog_proof"])
        if proof.index != doc["leaf_index"]:
            raise CertificateError(f"the tlog-proof is of leaf {proof.index}, not {doc['leaf_index']}")
        checkpoint = verify_tlog_proof(proof, leaf_hash(data), verifier, origin)
    except TlogProofError as e:
        raise CertificateError(f"tlog-proof: {e}") from None
    # the checkpoint verified, so its form is sound: every line not by the ledger's key is a cosignature
    opened = open_note(proof.checkpoint, [verifier])
    cosigners = [f"{s.name}+{s.key_id:08x}" for s in opened.signatures if not s.verified]
    if doc["cosigned_by"] != cosigners:
        raise CertificateError(f"cosigned_by says {doc['cosigned_by']}, but the checkpoint's cosignature lines "
                               f"are by {cosigners}")
    if not cosigners and doc["witnessing"] not in (NOT_WITNESSED, NOT_YET_WITNESSED):
        raise CertificateError("witnessing claims witnesses, but the checkpoint carries no cosignature")
    if cosigners and doc["witnessing"] != witnessing(cosigners, True):
        raise CertificateError("witnessing does not say who cosigned the checkpoint")
    known = list(witnesses)
    verified: list[dict[str, Any]] = []
    required = None if not known else len({(w.name, w.key_id) for w in known}) if quorum is None else quorum
    if required is not None:
        try:
            _, found = verify_cosignatures(proof.checkpoint, verifier, known, required, origin)
        except NoteError as e:
            raise CertificateError(f"cosignatures: {e}") from None
        verified = [{"witness": c.witness.describe(), "timestamp": c.timestamp} for c in found]
    elif quorum:
        raise CertificateError(f"a quorum of {quorum} needs the witnesses' vkeys")
    erased = state.get("erased") or []
    return CertificateReport(
        transfer_id=doc["transfer_id"], leaf_index=doc["leaf_index"], tree_size=checkpoint.size,
        root_hash=checkpoint.root_hash.hex(), key_ids=list(state.get("key_ids") or []),
        commitments=sum(len(e.get("commitments", {})) for e in erased),
        cosignatures=len(cosigners), cosigned_by=cosigners, witnesses_verified=verified,
        quorum=required,
    )


@dataclass(frozen=True)
class ChosenCheckpoint:
    """The checkpoint a certificate proves against, cosignature lines appended, and whether any
    checkpoint of the ledger was ever cosigned."""

    note: str
    ledger_witnessed: bool


def certificate_note(store: LedgerStore, cosignatures: Any, leaf_index: int, sign_now: Any) -> ChosenCheckpoint:
    """The checkpoint a certificate proves against: the stored one covering ``leaf_index`` with the
    most witness cosignatures (the newest among equals), else one signed now (``sign_now()``)."""
    best: tuple[int, int, str] | None = None
    witnessed = False
    for stored in store.checkpoints():
        lines = cosignatures.lines(stored.tree_size)
        witnessed = witnessed or bool(lines)
        if stored.tree_size <= leaf_index:
            continue
        candidate = (len(lines), stored.tree_size, cosigned_note(stored.note, lines))
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    if best is not None and best[0] > 0:
        return ChosenCheckpoint(best[2], True)
    signed = sign_now()
    return ChosenCheckpoint(cosigned_note(signed.note, cosignatures.lines(signed.tree_size)), witnessed)
