"""Witnesses: C2SP tlog-cosignature cosigners and the witness that watches a ledger.

A witness keeps its own record of the last checkpoint it accepted from a log,
accepts a new one only if it is consistent with that record (RFC 9162
consistency proof), and then signs a **cosignature** over it. A verifier that
requires k of n known witnesses to have cosigned a checkpoint cannot be shown
a view of the log that those witnesses were not shown: a log that shows two
views (a **split view**) is caught by the witness that sees both, with both
signed checkpoints as evidence.

- :class:`Cosigner`, :class:`CosignatureVerifier`: Ed25519 cosignatures
  (tlog-cosignature.md, "Format" and "Ed25519 signed message"): key ID and
  vkey with signature type ``0x04``; the signature is an 8-byte big-endian
  POSIX timestamp followed by the Ed25519 signature of
  ``"cosignature/v1\\ntime <timestamp>\\n" || checkpoint note text``.
- :func:`verify_cosignatures`: a checkpoint signed by the log and cosigned by
  at least ``quorum`` known witnesses (signed-note.md, "Signatures": unknown
  keys are ignored, a known key whose signature fails rejects the note).
- :class:`WitnessState`: the witness's key and, per log origin, the last
  checkpoint it accepted; evidence of split views.
- :func:`run_witness`: one round against a ledger through :class:`LedgerClient`.

Malformed input raises :class:`CosignatureError` (a :class:`NoteError`) with
a message that names what is wrong.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import secrets
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ledger.tlog.keys import (
    PRIVATE_KEY_PREFIX,
    KeyFileError,
    read_private_line,
    write_private_file,
)
from ledger.tlog.merkle import EMPTY_ROOT, HASH_SIZE, ProofError, verify_consistency
from ledger.tlog.note import (
    COSIGNATURE_SIGNATURE_TYPE,
    MAX_NOTE_SIZE,
    Checkpoint,
    Ed25519KeyPair,
    NoteError,
    Verifier,
    _decode_base64,
    _parse_signature_line,
    check_key_name,
    compute_key_id,
    open_note,
    split_key_string,
)

__all__ = [
    "COSIGNATURE_HEADER",
    "MAX_TIMESTAMP",
    "Cosignature",
    "CosignatureError",
    "CosignatureVerifier",
    "Cosigner",
    "LedgerClient",
    "LedgerUnavailable",
    "ParsedCosignature",
    "QuorumNotReached",
    "WitnessRefused",
    "WitnessRound",
    "WitnessState",
    "WitnessStateError",
    "cosigned_message",
    "format_witness_key",
    "parse_cosignature_line",
    "parse_witness_key",
    "read_key_argument",
    "run_witness",
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
#: At most this many hashes in a consistency proof: 2 * 64 covers any tree size below 2**64.
_MAX_PROOF_HASHES = 128
_MAX_VKEY_FILE_SIZE = 4096


class CosignatureError(NoteError):
    """A cosignature, cosigner key or witness vkey that is malformed or does not verify."""


class QuorumNotReached(CosignatureError):
    """Fewer known witnesses than required cosigned a checkpoint."""


class WitnessStateError(Exception):
    """The witness state dir is missing, unreadable or damaged (exit status 2)."""


class LedgerUnavailable(Exception):
    """The ledger could not be reached or answered an error (exit status 2)."""


class WitnessRefused(Exception):
    """The witness refused to cosign (exit status 1).

    ``kind`` is ``split-view`` (two checkpoints of one size with different
    roots, or a larger one that is not consistent with the accepted one),
    ``rollback`` (a smaller tree than the accepted one), ``bad-checkpoint``
    (it does not verify under the log key) or ``bad-proof`` (a consistency
    proof that is malformed). ``evidence`` is the directory holding both
    checkpoints, when there are two.
    """

    def __init__(self, kind: str, message: str, evidence: Path | None = None) -> None:
        super().__init__(message)
        self.kind, self.evidence = kind, evidence


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


def read_key_argument(value: str, parse: Any, what: str) -> Any:
    """A verifier key given on the command line: a file holding it (one line,
    optionally followed by a newline) or, when no such file exists and the
    value has the vkey form, the vkey itself. ``parse`` turns the text into a
    key and raises :class:`NoteError`; errors become :class:`WitnessStateError`."""
    path = Path(value)
    if not path.exists():
        if "+" in value:
            try:
                return parse(value)
            except NoteError as e:
                raise WitnessStateError(f"{what}: no such file {value!r}, nor a valid vkey ({e})") from None
        raise WitnessStateError(f"{what} {value}: no such file")
    try:
        with open(path, "rb") as file:
            data = file.read(_MAX_VKEY_FILE_SIZE + 1)
    except OSError as e:
        raise WitnessStateError(f"cannot read {what} {path}: {e.strerror or e}") from None
    if len(data) > _MAX_VKEY_FILE_SIZE:
        raise WitnessStateError(f"{what} {path}: larger than {_MAX_VKEY_FILE_SIZE} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise WitnessStateError(f"{what} {path}: not valid UTF-8 (byte {e.start})") from None
    body = text.removesuffix("\n")
    if not body:
        raise WitnessStateError(f"{what} {path}: the file is empty")
    if "\n" in body:
        raise WitnessStateError(f"{what} {path}: {body.count(chr(10)) + 1} lines, expected one vkey line")
    try:
        return parse(body)
    except NoteError as e:
        raise WitnessStateError(f"{what} {path}: {e}") from None


# -- the witness's state -------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a fsynced temporary file in the
    same directory renamed over it, then the directory fsynced."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _origin_file_name(origin: str) -> str:
    """A file name for a log origin: its UTF-8 bytes percent-encoded except
    ``A-Z a-z 0-9 - . _ ~``, then ``.checkpoint``."""
    name = quote(origin, safe="-._~") + ".checkpoint"
    if len(name) > 255:
        raise WitnessStateError(f"log origin {origin[:40]!r}... is too long for a state file name")
    return name


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class WitnessState:
    """A witness's state dir: its key, its vkey, the last accepted checkpoint
    per log origin, and evidence of refused checkpoints.

    ::

        witness.key                   PRIVATE+KEY+<name>+<id>+base64(0x04 || seed), mode 0600
        witness.vkey                  <name>+<id>+base64(0x04 || public key)
        logs/<origin>.checkpoint      the last accepted checkpoint, as the log served it
        evidence/<time>-<kind>/       accepted.checkpoint, received.checkpoint,
                                      consistency-proof (if any), report.json
        witness.lock                  held while a round compares and records
    """

    KEY_FILE = "witness.key"
    VKEY_FILE = "witness.vkey"
    LOGS_DIR = "logs"
    EVIDENCE_DIR = "evidence"
    LOCK_FILE = "witness.lock"

    def __init__(self, directory: Path, cosigner: Cosigner) -> None:
        self.directory = Path(directory)
        self.cosigner = cosigner

    @classmethod
    def init(cls, directory: Path, name: str) -> tuple[WitnessState, bool]:
        """Create the state dir (mode 0700) and a new key named ``name``, once.
        Returns the state and whether the key was created now; an existing
        key with another name is an error."""
        directory = Path(directory)
        try:
            check_key_name(name)
        except NoteError as e:
            raise WitnessStateError(f"witness name: {e}") from None
        key_file = directory / cls.KEY_FILE
        if key_file.exists():
            state = cls.open(directory)
            if state.cosigner.name != name:
                raise WitnessStateError(
                    f"{directory} already holds the key of witness {state.cosigner.name!r}; "
                    f"it cannot be renamed to {name!r}"
                )
            state._write_vkey()
            return state, False
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(directory, 0o700)
            cosigner = Cosigner.generate(name)
            write_private_file(key_file, (format_witness_key(cosigner) + "\n").encode("utf-8"))
        except OSError as e:
            raise WitnessStateError(f"cannot create {directory}: {e.strerror or e}") from None
        except KeyFileError as e:
            raise WitnessStateError(str(e)) from None
        state = cls(directory, cosigner)
        state._write_vkey()
        return state, True

    @classmethod
    def open(cls, directory: Path) -> WitnessState:
        directory = Path(directory)
        key_file = directory / cls.KEY_FILE
        if not directory.is_dir() or not key_file.exists():
            raise WitnessStateError(
                f"{directory} is not a witness state dir; run `transfer-ledger witness init` first"
            )
        try:
            line = read_private_line(key_file)
            cosigner = parse_witness_key(line)
        except KeyFileError as e:
            raise WitnessStateError(str(e) if str(key_file) in str(e) else f"key file {key_file}: {e}") from None
        return cls(directory, cosigner)

    def _write_vkey(self) -> None:
        path = self.directory / self.VKEY_FILE
        data = (self.cosigner.vkey() + "\n").encode("utf-8")
        try:
            if not path.exists() or path.read_bytes() != data:
                _replace_file(path, data)
        except OSError as e:
            raise WitnessStateError(f"cannot write {path}: {e.strerror or e}") from None

    def accepted_file(self, origin: str) -> Path:
        return self.directory / self.LOGS_DIR / _origin_file_name(origin)

    def accepted(self, log_verifier: Verifier) -> tuple[str, Checkpoint] | None:
        """The last checkpoint accepted from the log of ``log_verifier`` (its
        note and parsed text), or None if none was; it must still verify."""
        path = self.accepted_file(log_verifier.name)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise WitnessStateError(f"cannot read {path}: {e.strerror or e}") from None
        try:
            note = data.decode("utf-8")
            checkpoint = Checkpoint.parse(open_note(data, [log_verifier]).text)
        except (UnicodeDecodeError, NoteError) as e:
            raise WitnessStateError(
                f"the accepted checkpoint {path} does not verify under {log_verifier.name}+"
                f"{log_verifier.key_id:08x}: {e}"
            ) from None
        if checkpoint.origin != log_verifier.name:
            raise WitnessStateError(f"the accepted checkpoint {path} is of origin {checkpoint.origin!r}")
        return note, checkpoint

    def accept(self, origin: str, note: str) -> Path:
        """Record ``note`` as the last accepted checkpoint of ``origin`` (atomically, fsynced)."""
        path = self.accepted_file(origin)
        try:
            path.parent.mkdir(exist_ok=True)
            _replace_file(path, note.encode("utf-8"))
        except OSError as e:
            raise WitnessStateError(f"cannot write {path}: {e.strerror or e}") from None
        return path

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the state's lock: comparing with and replacing the accepted
        checkpoint is atomic across witness processes (tlog-witness.md,
        "add-checkpoint": otherwise two rounds could roll the record back)."""
        path = self.directory / self.LOCK_FILE
        try:
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        except OSError as e:
            raise WitnessStateError(f"cannot open {path}: {e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def write_evidence(
        self,
        kind: str,
        accepted_note: str,
        received_note: str,
        report: dict[str, Any],
        proof: Sequence[bytes] | None = None,
    ) -> Path:
        """Keep both checkpoints (and the proof, if any) in a new directory
        ``evidence/<UTC time>-<kind>/`` with a ``report.json``; return it."""
        base = self.directory / self.EVIDENCE_DIR
        stamp = _utc_now().strftime("%Y%m%dT%H%M%SZ")
        try:
            base.mkdir(exist_ok=True)
            for attempt in range(1, 1000):
                target = base / (f"{stamp}-{kind}" if attempt == 1 else f"{stamp}-{kind}-{attempt}")
                try:
                    target.mkdir()
                    break
                except FileExistsError:
                    continue
            else:
                raise WitnessStateError(f"cannot find a free evidence directory name in {base}")
            files = {"accepted.checkpoint": accepted_note.encode("utf-8"),
                     "received.checkpoint": received_note.encode("utf-8")}
            if proof is not None:
                files["consistency-proof"] = "".join(
                    base64.b64encode(h).decode("ascii") + "\n" for h in proof
                ).encode("ascii")
            files["report.json"] = (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
            for name, data in files.items():
                _replace_file(target / name, data)
            _fsync_dir(base)
        except OSError as e:
            raise WitnessStateError(f"cannot write evidence in {base}: {e.strerror or e}") from None
        return target


# -- talking to the ledger ---------------------------------------------------------------------


def _problem_detail(body: bytes) -> str:
    """The ``detail`` (and ``rule``) of an RFC 9457 problem, else the body's first line."""
    try:
        problem = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return text.splitlines()[0][:200] if text else "(empty body)"
    if isinstance(problem, dict) and isinstance(problem.get("detail"), str):
        rule = f" [{problem['rule']}]" if isinstance(problem.get("rule"), str) else ""
        return problem["detail"][:300] + rule
    return str(problem)[:200]


class LedgerClient:
    """The API calls a witness makes, with a key of role ``verifier``."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not re.match(r"https?://[^\s/]+", base_url or ""):
            raise LedgerUnavailable(f"ledger URL {base_url!r} is not an http:// or https:// URL")
        if not api_key or any(ord(c) < 0x21 or ord(c) > 0x7E for c in api_key):
            raise LedgerUnavailable("the API key is empty or holds characters that cannot be sent in a header")
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "transfer-ledger-witness"},
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> tuple[int, bytes]:
        """Send a request; the status and the body (at most ``MAX_NOTE_SIZE`` bytes).
        An unreachable ledger or an error status raises :class:`LedgerUnavailable`."""
        what = f"{method} {self.base_url}{path}"
        body = bytearray()
        try:
            with self._client.stream(method, path, **kwargs) as response:
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_NOTE_SIZE:
                        raise LedgerUnavailable(f"{what}: the answer is larger than {MAX_NOTE_SIZE} bytes")
        except httpx.TimeoutException:
            raise LedgerUnavailable(f"{what}: timed out") from None
        except httpx.HTTPError as e:
            raise LedgerUnavailable(f"cannot reach the ledger: {what}: {str(e) or type(e).__name__}") from None
        if response.status_code >= 400:
            raise LedgerUnavailable(f"{what} answered {response.status_code}: {_problem_detail(bytes(body))}")
        return response.status_code, bytes(body)

    def latest_checkpoint(self) -> str:
        """The latest checkpoint note (``GET /v1/checkpoint``), as text."""
        _, body = self._request("GET", "/v1/checkpoint")
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise WitnessRefused(
                "bad-checkpoint", f"the ledger's checkpoint is not valid UTF-8 (byte {e.start})"
            ) from None

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """``GET /v1/proofs/consistency``: the RFC 9162 proof from ``first`` to ``second``."""
        _, body = self._request("GET", "/v1/proofs/consistency", params={"first": first, "second": second})
        try:
            answer = json.loads(body)
        except ValueError:
            raise WitnessRefused("bad-proof", f"the consistency proof {first}->{second} is not JSON") from None
        return parse_consistency_proof(answer, first, second)

    def add_cosignature(self, tree_size: int, vkey: str, line: str) -> tuple[int, dict[str, Any]]:
        """``POST /v1/checkpoint/cosignatures``: the status (201 stored now,
        200 one by this key was stored before) and the body. A refusal
        raises :class:`LedgerUnavailable` with the ledger's reason."""
        status, body = self._request(
            "POST", "/v1/checkpoint/cosignatures",
            json={"tree_size": tree_size, "vkey": vkey, "cosignature": line},
        )
        try:
            answer = json.loads(body)
        except ValueError:
            answer = {}
        return status, answer if isinstance(answer, dict) else {}


def parse_consistency_proof(body: Any, first: int, second: int) -> list[bytes]:
    """Check the JSON of ``GET /v1/proofs/consistency`` strictly: the sizes
    asked for, and a list of base64 32-byte hashes."""
    where = f"the consistency proof {first}->{second}"
    if not isinstance(body, dict):
        raise WitnessRefused("bad-proof", f"{where} is not a JSON object")
    if body.get("first") != first or body.get("second") != second:
        raise WitnessRefused(
            "bad-proof", f"{where}: the ledger answered for {body.get('first')!r}->{body.get('second')!r}"
        )
    proof = body.get("proof")
    if not isinstance(proof, list) or len(proof) > _MAX_PROOF_HASHES:
        raise WitnessRefused("bad-proof", f"{where}: 'proof' is not a list of at most {_MAX_PROOF_HASHES} hashes")
    hashes = []
    for i, item in enumerate(proof):
        if not isinstance(item, str):
            raise WitnessRefused("bad-proof", f"{where}: proof[{i}] is not a string")
        try:
            raw = _decode_base64(item, f"{where}: proof[{i}]")
        except NoteError as e:
            raise WitnessRefused("bad-proof", str(e)) from None
        if len(raw) != HASH_SIZE:
            raise WitnessRefused("bad-proof", f"{where}: proof[{i}] is {len(raw)} bytes, expected {HASH_SIZE}")
        hashes.append(raw)
    return hashes


# -- one round -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WitnessRound:
    """What a round did: the checkpoint cosigned, the size accepted before
    (None the first time), the cosignature line, and whether the ledger
    stored it now (False: it already had one by this witness for the size)."""

    checkpoint: Checkpoint
    previous_size: int | None
    cosignature: str
    stored: bool


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _describe(checkpoint: Checkpoint) -> str:
    return f"size {checkpoint.size}, root {_b64(checkpoint.root_hash)}"


def _summary(checkpoint: Checkpoint, file: str) -> dict[str, Any]:
    return {"file": file, "tree_size": checkpoint.size, "root_hash": _b64(checkpoint.root_hash)}


def run_witness(
    client: LedgerClient,
    state: WitnessState,
    log_verifier: Verifier,
    *,
    now: int | None = None,
) -> WitnessRound:
    """One round: fetch the ledger's latest checkpoint, verify it under the
    log key, compare it with the last one accepted, and if it is the same
    tree or a consistent extension, record it and send the ledger a
    cosignature.

    Refuses (:class:`WitnessRefused`, with both checkpoints kept under
    ``evidence/``) a smaller tree (``rollback``), the same size with another
    root or a larger tree whose consistency proof fails (``split-view``).
    The first checkpoint ever seen from a log is trusted as it is.
    """
    origin = log_verifier.name
    received_note = client.latest_checkpoint()
    try:
        opened = open_note(received_note, [log_verifier])
        received = Checkpoint.parse(opened.text)
    except NoteError as e:
        raise WitnessRefused(
            "bad-checkpoint",
            f"the checkpoint served by {client.base_url} does not verify under the log key "
            f"{log_verifier.name}+{log_verifier.key_id:08x}: {e}",
        ) from None
    if received.origin != origin:
        raise WitnessRefused("bad-checkpoint", f"the checkpoint's origin {received.origin!r} is not {origin!r}")
    if received.size == 0 and received.root_hash != EMPTY_ROOT:
        raise WitnessRefused("bad-checkpoint", "the checkpoint of size 0 does not have the empty tree's root")

    with state.lock():
        previous = state.accepted(log_verifier)
        if previous is not None:
            accepted_note, accepted = previous
            _check_against_accepted(client, state, accepted_note, accepted, received_note, received)
        if previous is None or received.size > previous[1].size:
            state.accept(origin, received_note)

    line = state.cosigner.cosign(opened.text, now if now is not None else int(time.time()))
    status, _ = client.add_cosignature(received.size, state.cosigner.vkey(), line)
    return WitnessRound(received, previous[1].size if previous else None, line, status == 201)


def _check_against_accepted(
    client: LedgerClient,
    state: WitnessState,
    accepted_note: str,
    accepted: Checkpoint,
    received_note: str,
    received: Checkpoint,
) -> None:
    def refuse(kind: str, headline: str, detail: str, proof: Sequence[bytes] | None = None) -> None:
        report = {
            "kind": kind,
            "detail": detail,
            "origin": accepted.origin,
            "ledger": client.base_url,
            "detected_at": _utc_now().isoformat().replace("+00:00", "Z"),
            "witness": state.cosigner.vkey(),
            "accepted": _summary(accepted, "accepted.checkpoint"),
            "received": _summary(received, "received.checkpoint"),
            "consistency_proof": (
                {"file": "consistency-proof", "first": accepted.size, "second": received.size}
                if proof is not None else None
            ),
        }
        evidence = state.write_evidence(kind, accepted_note, received_note, report, proof)
        raise WitnessRefused(
            kind,
            f"{headline}: {detail}; evidence in {evidence} (accepted.checkpoint, received.checkpoint"
            + (", consistency-proof" if proof is not None else "") + ")",
            evidence,
        )

    if received.size < accepted.size:
        refuse("rollback", "ROLLBACK",
               f"the ledger served a checkpoint of {_describe(received)}, smaller than the accepted one of "
               f"{_describe(accepted)}")
    elif received.size == accepted.size:
        if received.root_hash != accepted.root_hash:
            refuse("split-view", "SPLIT VIEW",
                   f"two checkpoints of size {received.size} with different roots: accepted "
                   f"{_b64(accepted.root_hash)}, received {_b64(received.root_hash)}")
    elif accepted.size > 0:
        proof = client.consistency_proof(accepted.size, received.size)
        try:
            verify_consistency(accepted.size, received.size, proof, accepted.root_hash, received.root_hash)
        except ProofError as e:
            refuse("split-view", "SPLIT VIEW",
                   f"the checkpoint of {_describe(received)} is not consistent with the accepted one of "
                   f"{_describe(accepted)} ({e})", proof)


def compare_checkpoints(
    first: Checkpoint, second: Checkpoint, proof: Sequence[bytes] | None
) -> str:
    """Compare two checkpoints of one log offline. Returns a description when
    they are consistent; raises :class:`WitnessRefused` (``split-view``) when
    they are not, and :class:`WitnessStateError` when sizes differ and no
    consistency proof is given."""
    if first.origin != second.origin:
        raise WitnessStateError(f"the checkpoints are of two logs: {first.origin!r} and {second.origin!r}")
    small, large = sorted((first, second), key=lambda c: c.size)
    if small.size == large.size:
        if small.root_hash != large.root_hash:
            raise WitnessRefused(
                "split-view",
                f"SPLIT VIEW: two checkpoints of size {small.size} with different roots: "
                f"{_b64(first.root_hash)} and {_b64(second.root_hash)}",
            )
        if proof:
            raise WitnessStateError("the checkpoints have the same size: the proof must be empty")
        return f"the same tree: size {small.size}, root {_b64(small.root_hash)}"
    if small.size == 0:
        if small.root_hash != EMPTY_ROOT:
            raise WitnessRefused("bad-checkpoint", "the checkpoint of size 0 does not have the empty tree's root")
        return f"size 0 is a prefix of every tree; {_describe(large)}"
    if proof is None:
        raise WitnessStateError(
            f"the checkpoints have sizes {small.size} and {large.size}: pass --proof FILE "
            "(a consistency proof, one base64 hash per line) to check that one extends the other"
        )
    try:
        verify_consistency(small.size, large.size, proof, small.root_hash, large.root_hash)
    except ProofError as e:
        raise WitnessRefused(
            "split-view",
            f"SPLIT VIEW: the checkpoints of {_describe(small)} and {_describe(large)} are not consistent ({e})",
        ) from None
    return f"consistent: {_describe(small)} is a prefix of {_describe(large)}"


def read_proof_file(path: Path) -> list[bytes]:
    """A consistency proof file: one base64 32-byte hash per line (the
    ``consistency-proof`` evidence file). Raises :class:`WitnessStateError`."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise WitnessStateError(f"cannot read proof {path}: {e.strerror or e}") from None
    if len(data) > _MAX_PROOF_HASHES * 46:
        raise WitnessStateError(f"proof {path}: larger than {_MAX_PROOF_HASHES} hashes")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as e:
        raise WitnessStateError(f"proof {path}: not ASCII (byte {e.start})") from None
    if text and not text.endswith("\n"):
        raise WitnessStateError(f"proof {path}: the last line does not end in a newline")
    hashes = []
    for number, line in enumerate(text[:-1].split("\n") if text else [], start=1):
        try:
            raw = _decode_base64(line, f"proof {path} line {number}")
        except NoteError as e:
            raise WitnessStateError(str(e)) from None
        if len(raw) != HASH_SIZE:
            raise WitnessStateError(f"proof {path} line {number}: {len(raw)} bytes, expected {HASH_SIZE}")
        hashes.append(raw)
    return hashes

