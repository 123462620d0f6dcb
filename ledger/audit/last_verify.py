"""The result of the last complete verification of a ledger, kept in its data dir.

``transfer-ledger verify`` and the console's "Verify now" both write it, so that an
auditor's status page (and an operator) can say when the ledger was last verified,
by what, how long it took and what it found. A verification that could not complete
proves nothing and leaves the previous result in place.

File ``last-verify.json`` in the data dir, replaced atomically (written beside, then renamed).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from domain.values import format_datetime
from ledger.audit.verify import VerifyReport, verify_ledger

FILE = "last-verify.json"


def record_verification(data_dir: Path, report: VerifyReport, *, seconds: float, by: str) -> dict[str, Any]:
    """Keep ``report`` as the last verification of the ledger of ``data_dir``; the record kept."""
    record = {"at": format_datetime(datetime.now(UTC)), "by": by, "seconds": round(seconds, 3), **report.as_dict()}
    data_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".last-verify-", dir=data_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(record, out, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, data_dir / FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return record


def verify_and_record(ledger: Any, verifier: Any, origin: str, data_dir: Path, *, by: str, since: Any = None,
                      progress: Any = None) -> tuple[VerifyReport, dict[str, Any]]:
    """Verify ``ledger`` (as ``verify_ledger``, its sealed values opened) and keep the result as the
    last verification of ``data_dir``: the report and the record kept. A verification that does not
    complete raises :class:`~ledger.audit.verify.VerificationIncomplete` and records nothing."""
    started = time.monotonic()
    report = verify_ledger(ledger.store, verifier, origin, since=since, progress=progress,
                           open_state=ledger.open_event_state)
    return report, record_verification(data_dir, report, seconds=time.monotonic() - started, by=by)


def last_verification(data_dir: Path) -> dict[str, Any] | None:
    """The last verification recorded in ``data_dir``, or None (never verified, or unreadable)."""
    try:
        found = json.loads((data_dir / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None
