"""Tests for ledger.tlog.keys: the signing key file."""

from __future__ import annotations

import base64
import os
import re
import stat
from pathlib import Path

import pytest

from ledger.tlog.keys import (
    KeyFileError,
    create_signing_key,
    format_signing_key,
    load_signing_key,
)
from ledger.tlog.note import Verifier, open_note, sign_note

# The example in the documentation of Go's golang.org/x/mod/sumdb/note
# package: a signer key, its verifier key, and the note it signs.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT
    + "\n"
    + "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_KEY64 = GO_SKEY.split("+", 4)[4]


def write_key_file(path: Path, content: str | bytes, mode: int = 0o600) -> Path:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    path.chmod(mode)
    return path


def test_created_key_file_has_mode_0600_and_one_line(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    signer = create_signing_key(path, "ledger.example/log")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_text()
    assert content == format_signing_key(signer) + "\n"
    assert content.startswith(f"PRIVATE+KEY+ledger.example/log+{signer.key_id:08x}+")
    assert len(base64.b64decode(content.rstrip("\n").split("+", 4)[4], validate=True)) == 33
    assert os.listdir(tmp_path) == ["signing.key"]


def test_created_key_file_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o000)
    try:
        create_signing_key(tmp_path / "open-umask.key", "a")
    finally:
        os.umask(previous)
    previous = os.umask(0o277)
    try:
        create_signing_key(tmp_path / "tight-umask.key", "a")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "open-umask.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tight-umask.key").stat().st_mode) == 0o600
    load_signing_key(tmp_path / "tight-umask.key")


def test_load_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    created = create_signing_key(path, "ledger.example/log")
    loaded = load_signing_key(path)
    assert (loaded.name, loaded.key_id, loaded.seed) == (created.name, created.key_id, created.seed)
    assert loaded.vkey() == created.vkey()
    assert loaded.sign(b"text\n") == created.sign(b"text\n")


def test_vkey_verifies_notes_signed_with_the_loaded_key(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    vkey = create_signing_key(path, "ledger.example/log").vkey()
    note = sign_note("ledger.example/log\n0\n" + "A" * 43 + "=\n", load_signing_key(path))
    opened = open_note(note, [Verifier.from_vkey(vkey)])
    assert [s.verified for s in opened.signatures] == [True]


def test_go_reference_key_loads_and_signs_byte_for_byte(tmp_path: Path) -> None:
    for content in (GO_SKEY, GO_SKEY + "\n"):
        signer = load_signing_key(write_key_file(tmp_path / "go.key", content))
        assert signer.vkey() == GO_VKEY
        assert sign_note(GO_TEXT, signer) == GO_NOTE
        assert format_signing_key(signer) == GO_SKEY
        assert open_note(GO_NOTE, [Verifier.from_vkey(GO_VKEY)]).text == GO_TEXT


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606, 0o700 | 0o004])
def test_key_file_accessible_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = write_key_file(tmp_path / "go.key", GO_SKEY, mode)
    with pytest.raises(KeyFileError) as error:
        load_signing_key(path)
    assert str(error.value) == (
        f"permissions {mode:04o} for key file {path} are too open: a private key must not "
        f"be accessible by group or others; run `chmod 600 {path}`"
    )


def test_owner_only_read_only_key_file_is_accepted(tmp_path: Path) -> None:
    assert load_signing_key(write_key_file(tmp_path / "go.key", GO_SKEY, 0o400)).vkey() == GO_VKEY


def test_missing_key_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "absent.key"
    with pytest.raises(KeyFileError, match=f"^key file {re.escape(str(path))} does not exist$"):
        load_signing_key(path)


def test_directory_is_not_a_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read key file .*: Is a directory"):
        load_signing_key(tmp_path)


GO_KEY_RAW = base64.b64decode(GO_KEY64)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"\n", "does not start with 'PRIVATE\\+KEY\\+'"),
        ("PRIVATE+KEY+PeterNeumann", "signer key: expected 3 '\\+'-separated parts"),
        (GO_SKEY.replace("PRIVATE+KEY+", "PRIVATE+KEYS+"), "does not start with 'PRIVATE\\+KEY\\+'"),
        (GO_SKEY.replace("PRIVATE+KEY+", "private+key+"), "does not start with 'PRIVATE\\+KEY\\+'"),
        (GO_SKEY.replace("PRIVATE+KEY+", ""), "does not start with 'PRIVATE\\+KEY\\+'"),
        (GO_SKEY.replace("c74f20a3", "c74f20a"), "signer key: key id 'c74f20a' is not 8 lowercase hex digits"),
        (GO_SKEY.replace("c74f20a3", "C74F20A3"), "signer key: key id 'C74F20A3' is not 8 lowercase hex digits"),
        (GO_SKEY.replace("c74f20a3", "c74f20xx"), "signer key: key id 'c74f20xx' is not 8 lowercase hex digits"),
        (
            GO_SKEY.replace("c74f20a3", "c74f20a4"),
            "signer key: key id c74f20a4 does not match the key, whose name and public key give c74f20a3",
        ),
        (GO_SKEY.replace("PeterNeumann", "PeterNeumanm"), "signer key: key id c74f20a3 does not match the key"),
        (GO_SKEY.replace("PeterNeumann", "Peter Neumann"), "signer key: key name 'Peter Neumann' contains a space"),
        (GO_SKEY.replace("PeterNeumann", ""), "signer key: key name is empty"),
        (GO_SKEY[:-1] + "!", "signer key: key is not valid standard base64"),
        (GO_SKEY[:-4], "signer key: key decodes to 30 bytes, expected 33"),
        (GO_SKEY + "AAAA", "signer key: key decodes to 36 bytes, expected 33"),
        (
            GO_SKEY.replace(GO_KEY64, base64.b64encode(b"\x04" + GO_KEY_RAW[1:]).decode()),
            "signer key: signature type 0x04 is not supported, expected 0x01",
        ),
        (GO_SKEY + "\n\n", "control character U\\+000A \\(the file must hold one line\\)"),
        (GO_SKEY + "\r\n", "control character U\\+000D"),
        (GO_SKEY + "\n" + GO_SKEY + "\n", "control character U\\+000A"),
        (b"PRIVATE+KEY+\xff", "is not valid UTF-8: invalid byte at offset 12"),
        (b"x" * 5000, "is larger than 4096 bytes"),
    ],
)
def test_corrupted_key_file_is_refused_with_a_precise_message(
    tmp_path: Path, content: str | bytes, message: str
) -> None:
    path = write_key_file(tmp_path / "signing.key", content)
    with pytest.raises(KeyFileError, match=f"^key file {re.escape(str(path))}:? .*({message})"):
        load_signing_key(path)


def test_second_create_refuses_and_leaves_the_first_key_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    first = create_signing_key(path, "ledger.example/log")
    content = path.read_bytes()
    with pytest.raises(KeyFileError, match=f"^key file {re.escape(str(path))} already exists; refusing to overwrite it$"):
        create_signing_key(path, "ledger.example/log")
    assert path.read_bytes() == content
    assert load_signing_key(path).vkey() == first.vkey()
    assert os.listdir(tmp_path) == ["signing.key"]


def test_create_refuses_to_write_through_a_dangling_symlink(tmp_path: Path) -> None:
    link = tmp_path / "signing.key"
    link.symlink_to(tmp_path / "elsewhere.key")
    with pytest.raises(KeyFileError, match="already exists"):
        create_signing_key(link, "a")
    assert not (tmp_path / "elsewhere.key").exists()


def test_create_with_an_invalid_name_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    with pytest.raises(KeyFileError, match=f"cannot create key file {re.escape(str(path))}: key name 'a b' contains a space"):
        create_signing_key(path, "a b")
    assert os.listdir(tmp_path) == []


def test_create_in_a_missing_directory_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "signing.key"
    with pytest.raises(KeyFileError, match=f"cannot create key file {re.escape(str(path))}: No such file or directory"):
        create_signing_key(path, "a")


def test_failed_write_leaves_no_file_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    path = tmp_path / "signing.key"
    with pytest.raises(KeyFileError, match="cannot create key file .*: No space left on device"):
        create_signing_key(path, "a")
    assert os.listdir(tmp_path) == []
