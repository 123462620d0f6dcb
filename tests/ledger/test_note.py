"""Tests for ledger.tlog.note: C2SP signed notes, vkeys and checkpoints."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.tlog.note import (
    MAX_NOTE_SIZE,
    Checkpoint,
    NoteError,
    Signer,
    Verifier,
    compute_key_id,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
)

# signed-note.md, "Verifier keys", "Example": copied verbatim from the spec.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n"
    "\n"
    "— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
SPEC_TEXT = "This is an example message.\n"
SPEC_SIGNATURE_LINE = SPEC_NOTE[len(SPEC_TEXT) + 1 :]

# tlog-cosignature.md: a checkpoint (tlog-checkpoint.md's example) with a
# log signature and a witness cosignature, neither by a key we know.
SPEC_COSIGNED_CHECKPOINT = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)

ROOT = hashlib.sha256(b"root").digest()


def spec_verifier() -> Verifier:
    return Verifier.from_vkey(SPEC_VKEY)


def signer(name: str = "ledger.example/log", seed_byte: int = 1) -> Signer:
    return Signer.from_seed(name, bytes([seed_byte]) * 32)


def signature_line(name: str, blob: bytes) -> str:
    return f"— {name} {base64.b64encode(blob).decode()}\n"


# --- the spec's example --------------------------------------------------------


def test_spec_vkey_verifies_spec_note() -> None:
    note = open_note(SPEC_NOTE, [spec_verifier()])
    assert note.text == SPEC_TEXT
    [sig] = note.signatures
    assert (sig.name, sig.key_id, sig.verified) == ("example.com/foo", 0x530D903A, True)
    assert len(sig.signature) == 64


def test_spec_note_opens_from_bytes() -> None:
    assert open_note(SPEC_NOTE.encode(), [spec_verifier()]).text == SPEC_TEXT


def test_spec_vkey_round_trips_and_key_id_follows_the_spec_formula() -> None:
    verifier = spec_verifier()
    assert verifier.vkey() == SPEC_VKEY
    assert verifier.name == "example.com/foo"
    expected = hashlib.sha256(b"example.com/foo\n\x01" + verifier.public_key).digest()[:4]
    assert verifier.key_id == int.from_bytes(expected, "big") == 0x530D903A
    assert compute_key_id("example.com/foo", 1, verifier.public_key) == 0x530D903A


@pytest.mark.parametrize("index", range(len(SPEC_TEXT) - 1))
def test_spec_note_with_modified_text_fails(index: int) -> None:
    changed = "X" if SPEC_TEXT[index] != "X" else "Y"
    text = SPEC_TEXT[:index] + changed + SPEC_TEXT[index + 1 :]
    with pytest.raises(NoteError, match="signature line 1: .* does not verify"):
        open_note(text + "\n" + SPEC_SIGNATURE_LINE, [spec_verifier()])


def test_spec_note_with_modified_signature_fails() -> None:
    blob = bytearray(base64.b64decode(SPEC_SIGNATURE_LINE.split()[-1]))
    blob[10] ^= 0x01
    note = SPEC_TEXT + "\n" + signature_line("example.com/foo", bytes(blob))
    with pytest.raises(
        NoteError, match=r"signature line 1: signature by known key example.com/foo\+530d903a"
    ):
        open_note(note, [spec_verifier()])


def test_spec_note_with_extra_unknown_signatures_still_verifies() -> None:
    other = signer("witness.example/w1")
    same_name_other_id = signature_line("example.com/foo", b"\x00\x00\x00\x01" + bytes(64))
    same_id_other_name = signature_line("example.com/bar", bytes.fromhex("530d903a") + bytes(64))
    note = (
        SPEC_TEXT
        + "\n"
        + other.sign(SPEC_TEXT.encode())
        + same_name_other_id
        + SPEC_SIGNATURE_LINE
        + same_id_other_name
    )
    opened = open_note(note, [spec_verifier()])
    assert opened.text == SPEC_TEXT
    assert [(s.name, s.verified) for s in opened.signatures] == [
        ("witness.example/w1", False),
        ("example.com/foo", False),
        ("example.com/foo", True),
        ("example.com/bar", False),
    ]


def test_note_signed_only_by_unknown_keys_is_rejected() -> None:
    with pytest.raises(NoteError, match=r"no signature by a known key.*example.com/foo\+530d903a"):
        open_note(SPEC_NOTE, [signer().verifier()])
    with pytest.raises(NoteError, match="no signature by a known key"):
        open_note(SPEC_NOTE, [])


def test_spec_cosigned_checkpoint_without_known_keys_is_rejected_naming_its_signers() -> None:
    with pytest.raises(
        NoteError, match=r"signed by example.com/behind-the-sofa\+033de0ae, witness.example.com/w1\+8d66cf3f"
    ):
        open_note(SPEC_COSIGNED_CHECKPOINT, [spec_verifier()])


def test_spec_checkpoint_text_parses() -> None:
    checkpoint = Checkpoint.parse(SPEC_COSIGNED_CHECKPOINT.split("\n\n")[0] + "\n")
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert checkpoint.extensions == ()


# --- malformed notes ----------------------------------------------------------

SIG_B64 = SPEC_SIGNATURE_LINE.split()[-1]


@pytest.mark.parametrize(
    ("note", "message"),
    [
        pytest.param(
            SPEC_TEXT + SPEC_SIGNATURE_LINE,
            "no blank line between its text and its signatures",
            id="missing-blank-line",
        ),
        pytest.param(SPEC_TEXT + "\n", "no signature lines after its last blank line", id="no-signatures"),
        pytest.param(
            "This is\tan example message.\n\n" + SPEC_SIGNATURE_LINE,
            "note line 1: control character U\\+0009",
            id="tab",
        ),
        pytest.param(
            SPEC_TEXT + "\n" + SPEC_SIGNATURE_LINE.replace("\n", "\r\n"),
            "note line 3: control character U\\+000D",
            id="carriage-return",
        ),
        pytest.param(
            SPEC_TEXT + "\n\x00" + SPEC_SIGNATURE_LINE,
            "note line 3: control character U\\+0000",
            id="nul",
        ),
        pytest.param(
            SPEC_TEXT + "\n— example.com/foo " + SIG_B64.replace("U", "!", 1) + "\n",
            "signature line 1: signature is not valid standard base64",
            id="base64-bad-character",
        ),
        pytest.param(
            SPEC_TEXT + "\n— example.com/foo " + SIG_B64.rstrip("=") + "\n",
            "signature line 1: signature is not valid standard base64",
            id="base64-missing-padding",
        ),
        pytest.param(
            SPEC_TEXT + "\n— example.com/foo " + SIG_B64[:-2] + "N=\n",
            "signature line 1: signature is not canonical base64",
            id="base64-nonzero-trailing-bits",
        ),
        pytest.param(
            SPEC_TEXT + "\n— example.com/foo \n",
            "signature line 1: base64 decodes to 0 bytes, expected at least 4",
            id="empty-signature",
        ),
        pytest.param(
            SPEC_TEXT + "\n— example.com/foo AAAA\n",
            "signature line 1: base64 decodes to 3 bytes, expected at least 4",
            id="short-signature",
        ),
        pytest.param(
            SPEC_TEXT + "\n" + SPEC_SIGNATURE_LINE + signature_line("example.com/foo", bytes.fromhex("530d903a") + bytes(8)),
            "signature line 2: base64 decodes to 12 bytes, expected 68",
            id="known-key-wrong-length",
        ),
        pytest.param(
            SPEC_TEXT + "\n" + SPEC_SIGNATURE_LINE + "garbage",
            "last signature line does not end in a newline",
            id="trailing-garbage",
        ),
        pytest.param(
            SPEC_TEXT + "\n" + SPEC_SIGNATURE_LINE + "garbage\n",
            "signature line 2: does not start with an em dash",
            id="trailing-garbage-line",
        ),
        pytest.param(
            SPEC_TEXT + "\n" + SPEC_SIGNATURE_LINE.rstrip("\n"),
            "last signature line does not end in a newline",
            id="missing-final-newline",
        ),
        pytest.param(
            SPEC_TEXT + "\n- example.com/foo " + SIG_B64 + "\n",
            "signature line 1: does not start with an em dash",
            id="hyphen-not-em-dash",
        ),
        pytest.param(
            SPEC_TEXT + "\n—example.com/foo " + SIG_B64 + "\n",
            "signature line 1: does not start with an em dash \\(U\\+2014\\) and a space",
            id="no-space-after-dash",
        ),
        pytest.param(
            SPEC_TEXT + "\n— example.com/foo\n",
            "signature line 1: no space between key name and signature",
            id="no-signature",
        ),
        pytest.param(
            SPEC_TEXT + "\n—  " + SIG_B64 + "\n",
            "signature line 1: key name is empty",
            id="empty-key-name",
        ),
        pytest.param(
            SPEC_TEXT + "\n— example.com\u00a0foo " + SIG_B64 + "\n",
            "signature line 1: key name 'example.com\\\\xa0foo' contains a space character U\\+00A0",
            id="key-name-with-unicode-space",
        ),
        pytest.param(
            SPEC_TEXT + "\n— example.com/foo bar " + SIG_B64 + "\n",
            "signature line 1: signature is not valid standard base64",
            id="key-name-with-space",
        ),
        pytest.param(
            SPEC_TEXT + "\n— example.com+foo " + SIG_B64 + "\n",
            "signature line 1: key name 'example.com\\+foo' contains '\\+'",
            id="key-name-with-plus",
        ),
    ],
)
def test_malformed_note_is_rejected_with_a_precise_message(note: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        open_note(note, [spec_verifier()])


def test_non_utf8_note_is_rejected() -> None:
    data = SPEC_NOTE.encode().replace(b"example message", b"example \xff message")
    with pytest.raises(NoteError, match="note is not valid UTF-8: invalid byte at offset 19"):
        open_note(data, [spec_verifier()])


def test_note_string_with_lone_surrogate_is_rejected() -> None:
    with pytest.raises(NoteError, match="note is not valid UTF-8: lone surrogate U\\+D800"):
        open_note("\ud800" + SPEC_NOTE, [spec_verifier()])


def test_text_is_separated_by_the_last_blank_line() -> None:
    text = "first\n\n— not a signature\n\n\nlast\n"
    s = signer()
    note = open_note(sign_note(text, s), [s.verifier()])
    assert note.text == text


def test_text_that_is_only_a_newline_round_trips() -> None:
    s = signer()
    assert open_note(sign_note("\n", s), [s.verifier()]).text == "\n"


def test_sixteen_known_signatures_are_accepted() -> None:
    signers = [signer(f"witness.example/w{i}", i) for i in range(16)]
    note = open_note(sign_note("text\n", *signers), [s.verifier() for s in signers])
    assert [s.verified for s in note.signatures] == [True] * 16


def test_absurd_signature_counts_are_rejected() -> None:
    unknown = signature_line("unknown.example", bytes(68))
    with pytest.raises(NoteError, match="note has 101 signature lines, at most 100"):
        open_note(SPEC_NOTE + unknown * 100, [spec_verifier()])
    assert len(open_note(SPEC_NOTE + unknown * 99, [spec_verifier()]).signatures) == 100


def test_oversized_note_is_rejected() -> None:
    text = "x" * MAX_NOTE_SIZE + "\n"
    with pytest.raises(NoteError, match=f"note is {MAX_NOTE_SIZE + 1 + len(SPEC_SIGNATURE_LINE.encode()) + 1} bytes"):
        open_note(text + "\n" + SPEC_SIGNATURE_LINE, [spec_verifier()])


def test_ambiguous_verifiers_are_refused() -> None:
    # Two public keys whose key ids collide under this name (found by search).
    a = Verifier("example.com/foo", bytes.fromhex("d54191fc2f91697e39aba16f30c62f6da2a5c951edd263e1feff389d715a98ee"))
    b = Verifier("example.com/foo", bytes.fromhex("1869c55e9b6eb12dbc512ad9b3f56414e71ea925201fc426ae3463d7bc80f43f"))
    assert a.key_id == b.key_id == 0x0DC0E3F4 and a != b
    with pytest.raises(
        NoteError, match="two different verifier keys share name 'example.com/foo' and key id 0dc0e3f4"
    ):
        open_note(SPEC_NOTE, [a, b])
    assert open_note(SPEC_NOTE, [spec_verifier(), spec_verifier()]).text == SPEC_TEXT


# --- signing ------------------------------------------------------------------


def test_sign_and_open_round_trip_with_several_signers() -> None:
    log, witness = signer("ledger.example/log", 1), signer("witness.example/w1", 2)
    text = "ledger.example/log\n3\nsome text — with Unicode ✓\n"
    note = sign_note(text, log, witness)
    assert note.startswith(text + "\n— ledger.example/log ")
    assert note.endswith("\n")
    assert note.count("\n— ") == 2
    for verifiers in ([log.verifier()], [witness.verifier()], [log.verifier(), witness.verifier()]):
        opened = open_note(note, verifiers)
        assert opened.text == text
        assert [s.verified for s in opened.signatures] == [
            log.verifier() in verifiers,
            witness.verifier() in verifiers,
        ]


def test_signer_line_format_and_determinism() -> None:
    s = signer()
    line = s.sign(b"text\n")
    assert line == s.sign(b"text\n")  # Ed25519 is deterministic (RFC 8032)
    dash, name, blob64 = line.rstrip("\n").split(" ")
    blob = base64.b64decode(blob64, validate=True)
    assert (dash, name, len(blob)) == ("—", "ledger.example/log", 68)
    assert int.from_bytes(blob[:4], "big") == s.key_id
    assert s.verifier().verify(b"text\n", blob[4:])
    assert not s.verifier().verify(b"text!\n", blob[4:])
    assert not s.verifier().verify(b"text\n", blob[4:-1])


def test_signer_vkey_parses_back() -> None:
    s = signer()
    verifier = Verifier.from_vkey(s.vkey())
    assert verifier == s.verifier()
    assert (verifier.name, verifier.key_id) == (s.name, s.key_id)
    assert s.vkey() == f"{s.name}+{s.key_id:08x}+" + base64.b64encode(b"\x01" + verifier.public_key).decode()


def test_signer_repr_does_not_show_the_secret() -> None:
    s = signer()
    assert s.seed.hex() not in repr(s)
    assert repr(s) == f"Signer(name='ledger.example/log', key_id=0x{s.key_id:08x})"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "key name is empty"),
        ("a b", "key name 'a b' contains a space character U\\+0020"),
        ("a\u2003b", "contains a space character U\\+2003"),
        ("a+b", "key name 'a\\+b' contains '\\+'"),
        ("a\x01b", "contains control character U\\+0001"),
        ("a\ud800", "key name 'a\\\\ud800' is not valid UTF-8: lone surrogate U\\+D800"),
    ],
)
def test_invalid_key_names_are_refused(name: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        Signer.generate(name)
    with pytest.raises(NoteError, match=message):
        Verifier(name, bytes(32))


def test_signer_seed_must_be_32_bytes() -> None:
    with pytest.raises(NoteError, match="Ed25519 seed is 31 bytes, expected 32"):
        Signer.from_seed("a", bytes(31))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no newline", "note text must end in a newline"),
        ("", "note text must end in a newline"),
        ("a\tb\n", "note text line 1: control character U\\+0009"),
        ("\ud800\n", "note text is not valid UTF-8"),
    ],
)
def test_sign_note_refuses_text_it_could_not_open(text: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        sign_note(text, signer())


def test_sign_note_needs_a_signer() -> None:
    with pytest.raises(NoteError, match="at least one signer"):
        sign_note("text\n")


# --- vkeys --------------------------------------------------------------------

SPEC_KEY64 = SPEC_VKEY.split("+", 2)[2]


def vkey_with_type(type_byte: int) -> str:
    public_key = base64.b64decode(SPEC_KEY64)[1:]
    key_id = compute_key_id("example.com/foo", type_byte, public_key)
    key64 = base64.b64encode(bytes([type_byte]) + public_key).decode()
    return f"example.com/foo+{key_id:08x}+{key64}"


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        ("example.com/foo", "vkey: expected 3 '\\+'-separated parts <name>\\+<key id>\\+<key>, found 1"),
        ("example.com/foo+530d903a", "found 2"),
        ("+530d903a+" + SPEC_KEY64, "vkey: key name is empty"),
        ("example.com/ foo+530d903a+" + SPEC_KEY64, "vkey: key name 'example.com/ foo' contains a space"),
        ("example.com/foo+530D903A+" + SPEC_KEY64, "vkey: key id '530D903A' is not 8 lowercase hex digits"),
        ("example.com/foo+530d903+" + SPEC_KEY64, "vkey: key id '530d903' is not 8 lowercase hex digits"),
        ("example.com/foo+0530d903a+" + SPEC_KEY64, "vkey: key id '0530d903a' is not 8 lowercase hex"),
        ("example.com/foo+530d903b+" + SPEC_KEY64, "vkey: key id 530d903b does not match the name and key, which give 530d903a"),
        ("example.org/foo+530d903a+" + SPEC_KEY64, "vkey: key id 530d903a does not match"),
        ("example.com/foo+530d903a+" + SPEC_KEY64 + "AAAA", "vkey: key decodes to 36 bytes, expected 33"),
        ("example.com/foo+530d903a+" + SPEC_KEY64[:-4], "vkey: key decodes to 30 bytes, expected 33"),
        ("example.com/foo+530d903a+" + SPEC_KEY64 + "\n", "vkey: key is not valid standard base64"),
        ("example.com/foo+530d903a+ " + SPEC_KEY64, "vkey: key is not valid standard base64"),
        (vkey_with_type(4), "vkey: signature type 0x04 is not supported, expected 0x01"),
    ],
)
def test_malformed_vkey_is_rejected(vkey: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        Verifier.from_vkey(vkey)


def test_verifier_needs_a_32_byte_public_key() -> None:
    with pytest.raises(NoteError, match="Ed25519 public key must be 32 bytes"):
        Verifier("a", bytes(33))


# --- checkpoints --------------------------------------------------------------


def test_checkpoint_text_and_parse_round_trip() -> None:
    checkpoint = Checkpoint("ledger.example/log", 42, ROOT, ("ext one", "ext—two"))
    text = checkpoint.text()
    assert text == (
        "ledger.example/log\n42\n" + base64.b64encode(ROOT).decode() + "\next one\next—two\n"
    )
    assert Checkpoint.parse(text) == checkpoint


@pytest.mark.parametrize("size", [0, 1, 10, 2**63 - 1])
def test_checkpoint_sizes_round_trip(size: int) -> None:
    checkpoint = Checkpoint("o", size, ROOT)
    assert Checkpoint.parse(checkpoint.text()).size == size


ROOT64 = base64.b64encode(ROOT).decode()
# 32 bytes leave 2 unused bits in the last base64 digit; set one of them.
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
NONCANONICAL_ROOT64 = ROOT64[:-2] + _ALPHABET[_ALPHABET.index(ROOT64[-2]) | 1] + "="


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "checkpoint text does not end in a newline"),
        ("origin\n1\n" + ROOT64, "checkpoint text does not end in a newline"),
        ("origin\n1\n", "checkpoint has 2 lines, expected at least 3"),
        ("\n1\n" + ROOT64 + "\n", "checkpoint line 1 is empty"),
        ("origin\n1\n" + ROOT64 + "\n\n", "checkpoint line 4 is empty"),
        ("origin\n1\n" + ROOT64 + "\next\n\n", "checkpoint line 5 is empty"),
        ("origin\n01\n" + ROOT64 + "\n", "checkpoint line 2: tree size '01' is not a decimal number"),
        ("origin\n00\n" + ROOT64 + "\n", "tree size '00' is not a decimal"),
        ("origin\n-1\n" + ROOT64 + "\n", "tree size '-1' is not a decimal"),
        ("origin\n+1\n" + ROOT64 + "\n", "tree size '\\+1' is not a decimal"),
        ("origin\n 1\n" + ROOT64 + "\n", "tree size ' 1' is not a decimal"),
        ("origin\n1_000\n" + ROOT64 + "\n", "tree size '1_000' is not a decimal"),
        ("origin\n\u0661\n" + ROOT64 + "\n", "tree size '\u0661' is not a decimal"),
        ("origin\n0x10\n" + ROOT64 + "\n", "tree size '0x10' is not a decimal"),
        ("origin\n9223372036854775808\n" + ROOT64 + "\n", "tree size 9223372036854775808 is larger than 2\\*\\*63-1"),
        ("origin\n" + "9" * 5000 + "\n" + ROOT64 + "\n", "is larger than 2\\*\\*63-1"),
        ("origin\n1\n" + ROOT64[:-4] + "\n", "checkpoint line 3: root hash decodes to 30 bytes, expected 32"),
        ("origin\n1\n" + base64.b64encode(bytes(33)).decode() + "\n", "root hash decodes to 33 bytes"),
        ("origin\n1\n" + ROOT64.rstrip("=") + "\n", "checkpoint line 3: root hash is not valid standard base64"),
        ("origin\n1\n" + NONCANONICAL_ROOT64 + "\n", "checkpoint line 3: root hash is not canonical base64"),
        ("origin\n1\n" + base64.urlsafe_b64encode(b"\xff" * 32).decode() + "\n", "root hash is not valid standard base64"),
        ("origin\r\n1\n" + ROOT64 + "\n", "checkpoint line 1: control character U\\+000D"),
        ("origin\n1\n" + ROOT64 + "\n\ud800\n", "checkpoint is not valid UTF-8"),
    ],
)
def test_malformed_checkpoint_text_is_rejected(text: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        Checkpoint.parse(text)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"origin": ""}, "checkpoint origin must be a non-empty string"),
        ({"origin": "a\nb"}, "checkpoint origin contains a newline"),
        ({"origin": "a\tb"}, "checkpoint origin line 1: control character U\\+0009"),
        ({"size": -1}, "checkpoint tree size -1 is not an integer in 0..2\\*\\*63-1"),
        ({"size": 2**63}, "is not an integer in 0..2\\*\\*63-1"),
        ({"size": True}, "tree size True is not an integer"),
        ({"root_hash": bytes(31)}, "checkpoint root hash must be 32 bytes"),
        ({"extensions": ("",)}, "checkpoint extension line 1 must be a non-empty string"),
        ({"extensions": ("ok", "a\nb")}, "checkpoint extension line 2 contains a newline"),
        ({"extensions": ["ext"]}, "checkpoint extensions must be a tuple"),
    ],
)
def test_checkpoint_fields_are_validated(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"origin": "o", "size": 1, "root_hash": ROOT, **kwargs}
    with pytest.raises(NoteError, match=message):
        Checkpoint(**fields)  # type: ignore[arg-type]


def test_signed_checkpoint_round_trip() -> None:
    log = signer("ledger.example/log")
    checkpoint = Checkpoint("ledger.example/log", 7, ROOT)
    note = sign_checkpoint(checkpoint, log)
    assert note.startswith(checkpoint.text() + "\n— ledger.example/log ")
    assert open_checkpoint(note, log.verifier()) == checkpoint
    assert open_checkpoint(note, log.verifier(), origin="ledger.example/log") == checkpoint
    assert open_checkpoint(note.encode(), log.verifier()) == checkpoint


def test_open_checkpoint_checks_the_origin() -> None:
    log = signer("ledger.example/log")
    note = sign_checkpoint(Checkpoint("ledger.example/log", 7, ROOT), log)
    with pytest.raises(
        NoteError, match="checkpoint origin 'ledger.example/log' is not the expected 'other.example/log'"
    ):
        open_checkpoint(note, log.verifier(), origin="other.example/log")


def test_open_checkpoint_needs_the_given_key() -> None:
    note = sign_checkpoint(Checkpoint("o", 7, ROOT), signer("o", 1))
    with pytest.raises(NoteError, match="no signature by a known key"):
        open_checkpoint(note, signer("o", 2).verifier())


def test_open_checkpoint_rejects_a_signed_note_that_is_not_a_checkpoint() -> None:
    s = signer()
    with pytest.raises(NoteError, match="checkpoint has 1 lines"):
        open_checkpoint(sign_note("hello\n", s), s.verifier())


# --- fuzzing: only NoteError, never anything else ----------------------------

FUZZ_SIGNER = signer()
FUZZ_VERIFIERS = [spec_verifier(), FUZZ_SIGNER.verifier()]
KNOWN_NAMES = ["example.com/foo", FUZZ_SIGNER.name]

# Any code point, surrogates and control characters included.
any_text = st.text(alphabet=st.characters(blacklist_categories=()), max_size=200)
# Printable-ish text, so that generated inputs get past the first checks.
plain_text = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=30)
plain_line = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=30)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


base64_text = st.binary(max_size=80).map(b64)
key_names = st.one_of(st.sampled_from(KNOWN_NAMES), plain_text)
signature_blobs = st.one_of(
    base64_text,
    plain_text,
    st.binary(min_size=64, max_size=64).map(lambda sig: b64(bytes.fromhex("530d903a") + sig)),
    st.sampled_from([SIG_B64, SIG_B64[:-2] + "N=", SIG_B64.rstrip("=")]),
)
signature_lines = st.one_of(
    st.sampled_from([SPEC_SIGNATURE_LINE, FUZZ_SIGNER.sign(SPEC_TEXT.encode())]),
    st.builds(lambda name, blob: f"— {name} {blob}\n", key_names, signature_blobs),
    any_text.map(lambda line: line + "\n"),
)
note_texts = st.one_of(
    st.just(SPEC_TEXT), st.lists(plain_text, max_size=4).map(lambda lines: "\n".join(lines) + "\n"), any_text
)
structured_notes = st.builds(
    lambda text, blank, lines, tail: text + blank + "".join(lines) + tail,
    note_texts,
    st.sampled_from(["\n", "\n", "\n", "", "\n\n"]),
    st.lists(signature_lines, max_size=4),
    st.sampled_from(["", "", "", "\n", "x", "\r"]),
)
# Mostly well-formed notes: the spec's, with extra lines and signatures.
near_valid_notes = st.builds(
    lambda text, before, after: text + "\n" + "".join(before) + SPEC_SIGNATURE_LINE + "".join(after),
    st.one_of(st.just(SPEC_TEXT), st.lists(plain_text, max_size=4).map(lambda lines: "\n".join(lines) + "\n")),
    st.lists(signature_lines, max_size=2),
    st.lists(signature_lines, max_size=2),
)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        any_text,
        st.binary(max_size=300),
        structured_notes,
        near_valid_notes,
        structured_notes.map(lambda note: note.encode("utf-8", "surrogatepass")),
    )
)
def test_open_note_fuzz_raises_only_note_error(note: str | bytes) -> None:
    try:
        opened = open_note(note, FUZZ_VERIFIERS)
    except NoteError:
        return
    assert any(s.verified for s in opened.signatures)


tree_sizes = st.one_of(
    st.integers(min_value=0, max_value=2**64).map(str),
    st.sampled_from(["01", "-1", "+1", " 1", "1_0", "\u0661"]),
    plain_text,
)
root_hashes = st.one_of(
    st.binary(min_size=32, max_size=32).map(b64),
    st.binary(min_size=30, max_size=34).map(b64),
    st.just(NONCANONICAL_ROOT64),
    plain_text,
)
structured_checkpoints = st.builds(
    lambda origin, size, root, extensions, tail: "\n".join([origin, size, root, *extensions]) + tail,
    st.one_of(plain_line, plain_text),
    tree_sizes,
    root_hashes,
    st.one_of(st.lists(plain_line, max_size=3), st.lists(st.one_of(plain_text, any_text), max_size=3)),
    st.sampled_from(["\n", "\n", "\n", "", "\n\n"]),
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(any_text, structured_checkpoints))
def test_checkpoint_parse_fuzz_raises_only_note_error(text: str) -> None:
    try:
        checkpoint = Checkpoint.parse(text)
    except NoteError:
        return
    assert checkpoint.text() == text


key_ids = st.one_of(st.integers(min_value=0, max_value=2**32 - 1).map(lambda i: f"{i:08x}"), plain_text)
vkey_keys = st.one_of(
    st.binary(min_size=32, max_size=32).map(lambda key: b64(b"\x01" + key)),
    st.sampled_from([SPEC_KEY64, vkey_with_type(4).split("+", 2)[2]]),
    base64_text,
    plain_text,
)
structured_vkeys = st.one_of(
    st.builds(lambda name, key_id, key: f"{name}+{key_id}+{key}", key_names, key_ids, vkey_keys),
    st.builds(
        lambda name, key: Verifier(name, key).vkey(),
        st.sampled_from(KNOWN_NAMES + ["a", "ledger.example/ä"]),
        st.binary(min_size=32, max_size=32),
    ),
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(any_text, structured_vkeys))
def test_from_vkey_fuzz_raises_only_note_error(vkey: str) -> None:
    try:
        verifier = Verifier.from_vkey(vkey)
    except NoteError:
        return
    assert verifier.vkey() == vkey
