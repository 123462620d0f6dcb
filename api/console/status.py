"""The console's verification status: each check computed for the auditor, with a line
saying in plain words what it shows.

Every check here calls what the API and the CLI call (checkpoint signing, the stored
nodes' proofs, ``verify_ledger``); nothing is decided in the console. A check is
``ok`` (green), ``warn`` (amber: nothing wrong is proven, but something is missing) or
``bad`` (red: something is proven wrong).
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledger.audit.last_verify import last_verification, verify_and_record
from ledger.audit.verify import VerificationIncomplete
from ledger.service.application import TransferLedger
from ledger.service.checkpoints import InconsistentTreeError, sign_current_checkpoint, stored_root_at
from ledger.storage.cosignatures import CosignatureStore, cosigned_note
from ledger.tlog.cosignature import CosignatureError, CosignatureVerifier, verify_cosignatures
from ledger.tlog.merkle import ProofError, verify_consistency
from ledger.tlog.note import NoteError, Signer, open_checkpoint

#: A cosignature older than this is reported as stale (amber).
FRESH_COSIGNATURE_SECONDS = 24 * 3600


@dataclass
class Check:
    name: str
    state: str  # ok | warn | bad
    line: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Status:
    checks: list[Check]
    checkpoint: dict[str, Any] | None
    #: On a split view (two checkpoints no consistency proof joins): both, side by side, each with a
    #: ``title`` saying whose it is, its ``tree_size``, ``root_hash`` and signed ``note`` if any.
    split: tuple[dict[str, Any], dict[str, Any]] | None = None
    last_verify: dict[str, Any] | None = None

    @property
    def state(self) -> str:
        states = {c.state for c in self.checks}
        return "bad" if "bad" in states else "warn" if "warn" in states else "ok"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def parse_witnesses(text: str) -> list[CosignatureVerifier]:
    """The witness vkeys an auditor trusts, one per line; :class:`CosignatureError` naming a bad one."""
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                out.append(CosignatureVerifier.from_vkey(line.strip(), f"witness vkey on line {number}"))
            except (CosignatureError, NoteError, ValueError) as e:
                raise CosignatureError(str(e)) from None
    return out


def compute_status(ledger: TransferLedger, signer: Signer, cosignatures: CosignatureStore, nodes: Any,
                   data_dir: Path, trust: dict[str, Any]) -> Status:
    """The status as of now. ``trust``: the auditor's pinned checkpoint (``pin``: size and base64
    root) and witness policy (``witnesses``: vkeys, one per line; ``quorum``)."""
    checks: list[Check] = []
    verifier = signer.verifier()
    try:
        latest = sign_current_checkpoint(ledger.store, signer)
    except InconsistentTreeError as e:
        checks.append(Check("checkpoint", "bad", f"The ledger refuses to sign its tree: {e}. The stored tree "
                            "was altered after a checkpoint was signed: both roots are shown side by side below."))
        return Status(checks, None, _signed_against_stored(ledger), last_verify=last_verification(data_dir))
    checkpoint = {"tree_size": latest.tree_size, "root_hash": _b64(latest.root_hash), "signed_at": latest.created_at,
                  "note": cosigned_note(latest.note, cosignatures.lines(latest.tree_size))}
    checks.append(Check("checkpoint", "ok", f"The latest checkpoint covers {latest.tree_size} leaves, root "
                        f"{checkpoint['root_hash']}, signed {latest.created_at}."))
    try:
        opened = open_checkpoint(latest.note, verifier, signer.name)
        assert opened.size == latest.tree_size and opened.root_hash == latest.root_hash
        checks.append(Check("signature", "ok", f"Its signature verifies with the ledger's key {verifier.name}+"
                            f"{verifier.key_id:08x}."))
    except (NoteError, AssertionError) as e:
        checks.append(Check("signature", "bad", f"Its signature does not verify: {e}."))
    checks.append(_witnesses(verifier, cosignatures, trust))
    split = None
    pin = trust.get("pin")
    if isinstance(pin, dict):
        check, split = _consistency(pin, checkpoint, nodes)
        checks.append(check)
    else:
        checks.append(Check("consistency", "warn", "No checkpoint is pinned: pin this one, and the next visit "
                            "proves that the ledger only grew since."))
    last = last_verification(data_dir)
    checks.append(_last_verify(last, latest.tree_size))
    return Status(checks, checkpoint, split, last)


def _signed_against_stored(ledger: TransferLedger) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The last checkpoint the ledger signed, and the root its stored tree has at that size now."""
    stored = ledger.store.checkpoints()
    if not stored:
        return None
    last = stored[-1]
    try:
        now_root = _b64(stored_root_at(ledger.store, last.tree_size))
    except Exception as e:  # nodes missing or the size beyond the tree: say so in the right column
        now_root = f"(cannot be recomputed: {e})"
    return ({"title": f"Signed by the ledger at {last.created_at}", "tree_size": last.tree_size,
             "root_hash": _b64(last.root_hash), "note": last.note},
            {"title": "What its stored tree holds at that size now", "tree_size": last.tree_size,
             "root_hash": now_root, "note": None})


def _witnesses(verifier: Any, cosignatures: CosignatureStore, trust: dict[str, Any]) -> Check:
    size = cosignatures.newest_cosigned_size()
    note = cosignatures.checkpoint_note(size) if size is not None else None
    if size is None or note is None:
        return Check("witnesses", "warn", "No witness has cosigned any checkpoint: nothing outside this server "
                     "vouches that it shows everyone the same log.")
    stored = cosignatures.for_size(size)
    note = cosigned_note(note, [s.signature for s in stored])
    now = time.time()
    rows = [{"witness": f"{s.key_name}+{s.key_id}", "timestamp": _when(s.cosigned_at),
             "age": _age(now - s.cosigned_at), "fresh": now - s.cosigned_at <= FRESH_COSIGNATURE_SECONDS}
            for s in stored]
    details = {"tree_size": size, "cosignatures": rows}
    try:
        witnesses = parse_witnesses(str(trust.get("witnesses") or ""))
    except CosignatureError as e:
        return Check("witnesses", "bad", f"Your witness policy cannot be read: {e}.", details)
    if not witnesses:
        return Check("witnesses", "warn", f"{len(stored)} witness(es) cosigned the checkpoint of size "
                     f"{size}; you have set no witnesses you trust, so no quorum is checked.", details)
    quorum = min(int(trust.get("quorum") or len(witnesses)), len(witnesses))
    try:
        _, verified = verify_cosignatures(note, verifier, witnesses, quorum)
    except CosignatureError as e:
        return Check("witnesses", "bad", f"The witness quorum is not met at size {size}: {e}.", details)
    stale = [r["witness"] for r in rows if not r["fresh"]]
    state = "warn" if stale else "ok"
    line = (f"{len(verified)} of your {len(witnesses)} trusted witnesses cosigned the checkpoint of size "
            f"{size} (quorum {quorum})")
    line += f"; stale (older than a day): {', '.join(stale)}." if stale else "; every cosignature is fresh."
    return Check("witnesses", state, line, details)


def _consistency(pin: dict[str, Any], checkpoint: dict[str, Any],
                 nodes: Any) -> tuple[Check, tuple[dict[str, Any], dict[str, Any]] | None]:
    size, root = int(pin.get("tree_size", 0)), str(pin.get("root_hash", ""))
    pinned = {"title": f"You pinned, at {pin.get('pinned_at')}", "tree_size": size, "root_hash": root,
              "note": pin.get("note")}
    checkpoint = {**checkpoint, "title": "The ledger signs now"}
    current = checkpoint["tree_size"]
    if size > current:
        return Check("consistency", "bad", f"You pinned a checkpoint of {size} leaves, but the ledger now has "
                     f"only {current}: it was rolled back or forked."), (pinned, checkpoint)
    try:
        proof = nodes.consistency_proof(size, current) if size else []
        if size:
            verify_consistency(size, current, proof, base64.b64decode(root), base64.b64decode(checkpoint["root_hash"]))
    except (ProofError, ValueError) as e:
        return Check("consistency", "bad", f"The ledger is not consistent with the checkpoint you pinned "
                     f"(size {size}): {e}. Both are shown side by side below."), (pinned, checkpoint)
    grown = current - size
    return Check("consistency", "ok", f"The ledger only grew since the checkpoint you pinned (size {size}): "
                 f"{grown} leaves appended, none changed, proven by an RFC 9162 consistency proof "
                 f"of {len(proof)} hashes."), None


def _last_verify(last: dict[str, Any] | None, tree_size: int) -> Check:
    if last is None:
        return Check("verify", "warn", "The ledger has never been verified here: run Verify now, or "
                     "`transfer-ledger verify`.")
    when = f"{last.get('at')} by {last.get('by')} in {last.get('seconds')} s"
    if not last.get("ok"):
        first = last.get("first_bad_index")
        where = f"first bad index {first}" if first is not None else "no leaf index"
        return Check("verify", "bad", f"The last verification FAILED ({when}): {last.get('problem_count')} "
                     f"problem(s), {where}.", {"problems": last.get("problems", [])})
    behind = tree_size - int(last.get("tree_size") or 0)
    state = "ok" if behind == 0 else "warn"
    line = f"The last verification passed ({when}) over {last.get('tree_size')} leaves"
    line += "." if behind == 0 else f"; {behind} leaves were appended since."
    return Check("verify", state, line)


def run_verification(ledger: TransferLedger, signer: Signer, data_dir: Path, by: str) -> dict[str, Any]:
    """Verify the whole ledger now (as ``transfer-ledger verify``) and record the result."""
    try:
        return verify_and_record(ledger, signer.verifier(), signer.name, data_dir, by=by)[1]
    except VerificationIncomplete as stopped:
        return {"ok": False, "incomplete": True, "error": str(stopped.__cause__ or stopped)}
