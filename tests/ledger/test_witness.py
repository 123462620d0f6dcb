"""Witnesses: the tlog-cosignature format against the spec, k of n, the witness's
state and one round against an in-memory log (consistent, split view,
inconsistent, rollback), and fuzzing of every parser a witness or verifier runs."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ledger.tlog.cosignature import (
    COSIGNATURE_HEADER,
    CosignatureError,
    CosignatureVerifier,
    Cosigner,
    QuorumNotReached,
    cosigned_message,
    format_witness_key,
    parse_cosignature_line,
    parse_witness_key,
    verify_cosignatures,
)
from ledger.tlog.keys import KeyFileError, format_signing_key
from ledger.tlog.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    leaf_hash,
    root_from_leaf_hashes,
)
from ledger.tlog.note import (
    Checkpoint,
    NoteError,
    Signer,
    Verifier,
    sign_checkpoint,
    sign_note,
)
from ledger.witness import (
    WitnessRefused,
    WitnessState,
    WitnessStateError,
    compare_checkpoints,
    parse_consistency_proof,
    read_proof_file,
    run_witness,
)

# tlog-cosignature.md, "Format" and "Ed25519 signed message": the example checkpoint,
# a cosignature line of witness.example.com/w1 on it, and the message it signs.
SPEC_CHECKPOINT_TEXT = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)
SPEC_COSIGNATURE = (
    "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZ"
    "qhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)
SPEC_MESSAGE = (
    "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)
ORIGIN = "ledger.example/log"
NOW = 1_780_000_000


def cosigner(name: str = "witness.example/w1", seed_byte: int = 7) -> Cosigner:
    return Cosigner.from_seed(name, bytes([seed_byte]) * 32)


def log_signer() -> Signer:
    return Signer.from_seed(ORIGIN, bytes(range(32)))


def leaves(n: int, salt: str = "") -> list[bytes]:
    return [leaf_hash(f"{salt}leaf {i}".encode()) for i in range(n)]


def checkpoint_note(hashes: list[bytes], signer: Signer | None = None) -> str:
    signer = signer or log_signer()
    return sign_checkpoint(Checkpoint(signer.name, len(hashes), root_from_leaf_hashes(hashes)), signer)


def text_of(note: str) -> str:
    return note[: note.rfind("\n\n") + 1]


# -- the format --------------------------------------------------------------------------


def test_the_signed_message_is_byte_for_byte_the_spec_example() -> None:
    assert cosigned_message(SPEC_CHECKPOINT_TEXT, 1679315147) == SPEC_MESSAGE.encode()
    assert COSIGNATURE_HEADER == "cosignature/v1\n"


def test_the_spec_cosignature_line_parses_to_its_key_id_and_timestamp() -> None:
    parsed = parse_cosignature_line(SPEC_COSIGNATURE)
    assert parsed.name == "witness.example.com/w1"
    assert parsed.key_id == 0x8D66CF3F
    assert parsed.timestamp == 1679315147  # the time in the spec's signed message
    assert len(parsed.signature) == 8 + 64
    assert parsed.line() == SPEC_COSIGNATURE


def test_a_cosignature_is_key_id_then_big_endian_timestamp_then_ed25519_over_the_message() -> None:
    witness = cosigner()
    public = witness.verifier().public_key
    expected_id = hashlib.sha256(b"witness.example/w1\n\x04" + public).digest()[:4]
    assert witness.key_id == int.from_bytes(expected_id, "big")
    # the same key and name with type 0x01 (a note signer) has another key id
    assert Verifier("witness.example/w1", public).key_id != witness.key_id

    line = witness.cosign(SPEC_CHECKPOINT_TEXT, 1679315147)
    assert line.startswith("\u2014 witness.example/w1 ") and line.endswith("\n") and line.count("\n") == 1
    blob = base64.b64decode(line.rstrip("\n").split(" ")[2], validate=True)
    assert len(blob) == 4 + 8 + 64
    assert blob[:4] == expected_id
    assert blob[4:12] == (1679315147).to_bytes(8, "big") == bytes.fromhex("000000006418 50cb".replace(" ", ""))
    Ed25519PublicKey.from_public_bytes(public).verify(blob[12:], SPEC_MESSAGE.encode())
    assert witness.verifier().verify(SPEC_CHECKPOINT_TEXT, blob[4:]) == 1679315147


def test_the_vkey_has_type_0x04_and_round_trips() -> None:
    witness = cosigner()
    vkey = witness.vkey()
    name, key_id, key64 = vkey.split("+", 2)
    assert name == "witness.example/w1" and key_id == f"{witness.key_id:08x}"
    raw = base64.b64decode(key64, validate=True)
    assert raw[0] == 0x04 and raw[1:] == witness.verifier().public_key and key64[0] == "B"
    assert CosignatureVerifier.from_vkey(vkey) == witness.verifier()


@pytest.mark.parametrize("timestamp", [1, 9, 10, 1679315147, 2**32, 2**63 - 1])
def test_timestamps_are_decimal_without_leading_zeros_and_8_bytes_big_endian(timestamp: int) -> None:
    assert cosigned_message("o\n1\n" + base64.b64encode(bytes(32)).decode() + "\n", timestamp).split(b"\n")[1] \
        == f"time {timestamp}".encode()
    line = cosigner().cosign(SPEC_CHECKPOINT_TEXT, timestamp)
    parsed = parse_cosignature_line(line)
    assert parsed.timestamp == timestamp and parsed.signature[:8] == timestamp.to_bytes(8, "big")
    assert cosigner().verifier().verify(SPEC_CHECKPOINT_TEXT, parsed.signature) == timestamp


@pytest.mark.parametrize(("timestamp", "message"), [
    (0, "cosignature timestamp 0 is not a positive POSIX time"),
    (-1, "cosignature timestamp -1 is not a positive POSIX time"),
    (2**63, "cosignature timestamp 9223372036854775808 is larger than 2**63-1"),
    (True, "cosignature timestamp must be an int, got bool"),
])
def test_a_cosigner_refuses_timestamps_out_of_range(timestamp: Any, message: str) -> None:
    with pytest.raises(CosignatureError) as caught:
        cosigner().cosign(SPEC_CHECKPOINT_TEXT, timestamp)
    assert str(caught.value) == message


def test_a_cosigner_signs_only_a_well_formed_checkpoint_text() -> None:
    with pytest.raises(NoteError, match="checkpoint has 2 lines"):
        cosigner().cosign("example.com/log\n3\n", NOW)
    with pytest.raises(NoteError, match="does not end in a newline"):
        cosigner().cosign(SPEC_CHECKPOINT_TEXT.rstrip("\n"), NOW)


def test_a_cosignature_over_other_text_or_time_does_not_verify() -> None:
    witness = cosigner()
    signature = parse_cosignature_line(witness.cosign(SPEC_CHECKPOINT_TEXT, NOW)).signature
    other_text = SPEC_CHECKPOINT_TEXT.replace("20852163", "20852164")
    with pytest.raises(CosignatureError, match=r"does not verify over this checkpoint"):
        witness.verifier().verify(other_text, signature)
    later = (NOW + 1).to_bytes(8, "big") + signature[8:]
    with pytest.raises(CosignatureError, match=f"time {NOW + 1}.*does not verify"):
        witness.verifier().verify(SPEC_CHECKPOINT_TEXT, later)


# -- malformed keys and lines: precise messages -----------------------------------------------


def vkey_with(raw: bytes, name: str = "w", key_id: str | None = None) -> str:
    public = raw[1:]
    if key_id is None:
        key_id = hashlib.sha256(name.encode() + b"\n" + raw[:1] + public).digest()[:4].hex()
    return f"{name}+{key_id}+{base64.b64encode(raw).decode()}"


GOOD = cosigner("w").verifier().public_key


@pytest.mark.parametrize(("vkey", "message"), [
    ("", "witness vkey: expected 3 '+'-separated parts <name>+<key id>+<key>, found 1"),
    ("w+0011", "witness vkey: expected 3 '+'-separated parts <name>+<key id>+<key>, found 2"),
    ("+00112233+BA==", "witness vkey: key name is empty"),
    ("w x+00112233+BA==", "witness vkey: key name 'w x' contains a space character U+0020"),
    ("w+0011223+BA==", "witness vkey: key id '0011223' is not 8 lowercase hex digits"),
    ("w+0011223G+BA==", "witness vkey: key id '0011223G' is not 8 lowercase hex digits"),
    ("w+00AABBCC+BA==", "witness vkey: key id '00AABBCC' is not 8 lowercase hex digits"),
    ("w+00112233+BA=", "witness vkey: key is not valid standard base64"),
    ("w+00112233+BB==", "witness vkey: key is not canonical base64: its unused trailing bits are not zero"),
    ("w+00112233+ BA==", "witness vkey: key is not valid standard base64"),
    ("w+00112233+BA==", "witness vkey: key decodes to 1 bytes, expected 33 (type byte 0x04 and 32 key bytes)"),
    (vkey_with(b"\x04" + GOOD + b"\x00"),
     "witness vkey: key decodes to 34 bytes, expected 33 (type byte 0x04 and 32 key bytes)"),
    (vkey_with(b"\x01" + GOOD),
     "witness vkey: signature type 0x01 is not supported, expected 0x04 (timestamped Ed25519 cosignature)"),
    (vkey_with(b"\x04" + GOOD, key_id="00000000"),
     "witness vkey: key id 00000000 does not match the name and key, which give "
     f"{cosigner('w').key_id:08x}"),
])
def test_malformed_witness_vkeys_are_rejected_precisely(vkey: str, message: str) -> None:
    with pytest.raises(CosignatureError) as caught:
        CosignatureVerifier.from_vkey(vkey)
    assert str(caught.value) == message


def test_the_ledgers_own_vkey_is_not_a_witness_vkey_nor_the_reverse() -> None:
    with pytest.raises(CosignatureError, match="signature type 0x01 is not supported, expected 0x04"):
        CosignatureVerifier.from_vkey(log_signer().vkey())
    with pytest.raises(NoteError, match="signature type 0x04 is not supported, expected 0x01"):
        Verifier.from_vkey(cosigner().vkey())


LINE_BLOB = base64.b64encode(bytes(76)).decode()


@pytest.mark.parametrize(("line", "message"), [
    ("", "cosignature: does not start with an em dash (U+2014) and a space"),
    ("- w " + LINE_BLOB, "cosignature: does not start with an em dash (U+2014) and a space"),
    ("— w" + LINE_BLOB, "cosignature: no space between key name and signature"),
    ("— w+x " + LINE_BLOB, "cosignature: key name 'w+x' contains '+'"),
    ("— w " + LINE_BLOB + "\n\n", "cosignature: expected one signature line, found a newline inside it"),
    ("— w " + LINE_BLOB + "\r\n", "cosignature: signature is not valid standard base64"),
    ("— w " + LINE_BLOB + " ", "cosignature: signature is not valid standard base64"),
    ("— w " + LINE_BLOB[:-1], "cosignature: signature is not valid standard base64"),
    ("— w AAA=", "cosignature: base64 decodes to 2 bytes, expected at least 4 (the key id)"),
    ("— w " + base64.b64encode(bytes(68)).decode(),
     "cosignature: base64 decodes to 68 bytes, expected 76 (key id, 8-byte timestamp, 64-byte Ed25519 signature)"),
    ("— w " + base64.b64encode(bytes(77)).decode(),
     "cosignature: base64 decodes to 77 bytes, expected 76 (key id, 8-byte timestamp, 64-byte Ed25519 signature)"),
    ("— w " + base64.b64encode(bytes(4) + b"\x80" + bytes(71)).decode(),
     "cosignature: timestamp 9223372036854775808 is larger than 2**63-1"),
])
def test_malformed_cosignature_lines_are_rejected_precisely(line: str, message: str) -> None:
    with pytest.raises(CosignatureError) as caught:
        parse_cosignature_line(line)
    assert str(caught.value) == message


# -- k of n ------------------------------------------------------------------------------------


@dataclass
class Cosigned:
    note: str
    witnesses: list[Cosigner]
    unknown: Cosigner


def cosigned(*, signers: int = 2) -> Cosigned:
    """A checkpoint signed by the log, cosigned by witnesses 1..signers of three, and by an unknown one."""
    note = checkpoint_note(leaves(5))
    witnesses = [cosigner(f"witness.example/w{i}", i) for i in (1, 2, 3)]
    unknown = cosigner("witness.example/stranger", 99)
    text = text_of(note)
    lines = [w.cosign(text, NOW + i) for i, w in enumerate(witnesses[:signers])]
    return Cosigned(note + unknown.cosign(text, NOW) + "".join(lines), witnesses, unknown)


@pytest.mark.parametrize("signers", [0, 1, 2, 3])
def test_k_of_n_accepts_exactly_when_k_known_witnesses_cosigned(signers: int) -> None:
    c = cosigned(signers=signers)
    verifiers = [w.verifier() for w in c.witnesses]
    for quorum in range(0, 4):
        if quorum <= signers:
            checkpoint, found = verify_cosignatures(c.note, log_signer().verifier(), verifiers, quorum, ORIGIN)
            assert checkpoint.size == 5
            assert [x.witness for x in found] == verifiers[:signers]
            assert [x.timestamp for x in found] == [NOW + i for i in range(signers)]
        else:
            with pytest.raises(QuorumNotReached) as caught:
                verify_cosignatures(c.note, log_signer().verifier(), verifiers, quorum, ORIGIN)
            assert f"is cosigned by {signers} of the 3 known witnesses" in str(caught.value)
            assert f"fewer than the quorum of {quorum}" in str(caught.value)


def test_a_bad_cosignature_from_a_known_witness_rejects_the_note() -> None:
    c = cosigned(signers=2)
    text = text_of(c.note)
    forged = c.witnesses[2].cosign(text.replace("\n5\n", "\n6\n"), NOW)  # over another checkpoint
    verifiers = [w.verifier() for w in c.witnesses]
    with pytest.raises(CosignatureError) as caught:
        verify_cosignatures(c.note + forged, log_signer().verifier(), verifiers, 1)
    assert str(caught.value).startswith("signature line 5: cosignature by witness.example/w3+")
    assert "does not verify over this checkpoint" in str(caught.value)


def test_an_unknown_witness_is_ignored_even_with_a_garbage_signature() -> None:
    c = cosigned(signers=1)
    garbage = parse_cosignature_line(c.unknown.cosign(text_of(c.note), NOW))
    bad = base64.b64encode(garbage.key_id.to_bytes(4, "big") + bytes(72)).decode()
    note = c.note + f"— {c.unknown.name} {bad}\n"
    _, found = verify_cosignatures(note, log_signer().verifier(), [c.witnesses[0].verifier()], 1)
    assert [x.witness.name for x in found] == ["witness.example/w1"]
    # the same name with another key id is another (unknown) key: ignored too
    other = base64.b64encode((c.witnesses[0].key_id ^ 1).to_bytes(4, "big") + bytes(72)).decode()
    verify_cosignatures(note + f"— witness.example/w1 {other}\n", log_signer().verifier(),
                        [c.witnesses[0].verifier()], 1)


def test_a_witness_counts_once_however_many_lines_it_has() -> None:
    c = cosigned(signers=1)
    again = c.witnesses[0].cosign(text_of(c.note), NOW + 60)
    verifiers = [w.verifier() for w in c.witnesses]
    with pytest.raises(QuorumNotReached, match="cosigned by 1 of the 3"):
        verify_cosignatures(c.note + again, log_signer().verifier(), verifiers, 2)


def test_the_log_signature_is_required_and_checked() -> None:
    c = cosigned(signers=3)
    verifiers = [w.verifier() for w in c.witnesses]
    other_log = Signer.from_seed(ORIGIN, bytes(32))
    with pytest.raises(NoteError, match="note has no signature by a known key"):
        verify_cosignatures(c.note, other_log.verifier(), verifiers, 0)
    with pytest.raises(NoteError, match="origin 'ledger.example/log' is not the expected 'elsewhere'"):
        verify_cosignatures(c.note, log_signer().verifier(), verifiers, 0, origin="elsewhere")


@pytest.mark.parametrize("quorum", [-1, 4, True, "2"])
def test_a_quorum_out_of_range_is_an_error(quorum: Any) -> None:
    c = cosigned()
    with pytest.raises(CosignatureError, match="must be between 0 and the number of known witnesses, 3"):
        verify_cosignatures(c.note, log_signer().verifier(), [w.verifier() for w in c.witnesses], quorum)


def test_two_witness_keys_with_one_name_and_key_id_are_refused() -> None:
    w = cosigner()
    twin = CosignatureVerifier.__new__(CosignatureVerifier)
    object.__setattr__(twin, "name", w.name)
    object.__setattr__(twin, "public_key", bytes(32))
    object.__setattr__(twin, "key_id", w.key_id)
    with pytest.raises(CosignatureError, match="two different witness keys share name"):
        verify_cosignatures(cosigned().note, log_signer().verifier(), [w.verifier(), twin], 0)


# -- the witness's key and state ----------------------------------------------------------------


def test_witness_init_creates_a_0600_key_in_a_0700_dir_once(tmp_path: Path) -> None:
    state_dir = tmp_path / "witness"
    state, created = WitnessState.init(state_dir, "witness.example/w1")
    assert created
    key_file = state_dir / "witness.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    content = key_file.read_text()
    assert content == format_witness_key(state.cosigner) + "\n"
    assert content.startswith(f"PRIVATE+KEY+witness.example/w1+{state.cosigner.key_id:08x}+B")
    raw = base64.b64decode(content.strip().split("+", 4)[4], validate=True)
    assert raw == b"\x04" + state.cosigner.seed
    assert (state_dir / "witness.vkey").read_text() == state.cosigner.vkey() + "\n"
    assert sorted(os.listdir(state_dir)) == ["witness.key", "witness.vkey"]

    again, created = WitnessState.init(state_dir, "witness.example/w1")
    assert not created and again.cosigner.vkey() == state.cosigner.vkey()
    assert key_file.read_text() == content
    with pytest.raises(WitnessStateError, match="already holds the key of witness 'witness.example/w1'"):
        WitnessState.init(state_dir, "witness.example/w2")


def test_a_witness_key_readable_by_others_or_of_the_wrong_type_is_refused(tmp_path: Path) -> None:
    state, _ = WitnessState.init(tmp_path / "w", "w1")
    key_file = tmp_path / "w" / "witness.key"
    key_file.chmod(0o644)
    with pytest.raises(WitnessStateError, match="permissions 0644 .* are too open"):
        WitnessState.open(tmp_path / "w")
    key_file.chmod(0o600)
    key_file.write_text(format_signing_key(log_signer()) + "\n")
    with pytest.raises(WitnessStateError, match="signature type 0x01 is not supported, expected 0x04"):
        WitnessState.open(tmp_path / "w")
    with pytest.raises(WitnessStateError, match="is not a witness state dir; run `transfer-ledger witness init`"):
        WitnessState.open(tmp_path / "nowhere")


@pytest.mark.parametrize(("text", "message"), [
    ("PRIVATE+KEY+w", "witness key: expected 3 '+'-separated parts"),
    ("PRIVATE+KEY+w+00000000+" + base64.b64encode(b"\x04" + bytes(32)).decode(),
     "witness key: key id 00000000 does not match the key"),
    ("private+key+w+00000000+BA==", "does not start with 'PRIVATE+KEY+'"),
])
def test_malformed_witness_keys_are_rejected(text: str, message: str) -> None:
    with pytest.raises(KeyFileError, match=message.replace("+", r"\+")):
        parse_witness_key(text)


def test_witness_key_round_trips() -> None:
    w = cosigner()
    assert parse_witness_key(format_witness_key(w)).vkey() == w.vkey()


# -- one round against an in-memory log -------------------------------------------------------


@dataclass
class FakeLedger:
    """What ``run_witness`` asks of a ledger, served from a list of leaf hashes."""

    hashes: list[bytes]
    note: str | None = None  # served instead of the honest checkpoint
    proof: list[bytes] | None = None  # served instead of the honest proof
    posted: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = "http://ledger.test"

    def latest_checkpoint(self) -> str:
        return self.note if self.note is not None else checkpoint_note(self.hashes)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        if self.proof is not None:
            return self.proof

        def get_nodes(ids: Any) -> list[bytes]:
            return [root_from_leaf_hashes(self.hashes[i << level:(i + 1) << level]) for level, i in ids]

        return consistency_proof(first, second, get_nodes)

    def add_cosignature(self, tree_size: int, vkey: str, line: str) -> tuple[int, dict[str, Any]]:
        self.posted.append({"tree_size": tree_size, "vkey": vkey, "cosignature": line})
        return 201, {}


@pytest.fixture
def witness(tmp_path: Path) -> WitnessState:
    return WitnessState.init(tmp_path / "witness", "witness.example/w1")[0]


def run(ledger: FakeLedger, state: WitnessState) -> Any:
    return run_witness(ledger, state, log_signer().verifier(), now=NOW)  # type: ignore[arg-type]


def test_rounds_accept_the_first_checkpoint_then_only_consistent_extensions(witness: WitnessState) -> None:
    ledger = FakeLedger(leaves(5))
    first = run(ledger, witness)
    assert first.previous_size is None and first.checkpoint.size == 5 and first.stored
    accepted = witness.accepted_file(ORIGIN)
    assert accepted.name == "ledger.example%2Flog.checkpoint"
    assert accepted.read_text() == checkpoint_note(leaves(5))
    posted = ledger.posted[-1]
    assert posted["tree_size"] == 5 and posted["vkey"] == witness.cosigner.vkey()
    _, found = verify_cosignatures(checkpoint_note(leaves(5)) + posted["cosignature"], log_signer().verifier(),
                                   [witness.cosigner.verifier()], 1)
    assert found[0].timestamp == NOW

    assert run(ledger, witness).previous_size == 5  # the same tree again: cosigned again
    for size in (6, 8, 13, 64, 100):
        ledger.hashes = leaves(size)
        done = run(ledger, witness)
        assert done.checkpoint.size == size
        assert accepted.read_text() == checkpoint_note(leaves(size))
    assert [p["tree_size"] for p in ledger.posted] == [5, 5, 6, 8, 13, 64, 100]
    assert not (witness.directory / "evidence").exists()


def test_a_first_empty_checkpoint_is_extended_without_a_proof(witness: WitnessState) -> None:
    ledger = FakeLedger([])
    assert run(ledger, witness).checkpoint.root_hash == EMPTY_ROOT
    ledger.hashes = leaves(3)
    ledger.proof = [b"\x00" * 32]  # would fail: no proof is asked for from size 0
    assert run(ledger, witness).previous_size == 0


def evidence(state: WitnessState) -> tuple[Path, dict[str, Any]]:
    (directory,) = (state.directory / "evidence").iterdir()
    return directory, json.loads((directory / "report.json").read_text())


def test_the_same_size_with_another_root_is_a_split_view_with_both_checkpoints(witness: WitnessState) -> None:
    ledger = FakeLedger(leaves(5))
    run(ledger, witness)
    honest = checkpoint_note(leaves(5))
    ledger.note = forged = checkpoint_note(leaves(5, salt="forged "))
    with pytest.raises(WitnessRefused) as caught:
        run(ledger, witness)
    assert caught.value.kind == "split-view"
    message = str(caught.value)
    assert message.startswith("SPLIT VIEW: two checkpoints of size 5 with different roots: accepted ")
    directory, report = evidence(witness)
    assert caught.value.evidence == directory and str(directory) in message
    assert directory.name.endswith("-split-view")
    assert (directory / "accepted.checkpoint").read_text() == honest
    assert (directory / "received.checkpoint").read_text() == forged
    assert not (directory / "consistency-proof").exists()
    assert report["kind"] == "split-view" and report["origin"] == ORIGIN
    assert report["accepted"] == {"file": "accepted.checkpoint", "tree_size": 5,
                                  "root_hash": base64.b64encode(root_from_leaf_hashes(leaves(5))).decode()}
    assert report["received"]["tree_size"] == 5 and report["consistency_proof"] is None
    assert report["witness"] == witness.cosigner.vkey()
    # nothing was cosigned, and the accepted checkpoint is unchanged
    assert len(ledger.posted) == 1 and witness.accepted_file(ORIGIN).read_text() == honest
    # both are signed by the log: the evidence stands on its own
    assert compare_checkpoints(Checkpoint.parse(text_of(honest)), Checkpoint.parse(text_of(honest)), None)
    with pytest.raises(WitnessRefused, match="SPLIT VIEW"):
        compare_checkpoints(Checkpoint.parse(text_of(honest)), Checkpoint.parse(text_of(forged)), None)


def test_a_larger_checkpoint_that_is_not_consistent_is_a_split_view_with_the_proof(witness: WitnessState) -> None:
    ledger = FakeLedger(leaves(5))
    run(ledger, witness)
    ledger.hashes = leaves(5, salt="rewritten ") + leaves(3)  # history rewritten, then grown
    with pytest.raises(WitnessRefused) as caught:
        run(ledger, witness)
    assert caught.value.kind == "split-view"
    assert "SPLIT VIEW: the checkpoint of size 8" in str(caught.value)
    assert "is not consistent with the accepted one of size 5" in str(caught.value)
    directory, report = evidence(witness)
    proof = read_proof_file(directory / "consistency-proof")
    assert proof == ledger.consistency_proof(5, 8)
    assert report["consistency_proof"] == {"file": "consistency-proof", "first": 5, "second": 8}
    accepted = Checkpoint.parse(text_of((directory / "accepted.checkpoint").read_text()))
    received = Checkpoint.parse(text_of((directory / "received.checkpoint").read_text()))
    with pytest.raises(WitnessRefused, match="are not consistent"):
        compare_checkpoints(accepted, received, proof)
    assert witness.accepted_file(ORIGIN).read_text() == checkpoint_note(leaves(5))


def test_a_smaller_tree_is_refused_as_a_rollback(witness: WitnessState) -> None:
    ledger = FakeLedger(leaves(8))
    run(ledger, witness)
    ledger.hashes = leaves(5)
    with pytest.raises(WitnessRefused) as caught:
        run(ledger, witness)
    assert caught.value.kind == "rollback"
    assert str(caught.value).startswith("ROLLBACK: the ledger served a checkpoint of size 5")
    directory, report = evidence(witness)
    assert directory.name.endswith("-rollback") and report["received"]["tree_size"] == 5


def test_a_checkpoint_that_does_not_verify_is_refused_without_evidence(witness: WitnessState) -> None:
    other = Signer.from_seed(ORIGIN, bytes(32))
    ledger = FakeLedger(leaves(3), note=checkpoint_note(leaves(3), other))
    with pytest.raises(WitnessRefused) as caught:
        run(ledger, witness)
    assert caught.value.kind == "bad-checkpoint" and "does not verify under the log key" in str(caught.value)
    ledger.note = sign_checkpoint(Checkpoint(ORIGIN, 0, bytes(32)), log_signer())
    with pytest.raises(WitnessRefused, match="size 0 does not have the empty tree's root"):
        run(ledger, witness)
    assert not witness.accepted_file(ORIGIN).exists() and ledger.posted == []


def test_a_damaged_accepted_checkpoint_is_a_state_error(witness: WitnessState) -> None:
    ledger = FakeLedger(leaves(3))
    run(ledger, witness)
    witness.accepted_file(ORIGIN).write_text("garbage\n")
    with pytest.raises(WitnessStateError, match="does not verify under ledger.example/log"):
        run(ledger, witness)


# -- parsers under fuzzing: only the documented exceptions, never a crash -----------------------


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
@example("— w " + LINE_BLOB)
@example("\u2014 \U0001f600 " + LINE_BLOB)
@example("— \ud800 " + LINE_BLOB)
def test_fuzz_cosignature_lines(line: str) -> None:
    try:
        parsed = parse_cosignature_line(line)
    except CosignatureError as e:
        assert str(e).startswith("cosignature")
        return
    assert parsed.line().rstrip("\n") == line.rstrip("\n")


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.text(max_size=120),
    st.builds(lambda n, i, k: f"{n}+{i}+{k}", st.text(max_size=10), st.text("0123456789abcdefABG", max_size=9),
              st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode())),
    st.builds(lambda b: vkey_with(b), st.binary(min_size=1, max_size=40)),
))
@example(cosigner().vkey())
def test_fuzz_witness_vkeys(vkey: str) -> None:
    try:
        verifier = CosignatureVerifier.from_vkey(vkey)
    except CosignatureError as e:
        assert str(e).startswith("witness vkey")
        return
    assert verifier.vkey() == vkey


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_fuzz_witness_keys(text: str) -> None:
    try:
        parse_witness_key(text)
    except KeyFileError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.text(max_size=60),
    st.builds(lambda n, b: f"— {n} {base64.b64encode(b).decode()}", st.sampled_from(
        ["witness.example/w1", "witness.example/w2", "w", ORIGIN]), st.binary(max_size=90)),
), max_size=5), st.integers(0, 2))
def test_fuzz_cosigned_notes(extra: list[str], quorum: int) -> None:
    c = cosigned(signers=2)
    note = c.note + "".join(line + "\n" for line in extra)
    try:
        verify_cosignatures(note, log_signer().verifier(), [w.verifier() for w in c.witnesses[:2]], quorum)
    except NoteError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    json_values,
    st.fixed_dictionaries({"first": st.just(5), "second": st.just(8), "proof": st.lists(
        st.one_of(st.text(max_size=50), st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode())),
        max_size=5)}),
))
@example({"first": 5, "second": 8, "proof": [base64.b64encode(bytes(31)).decode()]})
@example({"first": 5, "second": 8, "proof": ["AA"]})
@example({"first": 5, "second": 8, "proof": [base64.b64encode(bytes(32)).decode()] * 200})
def test_fuzz_consistency_proof_answers(body: Any) -> None:
    try:
        proof = parse_consistency_proof(body, 5, 8)
    except WitnessRefused as e:
        assert e.kind == "bad-proof" and str(e).startswith("the consistency proof 5->8")
        return
    assert all(len(h) == 32 for h in proof)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300))
@example(data=b"AAAA\r\n")
@example(data=base64.b64encode(bytes(32)) + b"\r\n")
@example(data=base64.b64encode(bytes(32)) + b"\n\n")
def test_fuzz_proof_files(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("proof") / "consistency-proof"
    path.write_bytes(data)
    try:
        hashes = read_proof_file(path)
    except WitnessStateError as e:
        assert str(e).startswith(f"proof {path}")
        return
    assert b"".join(base64.b64encode(h) + b"\n" for h in hashes) == data


def test_a_note_made_by_sign_note_with_cosignature_lines_is_still_a_note() -> None:
    text = Checkpoint(ORIGIN, 1, leaf_hash(b"x")).text()
    note = sign_note(text, log_signer()) + cosigner().cosign(text, NOW)
    _, found = verify_cosignatures(note, log_signer().verifier(), [cosigner().verifier()], 1, ORIGIN)
    assert len(found) == 1


# -- docs/FORMAT.md section 15.4, recomputed from the page alone ---------------------------------


FORMAT_MD = Path(__file__).resolve().parents[2] / "docs" / "FORMAT.md"


def format_examples() -> dict[str, str]:
    found = re.findall(r"^```\w+ example=([a-z0-9-]+)\n(.*?)\n```$", FORMAT_MD.read_text("utf-8"), re.M | re.S)
    return dict(found)


def test_the_cosignature_worked_example_in_format_md_recomputes() -> None:
    blocks = format_examples()
    values = dict(line.split(" = ", 1) for line in blocks["witness-key"].splitlines())
    seed = bytes.fromhex(values["seed"])
    private = Ed25519PrivateKey.from_private_bytes(seed)
    public = private.public_key().public_bytes_raw()
    assert public.hex() == values["public_key"]
    digest = hashlib.sha256(values["name"].encode() + b"\n\x04" + public).digest()
    assert digest.hex() == values["key_id_sha256"] and digest[:4].hex() == values["key_id"]
    public64, seed64 = (base64.b64encode(b"\x04" + raw).decode() for raw in (public, seed))
    assert blocks["witness-vkey"] == f"{values['name']}+{values['key_id']}+{public64}"
    assert blocks["witness-key-file"] == f"PRIVATE+KEY+{values['name']}+{values['key_id']}+{seed64}"
    timestamp = int(values["timestamp"])
    assert timestamp.to_bytes(8, "big").hex() == values["timestamp_bytes"]

    checkpoint_note = blocks["checkpoint"] + "\n"
    text = checkpoint_note[: checkpoint_note.rfind("\n\n") + 1]
    message = f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode()
    assert message == (blocks["cosigned-message"] + "\n").encode()

    served = blocks["cosigned-checkpoint"] + "\n"
    assert served.startswith(checkpoint_note)
    line = served[len(checkpoint_note):]
    name, blob64 = line.removeprefix("\u2014 ").removesuffix("\n").split(" ")
    assert name == values["name"] and len(blob64) == 104 and blob64.endswith("==")
    blob = base64.b64decode(blob64, validate=True)
    assert blob[:4].hex() == values["key_id"] and blob[4:12].hex() == values["timestamp_bytes"]
    private.public_key().verify(blob[12:], message)
    assert blob[12:] == private.sign(message)  # Ed25519 is deterministic

    # and the project's own code agrees
    vkey = blocks["vkey"]
    _, found = verify_cosignatures(served, Verifier.from_vkey(vkey), [CosignatureVerifier.from_vkey(
        blocks["witness-vkey"])], 1, "transfer-ledger.example/ledger")
    assert found[0].timestamp == timestamp
    assert Cosigner.from_seed(values["name"], seed).cosign(text, timestamp) == line
