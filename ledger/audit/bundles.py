"""Audit bundles: the ledger exported for offline verification.

A bundle is a directory (``docs/FORMAT.md``, section 14, states every byte):

``checkpoint``
    the signed C2SP checkpoint (tlog-checkpoint note) covering the bundle;
``events.jsonl``
    one line per leaf, in leaf order, up to the checkpoint's tree size: the
    leaf index, the exact leaf bytes (base64), the leaf hash (base64) and the
    decoded event;
``proofs/<transfer id>.tlog-proof``
    for chosen transfers, a C2SP ``tlog-proof@v1`` of the transfer's leaf in
    the checkpointed tree;
``openings.jsonl``
    only when exported with personal data (event format 2): one line per
    personal value of the reader's share, its salt and value, which open the
    commitment its leaf holds; erased values are absent (destroyed);
``bundle.json``
    the manifest: format, origin, tree size, root, every file's size and
    SHA-256, and, with openings, who read them and which share.

:func:`export_bundle` writes one from a store (streaming, constant memory;
files written atomically, the manifest last). :func:`verify_bundle` checks
one with nothing but its files and the ledger's verifier key: no database,
no private key, and none of the storage modules are imported. It reports the
**first bad line** (``file:line``) and what is wrong there.

The order of the checks, and so which problem comes first: the checkpoint;
the manifest (its form, and the files it lists against the files present);
``events.jsonl`` line by line, stopping at the first bad line; then, at its
end, the number of lines and the root against the checkpoint; the openings,
in line order (each against the commitment in its leaf, recomputed with
``ledger.tlog.commitment``); the proofs, in file name order; last, the files'
sizes and digests against the manifest.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from uuid import UUID

from domain.personal import get_path, is_commitment
from ledger.tlog.commitment import SALT_SIZE, opens
from ledger.tlog.leaf import LEAF_FORMAT, ZERO_HASH, encode_leaf
from ledger.tlog.merkle import (
    CompactRange,
    NodeId,
    ProofError,
    inclusion_proof,
    inclusion_proof_ids,
    leaf_hash,
    node_hash,
    verify_inclusion,
)
from ledger.tlog.note import (
    MAX_NOTE_SIZE,
    Checkpoint,
    NoteError,
    Signer,
    Verifier,
    open_checkpoint,
)
from ledger.tlog.tlog_proof import (
    MAX_PROOF_SIZE,
    TlogProof,
    TlogProofError,
    decode_base64,
    format_tlog_proof,
    inclusion_proof_length,
    note_error_line,
    parse_tlog_proof,
    verify_tlog_proof,
)

if TYPE_CHECKING:
    from ledger.storage.principals import Principal
    from ledger.storage.store import LedgerStore

__all__ = [
    "BUNDLE_FORMAT",
    "BundleError",
    "BundleReport",
    "ExportError",
    "ExportRefused",
    "ExportResult",
    "OpeningsResult",
    "decode_state",
    "event_object",
    "events_line",
    "export_bundle",
    "load_vkey",
    "openings_line",
    "verify_bundle",
]

BUNDLE_FORMAT = "transfer-ledger/bundle/v1"
CHECKPOINT_FILE = "checkpoint"
EVENTS_FILE = "events.jsonl"
MANIFEST_FILE = "bundle.json"
OPENINGS_FILE = "openings.jsonl"
PROOFS_DIR = "proofs"
PROOF_SUFFIX = ".tlog-proof"

#: Leaves read per query when exporting.
BATCH = 1000
#: Longest line of ``events.jsonl`` the verifier reads, in bytes.
MAX_LINE = 64 << 20
#: Largest manifest the verifier reads, in bytes.
MAX_MANIFEST_SIZE = 16 << 20
#: Largest vkey file, in bytes.
MAX_VKEY_FILE_SIZE = 4096
#: How many problems a report lists (the count is always complete).
MAX_LISTED_PROBLEMS = 100

LINE_KEYS = ("leaf_index", "leaf", "leaf_hash", "event")
EVENT_KEYS = ("originator_id", "originator_version", "topic", "recorded_at", "data")
LEAF_KEYS = (
    "format", "leaf_index", "originator_id", "originator_version",
    "prev_leaf_hash", "recorded_at", "state", "topic",
)
MANIFEST_KEYS = ("format", "origin", "tree_size", "root_hash", "exported_at", "files", "proofs")
#: Members a manifest may have besides: ``personal_data`` (from the first bundles of event
#: format 2 on), ``openings`` (a bundle exported with personal data).
OPTIONAL_MANIFEST_KEYS = ("personal_data", "openings")
#: What ``bundle.json``'s ``personal_data`` says of the events: their leaves hold commitments
#: (event format 2: docs/FORMAT.md section 17), or the values themselves (format 1).
PERSONAL_DATA_KINDS = ("commitments", "in-leaves")
#: The members of a line of ``openings.jsonl``, in order.
OPENING_KEYS = ("leaf_index", "originator_id", "originator_version", "path", "salt", "value")
#: The members of ``bundle.json``'s ``openings``: the file; who read the values; whose share they
#: are; how many were written (the lines), and how many of the share's were not: ``erased`` (their
#: opening was destroyed by an erasure, so they are absent) and ``unavailable`` (no opening found).
OPENINGS_KEYS = ("file", "read_by", "share", "values", "erased", "unavailable")
READ_BY_KEYS = ("principal", "name", "party", "roles")
#: ``all``: every event's values (an auditor of ``*``); ``party``: those of the transfers the
#: reader's Party sent, received or originated and of the authorizations about them.
SHARES = ("all", "party")
FILE_KEYS = ("name", "size", "sha256")
PROOF_KEYS = ("transfer_id", "leaf_index", "file")

_UUID_TEXT = re.compile("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX64 = re.compile("[0-9a-f]{64}")
_RECORDED_AT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{6})?Z")
_PROOF_NAME = re.compile(PROOFS_DIR + "/(" + _UUID_TEXT.pattern + ")" + re.escape(PROOF_SUFFIX))

Progress = Callable[[int, int], None]


class ExportError(Exception):
    """The export cannot be made as asked (exit status 2): the out dir is not
    empty, a transfer id is unknown, a file cannot be written."""

    status = 2


class ExportRefused(ExportError):
    """The ledger does not hash to what it stored or signed: refuse to export
    it (exit status 1); ``transfer-ledger verify`` says more."""

    status = 1


class BundleError(Exception):
    """The bundle or the key cannot be used at all (exit status 2): not a
    directory, a required file missing or unreadable, a malformed vkey."""


# --------------------------------------------------------------------------
# The lines of events.jsonl


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate member {key!r}")
        out[key] = value
    return out


def strict_json(text: str) -> Any:
    """Parse JSON strictly (RFC 8259): no NaN or Infinity, no number beyond
    the float range, no duplicate member names. Raises ValueError."""
    try:
        return json.loads(
            text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant,
            parse_float=_finite_float,
        )
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


_TRANSCODED = {"datetime_iso", "uuid_hex", "decimal_str"}


def _untranscode(value: Any) -> Any:
    if isinstance(value, dict):
        if (
            len(value) == 2 and value.get("_type_") in _TRANSCODED
            and isinstance(value.get("_data_"), str)
        ):
            data = value["_data_"]
            if value["_type_"] != "uuid_hex":
                return data
            try:
                return str(UUID(hex=data)) if len(data) == 32 else value
            except ValueError:
                return value
        return {key: _untranscode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_untranscode(item) for item in value]
    return value


def decode_state(state: bytes) -> dict[str, Any] | None:
    """The event's data as the bundle shows it, or None when the stored state
    is not a plain JSON object (e.g. compressed or encrypted).

    The stored state is eventsourcing's JSON (FORMAT.md section 3). It is
    decoded as UTF-8 JSON and must be an object, strictly (no duplicate
    names, NaN, Infinity or out-of-range numbers) and representable again
    as UTF-8 JSON; values eventsourcing transcoded as ``{"_type_":
    "datetime_iso" | "uuid_hex" | "decimal_str", "_data_": <string>}`` are
    replaced by their string (a ``uuid_hex`` by the hyphenated UUID). The
    leaf binds the stored bytes, not this view: a verifier recomputes it
    from the leaf's ``state`` and compares.
    """
    try:
        value = strict_json(state.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(value, dict):
        return None
    decoded = _untranscode(value)
    try:
        _dumps(decoded).encode("utf-8")
    except (ValueError, UnicodeEncodeError, RecursionError):
        return None
    return decoded


def event_object(
    originator_id: str, originator_version: int, topic: str, recorded_at: str, state: bytes
) -> dict[str, Any]:
    """The ``event`` member of a line of ``events.jsonl``."""
    return {
        "originator_id": originator_id,
        "originator_version": originator_version,
        "topic": topic,
        "recorded_at": recorded_at,
        "data": decode_state(state),
    }


def openings_line(
    leaf_index: int, originator_id: str, originator_version: int, path: str, salt: bytes, value: Any
) -> bytes:
    """One line of ``openings.jsonl``, with its newline: the salt (hex) and value that open the
    commitment at ``path`` of the event of leaf ``leaf_index``, exactly as the exporter writes
    it and the verifier requires it."""
    obj = {
        "leaf_index": leaf_index,
        "originator_id": originator_id,
        "originator_version": originator_version,
        "path": path,
        "salt": salt.hex(),
        "value": value,
    }
    return _dumps(obj).encode("utf-8") + b"\n"


def events_line(leaf_index: int, leaf: bytes, digest: bytes, event: dict[str, Any]) -> bytes:
    """One line of ``events.jsonl``, with its newline: exactly as the exporter
    writes it and the verifier requires it."""
    obj = {
        "leaf_index": leaf_index,
        "leaf": base64.b64encode(leaf).decode("ascii"),
        "leaf_hash": base64.b64encode(digest).decode("ascii"),
        "event": event,
    }
    return _dumps(obj).encode("utf-8") + b"\n"


# --------------------------------------------------------------------------
# Export


@dataclass(frozen=True)
class OpeningsResult:
    """What an export with personal data wrote in ``openings.jsonl``, and for whom."""

    principal: str
    name: str | None
    party: str
    roles: tuple[str, ...]
    share: str  # one of SHARES
    values: int  # lines written
    erased: int  # values of the share erased: absent
    unavailable: int  # values of the share neither opened nor erased

    def manifest(self) -> dict[str, Any]:
        """``bundle.json``'s ``openings`` member."""
        return {
            "file": OPENINGS_FILE,
            "read_by": {"principal": self.principal, "name": self.name, "party": self.party,
                        "roles": list(self.roles)},
            "share": self.share,
            "values": self.values,
            "erased": self.erased,
            "unavailable": self.unavailable,
        }


@dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    origin: str
    tree_size: int
    root_hash: bytes
    checkpoint: str
    proofs: dict[str, int]  # transfer id -> leaf index
    files: list[str]
    openings: OpeningsResult | None = None  # exported with personal data


def _personal_data_of(ledger_or_store: Any) -> str:
    """How the exported events hold personal data: ``commitments`` (format 2) or ``in-leaves``."""
    event_format = getattr(ledger_or_store, "event_format", None)
    if event_format is None:
        from ledger.storage.sql import SqlAccess  # export only: verify-export loads no database code

        rows = SqlAccess(ledger_or_store).query("SELECT value FROM {ledger_meta} WHERE name = 'event_format'")
        event_format = int(rows[0]["value"]) if rows else 1
    return "commitments" if event_format == 2 else "in-leaves"


def _check_reader(ledger: Any, reader: Principal) -> None:
    """Personal data are exported only for a principal that reads them, from a ledger whose
    leaves hold commitments and that can open them. Raises :class:`ExportError`."""
    who = f"principal {reader.id} (party {reader.party}, roles {', '.join(sorted(reader.roles))})"
    if reader.is_revoked:
        raise ExportError(f"{who} was revoked at {reader.revoked_at}")
    if not reader.is_reader:
        raise ExportError(
            f"{who} may not read personal data: a recorder, authority or auditor reads its Party's share, "
            "an auditor of * everything; a verifier nothing"
        )
    if _personal_data_of(ledger) == "in-leaves":
        raise ExportError(
            "this ledger is in event format 1: its personal values are in the leaves themselves, so "
            "events.jsonl carries them and there is nothing to open; export without --with-personal-data"
        )
    if getattr(ledger, "opener", None) is None:
        raise ExportError(
            "the personal data cannot be opened: the ledger was opened without its data-key "
            "directory (data-keys in the data dir)"
        )


class _ShareOpener:
    """The personal values of the events in a reader's share, opened (``TransferLedger.opener``)
    as the events stream past and written to ``openings.jsonl`` in leaf order, then by path.

    The share is the reader's (``Principal.can_read``): every event for an auditor of ``*``;
    otherwise the events of the transfers and authorizations whose Parties include the reader's,
    known from each aggregate's first event (which comes before its others in leaf order)."""

    def __init__(self, ledger: Any, reader: Principal, final: Path, out: BinaryIO) -> None:
        from domain.model import Authorization, Transfer
        from ledger.storage.principals import authorization_parties, transfer_parties

        self.opener = ledger.opener
        self.personal = ledger.personal
        self.reader = reader
        self.final, self.out = final, out
        self.share = "all" if reader.reads_everything else "party"
        self.parties_of: dict[str, Callable[[dict[str, Any]], set[str]]] = {
            Transfer.Recorded.TOPIC: transfer_parties,
            Authorization.Requested.TOPIC: authorization_parties,
        }
        self.readable: set[str] = set()  # aggregate ids in the share (a Party's reader)
        self.pending: list[tuple[int, str, int, str, str]] = []  # leaf, id, version, path, commitment
        self.digest = hashlib.sha256()
        self.size = 0
        self.values = self.erased = self.unavailable = 0

    def add(self, leaf_index: int, originator_id: str, version: int, topic: str, data: Any) -> None:
        """Note the commitments of one event, if it is in the share."""
        if not isinstance(data, dict):
            return
        if self.share == "party":
            parties = self.parties_of.get(topic)
            if version == 1 and parties is not None and self.reader.can_read(parties(data)):
                self.readable.add(originator_id)
            if originator_id not in self.readable:
                return
        block = data.get("personal_data")
        fields = block.get("fields") if isinstance(block, dict) else None
        if not isinstance(fields, dict):
            return
        for path in sorted(fields):
            commitment = get_path(data, path)
            if is_commitment(commitment):
                self.pending.append((leaf_index, originator_id, version, path, commitment))

    def flush(self) -> None:
        """Open the commitments noted and write their lines; count those that do not open."""
        if not self.pending:
            return
        opened = self.opener.opened({oid for _, oid, _, _, _ in self.pending})
        missing: list[str] = []
        for leaf_index, oid, version, path, commitment in self.pending:
            salt = opened.salts.get(commitment)
            if salt is None:
                missing.append(commitment)
                continue
            line = openings_line(leaf_index, oid, version, path, salt, opened.values[commitment])
            self.out.write(line)
            self.digest.update(line)
            self.size += len(line)
            self.values += 1
        if missing:
            erased = len(self.personal.erased(missing))
            self.erased += erased
            self.unavailable += len(missing) - erased
        self.pending.clear()

    def result(self) -> OpeningsResult:
        r = self.reader
        return OpeningsResult(r.id, r.name, r.party, tuple(sorted(r.roles)), self.share, self.values,
                              self.erased, self.unavailable)


def _store_of(ledger_or_store: Any) -> LedgerStore:
    if hasattr(ledger_or_store, "read_feed"):
        return ledger_or_store  # type: ignore[no-any-return]
    return ledger_or_store.store  # type: ignore[no-any-return]


def _transfer_topic() -> str:
    from domain.model import Transfer

    return Transfer.Recorded.TOPIC


def _resolve_transfers(store: LedgerStore, transfer_ids: Iterable[str]) -> dict[str, int]:
    """Transfer id (hyphenated) -> the leaf index of its ``TransferRecorded`` event."""
    found: dict[str, int] = {}
    topic = _transfer_topic()
    for given in transfer_ids:
        try:
            tid = UUID(str(given).strip())
        except ValueError:
            raise ExportError(f"--transfer {given!r} is not a transfer id (a UUID)") from None
        if str(tid) in found:
            continue
        leaf = store.leaf_of_event(tid, 1)
        if leaf is None:
            raise ExportError(f"there is no transfer {tid} in this ledger")
        rows = store.read_feed(leaf.leaf_index, 1)
        if not rows or rows[0][0].leaf_index != leaf.leaf_index:
            raise ExportRefused(f"the event row of leaf {leaf.leaf_index} (transfer {tid}) is missing")
        if rows[0][1].topic != topic:
            raise ExportError(
                f"{tid} is not a transfer: its first event is {rows[0][1].topic}, not {topic}"
            )
        found[str(tid)] = leaf.leaf_index
    return found


class _Writer:
    """Files written into the out dir as ``.<name>.tmp`` then renamed; on
    failure everything written is removed again."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.created_dir = False
        self.written: list[Path] = []
        self.temporary: list[Path] = []
        self.dirs: list[Path] = []

    def prepare(self) -> None:
        out = self.out_dir
        if out.exists() or out.is_symlink():
            if not out.is_dir():
                raise ExportError(f"{out} exists and is not a directory")
            try:
                if any(out.iterdir()):
                    raise ExportError(f"{out} is not empty; export into a new or empty directory")
            except OSError as e:
                raise ExportError(f"cannot read {out}: {e.strerror or e}") from None
        else:
            try:
                out.mkdir(parents=True)
            except OSError as e:
                raise ExportError(f"cannot create {out}: {e.strerror or e}") from None
            self.created_dir = True

    def subdir(self, name: str) -> Path:
        path = self.out_dir / name
        if not path.is_dir():
            path.mkdir()
            self.dirs.append(path)
        return path

    def open(self, name: str) -> tuple[Path, BinaryIO]:
        final = self.out_dir / name
        tmp = final.with_name("." + final.name + ".tmp")
        handle = open(tmp, "xb")  # noqa: SIM115 - closed by commit()
        self.temporary.append(tmp)
        return final, handle

    def commit(self, final: Path, handle: BinaryIO) -> None:
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        tmp = final.with_name("." + final.name + ".tmp")
        os.replace(tmp, final)
        self.temporary.remove(tmp)
        self.written.append(final)

    def write(self, name: str, data: bytes) -> None:
        final, handle = self.open(name)
        try:
            handle.write(data)
        except BaseException:
            handle.close()
            raise
        self.commit(final, handle)

    def sync_dirs(self) -> None:
        for path in [*self.dirs, self.out_dir]:
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(fd)
            except OSError:
                pass
            finally:
                os.close(fd)

    def discard(self) -> None:
        for path in [*self.temporary, *self.written]:
            try:
                path.unlink()
            except OSError:
                pass
        for path in reversed(self.dirs):
            try:
                path.rmdir()
            except OSError:
                pass
        if self.created_dir:
            try:
                self.out_dir.rmdir()
            except OSError:
                pass


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def export_bundle(
    ledger_or_store: Any,
    signer: Signer,
    out_dir: Path | str,
    transfer_ids: Iterable[str] = (),
    progress: Progress | None = None,
    *,
    reader: Principal | None = None,
) -> ExportResult:
    """Write an audit bundle of the whole ledger into ``out_dir`` (new or empty).

    Signs (or reuses) the checkpoint at the current head, then streams every
    leaf up to its size, rebuilding each leaf's bytes from its event row and
    the previous leaf's stored hash: a leaf that does not hash to its stored
    hash, or leaves whose root is not the checkpoint's, refuse the export
    (:class:`ExportRefused`). For each of ``transfer_ids`` it writes a
    ``tlog-proof`` of the transfer's leaf, from the stored Merkle nodes.
    ``progress(done, total)`` is called as leaves are written.

    With ``reader`` (an authenticated principal), ``ledger_or_store`` is the
    application, and the personal values of the reader's share are opened
    into ``openings.jsonl``, beside an ``events.jsonl`` byte for byte the
    same as without. A reader that reads no personal data, a ledger of event
    format 1, or one opened without its data keys: :class:`ExportError`,
    before anything is written.
    """
    from ledger.service.checkpoints import (
        InconsistentTreeError,
        sign_current_checkpoint,
    )

    store = _store_of(ledger_or_store)
    if reader is not None:
        _check_reader(ledger_or_store, reader)
    writer = _Writer(Path(out_dir))
    writer.prepare()
    try:
        wanted = _resolve_transfers(store, transfer_ids)
        try:
            stored = sign_current_checkpoint(store, signer)
        except InconsistentTreeError as e:
            raise ExportRefused(str(e)) from None
        try:
            signed = open_checkpoint(stored.note, signer.verifier(), signer.name)
        except NoteError as e:
            raise ExportRefused(
                f"the stored checkpoint at size {stored.tree_size} does not verify with this "
                f"ledger's key: {e}"
            ) from None
        size, root = signed.size, signed.root_hash
        if (size, root) != (stored.tree_size, stored.root_hash):
            raise ExportRefused(f"the stored checkpoint at size {stored.tree_size} differs from its note")
        for tid, index in wanted.items():
            if index >= size:  # cannot happen: the head only grows
                raise ExportError(f"transfer {tid} was recorded after the checkpoint; export again")

        files: list[str] = []
        digests: dict[str, tuple[int, str]] = {}

        final, handle = writer.open(EVENTS_FILE)
        share: _ShareOpener | None = None
        try:
            if reader is not None:
                share = _ShareOpener(ledger_or_store, reader, *writer.open(OPENINGS_FILE))
            digests[EVENTS_FILE] = _write_events(store, size, root, handle, progress, share)
        except BaseException:
            handle.close()
            if share is not None:
                share.out.close()
            raise
        writer.commit(final, handle)
        files.append(EVENTS_FILE)
        if share is not None:
            writer.commit(share.final, share.out)
            digests[OPENINGS_FILE] = (share.size, share.digest.hexdigest())
            files.append(OPENINGS_FILE)

        def get_nodes(ids: Any) -> list[bytes]:
            found = store.read_nodes(ids)
            missing = [i for i, h in zip(ids, found, strict=True) if h is None]
            if missing:
                raise ExportRefused(f"stored Merkle nodes {missing} are missing; run `transfer-ledger verify`")
            return found  # type: ignore[return-value]

        proofs: list[dict[str, Any]] = []
        if wanted:
            writer.subdir(PROOFS_DIR)
        for tid, index in sorted(wanted.items()):
            hashes = inclusion_proof(index, size, get_nodes)
            digest = get_nodes([(0, index)])[0]
            try:
                verify_inclusion(digest, index, size, hashes, root)
            except ProofError as e:
                raise ExportRefused(
                    f"the stored nodes do not prove leaf {index} (transfer {tid}) in the checkpoint: {e}"
                ) from None
            name = f"{PROOFS_DIR}/{tid}{PROOF_SUFFIX}"
            data = format_tlog_proof(index, hashes, stored.note).encode("utf-8")
            writer.write(name, data)
            digests[name] = (len(data), hashlib.sha256(data).hexdigest())
            files.append(name)
            proofs.append({"transfer_id": tid, "leaf_index": index, "file": name})

        note = stored.note.encode("utf-8")
        writer.write(CHECKPOINT_FILE, note)
        digests[CHECKPOINT_FILE] = (len(note), hashlib.sha256(note).hexdigest())
        files.insert(0, CHECKPOINT_FILE)

        manifest = {
            "format": BUNDLE_FORMAT,
            "origin": signed.origin,
            "tree_size": size,
            "root_hash": root.hex(),
            "exported_at": _now(),
            "files": [
                {"name": name, "size": digests[name][0], "sha256": digests[name][1]} for name in files
            ],
            "proofs": proofs,
            "personal_data": _personal_data_of(ledger_or_store),
        }
        if share is not None:
            manifest["openings"] = share.result().manifest()
        writer.write(MANIFEST_FILE, (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
        files.append(MANIFEST_FILE)
        writer.sync_dirs()
    except OSError as e:
        writer.discard()
        where = f"{e.filename}: " if e.filename else ""
        raise ExportError(f"cannot write the bundle: {where}{e.strerror or e}") from None
    except BaseException:
        writer.discard()
        raise
    return ExportResult(writer.out_dir, signed.origin, size, root, stored.note,
                        {tid: index for tid, index in sorted(wanted.items())}, files,
                        share.result() if share is not None else None)


def _write_events(
    store: LedgerStore, size: int, root: bytes, out: BinaryIO, progress: Progress | None,
    share: _ShareOpener | None = None,
) -> tuple[int, str]:
    """Stream leaves ``[0, size)`` into ``out``; returns its size and SHA-256. With ``share``,
    each event's personal values in the share are opened into its file, a batch at a time."""
    digest = hashlib.sha256()
    written = 0
    tree = CompactRange()
    prev = ZERO_HASH
    index = 0
    while index < size:
        rows = store.read_feed(index, min(BATCH, size - index))
        if not rows:
            raise ExportRefused(f"leaf {index} or its event row is missing; run `transfer-ledger verify`")
        for leaf, event in rows:
            if leaf.leaf_index != index:
                raise ExportRefused(
                    f"leaf {index} or its event row is missing; run `transfer-ledger verify`"
                )
            data = encode_leaf(index, prev, leaf.originator_id, leaf.originator_version,
                               event.topic, event.state, leaf.recorded_at)
            if leaf_hash(data) != leaf.leaf_hash:
                raise ExportRefused(
                    f"leaf {index}: its event row and the previous leaf's hash give leaf hash "
                    f"{leaf_hash(data).hex()}, but the stored leaf hash is {leaf.leaf_hash.hex()}: "
                    "the ledger was changed; run `transfer-ledger verify`"
                )
            shown = event_object(
                leaf.originator_id, leaf.originator_version, event.topic, leaf.recorded_at, event.state,
            )
            line = events_line(index, data, leaf.leaf_hash, shown)
            if share is not None:
                share.add(index, leaf.originator_id, leaf.originator_version, event.topic, shown["data"])
            out.write(line)
            digest.update(line)
            written += len(line)
            tree.append(leaf.leaf_hash)
            prev = leaf.leaf_hash
            index += 1
        if share is not None:
            share.flush()
        if progress is not None:
            progress(index, size)
    if tree.root() != root:
        raise ExportRefused(
            f"the {size} leaves have root {tree.root().hex()}, but the checkpoint signed at that size "
            f"has root {root.hex()}; run `transfer-ledger verify`"
        )
    return written, digest.hexdigest()


# --------------------------------------------------------------------------
# Verification


@dataclass
class BundleReport:
    """What :func:`verify_bundle` found. Problems are ``file:line: text``
    (or ``file: text`` when no single line is at fault), in the order of
    the checks (see the module's docstring); the first is the one a
    one-line message names."""

    ok: bool = True
    origin: str | None = None
    tree_size: int | None = None
    root_hash: bytes | None = None
    first_bad_file: str | None = None
    first_bad_line: int | None = None
    first_bad_index: int | None = None
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    lines_checked: int = 0
    proofs_checked: int = 0
    #: Lines of openings.jsonl whose salt and value open their leaf's commitment; None: no such file.
    openings_checked: int | None = None

    def problem(self, file: str, line: int | None, text: str, index: int | None = None) -> None:
        where = f"{file}:{line}" if line is not None else file
        if self.ok:
            self.ok = False
            self.first_bad_file, self.first_bad_line, self.first_bad_index = file, line, index
        self.problem_count += 1
        if len(self.problems) < MAX_LISTED_PROBLEMS:
            self.problems.append(f"{where}: {text}")

    def summary(self) -> str:
        """One line: ``OK: ...`` or ``FAILED: <first problem>``."""
        if self.ok:
            openings = f", {self.openings_checked} opening(s) verified" if self.openings_checked is not None else ""
            return (
                f"OK: {self.lines_checked} leaves, root {self.root_hash.hex() if self.root_hash else '-'}, "
                f"checkpoint of {self.origin} verified, {self.proofs_checked} proof(s) verified{openings}"
            )
        more = f" (and {self.problem_count - 1} more problem(s))" if self.problem_count > 1 else ""
        return f"FAILED: {self.problems[0]}{more}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "origin": self.origin,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex() if self.root_hash is not None else None,
            "first_bad_file": self.first_bad_file,
            "first_bad_line": self.first_bad_line,
            "first_bad_index": self.first_bad_index,
            "problems": self.problems,
            "problem_count": self.problem_count,
            "lines_checked": self.lines_checked,
            "proofs_checked": self.proofs_checked,
            "openings_checked": self.openings_checked,
        }


def load_vkey(value: str | Path) -> Verifier:
    """The verifier key from a file holding it (one line, optionally
    followed by a newline) or, when no such file exists and ``value`` has the
    vkey form, from the text itself. Raises :class:`BundleError`."""
    path = Path(value)
    if not path.exists():
        if isinstance(value, str) and "+" in value:
            try:
                return Verifier.from_vkey(value)
            except NoteError as e:
                raise BundleError(f"verifier key: no such file {value!r}, nor a valid vkey ({e})") from None
        raise BundleError(f"verifier key {path}: no such file")
    where = f"verifier key {path}"
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_VKEY_FILE_SIZE + 1)
    except OSError as e:
        raise BundleError(f"cannot read {where}: {e.strerror or e}") from None
    if len(data) > MAX_VKEY_FILE_SIZE:
        raise BundleError(f"{where}: larger than {MAX_VKEY_FILE_SIZE} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BundleError(f"{where}: not valid UTF-8 (byte {e.start})") from None
    body = text[:-1] if text.endswith("\n") else text
    if not body:
        raise BundleError(f"{where}: the file is empty")
    if "\n" in body:
        raise BundleError(f"{where}: {body.count(chr(10)) + 1} lines, expected the vkey alone on one line")
    if body != body.strip():
        raise BundleError(f"{where}: white space around the vkey")
    try:
        return Verifier.from_vkey(body)
    except NoteError as e:
        raise BundleError(f"{where}: {e}") from None


@dataclass
class _Line:
    """What the verifier keeps of one good line of events.jsonl."""

    leaf_hash: bytes
    originator_id: str
    originator_version: int
    topic: str
    data: dict[str, Any] | None = None  # the event's data (kept only while its line is checked)


class _Bad(Exception):
    """A problem on the current line."""


def _read_limited(path: Path, limit: int, what: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise _Bad(f"{what} is larger than {limit} bytes")
    return data


def _first_difference(got: Any, want: Any, path: str) -> str:
    """A JSON path where two JSON values first differ (types count)."""
    if isinstance(got, dict) and isinstance(want, dict):
        for key in want:
            if key not in got:
                return f"{path}.{key} is missing"
        for key in got:
            if key not in want:
                return f"{path}.{key} is not in the leaf's state"
            if _dumps(got[key]) != _dumps(want[key]) or type(got[key]) is not type(want[key]):
                return _first_difference(got[key], want[key], f"{path}.{key}")
        return f"{path}: the members are in another order than in the leaf's state"
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            if _dumps(a) != _dumps(b) or type(a) is not type(b):
                return _first_difference(a, b, f"{path}[{i}]")
    return f"{path} is {_short(got)}, but the leaf's state gives {_short(want)}"


def _short(value: Any, limit: int = 80) -> str:
    text = _dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and _dumps(a) == _dumps(b)


def _json_line(body: bytes, keys: Sequence[str]) -> dict[str, Any]:
    """A line of a bundle's JSON Lines file (without its newline): one JSON object with exactly
    the members ``keys``. Raises _Bad."""
    if not body:
        raise _Bad("empty line")
    if b"\r" in body:
        raise _Bad("carriage return in the line (lines end with a newline only)")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _Bad(f"not valid UTF-8: invalid byte at offset {e.start}") from None
    try:
        obj = strict_json(text)
    except ValueError as e:
        raise _Bad(f"not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise _Bad(f"not a JSON object but {type(obj).__name__}")
    if set(obj) != set(keys):
        raise _Bad(f"members are {sorted(obj)}, expected {list(keys)}")
    return obj


def _check_line(raw: bytes, index: int, prev: bytes) -> _Line:
    """Check line ``index + 1`` of events.jsonl (with its newline); ``prev``
    is the previous line's leaf hash (zeros for the first). Raises _Bad."""
    obj = _json_line(raw[:-1], LINE_KEYS)

    stated = obj["leaf_index"]
    if not _is_int(stated):
        raise _Bad(f"leaf_index is {_short(stated)}, not an integer")
    if stated != index:
        if stated > index:
            hint = f"leaf {index} is missing here (a line deleted or moved?)"
        else:
            hint = f"leaf {stated} came before (a line inserted, repeated or moved?)"
        raise _Bad(f"leaf_index is {stated}, expected {index}: {hint}")

    if not isinstance(obj["leaf"], str):
        raise _Bad("leaf is not a string")
    if not isinstance(obj["leaf_hash"], str):
        raise _Bad("leaf_hash is not a string")
    try:
        leaf = decode_base64(obj["leaf"], "leaf")
        stated_hash = decode_base64(obj["leaf_hash"], "leaf_hash")
    except TlogProofError as e:
        raise _Bad(e.detail) from None
    if len(stated_hash) != 32:
        raise _Bad(f"leaf_hash decodes to {len(stated_hash)} bytes, expected 32")
    digest = leaf_hash(leaf)
    if digest != stated_hash:
        raise _Bad(
            f"leaf_hash is {stated_hash.hex()}, but SHA-256(0x00 || leaf) is {digest.hex()}: "
            "the leaf or its hash was changed"
        )

    fields = _check_leaf(leaf, index, prev)
    event = obj["event"]
    if not isinstance(event, dict):
        raise _Bad("event is not a JSON object")
    if set(event) != set(EVENT_KEYS):
        raise _Bad(f"event members are {sorted(event)}, expected {list(EVENT_KEYS)}")
    for key in ("originator_id", "originator_version", "topic", "recorded_at"):
        if not _same(event[key], fields[key]):
            raise _Bad(f"event.{key} is {_short(event[key])}, but the leaf says {_short(fields[key])}")
    state = base64.b64decode(fields["state"])
    want = decode_state(state)
    if not _same(event["data"], want):
        raise _Bad(_first_difference(event["data"], want, "event.data"))
    expected = events_line(index, leaf, digest, event_object(
        fields["originator_id"], fields["originator_version"], fields["topic"], fields["recorded_at"], state,
    ))
    if raw != expected:
        raise _Bad(
            "the line is not in the exporter's form (white space, member order or escaping differ): "
            "it was edited"
        )
    return _Line(digest, fields["originator_id"], fields["originator_version"], fields["topic"], want)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_leaf(leaf: bytes, index: int, prev: bytes) -> dict[str, Any]:
    """The leaf bytes must be the FORMAT.md section 4 object for this index,
    chained to ``prev``, in RFC 8785 canonical form."""
    try:
        fields = strict_json(leaf.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise _Bad(f"leaf is not UTF-8 JSON: {e}") from None
    if not isinstance(fields, dict):
        raise _Bad("leaf is not a JSON object")
    if set(fields) != set(LEAF_KEYS):
        raise _Bad(f"leaf members are {sorted(fields)}, expected {list(LEAF_KEYS)}")
    if fields["format"] != LEAF_FORMAT:
        raise _Bad(f"leaf format is {_short(fields['format'])}, expected {LEAF_FORMAT!r}")
    if not _is_int(fields["leaf_index"]) or fields["leaf_index"] != index:
        raise _Bad(f"the leaf's leaf_index is {_short(fields['leaf_index'])}, expected {index}")
    oid = fields["originator_id"]
    if not isinstance(oid, str) or not _UUID_TEXT.fullmatch(oid):
        raise _Bad(f"the leaf's originator_id {_short(oid)} is not a hyphenated lowercase UUID")
    version = fields["originator_version"]
    if not _is_int(version) or not 1 <= version < 2**53:
        raise _Bad(f"the leaf's originator_version {_short(version)} is not an integer >= 1")
    prev_hex = fields["prev_leaf_hash"]
    if not isinstance(prev_hex, str) or not _HEX64.fullmatch(prev_hex):
        raise _Bad(f"the leaf's prev_leaf_hash {_short(prev_hex)} is not 64 lowercase hex digits")
    if prev_hex != prev.hex():
        before = "32 zero bytes for leaf 0" if index == 0 else f"line {index}'s leaf hash {prev.hex()}"
        raise _Bad(
            f"the leaf's prev_leaf_hash is {prev_hex}, but it must be {before}: the chain is broken "
            "here (this line, or the line before it, was changed, removed or moved)"
        )
    recorded_at = fields["recorded_at"]
    if not isinstance(recorded_at, str) or not _RECORDED_AT.fullmatch(recorded_at):
        raise _Bad(f"the leaf's recorded_at {_short(recorded_at)} is not RFC 3339 UTC as FORMAT.md states")
    if not isinstance(fields["state"], str):
        raise _Bad("the leaf's state is not a string")
    try:
        state = decode_base64(fields["state"], "the leaf's state")
    except TlogProofError as e:
        raise _Bad(e.detail) from None
    if not isinstance(fields["topic"], str) or not fields["topic"]:
        raise _Bad("the leaf's topic is not a non-empty string")
    try:
        canonical = encode_leaf(index, prev, oid, version, fields["topic"], state, recorded_at)
    except UnicodeEncodeError:
        raise _Bad("the leaf's topic is not valid Unicode") from None
    if canonical != leaf:
        raise _Bad("the leaf bytes are not in RFC 8785 canonical form")
    return fields


def _iter_lines(f: BinaryIO, hasher: Any) -> Iterator[bytes]:
    """Lines of at most MAX_LINE bytes (a longer one is returned cut, without
    its newline); each is hashed as read."""
    while True:
        raw = f.readline(MAX_LINE + 1)
        if not raw:
            return
        hasher.update(raw)
        yield raw


def _file_digest(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


@dataclass
class _ProofFile:
    name: str
    transfer_id: str
    proof: TlogProof | None = None
    error: tuple[int | None, str] | None = None
    digest: tuple[int, str] | None = None


@dataclass
class _Manifest:
    files: dict[str, tuple[int, str, int]] = field(default_factory=dict)  # name -> size, sha256, line
    proofs: dict[str, tuple[int, int]] = field(default_factory=dict)  # file -> leaf index, line
    openings_values: tuple[int, int] | None = None  # openings.values, its line


def _line_of(text: str, needle: str, default: int = 1) -> int:
    at = text.find(needle)
    return text.count("\n", 0, at) + 1 if at >= 0 else default


def verify_bundle(
    bundle_dir: Path | str, verifier: Verifier, progress: Progress | None = None
) -> BundleReport:
    """Verify an audit bundle offline with the ledger's verifier key.

    Raises :class:`BundleError` when ``bundle_dir`` is not a bundle at all
    (not a directory, or ``checkpoint``, ``events.jsonl`` or ``bundle.json``
    missing or unreadable); everything else is a problem in the report,
    which names the first bad ``file:line``. Reads ``events.jsonl`` line by
    line, in constant memory (plus O(log n) per proof).
    """
    root_dir = Path(bundle_dir)
    if not root_dir.is_dir():
        what = "does not exist" if not root_dir.exists() else "is not a directory"
        raise BundleError(f"bundle {root_dir} {what}")
    for name in (CHECKPOINT_FILE, EVENTS_FILE, MANIFEST_FILE):
        path = root_dir / name
        if not path.exists():
            raise BundleError(f"{path} is missing: not an export bundle (see `transfer-ledger export`)")
        if not path.is_file():
            raise BundleError(f"{path} is not a regular file")
        if not os.access(path, os.R_OK):
            raise BundleError(f"{path} is not readable")
    report = BundleReport()
    try:
        _verify(root_dir, verifier, report, progress)
    except OSError as e:
        raise BundleError(f"cannot read {e.filename or root_dir}: {e.strerror or e}") from None
    return report


def _verify(root_dir: Path, verifier: Verifier, report: BundleReport, progress: Progress | None) -> None:
    # 1. The checkpoint.
    checkpoint: Checkpoint | None = None
    note_text = ""
    try:
        note_bytes = _read_limited(root_dir / CHECKPOINT_FILE, MAX_NOTE_SIZE, "the checkpoint")
    except _Bad as e:
        report.problem(CHECKPOINT_FILE, 1, str(e))
        note_bytes = b""
    else:
        note_text = note_bytes.decode("utf-8", errors="replace")
        try:
            checkpoint = open_checkpoint(note_bytes, verifier, verifier.name)
        except NoteError as e:
            report.problem(CHECKPOINT_FILE, note_error_line(e, note_text), f"does not verify: {e}")
    if checkpoint is not None:
        report.origin, report.tree_size, report.root_hash = (
            checkpoint.origin, checkpoint.size, checkpoint.root_hash,
        )
    digests: dict[str, tuple[int, str]] = {
        CHECKPOINT_FILE: (len(note_bytes), hashlib.sha256(note_bytes).hexdigest()),
    }

    # 2. The manifest, and the files present.
    proof_files = _list_proofs(root_dir, report)
    has_openings = _has_openings(root_dir, report)
    present = {CHECKPOINT_FILE, EVENTS_FILE, *proof_files, *([OPENINGS_FILE] if has_openings else [])}
    manifest = _check_manifest(root_dir, checkpoint, present, report)

    for name, pf in sorted(proof_files.items()):
        try:
            data = _read_limited(root_dir / name, MAX_PROOF_SIZE, "the proof")
        except _Bad as e:
            pf.digest, pf.error = _file_digest(root_dir / name), (None, str(e))
            continue
        pf.digest = (len(data), hashlib.sha256(data).hexdigest())
        try:
            pf.proof = parse_tlog_proof(data)
        except TlogProofError as e:
            pf.error = (e.line, e.detail)  # reported in step 4, in its place

    # 3. events.jsonl, line by line.
    size = checkpoint.size if checkpoint is not None else None
    want_index: dict[int, list[str]] = {}
    needed: dict[NodeId, bytes | None] = {}
    for name, pf in proof_files.items():
        if pf.proof is not None:
            want_index.setdefault(pf.proof.index, []).append(name)
            if size is not None and pf.proof.index < size:
                for spec in inclusion_proof_ids(pf.proof.index, size):
                    for node in spec:
                        needed[node] = None
    leaves: dict[int, _Line] = {}
    openings = _OpeningsCheck(root_dir / OPENINGS_FILE) if has_openings else None
    try:
        good_lines = _check_events(root_dir, size, checkpoint, report, want_index, leaves, needed, digests,
                                   progress, openings)
        if openings is not None:
            openings.finish(good_lines, size)
    finally:
        if openings is not None:
            openings.file.close()

    # 3b. The openings, each against its leaf (checked as events.jsonl was read; reported here).
    if openings is not None:
        openings.report_to(report, manifest)
        digests[OPENINGS_FILE] = (openings.size, openings.hasher.hexdigest())

    # 4. The proofs.
    for name, pf in sorted(proof_files.items()):
        _check_proof(name, pf, manifest, note_text, checkpoint, verifier, leaves, needed,
                     good_lines, report)
        if pf.digest is not None:
            digests[name] = pf.digest

    # 5. Sizes and digests against the manifest.
    if manifest is not None:
        for name, (size_listed, sha_listed, line) in manifest.files.items():
            if name not in digests:
                continue
            got_size, got_sha = digests[name]
            if (got_size, got_sha) != (size_listed, sha_listed):
                report.problem(
                    MANIFEST_FILE, line,
                    f"{name} has {got_size} bytes and SHA-256 {got_sha}, but the manifest lists "
                    f"{size_listed} bytes and {sha_listed}",
                )


def _has_openings(root_dir: Path, report: BundleReport) -> bool:
    """Whether the bundle has an ``openings.jsonl`` to check (it must be a regular file)."""
    path = root_dir / OPENINGS_FILE
    if not (path.exists() or path.is_symlink()):
        return False
    if not path.is_file():
        report.problem(OPENINGS_FILE, None, "is not a regular file")
        return False
    return True


def _list_proofs(root_dir: Path, report: BundleReport) -> dict[str, _ProofFile]:
    found: dict[str, _ProofFile] = {}
    for entry in sorted(os.listdir(root_dir)):
        if entry in (CHECKPOINT_FILE, EVENTS_FILE, MANIFEST_FILE, OPENINGS_FILE, PROOFS_DIR):
            continue
        report.problem(entry, None, "unexpected file in the bundle: it is not listed in bundle.json")
    proofs_dir = root_dir / PROOFS_DIR
    if proofs_dir.exists() or proofs_dir.is_symlink():
        if not proofs_dir.is_dir():
            report.problem(PROOFS_DIR, None, "is not a directory")
            return found
        for entry in sorted(os.listdir(proofs_dir)):
            name = f"{PROOFS_DIR}/{entry}"
            matched = _PROOF_NAME.fullmatch(name)
            if not matched:
                report.problem(name, None,
                               f"unexpected file: proofs are named {PROOFS_DIR}/<transfer id>{PROOF_SUFFIX}")
                continue
            mode = os.stat(proofs_dir / entry).st_mode
            if not stat.S_ISREG(mode):
                report.problem(name, None, "is not a regular file")
                continue
            found[name] = _ProofFile(name, matched.group(1))
    return found


def _check_manifest(
    root_dir: Path, checkpoint: Checkpoint | None, present: set[str], report: BundleReport
) -> _Manifest | None:
    try:
        data = _read_limited(root_dir / MANIFEST_FILE, MAX_MANIFEST_SIZE, "the manifest")
        text = data.decode("utf-8")
    except _Bad as e:
        report.problem(MANIFEST_FILE, 1, str(e))
        return None
    except UnicodeDecodeError as e:
        report.problem(MANIFEST_FILE, data.count(b"\n", 0, e.start) + 1, "not valid UTF-8")
        return None
    try:
        obj = strict_json(text)
    except json.JSONDecodeError as e:
        report.problem(MANIFEST_FILE, e.lineno, f"not valid JSON: {e.msg}")
        return None
    except ValueError as e:
        report.problem(MANIFEST_FILE, 1, f"not valid JSON: {e}")
        return None

    def bad(line: int, message: str) -> None:
        report.problem(MANIFEST_FILE, line, message)

    if not isinstance(obj, dict):
        bad(1, "not a JSON object")
        return None
    if not set(MANIFEST_KEYS) <= set(obj) <= {*MANIFEST_KEYS, *OPTIONAL_MANIFEST_KEYS}:
        bad(1, f"members are {sorted(obj)}, expected {list(MANIFEST_KEYS)} and optionally "
               f"{' and '.join(OPTIONAL_MANIFEST_KEYS)}")
        return None
    if "personal_data" in obj and obj["personal_data"] not in PERSONAL_DATA_KINDS:
        bad(_line_of(text, '"personal_data"'),
            f"personal_data is {_short(obj['personal_data'])}, expected one of {list(PERSONAL_DATA_KINDS)}")
        return None
    line = lambda key: _line_of(text, f'"{key}"')  # noqa: E731
    if obj["format"] != BUNDLE_FORMAT:
        bad(line("format"), f"format is {_short(obj['format'])}, expected {BUNDLE_FORMAT!r}")
        return None
    if checkpoint is not None:
        for key, want in (("origin", checkpoint.origin), ("tree_size", checkpoint.size),
                          ("root_hash", checkpoint.root_hash.hex())):
            if not _same(obj[key], want):
                bad(line(key), f"{key} is {_short(obj[key])}, but the checkpoint says {_short(want)}")
    if not isinstance(obj["exported_at"], str) or not _RECORDED_AT.fullmatch(obj["exported_at"]):
        bad(line("exported_at"), "exported_at is not RFC 3339 UTC (YYYY-MM-DDTHH:MM:SS[.ffffff]Z)")

    manifest = _Manifest()
    files, proofs = obj["files"], obj["proofs"]
    if not isinstance(files, list) or not all(isinstance(f, dict) and set(f) == set(FILE_KEYS) for f in files):
        bad(line("files"), f"files is not a list of objects with members {list(FILE_KEYS)}")
        return None
    for entry in files:
        name = entry["name"]
        at = _line_of(text, f'"name": {json.dumps(name, ensure_ascii=False)}', line("files"))
        if not isinstance(name, str):
            bad(at, f"file name {_short(name)} is not a string")
            continue
        if name in manifest.files:
            bad(at, f"{name} is listed twice")
            continue
        if not _is_int(entry["size"]) or entry["size"] < 0:
            bad(at, f"{name}: size {_short(entry['size'])} is not an integer >= 0")
            continue
        if not isinstance(entry["sha256"], str) or not _HEX64.fullmatch(entry["sha256"]):
            bad(at, f"{name}: sha256 {_short(entry['sha256'])} is not 64 lowercase hex digits")
            continue
        manifest.files[name] = (entry["size"], entry["sha256"], at)
        if name not in present:
            bad(at, f"lists {name}, which is not in the bundle")
    for name in sorted(present - set(manifest.files)):
        report.problem(name, None, "is in the bundle but not listed in bundle.json")
    _check_openings_member(obj, text, manifest, bad)

    if not isinstance(proofs, list) or not all(isinstance(p, dict) and set(p) == set(PROOF_KEYS) for p in proofs):
        bad(line("proofs"), f"proofs is not a list of objects with members {list(PROOF_KEYS)}")
        return manifest
    for entry in proofs:
        tid, index, name = entry["transfer_id"], entry["leaf_index"], entry["file"]
        at = _line_of(text, f'"transfer_id": {json.dumps(tid, ensure_ascii=False)}', line("proofs"))
        if not isinstance(tid, str) or not _UUID_TEXT.fullmatch(tid):
            bad(at, f"transfer_id {_short(tid)} is not a hyphenated lowercase UUID")
            continue
        if name != f"{PROOFS_DIR}/{tid}{PROOF_SUFFIX}":
            bad(at, f"the proof of transfer {tid} must be {PROOFS_DIR}/{tid}{PROOF_SUFFIX}, not {_short(name)}")
            continue
        if not _is_int(index) or index < 0:
            bad(at, f"leaf_index {_short(index)} of transfer {tid} is not an integer >= 0")
            continue
        if name in manifest.proofs:
            bad(at, f"transfer {tid} is listed twice")
            continue
        manifest.proofs[name] = (index, at)
        if name not in manifest.files:
            bad(at, f"{name} is not listed in files")
    for name in sorted(n for n in manifest.files if n.startswith(PROOFS_DIR + "/")):
        if name not in manifest.proofs:
            bad(manifest.files[name][2], f"{name} is listed in files but not in proofs")
    return manifest


def _check_openings_member(obj: dict[str, Any], text: str, manifest: _Manifest,
                           bad: Callable[[int, str], None]) -> None:
    """``openings``: its form, and that it goes with ``openings.jsonl`` in ``files`` and with
    events that hold commitments."""
    if "openings" not in obj:
        if OPENINGS_FILE in manifest.files:
            bad(manifest.files[OPENINGS_FILE][2],
                f"{OPENINGS_FILE} is listed in files, but bundle.json has no openings member")
        return
    start = text.find('"openings"')
    at = text.count("\n", 0, start) + 1 if start >= 0 else 1

    def line(key: str) -> int:
        found = text.find(f'"{key}"', max(start, 0))
        return text.count("\n", 0, found) + 1 if found >= 0 else at

    member = obj["openings"]
    if not isinstance(member, dict) or set(member) != set(OPENINGS_KEYS):
        bad(at, f"openings is not an object with members {list(OPENINGS_KEYS)}")
        return
    if member["file"] != OPENINGS_FILE:
        bad(line("file"), f"openings.file is {_short(member['file'])}, expected {OPENINGS_FILE!r}")
        return
    read_by = member["read_by"]
    if not (isinstance(read_by, dict) and set(read_by) == set(READ_BY_KEYS)
            and isinstance(read_by["principal"], str) and isinstance(read_by["party"], str)
            and (read_by["name"] is None or isinstance(read_by["name"], str))
            and isinstance(read_by["roles"], list) and all(isinstance(r, str) for r in read_by["roles"])):
        bad(line("read_by"), f"openings.read_by is not an object with members {list(READ_BY_KEYS)} "
                             "(strings; name may be null; roles a list of strings)")
    if member["share"] not in SHARES:
        bad(line("share"), f"openings.share is {_short(member['share'])}, expected one of {list(SHARES)}")
    counts_ok = True
    for key in ("values", "erased", "unavailable"):
        if not _is_int(member[key]) or member[key] < 0:
            bad(line(key), f"openings.{key} is {_short(member[key])}, not an integer >= 0")
            counts_ok = False
    if obj.get("personal_data") != "commitments":
        bad(at, f"openings are given, but personal_data is {_short(obj.get('personal_data'))}: only the "
                "commitments of event format 2 have openings")
    if OPENINGS_FILE not in manifest.files:
        bad(at, f"openings names {OPENINGS_FILE}, which is not listed in files")
    if counts_ok:
        manifest.openings_values = (member["values"], line("values"))


@dataclass
class _Opening:
    """A well-formed line of openings.jsonl."""

    number: int
    leaf_index: int
    originator_id: str
    originator_version: int
    path: str
    salt: bytes
    value: Any


def _parse_opening(raw: bytes) -> _Opening:
    """A line of openings.jsonl, with its newline, in the exporter's form. Raises _Bad."""
    if not raw.endswith(b"\n"):
        if len(raw) > MAX_LINE:
            raise _Bad(f"the line is longer than {MAX_LINE} bytes")
        raise _Bad("the line has no newline at its end: the file is truncated")
    obj = _json_line(raw[:-1], OPENING_KEYS)
    index, oid, version, path, salt = (obj[k] for k in OPENING_KEYS[:5])
    if not _is_int(index) or index < 0:
        raise _Bad(f"leaf_index is {_short(index)}, not an integer >= 0")
    if not isinstance(oid, str) or not _UUID_TEXT.fullmatch(oid):
        raise _Bad(f"originator_id {_short(oid)} is not a hyphenated lowercase UUID")
    if not _is_int(version) or not 1 <= version < 2**53:
        raise _Bad(f"originator_version {_short(version)} is not an integer >= 1")
    if not isinstance(path, str) or not path:
        raise _Bad(f"path {_short(path)} is not a non-empty string")
    if not isinstance(salt, str) or len(salt) != 2 * SALT_SIZE or not _HEX64.fullmatch(salt):
        raise _Bad(f"salt {_short(salt)} is not {SALT_SIZE} bytes in lowercase hex")
    opening = _Opening(0, index, oid, version, path, bytes.fromhex(salt), obj["value"])
    if raw != openings_line(index, oid, version, path, opening.salt, opening.value):
        raise _Bad(
            "the line is not in the exporter's form (white space, member order or escaping differ): "
            "it was edited"
        )
    return opening


class _OpeningsCheck:
    """openings.jsonl, read alongside events.jsonl: each opening is checked when the good line
    of its leaf is read (constant memory). Its problems are kept, to be reported after those of
    events.jsonl."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "rb")  # noqa: SIM115 - closed by the caller
        self.hasher = hashlib.sha256()
        self.size = 0
        self.lines = _iter_lines(self.file, self.hasher)
        self.number = 0  # lines read
        self.last: tuple[int, str] | None = None
        self.next: _Opening | None = None
        self.problems: list[tuple[int | None, str]] = []
        self.problem_count = 0
        self.checked = 0
        self.events_failed = False  # events.jsonl had a bad line: the openings after it are not checked
        self._advance()

    def _problem(self, line: int | None, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_LISTED_PROBLEMS:
            self.problems.append((line, text))

    def _advance(self) -> None:
        """The next well-formed line in order into ``next`` (None at the end); bad ones are problems."""
        self.next = None
        for raw in self.lines:
            self.size += len(raw)
            self.number += 1
            try:
                opening = _parse_opening(raw)
            except _Bad as e:
                self._problem(self.number, str(e))
                continue
            opening.number = self.number
            key = (opening.leaf_index, opening.path)
            if self.last is not None and key <= self.last:
                self._problem(self.number, (
                    f"leaf {opening.leaf_index} path {opening.path!r} comes after leaf {self.last[0]} path "
                    f"{self.last[1]!r}: the lines are in order of leaf_index, then path, each once"))
                continue
            self.last = key
            self.next = opening
            return

    def at_leaf(self, index: int, line: _Line) -> None:
        """Check the openings of leaf ``index``, whose line of events.jsonl is good."""
        while self.next is not None and self.next.leaf_index <= index:
            opening = self.next
            if opening.leaf_index == index:
                self._check(opening, line)
            self._advance()

    def _check(self, o: _Opening, leaf: _Line) -> None:
        if (o.originator_id, o.originator_version) != (leaf.originator_id, leaf.originator_version):
            self._problem(o.number, (
                f"leaf {o.leaf_index} is {leaf.originator_id} version {leaf.originator_version}, not "
                f"{o.originator_id} version {o.originator_version}"))
            return
        commitment = get_path(leaf.data, o.path) if leaf.data is not None else None
        if not is_commitment(commitment):
            self._problem(o.number, f"leaf {o.leaf_index} has no commitment at {o.path!r}: there is nothing to open")
            return
        if not opens(commitment, o.salt, o.originator_id, o.originator_version, o.path, o.value):
            self._problem(o.number, (
                f"the salt and value do not open the commitment at {o.path!r} of leaf {o.leaf_index} "
                f"({commitment}): the opening was changed"))
            return
        self.checked += 1

    def finish(self, good_lines: int, size: int | None) -> None:
        """After events.jsonl: the openings left name no good line. Reads the file to its end."""
        complete = not self.events_failed and (size is None or good_lines == size)
        if self.next is not None and not complete:
            self._problem(self.next.number, (
                f"this line and those after it cannot be checked: events.jsonl is bad at line "
                f"{good_lines + 1}, before leaf {self.next.leaf_index}"))
            for raw in self.lines:
                self.size += len(raw)
                self.number += 1
            self.next = None
        while self.next is not None:
            self._problem(self.next.number, (
                f"leaf_index {self.next.leaf_index} is not below the tree size {good_lines}: "
                "there is no such leaf"))
            self._advance()

    def report_to(self, report: BundleReport, manifest: _Manifest | None) -> None:
        for line, text in self.problems:
            report.problem(OPENINGS_FILE, line, text)
        extra = self.problem_count - len(self.problems)
        if extra:
            report.ok = False
            report.problem_count += extra
        if manifest is not None and manifest.openings_values is not None:
            listed, at = manifest.openings_values
            if listed != self.number:
                report.problem(MANIFEST_FILE, at,
                               f"openings.values is {listed}, but {OPENINGS_FILE} has {self.number} lines")
        report.openings_checked = self.checked


def _check_events(
    root_dir: Path,
    size: int | None,
    checkpoint: Checkpoint | None,
    report: BundleReport,
    want_index: dict[int, list[str]],
    leaves: dict[int, _Line],
    needed: dict[NodeId, bytes | None],
    digests: dict[str, tuple[int, str]],
    progress: Progress | None,
    openings: _OpeningsCheck | None = None,
) -> int:
    """Check events.jsonl (and, with ``openings``, each opening against its good line);
    returns how many lines (from the first) are good."""
    hasher = hashlib.sha256()
    total = 0
    tree = CompactRange()
    prev = ZERO_HASH
    good = 0
    failed = False
    with open(root_dir / EVENTS_FILE, "rb") as f:
        for raw in _iter_lines(f, hasher):
            total += len(raw)
            if failed:
                continue
            index = good
            number = index + 1
            try:
                if size is not None and index >= size:
                    raise _Bad(
                        f"the checkpoint covers {size} leaves, but the file goes on: "
                        "lines were added at the end (or inserted before)"
                    )
                if not raw.endswith(b"\n"):
                    if len(raw) > MAX_LINE:
                        raise _Bad(f"the line is longer than {MAX_LINE} bytes")
                    raise _Bad("the line has no newline at its end: the file is truncated")
                line = _check_line(raw, index, prev)
            except _Bad as e:
                report.problem(EVENTS_FILE, number, str(e), index)
                failed = True
                if openings is not None:
                    openings.events_failed = True
                continue
            if openings is not None:
                openings.at_leaf(index, line)
            if index in want_index:
                leaves[index] = line
            for level, idx, digest in tree.append(line.leaf_hash):
                if (level, idx) in needed:
                    needed[(level, idx)] = digest
            prev = line.leaf_hash
            good += 1
            report.lines_checked = good
            if progress is not None and (good % 4096 == 0 or good == size):
                progress(good, size or good)
    digests[EVENTS_FILE] = (total, hasher.hexdigest())
    if failed:
        return good
    if size is not None and good < size:
        report.problem(
            EVENTS_FILE, good + 1,
            f"the file ends after {good} lines, but the checkpoint covers {size} leaves: "
            "lines are missing at the end (truncated?)",
            good,
        )
    elif checkpoint is not None and tree.root() != checkpoint.root_hash:
        report.problem(
            EVENTS_FILE, None,
            f"the {good} leaves have root {tree.root().hex()}, but the checkpoint signs "
            f"{checkpoint.root_hash.hex()}: a line was rewritten together with every line after it",
        )
    return good


def _check_proof(
    name: str,
    pf: _ProofFile,
    manifest: _Manifest | None,
    note_text: str,
    checkpoint: Checkpoint | None,
    verifier: Verifier,
    leaves: dict[int, _Line],
    needed: dict[NodeId, bytes | None],
    good_lines: int,
    report: BundleReport,
) -> None:
    if pf.proof is None:
        line, text = pf.error or (None, "not read")
        report.problem(name, line, text)
        return
    proof = pf.proof
    if manifest is not None and name in manifest.proofs:
        listed, line = manifest.proofs[name]
        if listed != proof.index:
            report.problem(name, proof.index_line,
                           f"index {proof.index}, but bundle.json:{line} lists leaf {listed} for this transfer")
            return
    if proof.checkpoint != note_text:
        theirs, ours = proof.checkpoint.split("\n"), note_text.split("\n")
        k = next((i for i, (a, b) in enumerate(zip(theirs, ours)) if a != b), min(len(theirs), len(ours)))
        report.problem(name, proof.checkpoint_line + k,
                       f"the checkpoint differs from the bundle's checkpoint (at its line {k + 1})")
        return
    if checkpoint is None:
        return  # the checkpoint itself failed; reported first
    if proof.index >= checkpoint.size:
        report.problem(name, proof.index_line,
                       f"index {proof.index} is not below the checkpoint's tree size {checkpoint.size}")
        return
    leaf = leaves.get(proof.index)
    if leaf is None:
        report.problem(name, proof.index_line,
                       f"cannot be checked: events.jsonl is bad at line {good_lines + 1}, before leaf {proof.index}")
        return
    if leaf.originator_id != pf.transfer_id or leaf.originator_version != 1:
        report.problem(
            name, proof.index_line,
            f"index {proof.index}: that leaf is {leaf.topic} of {leaf.originator_id} version "
            f"{leaf.originator_version}, not the recording of transfer {pf.transfer_id}",
        )
        return
    want_count = inclusion_proof_length(proof.index, checkpoint.size)
    specs = inclusion_proof_ids(proof.index, checkpoint.size)
    if len(specs) == want_count and all(needed.get(node) is not None for spec in specs for node in spec):
        expected = [_fold([needed[node] for node in spec]) for spec in specs]  # type: ignore[misc]
        for i, (got, want) in enumerate(zip(proof.hashes, expected)):
            if got != want:
                report.problem(
                    name, proof.index_line + 1 + i,
                    f"proof hash {i + 1} is {base64.b64encode(got).decode()}, but the tree over "
                    f"events.jsonl gives {base64.b64encode(want).decode()}",
                )
                return
    try:
        verify_tlog_proof(proof, leaf.leaf_hash, verifier, verifier.name)
    except TlogProofError as e:
        report.problem(name, e.line, e.detail)
        return
    report.proofs_checked += 1


def _fold(hashes: list[bytes]) -> bytes:
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc
