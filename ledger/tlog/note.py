"""C2SP signed notes, verifier keys and checkpoints.

This module implements, with Ed25519 keys only (signature type 0x01):

- ``c2sp.org/signed-note``: notes (text followed by signature lines), key
  names, key IDs and verifier keys ("vkeys");
- ``c2sp.org/tlog-checkpoint``: the note text of a transparency log checkpoint
  (origin, tree size, root hash, optional extension lines).

Every malformed or unverifiable input raises :class:`NoteError`, whose message
names what is wrong and where. Section names in docstrings refer to the specs'
headings.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

__all__ = [
    "COSIGNATURE_SIGNATURE_TYPE",
    "ED25519_SIGNATURE_TYPE",
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "Checkpoint",
    "Note",
    "NoteError",
    "NoteSignature",
    "Signer",
    "Verifier",
    "check_key_name",
    "compute_key_id",
    "open_checkpoint",
    "open_note",
    "sign_checkpoint",
    "sign_note",
    "split_key_string",
]

ED25519_SIGNATURE_TYPE = 0x01
"""signed-note.md, "Signature types": ``0x01`` is Ed25519."""

COSIGNATURE_SIGNATURE_TYPE = 0x04
"""signed-note.md, "Signature types": ``0x04`` is the timestamped Ed25519
checkpoint cosignature of c2sp.org/tlog-cosignature (``ledger.witness``)."""

MAX_NOTE_SIZE = 1 << 20
"""Largest note :func:`open_note` reads, in bytes (signed-note.md, "Format")."""

MAX_SIGNATURES = 100
"""Most signature lines :func:`open_note` reads; the spec requires >= 16."""

MAX_TREE_SIZE = 2**63 - 1
"""Largest tree size a checkpoint may state."""

_ED25519_KEY_SIZE = 32
_ED25519_SIGNATURE_SIZE = 64
_KEY_ID_SIZE = 4
_SIGNATURE_PREFIX = "\u2014 "  # em dash, space
_CONTROL_CHARACTER = re.compile("[\x00-\x09\x0b-\x1f]")
_HEX_KEY_ID = re.compile("[0-9a-f]{8}")
_BASE64 = re.compile(
    "(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
)
_TREE_SIZE = re.compile("0|[1-9][0-9]*")


class NoteError(ValueError):
    """A signed note, checkpoint, key name or key that is malformed or fails
    verification."""


def _decode_base64(text: str, what: str) -> bytes:
    """Decode strict standard base64 (RFC 4648 section 4, as required by both
    specs' "Conventions"): padded, no whitespace, unused bits zero."""
    if not _BASE64.fullmatch(text):
        raise NoteError(f"{what} is not valid standard base64")
    raw = base64.b64decode(text)
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"{what} is not canonical base64: its unused trailing bits are not zero")
    return raw


def _encode_base64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _encode_utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise NoteError(
            f"{what} is not valid UTF-8: lone surrogate U+{ord(text[e.start]):04X} "
            f"at character {e.start}"
        ) from None


def _check_no_control_characters(text: str, what: str) -> None:
    """signed-note.md, "Format": no ASCII control characters but newline."""
    found = _CONTROL_CHARACTER.search(text)
    if found:
        line = text.count("\n", 0, found.start()) + 1
        raise NoteError(
            f"{what} line {line}: control character U+{ord(found.group()):04X} "
            "is not allowed (only newline is)"
        )


def check_key_name(name: str) -> None:
    """Check a key name (signed-note.md, "Format"): non-empty, no Unicode
    spaces, no plus (U+002B). Control characters and lone surrogates are
    refused too, since no note could carry them."""
    if not name:
        raise NoteError("key name is empty")
    for char in name:
        if char == "+":
            raise NoteError(f"key name {name!r} contains '+'")
        if char.isspace():
            raise NoteError(f"key name {name!r} contains a space character U+{ord(char):04X}")
        if ord(char) < 0x20:
            raise NoteError(f"key name {name!r} contains control character U+{ord(char):04X}")
    _encode_utf8(name, f"key name {name!r}")


def compute_key_id(name: str, signature_type: int, public_key: bytes) -> int:
    """Key ID = SHA-256(key name || 0x0A || signature type || public key)[:4]
    as a big-endian uint32 (signed-note.md, "Signatures")."""
    digest = hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([signature_type]) + public_key
    ).digest()
    return int.from_bytes(digest[:_KEY_ID_SIZE], "big")


_SIGNATURE_TYPE_NAMES = {
    ED25519_SIGNATURE_TYPE: "Ed25519",
    COSIGNATURE_SIGNATURE_TYPE: "timestamped Ed25519 cosignature",
}


def split_key_string(
    text: str, what: str, signature_type: int = ED25519_SIGNATURE_TYPE
) -> tuple[str, int, bytes]:
    """Split ``<name>+<hex key id>+<base64(type || 32 key bytes)>``.

    This is the vkey form (signed-note.md, "Verifier keys"); the Go signer key
    format is the same after its ``PRIVATE+KEY+`` prefix, with the Ed25519 seed
    as the key bytes. The type byte must be ``signature_type`` (``0x01``, or
    ``0x04`` for tlog-cosignature keys). Returns the name, the stated key ID
    and the 32 key bytes; the caller checks the key ID against the key.
    ``what`` prefixes errors.
    """
    parts = text.split("+", 2)  # the base64 part may itself contain '+'
    if len(parts) != 3:
        raise NoteError(
            f"{what}: expected 3 '+'-separated parts <name>+<key id>+<key>, found {len(parts)}"
        )
    name, hex_id, key64 = parts
    try:
        check_key_name(name)
    except NoteError as e:
        raise NoteError(f"{what}: {e}") from None
    if not _HEX_KEY_ID.fullmatch(hex_id):
        raise NoteError(f"{what}: key id {hex_id!r} is not 8 lowercase hex digits")
    raw = _decode_base64(key64, f"{what}: key")
    if len(raw) != 1 + _ED25519_KEY_SIZE:
        raise NoteError(
            f"{what}: key decodes to {len(raw)} bytes, expected {1 + _ED25519_KEY_SIZE} "
            f"(type byte 0x{signature_type:02x} and {_ED25519_KEY_SIZE} key bytes)"
        )
    if raw[0] != signature_type:
        expected = _SIGNATURE_TYPE_NAMES.get(signature_type, "")
        raise NoteError(
            f"{what}: signature type 0x{raw[0]:02x} is not supported, expected "
            f"0x{signature_type:02x}" + (f" ({expected})" if expected else "")
        )
    return name, int(hex_id, 16), raw[1:]


@dataclass(frozen=True)
class Verifier:
    """An Ed25519 verifier key: a key name and a 32-byte public key
    (signed-note.md, "Ed25519 signatures" and "Verifier keys")."""

    name: str
    public_key: bytes
    key_id: int = field(init=False)
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if not isinstance(self.public_key, bytes) or len(self.public_key) != _ED25519_KEY_SIZE:
            raise NoteError(f"Ed25519 public key must be {_ED25519_KEY_SIZE} bytes")
        object.__setattr__(self, "_key", Ed25519PublicKey.from_public_bytes(self.public_key))
        object.__setattr__(
            self, "key_id", compute_key_id(self.name, ED25519_SIGNATURE_TYPE, self.public_key)
        )

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """Parse ``<name>+<8 hex key id>+<base64(0x01 || public key)>``
        (signed-note.md, "Verifier keys"). The key ID must be the one the name
        and key give."""
        name, stated_id, public_key = split_key_string(vkey, "vkey")
        verifier = cls(name, public_key)
        if verifier.key_id != stated_id:
            raise NoteError(
                f"vkey: key id {stated_id:08x} does not match the name and key, "
                f"which give {verifier.key_id:08x}"
            )
        return verifier

    def vkey(self) -> str:
        """The verifier key string (signed-note.md, "Verifier keys")."""
        key64 = _encode_base64(bytes([ED25519_SIGNATURE_TYPE]) + self.public_key)
        return f"{self.name}+{self.key_id:08x}+{key64}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (the bytes after the 4-byte key ID) is this
        key's Ed25519 signature of the note text ``text``."""
        if len(signature) != _ED25519_SIGNATURE_SIZE:
            return False
        try:
            self._key.verify(signature, text)
        except InvalidSignature:
            return False
        return True


class Ed25519KeyPair:
    """An Ed25519 private key with its name, seen through a verifier type.

    Shared by note signers (:class:`Signer`, type 0x01) and witness cosigners
    (``ledger.witness.Cosigner``, type 0x04): subclasses set ``verifier_type``.
    """

    verifier_type: Any = None

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self._verifier = self.verifier_type(name, private_key.public_key().public_bytes_raw())

    @classmethod
    def generate(cls, name: str) -> Self:
        """A key pair with a new random key."""
        return cls(name, Ed25519PrivateKey.generate())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, key_id=0x{self.key_id:08x})"

    @property
    def name(self) -> str:
        return str(self._verifier.name)

    @property
    def key_id(self) -> int:
        """The uint32 key ID of the name, signature type and public key."""
        return int(self._verifier.key_id)

    @property
    def seed(self) -> bytes:
        """The 32-byte private key seed. Secret."""
        return self._private_key.private_bytes_raw()

    def verifier(self) -> Any:
        return self._verifier

    def vkey(self) -> str:
        """The verifier key string for this key's public key."""
        return str(self._verifier.vkey())


class Signer(Ed25519KeyPair):
    """An Ed25519 note signer: a key name and a private key
    (signed-note.md, "Ed25519 signatures")."""

    verifier_type = Verifier

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Signer:
        """A signer from a 32-byte Ed25519 private key seed (RFC 8032)."""
        if len(seed) != _ED25519_KEY_SIZE:
            raise NoteError(f"Ed25519 seed is {len(seed)} bytes, expected {_ED25519_KEY_SIZE}")
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    def verifier(self) -> Verifier:
        return self._verifier  # type: ignore[no-any-return]

    def sign_raw(self, message: bytes) -> bytes:
        """The bare 64-byte Ed25519 signature of ``message`` (e.g. a decision document)."""
        return self._private_key.sign(message)

    def sign(self, text: bytes) -> str:
        """The signature line ``— <name> base64(key ID || signature)\\n`` for
        the note text ``text`` (signed-note.md, "Signatures")."""
        signature = self._private_key.sign(text)
        blob = self.key_id.to_bytes(_KEY_ID_SIZE, "big") + signature
        return f"{_SIGNATURE_PREFIX}{self.name} {_encode_base64(blob)}\n"


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note. ``signature`` is the bytes after the key
    ID; ``verified`` is true when a known key matched name and key ID and the
    signature verified, false when the key is unknown (and so ignored)."""

    name: str
    key_id: int
    signature: bytes
    verified: bool


@dataclass(frozen=True)
class Note:
    """An opened note: its text (with the final newline, without the blank
    line) and its signature lines in order."""

    text: str
    signatures: list[NoteSignature]


def sign_note(text: str, *signers: Signer) -> str:
    """The signed note: ``text``, a blank line, and one signature line per
    signer (signed-note.md, "Format"). ``text`` must end in a newline."""
    if not signers:
        raise NoteError("a note needs at least one signer")
    if len(signers) > MAX_SIGNATURES:
        raise NoteError(f"{len(signers)} signers, at most {MAX_SIGNATURES} are allowed")
    if not text.endswith("\n"):
        raise NoteError("note text must end in a newline")
    data = _encode_utf8(text, "note text")
    _check_no_control_characters(text, "note text")
    note = text + "\n" + "".join(signer.sign(data) for signer in signers)
    size = len(note.encode("utf-8"))
    if size > MAX_NOTE_SIZE:
        raise NoteError(f"signed note would be {size} bytes, at most {MAX_NOTE_SIZE} are allowed")
    return note


def _index_verifiers(verifiers: Iterable[Verifier]) -> dict[tuple[str, int], Verifier]:
    known: dict[tuple[str, int], Verifier] = {}
    for verifier in verifiers:
        key = (verifier.name, verifier.key_id)
        if known.get(key, verifier) != verifier:
            raise NoteError(
                f"two different verifier keys share name {verifier.name!r} "
                f"and key id {verifier.key_id:08x}"
            )
        known[key] = verifier
    return known


def _parse_signature_line(number: int, line: str) -> tuple[str, int, bytes]:
    """``— <key name> base64(32-bit key ID || signature)`` (signed-note.md,
    "Signatures"). Returns name, key ID and the signature bytes after it."""
    where = f"signature line {number}"
    if not line.startswith(_SIGNATURE_PREFIX):
        raise NoteError(f"{where}: does not start with an em dash (U+2014) and a space")
    name, space, blob64 = line[len(_SIGNATURE_PREFIX):].partition(" ")
    if not space:
        raise NoteError(f"{where}: no space between key name and signature")
    try:
        check_key_name(name)
    except NoteError as e:
        raise NoteError(f"{where}: {e}") from None
    blob = _decode_base64(blob64, f"{where}: signature")
    if len(blob) < _KEY_ID_SIZE:
        raise NoteError(
            f"{where}: base64 decodes to {len(blob)} bytes, expected at least "
            f"{_KEY_ID_SIZE} (the key id)"
        )
    return name, int.from_bytes(blob[:_KEY_ID_SIZE], "big"), blob[_KEY_ID_SIZE:]


def open_note(note: str | bytes, verifiers: Iterable[Verifier]) -> Note:
    """Parse a signed note and verify it (signed-note.md, "Format" and
    "Signatures").

    Signatures whose name and key ID do not both match a known verifier are
    ignored. A known key's signature that fails to verify rejects the note, and
    so does a note without any verified signature from a known key.
    """
    known = _index_verifiers(verifiers)
    if isinstance(note, str):
        data = _encode_utf8(note, "note")
    elif isinstance(note, bytes):
        data = note
    else:
        raise TypeError(f"note must be str or bytes, not {type(note).__name__}")
    if len(data) > MAX_NOTE_SIZE:
        raise NoteError(f"note is {len(data)} bytes, at most {MAX_NOTE_SIZE} are allowed")
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise NoteError(f"note is not valid UTF-8: invalid byte at offset {e.start}") from None
    _check_no_control_characters(decoded, "note")

    split = decoded.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line between its text and its signatures")
    text, block = decoded[: split + 1], decoded[split + 2 :]
    if not block:
        raise NoteError("note has no signature lines after its last blank line")
    if not block.endswith("\n"):
        raise NoteError("note's last signature line does not end in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(
            f"note has {len(lines)} signature lines, at most {MAX_SIGNATURES} are allowed"
        )

    signed = text.encode("utf-8")
    signatures: list[NoteSignature] = []
    for number, line in enumerate(lines, start=1):
        name, key_id, signature = _parse_signature_line(number, line)
        verifier = known.get((name, key_id))
        if verifier is not None:
            expected = _KEY_ID_SIZE + _ED25519_SIGNATURE_SIZE
            if len(signature) != _ED25519_SIGNATURE_SIZE:
                raise NoteError(
                    f"signature line {number}: base64 decodes to "
                    f"{_KEY_ID_SIZE + len(signature)} bytes, expected {expected}"
                )
            if not verifier.verify(signed, signature):
                raise NoteError(
                    f"signature line {number}: signature by known key "
                    f"{name}+{key_id:08x} does not verify"
                )
        signatures.append(NoteSignature(name, key_id, signature, verifier is not None))

    if not any(s.verified for s in signatures):
        found = ", ".join(f"{s.name}+{s.key_id:08x}" for s in signatures)
        raise NoteError(f"note has no signature by a known key (it is signed by {found})")
    return Note(text, signatures)


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint's note text (tlog-checkpoint.md, "Note text"): origin,
    tree size, RFC 6962 root hash and optional extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.extensions, tuple):
            raise NoteError("checkpoint extensions must be a tuple of strings")
        for what, line in [("origin", self.origin)] + [
            (f"extension line {i}", e) for i, e in enumerate(self.extensions, start=1)
        ]:
            if not isinstance(line, str) or not line:
                raise NoteError(f"checkpoint {what} must be a non-empty string")
            if "\n" in line:
                raise NoteError(f"checkpoint {what} contains a newline")
            _check_no_control_characters(line, f"checkpoint {what}")
            _encode_utf8(line, f"checkpoint {what}")
        if (
            not isinstance(self.size, int)
            or isinstance(self.size, bool)
            or not 0 <= self.size <= MAX_TREE_SIZE
        ):
            raise NoteError(f"checkpoint tree size {self.size!r} is not an integer in 0..2**63-1")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != 32:
            raise NoteError("checkpoint root hash must be 32 bytes")

    def text(self) -> str:
        """The note text: ``origin\\nsize\\nbase64(root)\\n`` then extension
        lines, each ending in a newline."""
        lines = [self.origin, str(self.size), _encode_base64(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint note text strictly (tlog-checkpoint.md, "Note
        text"): at least three non-empty lines; tree size in decimal without
        leading zeros, at most 2**63-1; root hash 32 bytes in base64."""
        _encode_utf8(text, "checkpoint")
        _check_no_control_characters(text, "checkpoint")
        if not text.endswith("\n"):
            raise NoteError("checkpoint text does not end in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError(
                f"checkpoint has {len(lines)} lines, expected at least 3 "
                "(origin, tree size, root hash)"
            )
        for number, line in enumerate(lines, start=1):
            if not line:
                raise NoteError(f"checkpoint line {number} is empty")
        origin, size_line, root_line, *extensions = lines
        if not _TREE_SIZE.fullmatch(size_line):
            raise NoteError(
                f"checkpoint line 2: tree size {size_line!r} is not a decimal number "
                "without leading zeros"
            )
        if len(size_line) > len(str(MAX_TREE_SIZE)) or int(size_line) > MAX_TREE_SIZE:
            raise NoteError(f"checkpoint line 2: tree size {size_line} is larger than 2**63-1")
        root_hash = _decode_base64(root_line, "checkpoint line 3: root hash")
        if len(root_hash) != 32:
            raise NoteError(
                f"checkpoint line 3: root hash decodes to {len(root_hash)} bytes, expected 32"
            )
        return cls(origin, int(size_line), root_hash, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> str:
    """The checkpoint as a note signed by ``signer`` (tlog-checkpoint.md,
    "Signatures")."""
    return sign_note(checkpoint.text(), signer)


def open_checkpoint(
    note: str | bytes, verifier: Verifier, origin: str | None = None
) -> Checkpoint:
    """Verify a checkpoint note signed by ``verifier`` and parse its text;
    when ``origin`` is given, the checkpoint's origin line must equal it."""
    checkpoint = Checkpoint.parse(open_note(note, [verifier]).text)
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(
            f"checkpoint origin {checkpoint.origin!r} is not the expected {origin!r}"
        )
    return checkpoint
