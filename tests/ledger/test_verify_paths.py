"""Full verification takes a page of leaves, each joined to its event row, a
column at a time or leaf by leaf while the rows are in the common case, and the
two-stream loop (leaves beside the events in notification order) otherwise.
Whatever the path, the report must be the one the two-stream loop alone gives:
same problems, same order, same first bad index."""

from __future__ import annotations

import random
from typing import Any

import pytest
import rfc8785

from ledger.audit.verify import _canonical, _plain_object, verify_ledger
from ledger.service.application import TransferLedger
from ledger.service.checkpoints import sign_current_checkpoint
from ledger.tlog.note import Signer
from tests.support.backends import Backend
from tests.support.builders import granted_chain, onward, refuse, request, transfer
from tests.support.tamper import TwoStreamsOnly

SIGNER = Signer.from_seed("ledger.example/paths", bytes(range(32)))




def build(ledger: TransferLedger) -> None:
    for round_ in range(6):
        root, auth = granted_chain(ledger)
        ledger.record_transfer(onward("FR", "INTERPOL", root, auth))
        asked = ledger.request_authorization(request("FR", "US", root))
        ledger.decide(asked["id"], refuse("DE"))
        ledger.record_transfer(transfer("NL", "DE"))
        if round_ % 2:
            sign_current_checkpoint(ledger.store, SIGNER)


def tamper(backend: Backend, case: str, size: int) -> None:
    events, nid = backend.events_table, backend.notification_id
    middle = backend.execute("SELECT notification_id FROM ledger_leaves WHERE leaf_index = ?", (size // 2,))[0][0]
    if case == "state":
        backend.execute(f"UPDATE {events} SET state = ? WHERE {nid} = ?", (b'{"x":1}', middle))
    elif case == "deleted":
        backend.execute(f"DELETE FROM {events} WHERE {nid} = ?", (middle,))
    elif case == "inserted":
        row = backend.execute(f"SELECT originator_id, topic, state FROM {events} WHERE {nid} = ?", (middle,))[0]
        backend.execute(f"UPDATE {events} SET {nid} = {nid} + 1000 WHERE {nid} > ?", (middle,))
        backend.execute("UPDATE ledger_leaves SET notification_id = notification_id + 1000 "
                        "WHERE notification_id > ?", (middle,))
        backend.execute(f"INSERT INTO {events} ({nid}, originator_id, originator_version, topic, state) "
                        "VALUES (?, ?, ?, ?, ?)", (middle + 500, row[0], 999, row[1], row[2]))
    elif case == "leaf-gone":
        backend.execute("DELETE FROM ledger_leaves WHERE leaf_index = ?", (size // 3,))
    elif case == "leaf-hash":
        backend.execute("UPDATE ledger_leaves SET leaf_hash = ? WHERE leaf_index = ?", (bytes(32), size // 3))
    elif case == "node":
        backend.execute("UPDATE ledger_nodes SET hash = ? WHERE level = 2 AND idx = 1", (bytes(32),))
    elif case == "version":
        backend.execute(f"UPDATE {events} SET originator_version = originator_version + 7 WHERE {nid} = ?",
                        (middle,))


@pytest.mark.parametrize("case", ["intact", "state", "deleted", "inserted", "leaf-gone", "leaf-hash", "node",
                                  "version"])
def test_every_path_reports_as_the_two_stream_loop(ledger: TransferLedger, backend: Backend, case: str) -> None:
    build(ledger)
    size = ledger.store.head().size
    tamper(backend, case, size)
    for batch in (1, 3, 4, 8, 4096):
        fast = verify_ledger(ledger.store, SIGNER.verifier(), SIGNER.name, batch=batch).as_dict()
        careful = verify_ledger(TwoStreamsOnly(ledger.store), SIGNER.verifier(), SIGNER.name,  # type: ignore[arg-type]
                                batch=batch).as_dict()
        assert fast == careful, (batch, fast, careful)
        assert fast["ok"] == (case == "intact"), fast


def test_canonical_is_rfc8785() -> None:
    rnd = random.Random(7)
    pieces = ["a", "Z", '"', "\\", "\n", "\x00", "\x1f", "\x7f", "é", "\u2028", "\ud800", "\U0001f600", "\ue000"]

    def text() -> str:
        return "".join(rnd.choice(pieces) for _ in range(rnd.randrange(5)))

    def value(depth: int = 0) -> Any:
        kind = rnd.randrange(9 if depth < 3 else 5)
        if kind == 0:
            return rnd.choice([None, True, False])
        if kind == 1:
            return rnd.choice([0, -1, 2**53 - 1, 2**53, -(2**53), 10**30])
        if kind == 2:
            return rnd.choice([0.5, 1.0, -0.0, 1e21])
        if kind in (3, 4):
            return text()
        if kind in (5, 6):
            return [value(depth + 1) for _ in range(rnd.randrange(3))]
        return {text(): value(depth + 1) for _ in range(rnd.randrange(3))}

    for _ in range(5000):
        document = value()
        try:
            expected: Any = rfc8785.dumps(document)
        except Exception as e:  # noqa: BLE001 (the same error, whatever it is)
            expected = type(e)
        try:
            got: Any = _canonical(document)
        except Exception as e:  # noqa: BLE001
            got = type(e)
        assert got == expected, document


@pytest.mark.parametrize("state", [
    b'{"a":1,"signature":null}', b'{"a":[{"b":[1,2,"x"]},{}],"signature":null}', b'{"a":"x"}',
    b'{"a":-0.5e+3,"b":true,"c":false,"d":[],"e":{}}',
])
def test_plain_objects_are_json_objects(state: bytes) -> None:
    import json

    assert _plain_object(3).fullmatch(state) is not None
    assert isinstance(json.loads(state), dict)


@pytest.mark.parametrize("state", [
    b'{"a":1} ', b'{"a":"\\u0073"}', b'{"a":[1,]}', b'{"a":1,}', b'{"a":"\xc3\xa9"}', b"[1]", b"{}",
    b'{"a":' + b"1" * 400 + b"}", b'{"a":{"b":{"c":{"d":{"e":1}}}}}', b'{"a":nul}', b'{"a":01}',
])
def test_anything_else_is_decoded(state: bytes) -> None:
    assert _plain_object(3).fullmatch(state) is None


def _reference_plain_object(depth: int) -> Any:
    """The grammar as first written (each member and element twice per level)."""
    import re

    string = rb'"[ !#-\[\]-~]*+"'
    number = rb'-?+(?:0|[1-9][0-9]{0,299}+)(?:\.[0-9]++)?+(?:[eE][+-]?+[0-9]++)?+'
    scalar = string + rb'|' + number + rb'|true|false|null'
    value = rb'(?>' + scalar + rb')'
    for _ in range(depth):
        value = (
            rb'(?>' + scalar + rb'|\{\}|\[\]|\{' + string + rb':' + value + rb'(?:,' + string + rb':' + value
            + rb')*+\}|\[' + value + rb'(?:,' + value + rb')*+\])'
        )
    return re.compile(rb'\{' + string + rb':' + value + rb'(?:,' + string + rb':' + value + rb')*+\}')


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_plain_object_grammar_is_the_reference_one(depth: int) -> None:
    rnd = random.Random(depth)
    tokens = [b'"a"', b'"s p"', b"1", b"-0.5e+3", b"01", b"true", b"nul", b"null", b"{", b"}", b"[", b"]",
              b",", b":", b'"\\u0073"', b" ", b'"x', b"{}", b"[]"]

    def value(d: int) -> bytes:
        kind = rnd.randrange(6 if d < depth + 2 else 3)
        if kind < 3:
            return rnd.choice([b'"a"', b"1", b"-0.5e+3", b"true", b"null", b'""'])
        if kind < 5:
            return b"{" + b",".join(b'"k%d":' % i + value(d + 1) for i in range(rnd.randrange(3))) + b"}"
        return b"[" + b",".join(value(d + 1) for _ in range(rnd.randrange(3))) + b"]"

    fast, reference = _plain_object(depth).fullmatch, _reference_plain_object(depth).fullmatch
    for _ in range(3000):
        text = bytearray(b'{"a":' + value(1) + b',"signature":null}')
        for _ in range(rnd.choice([0, 0, 1, 2])):  # small edits: insert, delete or replace a token
            at = rnd.randrange(len(text) + 1)
            op = rnd.randrange(3)
            if op == 0:
                text[at:at] = rnd.choice(tokens)
            elif op == 1:
                del text[at:at + rnd.randrange(1, 4)]
            else:
                text[at:at + 1] = rnd.choice(tokens)
        state = bytes(text)
        assert (fast(state) is None) == (reference(state) is None), state


def test_appending_a_run_is_appending_each_leaf() -> None:
    import hashlib
    from operator import methodcaller

    from ledger.audit.verify import _NODE_PREFIX, _append_run, _range_at
    from ledger.tlog.merkle import CompactRange

    rnd = random.Random(3)
    node_pair, digest_of = (_NODE_PREFIX + b"%b%b").__mod__, methodcaller("digest")
    for _ in range(300):
        start, n = rnd.randrange(70), rnd.randrange(1, 70)
        leaves = [hashlib.sha256(b"%d" % i).digest() for i in range(start + n)]
        before = CompactRange()
        for leaf in leaves[:start]:
            before.append(leaf)
        frontier = list(before.hashes)
        runs = _append_run(frontier, start, leaves[start:], node_pair, digest_of)
        one_by_one = CompactRange(start, before.hashes)
        completed: dict[int, list[tuple[int, bytes]]] = {}
        for size, leaf in enumerate(leaves[start:], start + 1):
            for level, idx, digest in one_by_one.append(leaf):
                completed.setdefault(level, []).append((idx, digest))
            assert _range_at(size, before.hashes, runs).root() == one_by_one.root(), (start, n, size)
        assert frontier == one_by_one.hashes
        got = {level: list(zip(range(first, first + len(row)), row))
               for level, (first, row) in enumerate(runs) if level and row}
        assert got == {level: nodes for level, nodes in completed.items() if level}, (start, n)


def test_unsigned_decisions_in_bulk_are_those_passed_over_one_by_one() -> None:
    from ledger.audit.verify import _plain_lines_match, _unsigned

    def one(state: Any) -> bool:  # _DecisionSignatures.see's own test
        return (type(state) is bytes and b"\n" not in state and _plain_lines_match()(state) is not None
                and (state.endswith(b'"signature":null}') or b'"signature"' not in state))

    plain = [b'{"origin":"DE","signature":null}', b'{"origin":"FR","reasons":"x"}', b'{"a":[1,{"b":2}],"signature":null}']
    other = [b'{"origin":"DE","signature":{"key":"k","value":"v"}}', b'{"origin":"DE"}\n{"x":1,"signature":null}',
             b'{"origin":"D\\u0045","signature":null}', b"not json", "text", b'{"a":1}\n', b'{"signature":null}{}']
    rnd = random.Random(5)
    for _ in range(500):
        states = [rnd.choice(plain + other) for _ in range(rnd.randrange(6))]
        positions = [3 * i + 1 for i in range(len(states))]
        got = _unsigned(positions, states)
        assert set(got) <= {p for p, s in zip(positions, states) if one(s)}, states
        if all(one(s) or not (type(s) is bytes and (s.endswith(b'"signature":null}') or b'"signature"' not in s))
               for s in states):
            assert got == [p for p, s in zip(positions, states) if one(s)], states
