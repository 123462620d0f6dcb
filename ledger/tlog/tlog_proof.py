"""C2SP ``tlog-proof@v1``: offline-verifiable proofs that an entry is in the log.

A proof (c2sp.org/tlog-proof, "Format") is, line by line::

    c2sp.org/tlog-proof@v1
    extra <base64>            (optional: opaque, unauthenticated data)
    index <N>                 (decimal, no leading zeros unless 0)
    <base64 hash>             (zero or more: the RFC 6962 inclusion proof,
    ...                        from the leaf's sibling up to the root's child)
                              (one empty line)
    <checkpoint, verbatim>    (a tlog-checkpoint signed note)

:func:`parse_tlog_proof` reads it strictly and :func:`format_tlog_proof`
writes it; both are pure (no I/O). Every malformed input raises
:class:`TlogProofError`, whose ``line`` is the 1-based line of the proof
where the problem is (``None`` when it concerns the whole text).
:func:`verify_tlog_proof` performs the spec's "Verifying a tlog proof"
steps 2 and 4 for a leaf hash the caller computed (step 1): it opens the
checkpoint with the log's verifier key and checks the inclusion proof
against its root. Witness cosignatures (step 3) are not checked: the ledger
has no witness policy yet; unknown signature lines are ignored, as the
signed-note spec requires.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ledger.tlog.merkle import HASH_SIZE, root_from_inclusion_proof
from ledger.tlog.note import (
    MAX_NOTE_SIZE,
    Checkpoint,
    NoteError,
    Verifier,
    open_checkpoint,
)

__all__ = [
    "HEADER",
    "MAX_PROOF_HASHES",
    "MAX_PROOF_SIZE",
    "TlogProof",
    "TlogProofError",
    "decode_base64",
    "format_tlog_proof",
    "inclusion_proof_length",
    "note_error_line",
    "parse_tlog_proof",
    "verify_tlog_proof",
]

#: The first line of every proof (tlog-proof.md, "Format").
HEADER = "c2sp.org/tlog-proof@v1"

#: An inclusion proof in a tree of at most 2**64 leaves has at most 64 hashes.
MAX_PROOF_HASHES = 64

#: Largest proof :func:`parse_tlog_proof` reads, in bytes: a checkpoint note at
#: its largest, the hashes, and some extra data.
MAX_PROOF_SIZE = MAX_NOTE_SIZE + 64 * 1024

#: Largest index (and checkpoint tree size, see ``ledger.tlog.note``).
MAX_INDEX = 2**63 - 1

_BASE64 = re.compile("(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_DECIMAL = re.compile("0|[1-9][0-9]*")
_CONTROL_CHARACTER = re.compile("[\x00-\x09\x0b-\x1f]")


class TlogProofError(ValueError):
    """A tlog proof that is malformed or does not verify. ``line`` is the
    1-based line of the proof text the problem is on, or ``None``."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line
        self.detail = message


def decode_base64(text: str, what: str, line: int | None = None) -> bytes:
    """Strict standard base64 (RFC 4648 §4): padded, no white space, unused
    trailing bits zero. Raises :class:`TlogProofError`."""
    if not _BASE64.fullmatch(text):
        raise TlogProofError(f"{what} is not valid standard base64", line)
    raw = base64.b64decode(text)
    if base64.b64encode(raw).decode("ascii") != text:
        raise TlogProofError(f"{what} is not canonical base64: its unused trailing bits are not zero", line)
    return raw


@dataclass(frozen=True)
class TlogProof:
    """A parsed proof: the entry's index, the inclusion proof hashes (in RFC
    6962 order), the checkpoint note verbatim, and the optional extra data.
    ``checkpoint_line`` is the line of the proof where the checkpoint starts."""

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: str
    extra: bytes | None = None
    index_line: int = 2
    checkpoint_line: int = 4

    @property
    def separator_line(self) -> int:
        """The line of the empty line before the checkpoint."""
        return self.checkpoint_line - 1

    def text(self) -> str:
        return format_tlog_proof(self.index, self.hashes, self.checkpoint, self.extra)


def format_tlog_proof(
    index: int, hashes: Sequence[bytes], checkpoint: str, extra: bytes | None = None
) -> str:
    """The proof text (tlog-proof.md, "Format"). ``checkpoint`` is the signed
    note, which ends in a newline; so does the proof."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_INDEX:
        raise TlogProofError(f"index {index!r} is not an integer in 0..2**63-1")
    if len(hashes) > MAX_PROOF_HASHES:
        raise TlogProofError(f"{len(hashes)} proof hashes, at most {MAX_PROOF_HASHES} are possible")
    for i, h in enumerate(hashes):
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise TlogProofError(f"proof hash {i} is not {HASH_SIZE} bytes")
    if not isinstance(checkpoint, str) or not checkpoint.endswith("\n") or checkpoint.startswith("\n"):
        raise TlogProofError("the checkpoint must be a signed note: non-empty first line, ending in a newline")
    lines = [HEADER]
    if extra is not None:
        lines.append("extra " + base64.b64encode(extra).decode("ascii"))
    lines.append(f"index {index}")
    lines.extend(base64.b64encode(h).decode("ascii") for h in hashes)
    return "\n".join(lines) + "\n\n" + checkpoint


def parse_tlog_proof(data: str | bytes) -> TlogProof:
    """Parse a proof strictly (tlog-proof.md, "Format").

    The checkpoint is returned verbatim and not verified here: see
    :func:`verify_tlog_proof`. Only its outline is checked: it is not empty,
    its first line is not empty, and it ends in a newline.
    """
    if isinstance(data, bytes):
        if len(data) > MAX_PROOF_SIZE:
            raise TlogProofError(f"proof is {len(data)} bytes, at most {MAX_PROOF_SIZE} are allowed")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            raise TlogProofError(f"not valid UTF-8: invalid byte at offset {e.start}", line) from None
    elif isinstance(data, str):
        text = data
        if len(text) > MAX_PROOF_SIZE:
            raise TlogProofError(f"proof is {len(text)} characters, at most {MAX_PROOF_SIZE} are allowed")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            line = text.count("\n", 0, e.start) + 1
            raise TlogProofError(f"lone surrogate U+{ord(text[e.start]):04X} is not UTF-8", line) from None
    else:
        raise TypeError(f"proof must be str or bytes, not {type(data).__name__}")
    found = _CONTROL_CHARACTER.search(text)
    if found:
        line = text.count("\n", 0, found.start()) + 1
        name = "carriage return" if found.group() == "\r" else "control character"
        raise TlogProofError(
            f"{name} U+{ord(found.group()):04X} is not allowed (only newline is)", line
        )
    if not text:
        raise TlogProofError("proof is empty", 1)

    lines = text.split("\n")  # the text after the last newline is lines[-1]
    if lines[0] != HEADER:
        raise TlogProofError(f"first line is {_show(lines[0])}, expected {HEADER!r}", 1)
    n = 1
    extra: bytes | None = None
    if len(lines) > n and lines[n].startswith("extra"):
        if not lines[n].startswith("extra "):
            raise TlogProofError("extra line must be 'extra' followed by a space and base64", n + 1)
        extra = decode_base64(lines[n][len("extra "):], "extra data", n + 1)
        n += 1
    if len(lines) <= n or (n == len(lines) - 1 and not lines[n]):
        raise TlogProofError("proof ends before its index line", n + 1)
    index_line = lines[n]
    if not index_line.startswith("index "):
        raise TlogProofError(f"expected 'index <N>', found {_show(index_line)}", n + 1)
    digits = index_line[len("index "):]
    if not _DECIMAL.fullmatch(digits):
        raise TlogProofError(
            f"index {_show(digits)} is not a decimal number without leading zeros", n + 1
        )
    if len(digits) > len(str(MAX_INDEX)) or int(digits) > MAX_INDEX:
        raise TlogProofError(f"index {digits} is larger than 2**63-1", n + 1)
    index = int(digits)
    index_line_number = n + 1
    n += 1

    hashes: list[bytes] = []
    while n < len(lines) and lines[n]:
        if len(hashes) == MAX_PROOF_HASHES:
            raise TlogProofError(
                f"more than {MAX_PROOF_HASHES} proof hashes (or no empty line before the checkpoint)",
                n + 1,
            )
        raw = decode_base64(lines[n], f"proof hash {len(hashes) + 1}", n + 1)
        if len(raw) != HASH_SIZE:
            raise TlogProofError(
                f"proof hash {len(hashes) + 1} decodes to {len(raw)} bytes, expected {HASH_SIZE}",
                n + 1,
            )
        hashes.append(raw)
        n += 1
    if n >= len(lines) - 1:
        # The hashes ran to the end of the text (lines[-1] is what follows
        # the last newline): no empty line, or nothing after it.
        raise TlogProofError("no empty line and checkpoint after the proof hashes", n + 1)
    # lines[n] is the empty separator line; the checkpoint follows verbatim.
    checkpoint_line = n + 2
    checkpoint = "\n".join(lines[n + 1:])
    if not checkpoint:
        raise TlogProofError("no checkpoint after the empty line", checkpoint_line)
    if not lines[n + 1]:
        raise TlogProofError("two empty lines: the checkpoint must follow a single empty line", checkpoint_line)
    if not checkpoint.endswith("\n"):
        raise TlogProofError(
            "the checkpoint does not end in a newline (the proof is truncated?)", len(lines)
        )
    return TlogProof(index, tuple(hashes), checkpoint, extra, index_line_number, checkpoint_line)


def _show(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def note_error_line(error: NoteError, note: str) -> int:
    """The line (1-based, within ``note``) that a :class:`NoteError` from
    :func:`ledger.tlog.note.open_checkpoint` of ``note`` is about, as well as its
    message tells: signature problems at their signature line, text problems
    at their text line, otherwise line 1."""
    split = note.rfind("\n\n")
    text_lines = note[: split + 1].count("\n") if split >= 0 else note.count("\n")
    message = str(error)
    found = re.search(r"(signature|checkpoint|note) line (\d+)", message)
    if found:
        number = int(found.group(2))
        return text_lines + 1 + number if found.group(1) == "signature" else number
    if "no signature by a known key" in message or "signature lines" in message:
        return text_lines + 2
    if "blank line" in message:
        return text_lines + 1
    return 1


def verify_tlog_proof(
    proof: TlogProof, leaf_hash: bytes, verifier: Verifier, origin: str | None = None
) -> Checkpoint:
    """Check the proof's checkpoint signature (and origin, if given) and that
    its inclusion proof binds ``leaf_hash`` at ``proof.index`` to the
    checkpoint's root. Returns the checkpoint. Raises :class:`TlogProofError`
    with the line of the proof at fault."""
    try:
        checkpoint = open_checkpoint(proof.checkpoint, verifier, origin)
    except NoteError as e:
        line = proof.checkpoint_line - 1 + note_error_line(e, proof.checkpoint)
        raise TlogProofError(f"checkpoint: {e}", line) from None
    index_line = proof.index_line
    if proof.index >= checkpoint.size:
        raise TlogProofError(
            f"index {proof.index} is not below the checkpoint's tree size {checkpoint.size}", index_line
        )
    want = inclusion_proof_length(proof.index, checkpoint.size)
    if len(proof.hashes) != want:
        # Too few: the empty line is where the next hash should be; too many:
        # the first hash beyond the expected ones.
        line = proof.separator_line if len(proof.hashes) < want else index_line + 1 + want
        raise TlogProofError(
            f"the inclusion proof of leaf {proof.index} in a tree of {checkpoint.size} leaves has "
            f"{want} hashes, this one has {len(proof.hashes)}",
            line,
        )
    root = root_from_inclusion_proof(leaf_hash, proof.index, checkpoint.size, list(proof.hashes))
    if root != checkpoint.root_hash:
        raise TlogProofError(
            f"the inclusion proof of leaf {proof.index} yields root {root.hex()}, but the checkpoint "
            f"of size {checkpoint.size} signs {checkpoint.root_hash.hex()}",
            index_line + 1 if proof.hashes else index_line,
        )
    return checkpoint


def inclusion_proof_length(index: int, size: int) -> int:
    """Number of hashes in the inclusion proof of leaf ``index`` in a tree of
    ``size`` leaves (RFC 9162 §2.1.3.2): the bits below the point where the
    leaf's path meets the right edge, plus the left siblings above it."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} is not below tree size {size}")
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()
