"""The witness that watches a ledger, and cosigns its checkpoints (C2SP tlog-witness).

A witness keeps its own record of the last checkpoint it accepted from a log,
accepts a new one only if it is consistent with that record (RFC 9162
consistency proof), and then signs a **cosignature** over it. A verifier that
requires k of n known witnesses to have cosigned a checkpoint cannot be shown
a view of the log that those witnesses were not shown: a log that shows two
views (a **split view**) is caught by the witness that sees both, with both
signed checkpoints as evidence.

The cosignature format and the witness keys are ``ledger.tlog.cosignature``.

- :class:`WitnessState`: the witness's key and, per log origin, the last
  checkpoint it accepted; evidence of split views.
- :func:`run_witness`: one round against a ledger through :class:`LedgerClient`.

A damaged state dir raises :class:`WitnessStateError`; a ledger that cannot be
reached, :class:`LedgerUnavailable`; a checkpoint the witness will not cosign,
:class:`WitnessRefused`.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from ledger.tlog.cosignature import (
    Cosigner,
    format_witness_key,
    parse_witness_key,
)
from ledger.tlog.keys import (
    KeyFileError,
    read_private_line,
    write_private_file,
)
from ledger.tlog.merkle import EMPTY_ROOT, HASH_SIZE, ProofError, verify_consistency
from ledger.tlog.note import (
    MAX_NOTE_SIZE,
    Checkpoint,
    NoteError,
    Verifier,
    _decode_base64,
    check_key_name,
    open_note,
)

__all__ = [
    "LedgerClient",
    "LedgerUnavailable",
    "WitnessRefused",
    "WitnessRound",
    "WitnessState",
    "WitnessStateError",
    "read_key_argument",
    "run_witness",
]

#: At most this many hashes in a consistency proof: 2 * 64 covers any tree size below 2**64.
_MAX_PROOF_HASHES = 128
_MAX_VKEY_FILE_SIZE = 4096


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

