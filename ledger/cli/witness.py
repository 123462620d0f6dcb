"""``transfer-ledger witness`` (a witness's own commands) and ``verify-checkpoint``."""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from ledger.cli.common import (
    app,
    fail,
)
from ledger.config import (
    ConfigError,
)
from ledger.tlog.keys import KeyFileError
from ledger.tlog.note import (
    NoteError,
    Verifier,
    open_checkpoint,
)

witness_app = typer.Typer(
    help="A witness of a ledger: it keeps the last checkpoint it accepted, checks that each new one "
    "extends it (consistency proof), cosigns it (C2SP tlog-cosignature) and reports a split view "
    "with both checkpoints as evidence.",
    no_args_is_help=True,
)
app.add_typer(witness_app, name="witness")

WitnessStateDir = Annotated[
    Path,
    typer.Option(
        "--state", metavar="DIR",
        help="The witness's state dir: its key (mode 0600), vkey, last accepted checkpoint per log, evidence.",
        show_default=False,
    ),
]
LogVkey = Annotated[
    str,
    typer.Option(
        "--log-vkey", metavar="VKEY",
        help="The ledger's verifier key: a file holding it (like ledger.vkey), or the vkey itself.",
        show_default=False,
    ),
]


@contextmanager
def witness_errors() -> Iterator[None]:
    """Refusals (split view, rollback, a checkpoint that does not verify) exit 1;
    state, key, network and usage errors exit 2; always one line on stderr."""
    from ledger.witness import LedgerUnavailable, WitnessRefused, WitnessStateError

    try:
        yield
    except WitnessRefused as e:
        fail(str(e), 1)
    except (WitnessStateError, LedgerUnavailable, KeyFileError, NoteError, ConfigError) as e:
        fail(str(e), 2)
    except OSError as e:
        fail(f"{e.filename or ''}: {e.strerror or e}".lstrip(": "), 2)
    except (typer.Exit, typer.Abort):
        raise
    except Exception as e:  # a bug: still one line, never a traceback
        fail(f"internal error: {type(e).__name__}: {e}", 2)


def _log_verifier(value: str) -> Verifier:
    from ledger.witness import read_key_argument

    return read_key_argument(value, Verifier.from_vkey, "log vkey")  # type: ignore[no-any-return]


@witness_app.command("init")
def witness_init(
    state: WitnessStateDir,
    name: Annotated[
        str,
        typer.Option(help="The witness's name, in its cosignature lines (a schema-less URL is recommended).",
                     show_default=False),
    ],
) -> None:
    """Create the witness's cosigning key (mode 0600), once; print its vkey alone on stdout.

    The state dir is created (mode 0700) if needed; the key is Ed25519, its vkey of
    signature type 0x04 is also written to DIR/witness.vkey. Give the vkey to verifiers:
    `verify-checkpoint --witness`. A second init changes
    nothing and prints the vkey again.
    """
    from ledger.witness import WitnessState

    with witness_errors():
        witness, created = WitnessState.init(state, name)
    if created:
        typer.echo(f"created witness {name}: key {state / WitnessState.KEY_FILE} (mode 0600); its vkey:", err=True)
    else:
        typer.echo(f"already initialized: {state} (nothing changed)", err=True)
    typer.echo(witness.cosigner.vkey())


@witness_app.command("run")
def witness_run(
    state: WitnessStateDir,
    ledger_url: Annotated[
        str, typer.Option("--ledger-url", metavar="URL", help="The ledger's API, e.g. http://127.0.0.1:8000.",
                          show_default=False),
    ],
    api_key: Annotated[
        str,
        typer.Option("--api-key", metavar="KEY", envvar="TRANSFER_LEDGER_API_KEY",
                     help="An API key of role verifier.", show_default=False),
    ],
    log_vkey: LogVkey,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each answer.", min=0.1)] = 30.0,
) -> None:
    """One round: verify the ledger's latest checkpoint, check it extends the last one accepted, cosign it.

    Fetches GET /v1/checkpoint, verifies the ledger's signature, compares with the last
    checkpoint this witness accepted (same size: same root; larger: the ledger's consistency
    proof must verify), records it, and sends POST /v1/checkpoint/cosignatures.

    The first checkpoint seen from a ledger is trusted as it is. Exit status 0 cosigned;
    1 refused: SPLIT VIEW (same size, another root; or not consistent), ROLLBACK (smaller
    tree) or a checkpoint that does not verify, with both checkpoints kept in
    DIR/evidence/ and named on stderr; 2 usage, state or network error.
    """
    from ledger.witness import LedgerClient, WitnessState, run_witness

    with witness_errors():
        witness = WitnessState.open(state)
        log_verifier = _log_verifier(log_vkey)
        with LedgerClient(ledger_url, api_key, timeout=timeout) as client:
            done = run_witness(client, witness, log_verifier)
    checkpoint = done.checkpoint
    before = (
        f"extends size {done.previous_size}" if done.previous_size is not None
        else "first checkpoint seen from this ledger, trusted as it is"
    )
    stored = "stored by the ledger" if done.stored else "the ledger already had this witness's cosignature"
    typer.echo(
        f"cosigned {checkpoint.origin} at size {checkpoint.size}, root "
        f"{base64.b64encode(checkpoint.root_hash).decode()} ({before}; {stored})"
    )


@witness_app.command("check")
def witness_check(
    first: Annotated[Path, typer.Argument(metavar="A", help="A checkpoint file (signed note).", show_default=False)],
    second: Annotated[Path, typer.Argument(metavar="B", help="Another checkpoint of the same log.",
                                           show_default=False)],
    log_vkey: LogVkey,
    proof: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="A consistency proof between the two sizes, one base64 hash per "
                     "line (like evidence/*/consistency-proof).", show_default=False),
    ] = None,
) -> None:
    """Compare two checkpoints of one ledger offline; the same size with different roots is a SPLIT VIEW.

    Both must verify under the log key. Checkpoints of different sizes need --proof.

    Exit status 0 consistent, 1 split view (or a checkpoint that does not verify), 2 usage
    error (unreadable files, different sizes without --proof).
    """
    from ledger.witness import WitnessRefused, compare_checkpoints, read_proof_file

    with witness_errors():
        log_verifier = _log_verifier(log_vkey)
        hashes = read_proof_file(proof) if proof is not None else None
        checkpoints = []
        for path in (first, second):
            note = _read_note(path)
            try:
                checkpoints.append(open_checkpoint(note, log_verifier, log_verifier.name))
            except NoteError as e:
                raise WitnessRefused("bad-checkpoint", f"checkpoint {path}: {e}") from None
        verdict = compare_checkpoints(checkpoints[0], checkpoints[1], hashes)
    typer.echo(f"OK: {verdict}")


def _read_note(path: Path) -> bytes:
    """A note from a file, or stdin for ``-``; at most MAX_NOTE_SIZE bytes (exit 2 otherwise)."""
    from ledger.tlog.note import MAX_NOTE_SIZE

    try:
        if str(path) == "-":
            data = sys.stdin.buffer.read(MAX_NOTE_SIZE + 1)
        else:
            with open(path, "rb") as file:
                data = file.read(MAX_NOTE_SIZE + 1)
    except OSError as e:
        fail(f"cannot read checkpoint {path}: {e.strerror or e}", 2)
    if len(data) > MAX_NOTE_SIZE:
        fail(f"checkpoint {path}: larger than {MAX_NOTE_SIZE} bytes", 2)
    return data


def _posix_time(timestamp: int) -> str:
    """RFC 3339 UTC, or the number itself beyond the years datetime can show."""
    try:
        return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError):
        return f"POSIX time {timestamp}"


@app.command("verify-checkpoint")
def verify_checkpoint(
    note_file: Annotated[
        Path, typer.Argument(metavar="NOTE", help="The checkpoint (signed note) file, or - for stdin.",
                             show_default=False),
    ],
    vkey: Annotated[
        str,
        typer.Option("--vkey", metavar="VKEY", help="The ledger's verifier key: a file (like ledger.vkey) or "
                     "the vkey itself.", show_default=False),
    ],
    witness: Annotated[
        list[str] | None,
        typer.Option("--witness", metavar="VKEY", help="A known witness's vkey (type 0x04): a file or the vkey "
                     "itself (repeatable).", show_default=False),
    ] = None,
    quorum: Annotated[
        int | None,
        typer.Option(metavar="K", min=0, help="How many known witnesses must have cosigned [default: all given].",
                     show_default=False),
    ] = None,
) -> None:
    """Verify a checkpoint's signature and at least K known witnesses' cosignatures, offline.

    The cosignatures are C2SP tlog-cosignature lines by the --witness keys. Lines of unknown
    keys are ignored; a known witness's cosignature that does not verify fails the checkpoint.

    Exit status 0 verified, 1 not (signature, form, cosignature, or fewer than K),
    2 usage error (unreadable files, malformed vkeys, K larger than the witnesses given).
    """
    from ledger.tlog.cosignature import CosignatureVerifier, verify_cosignatures
    from ledger.witness import read_key_argument

    with witness_errors():
        log_verifier = _log_verifier(vkey)
        witnesses = {}
        for value in witness or []:
            key = read_key_argument(value, CosignatureVerifier.from_vkey, "witness vkey")
            if (key.name, key.key_id) in witnesses and witnesses[(key.name, key.key_id)] != key:
                fail(f"two different --witness keys share name {key.name!r} and key id {key.key_id:08x}", 2)
            witnesses[(key.name, key.key_id)] = key
        required = len(witnesses) if quorum is None else quorum
        if required > len(witnesses):
            fail(f"--quorum {required} exceeds the {len(witnesses)} distinct --witness keys given", 2)
        note = _read_note(note_file)
        try:
            checkpoint, cosignatures = verify_cosignatures(
                note, log_verifier, witnesses.values(), required, origin=log_verifier.name
            )
        except NoteError as e:
            fail(f"checkpoint {note_file}: {e}", 1)
    names = ", ".join(f"{c.witness.describe()} at {_posix_time(c.timestamp)}" for c in cosignatures)
    typer.echo(
        f"OK: {checkpoint.origin} at size {checkpoint.size}, root "
        f"{base64.b64encode(checkpoint.root_hash).decode()}; cosigned by {len(cosignatures)} of "
        f"{len(witnesses)} known witnesses (quorum {required})" + (f": {names}" if names else "")
    )


# -- read models: projections, replay ------------------------------------------------
