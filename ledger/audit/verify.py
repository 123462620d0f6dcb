"""Full verification: re-read every event and leaf, recompute everything.

:func:`verify_ledger` reads the leaves (in leaf order), each joined to its
event row, in pages, with constant memory; where a leaf's event row is not
the one after the previous leaf's, or does not record the leaf's event, it
streams the stored events (in notification order) beside the leaves, so that
rows without a leaf, rows that are gone and rows out of order are found. For
each leaf it recomputes the canonical bytes from the event row and the
previous leaf's hash, and compares the leaf hash with the stored one; it builds
the RFC 9162 tree (a compact range) over the leaf hashes and
compares the subtree hashes stored for proofs, the head row, and every
stored checkpoint (signature, origin, and root at its size). It reports the
**first leaf index** where anything differs and what differs.

When a leaf's recomputed hash differs from the stored one, that leaf is
reported, and the chain and the tree go on from the *stored* hash: the later
leaves, the stored nodes and the signed checkpoints all commit to it. So one
changed event row is reported once, at its own index, and not again through
every later leaf, the nodes above it and the checkpoints after it; whereas a
stored leaf hash that was rewritten (with the chain after it made to agree)
still shows as a checkpoint whose root differs. If nothing is reported, every
stored hash equals the recomputed one, so this checks exactly what
recomputing everything from the event rows would. Where leaf rows are gone,
the tree keeps the later leaves at their places: the stored nodes over the
gap are not compared, and a checkpoint beyond it is reported as not
checkable (``missing``, at the gap).

Kinds of problem:

- ``modified``: an event row no longer hashes to its leaf (state, topic,
  id, version or record time changed, or the previous leaf's stored hash);
  a stored Merkle node (named by the first leaf it covers) or the head row
  differs from the recomputed one;
- ``missing``: a leaf index is absent, a leaf's event row is gone, or a
  stored Merkle node is;
- ``inserted``: an event row that no leaf records;
- ``reordered``: leaves whose event rows are out of commit order, or an event
  row that holds another leaf's event;
- ``truncated``: a stored checkpoint, or the head, covers more leaves than
  exist;
- ``forked``: a stored checkpoint whose root differs from the tree at its
  size, or whose signature does not verify.

Leaves and events appended after verification starts are not its business:
it checks the ledger up to the head it read first.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
from binascii import b2a_base64, hexlify
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from hashlib import sha256
from itertools import compress
from json.encoder import encode_basestring
from operator import itemgetter, methodcaller
from typing import Any
from uuid import UUID

import pybase64
import rfc8785

from domain.model import Authorization, PartyPolicy, party_policy_id
from domain.personal import commitments_in
from domain.rules import decision_document
from ledger.storage.store import (
    EventRow,
    Head,
    LeafRow,
    LedgerStore,
    StoredCheckpoint,
    iter_batches,
)
from ledger.tlog.leaf import _LEAF_TEMPLATE, ZERO_HASH, _json_string, originator_id_text
from ledger.tlog.merkle import (
    CompactRange,
    ProofError,
    consistency_proof,
    inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from ledger.tlog.note import Checkpoint, NoteError, Verifier, open_checkpoint

#: How many problems a report lists (the count is always complete).
MAX_LISTED_PROBLEMS = 100
BATCH = 4096
#: How many record times (as JSON) a whole-page check keeps between pages
#: before it starts again from the page's own.
RECORD_TIME_CACHE = 1024
#: Stands in the tree for a leaf whose row is gone (its hash is unknown).
_UNKNOWN = bytes(32)
#: RFC 9162's node hash prefix: SHA-256(0x01 || left || right).
_NODE_PREFIX = b"\x01"
#: What a leaf hash hashes: 0x00 then the leaf's bytes (ledger.tlog.leaf's template).
_HASHED_LEAF = b"\x00" + _LEAF_TEMPLATE
#: Lowercase hex digits (stored ids of 32 such digits are hyphenated as UUIDs).
_LOWER_HEX = re.compile("[0-9a-f]*")


@dataclass
class VerifyReport:
    ok: bool = True
    tree_size: int = 0
    root_hash: bytes | None = None
    first_bad_index: int | None = None
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    checkpoints_checked: int = 0
    events_checked: int = 0
    since: int | None = None  # the trusted checkpoint's size, in incremental mode
    signatures_checked: int = 0  # decisions signed by their origin, re-verified
    #: Signed decisions whose signed fields the ledger holds sealed (event format 2) and that
    #: could not be opened (erased, or verified without the data keys): not re-verifiable.
    signatures_sealed: int = 0

    def problem(self, index: int | None, kind: str, text: str) -> None:
        self.ok = False
        self.problem_count += 1
        if index is not None and (self.first_bad_index is None or index < self.first_bad_index):
            self.first_bad_index = index
        if len(self.problems) < MAX_LISTED_PROBLEMS:
            where = f"leaf {index}: " if index is not None else ""
            self.problems.append(f"{kind}: {where}{text}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex() if self.root_hash is not None else None,
            "first_bad_index": self.first_bad_index,
            "problems": self.problems,
            "problem_count": self.problem_count,
            "checkpoints_checked": self.checkpoints_checked,
            "events_checked": self.events_checked,
            "since": self.since,
            "signatures_checked": self.signatures_checked,
            "signatures_sealed": self.signatures_sealed,
        }


Progress = Callable[[int, int], None]
#: Opens the personal values of an event state (``ledger.service.sealing``), given its originator.
OpenState = Callable[[str, dict[str, Any]], dict[str, Any]]


class _Checkpoints:
    """Stored checkpoints, checked against the tree as it grows past their sizes."""

    def __init__(
        self, stored: list[StoredCheckpoint], verifier: Verifier | None, origin: str | None,
        report: VerifyReport,
    ) -> None:
        self.pending = sorted(stored, key=lambda c: c.tree_size)
        self.verifier, self.origin, self.report = verifier, origin, report
        self.covered = 0  # leaves [0, covered) agree with a verified checkpoint

    def next_size(self) -> int:
        """The size at which the next checkpoint is due (-1: none is)."""
        return self.pending[0].tree_size if self.pending else -1

    def check_due(self, tree: CompactRange, gap: int | None = None) -> None:
        """Check the checkpoints at the tree's size; ``gap``: the first leaf that
        is gone, if any (the root cannot be recomputed beyond it)."""
        while self.pending and self.pending[0].tree_size == tree.size:
            self._check(self.pending.pop(0), tree.root(), gap)

    def _check(self, stored: StoredCheckpoint, root: bytes, gap: int | None) -> None:
        self.report.checkpoints_checked += 1
        size = stored.tree_size
        if self.verifier is not None:
            try:
                signed = open_checkpoint(stored.note, self.verifier, self.origin)
            except NoteError as e:
                self.report.problem(None, "forked", f"stored checkpoint at size {size} does not verify: {e}")
                return
            if signed.size != size or signed.root_hash != stored.root_hash:
                self.report.problem(
                    None, "forked",
                    f"stored checkpoint at size {size}: its row says size {size} root "
                    f"{stored.root_hash.hex()}, but the signed note says size {signed.size} "
                    f"root {signed.root_hash.hex()}",
                )
                return
        if gap is not None:
            self.report.problem(
                gap, "missing",
                f"the checkpoint signed at size {size} cannot be checked: leaf {gap} is gone",
            )
            return
        if stored.root_hash != root:
            self.report.problem(
                self.covered, "forked",
                f"the tree of size {size} has root {root.hex()}, but the checkpoint signed at "
                f"that size has root {stored.root_hash.hex()}: some leaf in [{self.covered}, {size}) "
                "was rewritten",
            )
            return
        self.covered = size

    def finish(self, tree_size: int) -> None:
        for stored in self.pending:
            self.report.checkpoints_checked += 1
            self.report.problem(
                tree_size, "truncated",
                f"a checkpoint was signed at size {stored.tree_size}, but the ledger has only "
                f"{tree_size} leaves",
            )


class _NodeCheck:
    """Compares the subtree hashes stored for proofs with the recomputed ones."""

    def __init__(self, store: LedgerStore, report: VerifyReport, gaps: list[tuple[int, int]]) -> None:
        self.store, self.report = store, report
        self.gaps = gaps  # [first, end) of leaf rows that are gone: nodes over them are unknown
        #: per level (index 0 unused), the recomputed (idx, hash) in idx order
        self.levels: list[list[tuple[int, bytes]]] = [[] for _ in range(65)]
        #: per level, a run of recomputed hashes from an index (see add_run)
        self.runs: dict[int, tuple[int, list[bytes]]] = {}

    def add(self, nodes: list[tuple[int, int, bytes]]) -> None:
        for level, idx, digest in nodes:
            if level > 0 and not (self.gaps and self._over_gap(level, idx)):
                self.levels[level].append((idx, digest))

    def _over_gap(self, level: int, idx: int) -> bool:
        first, end = idx << level, (idx + 1) << level
        return any(gap_first < end and first < gap_end for gap_first, gap_end in self.gaps)

    def add_run(self, level: int, first: int, hashes: list[bytes]) -> None:
        """The recomputed nodes ``first``, ``first + 1``, ... at one level
        (where no leaf is gone), compared as :meth:`add`'s are; they go on
        the level's pending run when they continue it."""
        run = self.runs.get(level)
        if run is None:
            self.runs[level] = (first, hashes)
        elif run[0] + len(run[1]) == first:
            self.runs[level] = (run[0], run[1] + hashes)
        else:
            self.levels[level].extend(zip(range(first, first + len(hashes)), hashes))

    def flush(self) -> None:
        runs = self.runs
        for level, wanted in enumerate(self.levels):
            if runs and level in runs:
                first, hashes = runs.pop(level)
                last = first + len(hashes) - 1
                stored_rows = self.store.read_level_range(level, first, last)
                if (
                    not wanted and len(stored_rows) == len(hashes) and stored_rows[0][0] == first
                    and stored_rows[-1][0] == last and list(map(_SECOND, stored_rows)) == hashes
                ):
                    continue  # unique indexes in order, as many as wanted, from first to last: the same
                wanted.extend(zip(range(first, last + 1), hashes))
                wanted.sort()
            if not wanted:
                continue
            stored_rows = self.store.read_level_range(level, wanted[0][0], wanted[-1][0])
            if stored_rows != wanted:
                stored = dict(stored_rows)
                for idx, digest in wanted:
                    got = stored.get(idx)
                    if got != digest:
                        first_leaf = idx << level
                        what = "missing" if got is None else "modified"
                        self.report.problem(
                            first_leaf, what,
                            f"stored Merkle node (level {level}, index {idx}) covering leaves "
                            f"[{first_leaf}, {(idx + 1) << level}) is {what}",
                        )
            wanted.clear()


class _DecisionSignatures:
    """Checks every signed decision against the keys its origin had registered.

    Follows the ``PartyKeyRegistered`` events as they stream past (a handful
    per Party), and re-verifies each signed ``AuthorizationGranted`` or
    ``AuthorizationRefused`` over its canonical decision document.
    """

    def __init__(self, report: VerifyReport, store: LedgerStore, start: int,
                 open_state: OpenState | None = None) -> None:
        self.report, self.store, self.start = report, store, start
        self.open_state = open_state
        self.keys: dict[str, dict[str, str]] = {}
        self.loaded: set[str] = set()
        self.checked = 0
        self.verifiers: dict[str, Verifier] = {}  # parsed vkeys

    def _registered_before_start(self, party: str) -> None:
        """In incremental mode, the keys a Party registered before the trusted size."""
        self.loaded.add(party)
        if self.start == 0:
            return
        policy_id = party_policy_id(party)
        for event in self.store.select_events(policy_id):  # type: ignore[attr-defined]
            if event.topic != PartyPolicy.KeyRegistered.TOPIC:
                continue
            leaf = self.store.leaf_of_event(policy_id, event.originator_version)
            data = json.loads(event.state)
            if leaf is not None and leaf.leaf_index < self.start:
                self.keys.setdefault(party, {})[str(data.get("key"))] = str(data.get("vkey"))

    def see(self, index: int, row: EventRow) -> None:
        if row.topic == PartyPolicy.KeyRegistered.TOPIC:
            data = self._decode(index, row)
            if data is not None:
                self.keys.setdefault(str(data.get("party")), {})[str(data.get("key"))] = str(data.get("vkey"))
            return
        decision = _DECISION_TOPICS.get(row.topic)
        if decision is None:
            return
        state = row.state
        if (
            type(state) is bytes and b"\n" not in state and _plain_lines_match()(state) is not None
            and (state.endswith(_UNSIGNED_END) or b'"signature"' not in state)
        ):
            return  # unsigned: what decoding it would find (see _plain_object)
        data = self._decode(index, row)
        if data is None or not data.get("signature"):
            return
        if "personal_data" in data:  # event format 2: the signed fields are commitments
            opened = self.open_state(row.originator_id, data) if self.open_state is not None else None
            if opened is None or commitments_in(
                    [opened.get("decided_by"), opened.get("reasons"), opened.get("conditions")]):
                self.report.signatures_sealed += 1
                return
            data = opened
        self.checked += 1
        signature = data["signature"]
        origin = str(data.get("origin"))
        if origin not in self.loaded:
            self._registered_before_start(origin)
        vkey = self.keys.get(origin, {}).get(str(signature.get("key")))
        message = _canonical(
            decision_document(row.originator_id, origin, decision, data.get("decided_by"),  # type: ignore[arg-type]
                              data.get("reasons"), data.get("conditions"))
        )
        try:
            valid = vkey is not None and self._verifier(vkey).verify(
                message, base64.b64decode(str(signature.get("value")), validate=True)
            )
        except (NoteError, ValueError):
            valid = False
        if not valid:
            owner = "not registered to the origin" if vkey is None else "does not verify"
            self.report.problem(
                index, "invalid-signature",
                f"the {decision} decision on {row.originator_id} is signed with key "
                f"{signature.get('key')}, which {owner} ({origin})",
            )

    def _verifier(self, vkey: str) -> Verifier:
        verifier = self.verifiers.get(vkey)
        if verifier is None:
            verifier = self.verifiers[vkey] = Verifier.from_vkey(vkey)
        return verifier

    def _decode(self, index: int, row: EventRow) -> dict[str, Any] | None:
        state = row.state
        try:
            if state[:2] == b'{"':
                # json.loads of bytes that start so: their encoding is UTF-8.
                data = _JSON_DECODE(state.decode("utf-8", "surrogatepass"))
            else:
                data = json.loads(state)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            self.report.problem(index, "modified", f"the state of {row.topic} is not the JSON it must be")
            return None
        return data


_JSON_DECODE = json.JSONDecoder().decode
_SORTED_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode
_MAX_SAFE = 2**53 - 1


def _plain(value: Any) -> bool:
    """Only None, booleans, integers in RFC 8785's range, strings, lists, and
    dicts with ASCII keys: values that json's sorted compact encoding writes
    as RFC 8785 does (same string escapes; ASCII keys sort the same by code
    point as by UTF-16 unit)."""
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is int:
        return -_MAX_SAFE <= value <= _MAX_SAFE
    if kind is list:
        return all(map(_plain, value))
    if kind is dict:
        return all(type(k) is str and k.isascii() for k in value) and all(map(_plain, value.values()))
    return False


def _canonical(document: Any) -> bytes:
    """``rfc8785.dumps(document)``: through the json module's C encoder when
    the values are plain (see :func:`_plain`), else through rfc8785 itself
    (which also raises its errors, as for a string that is not UTF-8)."""
    if _plain(document):
        try:
            return _SORTED_COMPACT(document).encode("utf-8")
        except UnicodeEncodeError:
            pass
    return rfc8785.dumps(document)


def _plain_object(depth: int) -> re.Pattern[bytes]:
    """:func:`_plain_object_pattern`, compiled."""
    return re.compile(_plain_object_pattern(depth))


def _plain_object_pattern(depth: int) -> bytes:
    """A regular subset of JSON: objects of at most ``depth`` + 1 levels, without
    white space, whose strings are printable ASCII without escapes, integers of
    at most 300 digits (a decoder may refuse longer ones). Whatever it matches
    decodes to a dict (that is all it is for: a decision whose state it matches,
    ending in ``"signature":null}`` or with no ``"signature"`` in it at all, is
    unsigned; since no string can hold a quote, the last member is then the
    top-level object's ``signature``). Anything else is decoded as before."""
    string = rb'"[ !#-\[\]-~]*+"'
    number = rb'-?+(?:0|[1-9][0-9]{0,299}+)(?:\.[0-9]++)?+(?:[eE][+-]?+[0-9]++)?+'
    scalar = string + rb'|' + number + rb'|true|false|null'
    # Members and elements are each written once, followed by a comma before
    # the next one (a string, or any value but a closing bracket) or by the
    # closing bracket: so the pattern grows 2x a level, not 4x, and compiles in
    # milliseconds.
    value = rb'(?>' + scalar + rb')'
    for _ in range(depth):
        value = (
            rb'(?>' + scalar + rb'|\{(?:' + string + rb':' + value + rb'(?:,(?=")|(?=\})))*+\}'
            rb'|\[(?:' + value + rb'(?:,(?!\])|(?=\])))*+\])'
        )
    return rb'\{(?:' + string + rb':' + value + rb'(?:,(?=")|(?=\})))++\}'


def _plain_lines(depth: int) -> re.Pattern[bytes]:
    """One or more of :func:`_plain_object`'s objects, one a line: states joined
    with newlines (which no such object holds) are checked by one match."""
    return re.compile(rb'(?:' + _plain_object_pattern(depth) + rb'(?:\n(?=\{)|\Z))++')


@lru_cache(maxsize=1)
def _plain_lines_match() -> Callable[[bytes], re.Match[bytes] | None]:
    # Compiled when first needed; two levels below the top one hold every
    # decision the application writes (its conditions' purpose and written
    # instrument are objects in an object) and compile in about a millisecond.
    return _plain_lines(2).fullmatch


_UNSIGNED_END = b'"signature":null}'


def _unsigned(positions: list[int], states: list[Any]) -> list[int]:
    """Of the decisions at ``positions`` (with their ``states``), those that
    :meth:`_DecisionSignatures.see` passes over as unsigned without decoding
    them: bytes ending in ``"signature":null}`` or without ``"signature"``,
    matched by :func:`_plain_object`. By one match for all of them (joined
    with newlines, which none of them may hold); if that fails, none (each is
    then looked at on its own)."""
    found = [(i, state) for i, state in zip(positions, states)
             if type(state) is bytes and (state.endswith(_UNSIGNED_END) or b'"signature"' not in state)]
    if not found:
        return []
    joined = b"\n".join(map(_SECOND, found))
    if joined.count(b"\n") != len(found) - 1 or _plain_lines_match()(joined) is None:
        return []
    return list(map(_FIRST, found))


_DECISION_TOPICS = {
    Authorization.Granted.TOPIC: "granted",
    Authorization.Refused.TOPIC: "refused",
}
#: The topics :meth:`_DecisionSignatures.see` looks at (it passes over the others).
_SIGNATURE_TOPICS = frozenset([PartyPolicy.KeyRegistered.TOPIC, *_DECISION_TOPICS])


_DIGEST = methodcaller("digest")
_FIRST, _SECOND = itemgetter(0), itemgetter(1)
#: The standard base64 (RFC 4648, padded) of bytes, what the leaf's ``"state"``
#: holds between its quotes (SIMD-accelerated: a fifth of binascii's time).
_B64 = pybase64.b64encode
assert _HASHED_LEAF.count(b"%") == 7 and b'"state":"%b"' in _HASHED_LEAF
#: A hyphenated UUID as a JSON string, and where its 32 hex digits go in it.
_UUID_JSON_FRAME = b'"00000000-0000-0000-0000-000000000000"'
_UUID_JSON_DIGITS = [i for i, c in enumerate(_UUID_JSON_FRAME) if c == ord("0")]


@lru_cache(maxsize=4)
def _split(n: int, width: int) -> struct.Struct:
    """Splits n pieces of ``width`` bytes, one after the other."""
    return struct.Struct(f"{width}s" * n)


def _hyphenated_ids_json(ids: tuple[str, ...]) -> tuple[bytes, ...]:
    """Ids of 32 lowercase hex digits as JSON strings of their hyphenated form,
    each digit column moved at once."""
    digits = "".join(ids).encode("ascii")
    width = len(_UUID_JSON_FRAME)
    out = bytearray(_UUID_JSON_FRAME * len(ids))
    for i, at in enumerate(_UUID_JSON_DIGITS):
        out[at::width] = digits[i::32]
    return _split(len(ids), width).unpack(out)


def _leaf_id(originator_id: str, hex_ids: bool) -> str:
    """A stored id (text) in the leaf's form, as :func:`originator_id_text` makes it."""
    if len(originator_id) != 32:
        return originator_id
    if hex_ids:
        o = originator_id
        return f"{o[:8]}-{o[8:12]}-{o[12:16]}-{o[16:20]}-{o[20:]}"
    return originator_id_text(originator_id)


def _clean_page(
    page: list[tuple[Any, ...]], start: int, after: int, prev: bytes, hex_ids: bool,
    topics_json: dict[str, bytes], recorded_json: dict[str, bytes], time_cache: int = 1024,
) -> tuple[list[bytes], tuple[Any, ...]] | None:
    """For a page of :meth:`LedgerStore.read_leaves_with_events` rows in which
    every row is the common case of the verification loop (leaves ``start``,
    ``start + 1``, ...; event rows ``after + 1``, ``after + 2``, ...; each
    holding its leaf's id and version; text, integers and bytes where they
    belong) and every leaf hash, recomputed, is the stored one: the leaf
    hashes and the topics. None if anything differs (the loop then goes
    through the page row by row and finds it)."""
    n = len(page)
    indexes, nids, leaf_ids, leaf_versions, recorded, hashes, ids, versions, topics, states = zip(*page)
    if (
        indexes != tuple(range(start, start + n)) or nids != tuple(range(after + 1, after + n + 1))
        or ids != leaf_ids or versions != leaf_versions
        or set(map(type, ids)) != {str} or set(map(type, versions)) != {int}
        or set(map(type, states)) != {bytes} or set(map(type, hashes)) != {bytes}
        or set(map(len, hashes)) != {32}
    ):
        return None
    topic_json = list(map(topics_json.get, topics))
    if None in topic_json:
        new_topics = set(topics).difference(topics_json)
        if set(map(type, new_topics)) != {str}:
            return None
        if len(topics_json) + len(new_topics) <= 256:
            topics_json.update(zip(new_topics, map(_json_string, new_topics)))
            topic_json = list(map(topics_json.get, topics))
        else:
            topic_json = list(map(_json_string, topics))
    times = list(map(recorded_json.get, recorded))
    if None in times:
        new_times = set(recorded).difference(recorded_json)
        if set(map(type, new_times)) != {str}:
            return None
        if len(recorded_json) + len(new_times) > time_cache:
            # Start again from this page's times: every one of them, those it
            # shares with the pages before (a batch across the page boundary)
            # as well as the new ones.
            recorded_json.clear()
            new_times = set(recorded)
        recorded_json.update(zip(new_times, map(_json_string, new_times)))
        times = list(map(recorded_json.get, recorded))
    if type(prev) is not bytes or len(prev) != 32:
        return None
    stored = list(hashes)
    prevs = _split(n, 64).unpack(hexlify(b"".join([prev, *stored[:-1]])))
    try:
        states_b64 = list(map(_B64, states))
    except TypeError:  # a state that is not bytes (tampered): the careful path says what
        return None
    if hex_ids and set(map(len, ids)) == {32}:  # 32 lowercase hex digits each
        ids_json: Any = _hyphenated_ids_json(ids)
    else:
        try:
            ids_json = [encode_basestring(_leaf_id(o, hex_ids)).encode() for o in ids]
        except ValueError:
            return None
    leaves = map(_HASHED_LEAF.__mod__, zip(indexes, ids_json, versions, prevs, times, states_b64, topic_json))
    if list(map(_DIGEST, map(hashlib.sha256, leaves))) != stored:
        return None
    return stored, topics


def _append_run(
    frontier: list[bytes], size: int, hashes: list[bytes], node_pair: Callable[[tuple[bytes, bytes]], bytes],
    digest_of: Callable[[Any], bytes],
) -> list[tuple[int, list[bytes]]]:
    """Appends the leaf hashes to the compact range (``frontier`` at ``size``,
    updated in place) a level at a time: what ``CompactRange.append`` of each
    would do. Returns, per level from 0, the first index and the hashes of
    the nodes the leaves complete there (level 0: the leaves themselves)."""
    runs = [(size, hashes)]
    carry: list[bytes] = []  # the new frontier's hashes, lowest level first
    row, first = hashes, size
    while row:
        if first & 1:  # the first node's left sibling is the frontier's lowest
            row = [frontier.pop(), *row]
            first -= 1
        if len(row) & 1:
            carry.append(row[-1])
        if len(row) < 2:
            break
        row = list(map(digest_of, map(sha256, map(node_pair, zip(row[0::2], row[1::2])))))
        first >>= 1
        runs.append((first, row))
    frontier.extend(reversed(carry))
    return runs


def _range_at(size: int, old_frontier: list[bytes], runs: list[tuple[int, list[bytes]]]) -> CompactRange:
    """The compact range at ``size``, within the leaves :func:`_append_run`
    appended to ``old_frontier``: its nodes before them from ``old_frontier``,
    the others from ``runs``."""
    start = runs[0][0]
    hashes = []
    p = k = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            if p + (1 << level) <= start:
                hashes.append(old_frontier[k])
                k += 1
            else:
                first, row = runs[level]
                hashes.append(row[(p >> level) - first])
            p += 1 << level
    return CompactRange(size, hashes)


def _leaf_of(store: LedgerStore, event: EventRow) -> LeafRow | None:
    """The leaf that records this event's id and version, if any.

    Only a leaf that itself records them counts: a store may find the leaf
    through the event row (SQLite joins on the notification id), and in a
    tampered database that row's leaf may have recorded another event.
    """
    try:
        originator_id = UUID(event.originator_id)
    except ValueError:
        return None
    leaf = store.leaf_of_event(originator_id, event.originator_version)
    if leaf is None or (leaf.originator_id, leaf.originator_version) != _key(event):
        return None
    return leaf


def _after_event(row: EventRow) -> int:
    return row[0]


def _key(row: EventRow | LeafRow) -> tuple[str, int]:
    return row.originator_id, row.originator_version


class _Moved:
    """Event rows holding another event than their leaf recorded.

    Such a row is ``reordered`` if the event it holds is one that another
    leaf recorded and does not find in its own row (rows swapped or moved),
    else ``modified`` (its id or version was changed). Worked out from the
    leaves themselves as they stream by, so it does not depend on how a
    store looks leaves up; memory grows only with the problems found.
    """

    LIMIT = 1 << 16

    def __init__(self, report: VerifyReport) -> None:
        self.report = report
        self.lost: dict[tuple[str, int], int] = {}  # event -> the leaf whose row lacks it
        self.held: dict[tuple[str, int], tuple[LeafRow, EventRow]] = {}  # undecided

    def lost_event(self, leaf: LeafRow) -> None:
        """``leaf``'s own event is not in its row."""
        key = _key(leaf)
        if key in self.held:
            self._report(*self.held.pop(key), leaf.leaf_index)
        elif len(self.lost) < self.LIMIT:
            self.lost[key] = leaf.leaf_index

    def holds(self, leaf: LeafRow, row: EventRow) -> None:
        """``leaf``'s row holds another event."""
        key = _key(row)
        if key in self.lost:
            self._report(leaf, row, self.lost.pop(key))
        elif len(self.held) < self.LIMIT:
            self.held[key] = (leaf, row)
        else:
            self._report(leaf, row, None)

    def finish(self) -> None:
        for leaf, row in self.held.values():
            self._report(leaf, row, None)

    def _report(self, leaf: LeafRow, row: EventRow, owner: int | None) -> None:
        held = _describe(row) if owner is None else f"{_describe(row)} (the event of leaf {owner})"
        self.report.problem(
            leaf.leaf_index, "modified" if owner is None else "reordered",
            f"event row {row.notification_id} holds {held}, but the leaf recorded {_describe(leaf)}",
        )


def _event_at(store: LedgerStore, notification_id: int) -> EventRow | None:
    """The event row with this notification id, read out of stream order."""
    rows = store.read_events(notification_id - 1, 1)
    return rows[0] if rows and rows[0].notification_id == notification_id else None


def _describe(row: EventRow | LeafRow) -> str:
    return f"{row.originator_id} v{row.originator_version}"


def _start_from(
    store: LedgerStore, since: Checkpoint, head: Head, report: VerifyReport
) -> tuple[CompactRange, bytes, int] | None:
    """The verified state at a trusted checkpoint: tree, last leaf hash, its row.

    None (with the problem reported) when the stored ledger does not extend it.
    """
    size = since.size
    if head.size < size:
        report.problem(head.size, "truncated",
                       f"the trusted checkpoint covers {size} leaves, but the ledger has only {head.size}")
        return None
    if size == 0:
        return CompactRange(), ZERO_HASH, 0
    ids = CompactRange.frontier_ids(size)
    frontier = store.read_nodes(ids)
    last = store.read_leaves(size - 1, 1)
    if any(h is None for h in frontier) or not last or last[0].leaf_index != size - 1:
        report.problem(None, "forked", f"stored nodes or leaf {size - 1} for the trusted size {size} are "
                       "missing; run a full verify to find where")
        return None
    tree = CompactRange(size, frontier)  # type: ignore[arg-type]
    if tree.root() != since.root_hash:
        report.problem(None, "forked", f"the stored tree at the trusted size {size} has root "
                       f"{tree.root().hex()}, not the trusted {since.root_hash.hex()}; "
                       "run a full verify to find where")
        return None

    def get_nodes(node_ids: Any) -> list[bytes]:
        found = store.read_nodes(node_ids)
        if any(h is None for h in found):
            raise ProofError("stored Merkle nodes are missing")
        return found  # type: ignore[return-value]

    try:
        verify_inclusion(last[0].leaf_hash, size - 1, size,
                         inclusion_proof(size - 1, size, get_nodes), since.root_hash)
        if head.size > size:
            current = head.compact_range().root()
            verify_consistency(size, head.size, consistency_proof(size, head.size, get_nodes),
                               since.root_hash, current)
    except (ProofError, ValueError) as e:
        report.problem(None, "forked", f"the current tree of {head.size} leaves is not consistent with "
                       f"the trusted checkpoint of size {size}: {e}")
        return None
    return tree, last[0].leaf_hash, last[0].notification_id


class VerificationIncomplete(Exception):
    """Verification stopped before its end on an error of its own or of the
    database, not on anything found in the data: ``report`` holds what it had
    checked (and any problem found) up to there, ``__cause__`` the error."""

    def __init__(self, report: VerifyReport, error: BaseException) -> None:
        self.report = report
        self.error = error
        super().__init__(f"verification stopped after {report.events_checked} leaves: "
                         f"{type(error).__name__}: {error}")


def verify_ledger(
    store: LedgerStore,
    verifier: Verifier | None,
    origin: str | None = None,
    *,
    since: Checkpoint | None = None,
    progress: Progress | None = None,
    batch: int = BATCH,
    record_time_cache: int = RECORD_TIME_CACHE,
    open_state: OpenState | None = None,
) -> VerifyReport:
    """Verify the ledger; see the module docstring for what is checked.

    ``open_state`` opens sealed personal values (event format 2), so that a signed
    decision is re-verified over what was signed; without it, or once erased, such a
    signature is counted in ``signatures_sealed``.

    With ``since`` (a checkpoint the caller trusts, already verified), only
    the leaves appended after it are re-read: the stored tree at its size must
    have its root, the current tree must be consistent with it (RFC 9162
    consistency proof from the stored nodes), and the chain continues from
    its last leaf, whose hash an inclusion proof binds to that root. The work
    is proportional to what is new, plus O(log n).

    ``batch`` is the page size (leaves read at a time, and the interval at
    which stored nodes are compared); ``record_time_cache`` how many record
    times a page check keeps between pages. Neither changes the report.

    Raises :class:`VerificationIncomplete` (with what was checked so far)
    when anything goes wrong other than a finding: a database error, or a
    defect of the verifier itself. A finding is never raised, only reported.
    """
    report = VerifyReport()
    try:
        return _verify(report, store, verifier, origin, since, progress, batch, record_time_cache, open_state)
    except Exception as error:
        raise VerificationIncomplete(report, error) from error


def _verify(
    report: VerifyReport,
    store: LedgerStore,
    verifier: Verifier | None,
    origin: str | None,
    since: Checkpoint | None,
    progress: Progress | None,
    batch: int,
    record_time_cache: int,
    open_state: OpenState | None = None,
) -> VerifyReport:
    # Checkpoints first: one signed after this read covers at most the head read next.
    stored_checkpoints = store.checkpoints()
    head = store.head()
    total = head.size
    gaps: list[tuple[int, int]] = []
    nodes = _NodeCheck(store, report, gaps)
    moved = _Moved(report)
    signatures = _DecisionSignatures(report, store, since.size if since is not None else 0, open_state)
    tree = CompactRange()
    prev = ZERO_HASH
    expected = 0
    last_notification = 0  # the highest notification id of the leaves so far
    previous_notification = 0
    if since is not None:
        report.since = since.size
        start = _start_from(store, since, head, report)
        if start is None:
            report.tree_size = total
            return report
        tree, prev, last_notification = start
        previous_notification = last_notification
        expected = since.size
        stored_checkpoints = [c for c in stored_checkpoints if c.tree_size > since.size]
    checkpoints = _Checkpoints(stored_checkpoints, verifier, origin, report)
    checkpoints.check_due(tree)

    def append(digest: bytes) -> None:
        nodes.add(tree.append(digest))
        checkpoints.check_due(tree, gaps[0][0] if gaps else None)

    # Three ways through a page, each checking what the next one would: a
    # whole page in the common case, a column at a time; else leaf by leaf
    # while rows are in the common case (the leaf's own event row next, no
    # gap), appending to the tree without a call per node; else the
    # two-stream loop, which handles every case. Rows are plain tuples
    # (LeafRow: index, notification id, originator id, version, recorded_at,
    # hash; EventRow: notification id, originator id, version, topic, state).
    sha256, hashed_leaf, node_prefix = hashlib.sha256, _HASHED_LEAF, _NODE_PREFIX
    signature_topics, json_string, escape = _SIGNATURE_TOPICS, _json_string, encode_basestring
    frontier = tree.hashes
    levels = nodes.levels
    next_due = checkpoints.next_size()
    events_checked = 0
    topics_json: dict[str, bytes] = {}
    last_recorded_at: str | None = None
    recorded_json = b""

    read_page = store.read_leaves_with_events
    lower_hex = _LOWER_HEX.fullmatch
    event_id = itemgetter(6)
    digest_of, node_pair = methodcaller("digest"), (_NODE_PREFIX + b"%b%b").__mod__
    recorded_cache: dict[str, bytes] = {}
    events: Iterator[EventRow] = iter(())
    event: EventRow | None = None
    cursor = expected
    stop = False
    while not stop:
        report.events_checked = events_checked  # so far, should anything stop verification
        # One joined read per page: each leaf row with its event row's fields.
        # A leaf whose event row is the next one after the rows of the leaves
        # before it (notification id one higher: no other row can come between)
        # and records the leaf's own id and version is the common case of the
        # two-stream loop below, and is checked here in the same way. From the
        # first leaf where anything does not line up, a page goes through that
        # loop: leaves read again from there, and events streamed from the last
        # leaf's row on (every row up to it has been accounted for), so every
        # problem is found and reported as it always was.
        page = read_page(cursor, batch)
        if not page:
            break
        more = len(page) == batch
        cursor = page[-1][0] + 1
        # 32-digit ids: hyphenated here when all the page's are lowercase hex,
        # else each as originator_id_text makes it.
        try:
            hex_ids = lower_hex("".join(map(event_id, page))) is not None
        except TypeError:  # not all text: those rows go through the loop below
            hex_ids = False
        # A page in which every row is the common case and every leaf hash is
        # as stored: checked a column at a time, its leaves appended to the
        # tree a level at a time. The same checks, and nothing to report but
        # what the decision signatures, the checkpoints and the stored nodes
        # may show, in the order the loop below would report them. Else the
        # loop below.
        n = len(page)
        start = expected
        clean = (
            _clean_page(page, start, last_notification, prev, hex_ids, topics_json, recorded_cache,
                        record_time_cache)
            if start + n <= total and not gaps else None
        )
        if clean is not None:
            # The page's leaves appended to the tree a level at a time; then,
            # in the order the loop below would meet them, the decision
            # signatures, the checkpoints due within the page (their roots
            # from the page's levels) and the stored nodes at a multiple of
            # the page size (those completed up to it; the rest at the next).
            hashes, topics = clean
            end = start + n
            old_frontier = frontier[:]
            runs = _append_run(frontier, start, hashes, node_pair, digest_of)
            pending = runs[:]  # what is not yet handed to the node check
            tree.size = end
            signed = list(compress(range(start, end), map(signature_topics.__contains__, topics)))
            decisions = [i for i in signed if topics[i - start] in _DECISION_TOPICS]
            if decisions:
                # The unsigned decisions (most) pass without a call each.
                skip = set(_unsigned(decisions, [page[i - start][9] for i in decisions]))
                if skip:
                    signed = [i for i in signed if i not in skip]
            flush_size = end - end % batch if end - end % batch > start else -1
            seen = 0
            while True:
                stop_at = flush_size if flush_size > 0 else end
                if start < next_due <= end and next_due < stop_at:
                    stop_at = next_due
                while seen < len(signed) and signed[seen] < stop_at:
                    r = page[signed[seen] - start]
                    signatures.see(r[0], EventRow(r[1], _leaf_id(r[6], hex_ids), r[7], r[8], r[9]))
                    seen += 1
                if stop_at == next_due:
                    checkpoints.check_due(tree if stop_at == end else _range_at(stop_at, old_frontier, runs))
                    next_due = checkpoints.next_size()
                if stop_at == flush_size:
                    for level in range(1, len(pending)):
                        first, row = pending[level]
                        cut = (flush_size >> level) - first
                        if cut > 0:
                            nodes.add_run(level, first, row[:cut])
                            pending[level] = (first + cut, row[cut:])
                    nodes.flush()
                    if progress is not None:
                        progress(flush_size, total)
                    flush_size = -1
                elif stop_at == end:
                    break
            for level in range(1, len(pending)):
                first, row = pending[level]
                if row:
                    nodes.add_run(level, first, row)
            expected = start + n
            prev = hashes[-1]
            events_checked += n
            previous_notification = last_notification = last_notification + n
            stop = not more
            continue
        # Locals for the loop: the tree's size (the leaf count, as no leaf is
        # gone before a page checked here), the next event row's id, and the
        # leaf count at which the nodes are compared next.
        size = expected
        tree_start = size
        next_row = last_notification + 1
        flush_at = size - size % batch + batch
        careful_from: int | None = expected if gaps else None
        for (index, notification_id, leaf_id, leaf_version, recorded_at, stored_hash,
             originator_id, originator_version, topic, state) in (() if gaps else page):
            if (
                index != size or notification_id != next_row or index >= total
                or originator_id != leaf_id or originator_version != leaf_version
                or type(originator_id) is not str or type(state) is not bytes
                or type(stored_hash) is not bytes or len(stored_hash) != 32
            ):
                careful_from = size
                break
            topic_json = topics_json.get(topic)  # a hit: topic is that str
            if topic_json is None:
                if type(topic) is not str:
                    careful_from = size
                    break
                topic_json = json_string(topic)
                if len(topics_json) < 256:
                    topics_json[topic] = topic_json
            if len(originator_id) != 32:
                id_json = escape(originator_id).encode()
            elif hex_ids:
                id_json = (
                    f'"{originator_id[:8]}-{originator_id[8:12]}-{originator_id[12:16]}-'
                    f'{originator_id[16:20]}-{originator_id[20:]}"'
                ).encode()
                originator_id = None
            else:
                originator_id = originator_id_text(originator_id)
                id_json = escape(originator_id).encode()
            if topic in signature_topics:
                if originator_id is None:
                    originator_id = id_json[1:-1].decode()
                signatures.see(index, EventRow(notification_id, originator_id, originator_version, topic, state))
            if type(recorded_at) is not str or recorded_at != last_recorded_at:
                recorded_json = json_string(recorded_at)
                last_recorded_at = recorded_at if type(recorded_at) is str else None
            if sha256(hashed_leaf % (
                index,
                id_json,
                originator_version if type(originator_version) is int else int(originator_version),
                hexlify(prev),
                recorded_json,
                b2a_base64(state, newline=False),
                topic_json,
            )).digest() != stored_hash:
                if originator_id is None:
                    originator_id = id_json[1:-1].decode()
                report.problem(
                    index, "modified",
                    f"event row {notification_id} ({originator_id} v{originator_version}) does not hash "
                    "to the stored leaf hash: its topic, state, id, version or record time, or the "
                    "previous leaf's hash, was changed",
                )
            # CompactRange.append, inline (as in the loop below).
            prev = node = stored_hash
            level = 0
            while size & 1:
                node = sha256(node_prefix + frontier.pop() + node).digest()
                size >>= 1
                level += 1
                levels[level].append((size, node))
            frontier.append(node)
            size = index + 1
            next_row += 1
            if size == next_due:
                tree.size = size
                checkpoints.check_due(tree)
                next_due = checkpoints.next_size()
            if size == flush_at:
                flush_at += batch
                nodes.flush()
                if progress is not None:
                    progress(size, total)
        if size != tree_start:
            tree.size = expected = size
            events_checked += size - tree_start
            previous_notification = last_notification = next_row - 1
        if careful_from is None:
            stop = not more
            continue
        leaves = store.read_leaves(careful_from, batch)
        if not leaves:
            break
        stop = len(leaves) < batch
        cursor = leaves[-1][0] + 1
        events = iter_batches(store.read_events, last_notification, _after_event, batch)
        event = next(events, None)
        for leaf in leaves:
            index, notification_id, _, _, recorded_at, stored_hash = leaf
            if index >= total:
                stop = True
                break
            linked = index == expected  # the previous leaf is there: the chain can be checked
            if not linked:
                report.problem(
                    expected, "missing",
                    f"leaves {expected}..{index - 1} are gone (so leaf {index}'s link to the "
                    "previous leaf cannot be checked)",
                )
                gaps.append((expected, index))
                for _ in range(expected, index):
                    append(_UNKNOWN)  # keeps the later leaves at their places in the tree
                next_due = checkpoints.next_size()
            if notification_id <= previous_notification:
                report.problem(
                    index, "reordered",
                    f"its event row {notification_id} comes before the row of the previous leaf "
                    f"({previous_notification})",
                )
            row: EventRow | None = None
            if notification_id <= last_notification:
                row = _event_at(store, notification_id)  # the stream is past it
            elif event is not None and event[0] == notification_id:
                row, event = event, next(events, None)  # the usual case: the next row is this leaf's
            else:
                displaced: list[tuple[int, int]] = []  # (row, leaf): rows other leaves recorded
                while event is not None and event.notification_id < notification_id:
                    other = _leaf_of(store, event)
                    if other is None:
                        report.problem(
                            index, "inserted",
                            f"event row {event.notification_id} ({_describe(event)}) has no leaf",
                        )
                    else:
                        displaced.append((event.notification_id, other.leaf_index))
                    event = next(events, None)
                if displaced:
                    report.problem(
                        index, "reordered",
                        f"{len(displaced)} event row(s) recorded by other leaves come before this "
                        f"leaf's row {notification_id}: rows {displaced[0][0]}..{displaced[-1][0]} "
                        f"(the first recorded by leaf {displaced[0][1]})",
                    )
                if event is not None and event.notification_id == notification_id:
                    row, event = event, next(events, None)
            if row is None:
                report.problem(
                    index, "missing",
                    f"its event row {notification_id} ({_describe(leaf)}) is gone",
                )
                moved.lost_event(leaf)
            else:
                events_checked += 1
                _, originator_id, originator_version, topic, state = row
                if topic in signature_topics:
                    signatures.see(index, row)
                if originator_id != leaf[2] or originator_version != leaf[3]:
                    moved.holds(leaf, row)
                    moved.lost_event(leaf)
                # encode_leaf's bytes (its template), with the JSON of the topic and
                # of the record time (shared by a whole write batch) kept between
                # leaves, and the leaf hash's 0x00 prefix in the template.
                if type(recorded_at) is not str or recorded_at != last_recorded_at:
                    recorded_json = json_string(recorded_at)
                    last_recorded_at = recorded_at if type(recorded_at) is str else None
                topic_json = topics_json.get(topic) if type(topic) is str else None
                if topic_json is None:
                    topic_json = json_string(topic)
                    if type(topic) is str and len(topics_json) < 256:
                        topics_json[topic] = topic_json
                digest = sha256(hashed_leaf % (
                    index,
                    escape(originator_id).encode() if type(originator_id) is str else json_string(originator_id),
                    originator_version if type(originator_version) is int else int(originator_version),
                    hexlify(prev),
                    recorded_json,
                    b2a_base64(state, newline=False),
                    topic_json,
                )).digest()
                if linked and digest != stored_hash:
                    report.problem(
                        index, "modified",
                        f"event row {row.notification_id} ({_describe(row)}) does not hash to the "
                        "stored leaf hash: its topic, state, id, version or record time, or the "
                        "previous leaf's hash, was changed",
                    )
            previous_notification = notification_id
            if notification_id > last_notification:
                last_notification = notification_id
            # Go on from the stored hash (see the module docstring).
            prev = stored_hash
            if gaps or type(prev) is not bytes or len(prev) != 32:  # 32: a SHA-256 hash
                append(prev)
                next_due = checkpoints.next_size()
            else:
                # CompactRange.append, inline: the nodes this leaf completes, each
                # (idx, hash) at its level for _NodeCheck.
                node, size, level = prev, tree.size, 0
                while size & 1:
                    node = sha256(node_prefix + frontier.pop() + node).digest()
                    size >>= 1
                    level += 1
                    levels[level].append((size, node))
                frontier.append(node)
                tree.size += 1
                if tree.size == next_due:
                    checkpoints.check_due(tree)
                    next_due = checkpoints.next_size()
            expected = index + 1
            if expected % batch == 0:
                nodes.flush()
                if progress is not None:
                    progress(expected, total)
    # The rows after the last leaf's: every one up to it has been accounted for.
    events = iter_batches(store.read_events, last_notification, _after_event, batch)
    event = next(events, None)
    report.events_checked = events_checked
    nodes.flush()
    moved.finish()

    if expected < total:
        report.problem(
            expected, "truncated",
            f"the head records {total} leaves, but only {expected} exist",
        )
    while event is not None:
        if event.notification_id > last_notification and _leaf_of(store, event) is None:
            report.problem(
                expected, "inserted",
                f"event row {event.notification_id} ({_describe(event)}) has no leaf",
            )
        event = next(events, None)
    if expected == total and (
        head.last_leaf_hash != prev or (not gaps and head.frontier != tree.to_bytes())
    ):
        report.problem(
            max(0, total - 1), "modified",
            "the head row (last leaf hash, frontier) does not match the recomputed tree",
        )
    checkpoints.finish(expected)
    report.signatures_checked = signatures.checked
    report.tree_size = expected
    report.root_hash = None if gaps else tree.root()
    if progress is not None:
        progress(expected, total)
    return report
