"""C2SP tlog-cosignature: witness cosignatures of checkpoints, and witness keys.

- :class:`Cosigner`, :class:`CosignatureVerifier`: Ed25519 cosignatures
  (tlog-cosignature.md, "Format" and "Ed25519 signed message"): key ID and
  vkey with signature type ``0x04``; the signature is an 8-byte big-endian
  POSIX timestamp followed by the Ed25519 signature of
  ``"cosignature/v1\\ntime <timestamp>\\n" || checkpoint note text``.
- :func:`verify_cosignatures`: a checkpoint signed by the log and cosigned by
  at least ``quorum`` known witnesses (signed-note.md, "Signatures": unknown
  keys are ignored, a known key whose signature fails rejects the note).
- :func:`format_witness_key`, :func:`parse_witness_key`: a witness's private key line.

Malformed input raises :class:`CosignatureError` (a :class:`NoteError`) with
a message that names what is wrong. The witness that uses them is ``ledger.witness``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ledger.tlog.keys import PRIVATE_KEY_PREFIX, KeyFileError
from ledger.tlog.note import (
    COSIGNATURE_SIGNATURE_TYPE,
    Checkpoint,
    Ed25519KeyPair,
    NoteError,
    Verifier,
    _parse_signature_line,
    check_key_name,
    compute_key_id,
    open_note,
    split_key_string,
)

__all__ = [
    "COSIGNATURE_HEADER",
    "COSIGNATURE_SIZE",
    "MAX_TIMESTAMP",
    "Cosignature",
    "CosignatureError",
    "CosignatureVerifier",
    "Cosigner",
    "ParsedCosignature",
    "QuorumNotReached",
    "cosigned_message",
    "format_witness_key",
    "parse_cosignature_line",
    "parse_witness_key",
    "verify_cosignatures",
]

COSIGNATURE_HEADER = "cosignature/v1\n"
"""The first line of the signed message (tlog-cosignature.md, "Ed25519 signed message")."""

MAX_TIMESTAMP = 2**63 - 1
"""A cosignature's timestamp must not exceed this (tlog-cosignature.md, "Format")."""

_KEY_ID_SIZE = 4
_TIMESTAMP_SIZE = 8
_ED25519_SIGNATURE_SIZE = 64
_ED25519_KEY_SIZE = 32
#: The bytes after the key ID: ``timestamped_signature`` for Ed25519.
COSIGNATURE_SIZE = _TIMESTAMP_SIZE + _ED25519_SIGNATURE_SIZE
_SIGNATURE_PREFIX = "\u2014 "


class CosignatureError(NoteError):
    """A cosignature, cosigner key or witness vkey that is malformed or does not verify."""


class QuorumNotReached(CosignatureError):
    """Fewer known witnesses than required cosigned a checkpoint."""


# -- the cosignature format --------------------------------------------------------------


def _check_timestamp(timestamp: object, *, allow_zero: bool) -> int:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise CosignatureError(f"cosignature timestamp must be an int, got {type(timestamp).__name__}")
    if timestamp > MAX_TIMESTAMP:
        raise CosignatureError(f"cosignature timestamp {timestamp} is larger than 2**63-1")
    if timestamp < 0 or (timestamp == 0 and not allow_zero):
        raise CosignatureError(f"cosignature timestamp {timestamp} is not a positive POSIX time")
    return timestamp


def cosigned_message(checkpoint_text: str, timestamp: int) -> bytes:
    """The bytes an Ed25519 cosignature signs (tlog-cosignature.md, "Ed25519
    signed message"): ``cosignature/v1\\n``, ``time <timestamp>\\n`` (decimal,
    no leading zeros) and the checkpoint's note text with its final newline."""
    _check_timestamp(timestamp, allow_zero=True)
    return (COSIGNATURE_HEADER + f"time {timestamp}\n" + checkpoint_text).encode("utf-8")


def _check_checkpoint_text(text: str) -> str:
    """A cosigner signs only a well-formed checkpoint text (tlog-checkpoint.md)."""
    if not isinstance(text, str):
        raise CosignatureError(f"checkpoint text must be str, not {type(text).__name__}")
    Checkpoint.parse(text)
    return text


@dataclass(frozen=True)
class CosignatureVerifier:
    """A witness's Ed25519 cosigner public key and name (key ID with type 0x04)."""

    name: str
    public_key: bytes
    key_id: int = field(init=False)
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if not isinstance(self.public_key, bytes) or len(self.public_key) != _ED25519_KEY_SIZE:
            raise CosignatureError(f"Ed25519 cosigner public key must be {_ED25519_KEY_SIZE} bytes")
        object.__setattr__(self, "_key", Ed25519PublicKey.from_public_bytes(self.public_key))
        object.__setattr__(
            self, "key_id", compute_key_id(self.name, COSIGNATURE_SIGNATURE_TYPE, self.public_key)
        )

    @classmethod
    def from_vkey(cls, vkey: str, what: str = "witness vkey") -> CosignatureVerifier:
        """Parse ``<name>+<8 hex key id>+<base64(0x04 || 32-byte public key)>``
        strictly; the key ID must be the one the name and key give."""
        if not isinstance(vkey, str):
            raise CosignatureError(f"{what} must be str, not {type(vkey).__name__}")
        try:
            name, stated_id, public_key = split_key_string(vkey, what, COSIGNATURE_SIGNATURE_TYPE)
        except NoteError as e:
            raise CosignatureError(str(e)) from None
        verifier = cls(name, public_key)
        if verifier.key_id != stated_id:
            raise CosignatureError(
                f"{what}: key id {stated_id:08x} does not match the name and key, "
                f"which give {verifier.key_id:08x}"
            )
        return verifier

    def vkey(self) -> str:
        """``<name>+<hex key id>+<base64(0x04 || public key)>`` (signed-note.md, "Verifier keys")."""
        key64 = base64.b64encode(bytes([COSIGNATURE_SIGNATURE_TYPE]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id:08x}+{key64}"

    def describe(self) -> str:
        return f"{self.name}+{self.key_id:08x}"

    def verify(self, checkpoint_text: str, signature: bytes) -> int:
        """Check ``signature`` (the bytes after the key ID: 8-byte timestamp
        and 64-byte Ed25519 signature) over ``checkpoint_text``; return the
        timestamp. Raises :class:`CosignatureError` saying what is wrong."""
        if len(signature) != COSIGNATURE_SIZE:
            raise CosignatureError(
                f"cosignature by {self.describe()} is {_KEY_ID_SIZE + len(signature)} bytes, expected "
                f"{_KEY_ID_SIZE + COSIGNATURE_SIZE} (key id, 8-byte timestamp, 64-byte Ed25519 signature)"
            )
        timestamp = int.from_bytes(signature[:_TIMESTAMP_SIZE], "big")
        if timestamp > MAX_TIMESTAMP:
            raise CosignatureError(
                f"cosignature by {self.describe()}: timestamp {timestamp} is larger than 2**63-1"
            )
        try:
            self._key.verify(signature[_TIMESTAMP_SIZE:], cosigned_message(checkpoint_text, timestamp))
        except InvalidSignature:
            raise CosignatureError(
                f"cosignature by {self.describe()} (time {timestamp}) does not verify over this checkpoint"
            ) from None
        return timestamp


class Cosigner(Ed25519KeyPair):
    """A witness's Ed25519 cosigning key and name (tlog-cosignature.md)."""

    verifier_type = CosignatureVerifier

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Cosigner:
        """A cosigner from a 32-byte Ed25519 private key seed (RFC 8032)."""
        if not isinstance(seed, bytes) or len(seed) != _ED25519_KEY_SIZE:
            raise CosignatureError(f"Ed25519 seed must be {_ED25519_KEY_SIZE} bytes")
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    def verifier(self) -> CosignatureVerifier:
        return self._verifier  # type: ignore[no-any-return]

    def cosign(self, checkpoint_text: str, timestamp: int) -> str:
        """The cosignature line ``— <name> base64(key ID || timestamp || signature)\\n``
        over a checkpoint's note text (with its final newline, without the
        blank line and signatures). ``timestamp`` is a POSIX time, > 0."""
        _check_checkpoint_text(checkpoint_text)
        _check_timestamp(timestamp, allow_zero=False)
        signature = self._private_key.sign(cosigned_message(checkpoint_text, timestamp))
        blob = self.key_id.to_bytes(_KEY_ID_SIZE, "big") + timestamp.to_bytes(_TIMESTAMP_SIZE, "big") + signature
        return f"{_SIGNATURE_PREFIX}{self.name} {base64.b64encode(blob).decode('ascii')}\n"


@dataclass(frozen=True)
class ParsedCosignature:
    """One cosignature line, parsed but not verified."""

    name: str
    key_id: int
    timestamp: int
    signature: bytes  # the bytes after the key ID: timestamp and Ed25519 signature

    def line(self) -> str:
        blob = self.key_id.to_bytes(_KEY_ID_SIZE, "big") + self.signature
        return f"{_SIGNATURE_PREFIX}{self.name} {base64.b64encode(blob).decode('ascii')}\n"


def parse_cosignature_line(line: str) -> ParsedCosignature:
    """Parse ``— <name> base64(4-byte key ID || 8-byte timestamp || 64-byte
    signature)``, optionally followed by one newline, strictly."""
    if not isinstance(line, str):
        raise CosignatureError(f"cosignature must be str, not {type(line).__name__}")
    body = line[:-1] if line.endswith("\n") else line
    if "\n" in body:
        raise CosignatureError("cosignature: expected one signature line, found a newline inside it")
    try:
        name, key_id, signature = _parse_signature_line(1, body)
    except NoteError as e:
        raise CosignatureError("cosignature" + str(e).removeprefix("signature line 1")) from None
    if len(signature) != COSIGNATURE_SIZE:
        raise CosignatureError(
            f"cosignature: base64 decodes to {_KEY_ID_SIZE + len(signature)} bytes, expected "
            f"{_KEY_ID_SIZE + COSIGNATURE_SIZE} (key id, 8-byte timestamp, 64-byte Ed25519 signature)"
        )
    timestamp = int.from_bytes(signature[:_TIMESTAMP_SIZE], "big")
    if timestamp > MAX_TIMESTAMP:
        raise CosignatureError(f"cosignature: timestamp {timestamp} is larger than 2**63-1")
    return ParsedCosignature(name, key_id, timestamp, signature)


# -- k of n --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cosignature:
    """A cosignature that verified: the witness and its timestamp."""

    witness: CosignatureVerifier
    timestamp: int


def _index_witnesses(witnesses: Iterable[CosignatureVerifier]) -> dict[tuple[str, int], CosignatureVerifier]:
    known: dict[tuple[str, int], CosignatureVerifier] = {}
    for witness in witnesses:
        if not isinstance(witness, CosignatureVerifier):
            raise TypeError(f"witnesses must be CosignatureVerifier, not {type(witness).__name__}")
        key = (witness.name, witness.key_id)
        if known.get(key, witness) != witness:
            raise CosignatureError(
                f"two different witness keys share name {witness.name!r} and key id {witness.key_id:08x}"
            )
        known[key] = witness
    return known


def verify_cosignatures(
    note: str | bytes,
    log_verifier: Verifier,
    witnesses: Iterable[CosignatureVerifier],
    quorum: int,
    origin: str | None = None,
) -> tuple[Checkpoint, list[Cosignature]]:
    """Verify a checkpoint signed by the log and cosigned by at least
    ``quorum`` of the known ``witnesses``; return it and the cosignatures that
    verified (one per witness, in note order).

    Lines whose key name and ID do not match a known key are ignored; a known
    witness's line that does not verify rejects the note (signed-note.md,
    "Signatures"). ``origin``, when given, must be the checkpoint's origin.
    Raises :class:`NoteError` (the log's signature, the form), a
    :class:`CosignatureError`, or :class:`QuorumNotReached`.
    """
    known = _index_witnesses(witnesses)
    if isinstance(quorum, bool) or not isinstance(quorum, int) or not 0 <= quorum <= len(known):
        raise CosignatureError(
            f"quorum {quorum!r} must be between 0 and the number of known witnesses, {len(known)}"
        )
    opened = open_note(note, [log_verifier])
    checkpoint = Checkpoint.parse(opened.text)
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"checkpoint origin {checkpoint.origin!r} is not the expected {origin!r}")
    verified: dict[tuple[str, int], Cosignature] = {}
    for number, line in enumerate(opened.signatures, start=1):
        witness = known.get((line.name, line.key_id))
        if witness is None:
            continue
        try:
            timestamp = witness.verify(opened.text, line.signature)
        except CosignatureError as e:
            raise CosignatureError(f"signature line {number}: {e}") from None
        verified.setdefault((witness.name, witness.key_id), Cosignature(witness, timestamp))
    if len(verified) < quorum:
        found = ", ".join(c.witness.describe() for c in verified.values()) or "none"
        raise QuorumNotReached(
            f"checkpoint of {checkpoint.origin} at size {checkpoint.size} is cosigned by "
            f"{len(verified)} of the {len(known)} known witnesses ({found}), fewer than the quorum of {quorum}"
        )
    return checkpoint, list(verified.values())


# -- keys on disk ------------------------------------------------------------------------------


def format_witness_key(cosigner: Cosigner) -> str:
    """``PRIVATE+KEY+<name>+<hex key id>+<base64(0x04 || seed)>``, no newline."""
    key64 = base64.b64encode(bytes([COSIGNATURE_SIGNATURE_TYPE]) + cosigner.seed).decode("ascii")
    return f"{PRIVATE_KEY_PREFIX}{cosigner.name}+{cosigner.key_id:08x}+{key64}"


def parse_witness_key(text: str) -> Cosigner:
    """Parse a witness key string strictly; the key id must be the one the
    name and the seed's public key give (with type 0x04)."""
    if not text.startswith(PRIVATE_KEY_PREFIX):
        raise KeyFileError(f"does not start with {PRIVATE_KEY_PREFIX!r}")
    try:
        name, stated_id, seed = split_key_string(
            text[len(PRIVATE_KEY_PREFIX):], "witness key", COSIGNATURE_SIGNATURE_TYPE
        )
        cosigner = Cosigner.from_seed(name, seed)
    except NoteError as e:
        raise KeyFileError(str(e)) from None
    if cosigner.key_id != stated_id:
        raise KeyFileError(
            f"witness key: key id {stated_id:08x} does not match the key, "
            f"whose name and public key give {cosigner.key_id:08x}"
        )
    return cosigner
