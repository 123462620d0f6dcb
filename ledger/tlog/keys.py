"""The ledger's Ed25519 signing key on disk.

The key file holds one line in the signer key format of Go's
``golang.org/x/mod/sumdb/note`` package, so the same file works with Go
tooling::

    PRIVATE+KEY+<name>+<8 hex key id>+<base64(0x01 || 32-byte Ed25519 seed)>

The key id is the signed-note one (c2sp.org/signed-note, "Ed25519
signatures"), computed from the name and the *public* key. A trailing newline
is written and accepted. The file must not be accessible by group or others.
"""

from __future__ import annotations

import base64
import os
import secrets
import stat
from pathlib import Path

from ledger.tlog.note import ED25519_SIGNATURE_TYPE, NoteError, Signer, split_key_string

__all__ = [
    "PRIVATE_KEY_PREFIX",
    "KeyFileError",
    "create_signing_key",
    "format_signing_key",
    "load_signing_key",
    "parse_signing_key",
    "read_private_line",
    "write_private_file",
]

PRIVATE_KEY_PREFIX = "PRIVATE+KEY+"
_MAX_KEY_FILE_SIZE = 4096


class KeyFileError(ValueError):
    """A signing key file that is missing, unreadable, too open or malformed,
    or that cannot be created."""


def format_signing_key(signer: Signer) -> str:
    """``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>``, no newline."""
    key64 = base64.b64encode(bytes([ED25519_SIGNATURE_TYPE]) + signer.seed).decode("ascii")
    return f"{PRIVATE_KEY_PREFIX}{signer.name}+{signer.key_id:08x}+{key64}"


def parse_signing_key(text: str) -> Signer:
    """Parse a signer key string strictly; the key id must be the one the
    name and the seed's public key give."""
    if not text.startswith(PRIVATE_KEY_PREFIX):
        raise KeyFileError(f"does not start with {PRIVATE_KEY_PREFIX!r}")
    try:
        name, stated_id, seed = split_key_string(text[len(PRIVATE_KEY_PREFIX) :], "signer key")
        signer = Signer.from_seed(name, seed)
    except NoteError as e:
        raise KeyFileError(str(e)) from None
    if signer.key_id != stated_id:
        raise KeyFileError(
            f"signer key: key id {stated_id:08x} does not match the key, "
            f"whose name and public key give {signer.key_id:08x}"
        )
    return signer


def create_signing_key(path: Path, name: str) -> Signer:
    """Generate a new Ed25519 signing key named ``name`` and write it to
    ``path`` with mode 0600. Refuses to overwrite an existing file."""
    path = Path(path)
    try:
        signer = Signer.generate(name)
    except NoteError as e:
        raise KeyFileError(f"cannot create key file {path}: {e}") from None
    write_private_file(path, (format_signing_key(signer) + "\n").encode("utf-8"))
    return signer


def write_private_file(path: Path, data: bytes) -> None:
    """Write a new file of secret ``data`` with mode 0600; never overwrites.

    The data is written and fsynced under a temporary name in the same
    directory, then hard-linked into place (which fails if ``path`` exists),
    so ``path`` either does not exist or holds all of ``data``.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            try:
                os.fchmod(fd, 0o600)  # the umask may have removed bits from 0o600
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.link(temporary, path)
        finally:
            os.unlink(temporary)
        directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except FileExistsError:
        raise KeyFileError(f"key file {path} already exists; refusing to overwrite it") from None
    except OSError as e:
        raise KeyFileError(f"cannot create key file {path}: {e.strerror or e}") from e


def load_signing_key(path: Path) -> Signer:
    """Read the signing key from ``path``. Like ssh, refuses a file that
    group or others may read or write."""
    path = Path(path)
    line = read_private_line(path)
    try:
        return parse_signing_key(line)
    except KeyFileError as e:
        raise KeyFileError(f"key file {path}: {e}") from None


def read_private_line(path: Path) -> str:
    """The one line of a private key file (without its newline). Refuses a
    file that is not regular, that group or others may access, that is
    empty, too large, not UTF-8 or holds control characters."""
    path = Path(path)
    try:
        with open(path, "rb") as file:
            status = os.fstat(file.fileno())
            if not stat.S_ISREG(status.st_mode):
                raise KeyFileError(f"key file {path} is not a regular file")
            mode = stat.S_IMODE(status.st_mode)
            if mode & 0o077:
                raise KeyFileError(
                    f"permissions {mode:04o} for key file {path} are too open: a private key "
                    f"must not be accessible by group or others; run `chmod 600 {path}`"
                )
            data = file.read(_MAX_KEY_FILE_SIZE + 1)
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist") from None
    except OSError as e:
        raise KeyFileError(f"cannot read key file {path}: {e.strerror or e}") from e

    if len(data) > _MAX_KEY_FILE_SIZE:
        raise KeyFileError(f"key file {path} is larger than {_MAX_KEY_FILE_SIZE} bytes")
    if not data:
        raise KeyFileError(f"key file {path} is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise KeyFileError(
            f"key file {path} is not valid UTF-8: invalid byte at offset {e.start}"
        ) from None
    line = text.removesuffix("\n")
    for char in line:
        if ord(char) < 0x20:
            raise KeyFileError(
                f"key file {path}: control character U+{ord(char):04X} "
                "(the file must hold one line)"
            )
    return line
