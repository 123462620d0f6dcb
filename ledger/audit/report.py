"""The supervisory report, offline: checking its signature (``verify-report``), and its CSV and PDF.

A report (``ledger.service.report``, docs/AUDIT.md "The supervisory report") is one JSON document
signed by a C2SP signed note of the ledger's key. :func:`verify_report` needs only the report and
the ledger's verifier key: it recomputes the SHA-256 of the report's RFC 8785 canonical JSON
(without ``signature``), checks that the note's text names that digest, the report's origin, tree
size and root hash, that the note's signature verifies, and that the report's checkpoint note
verifies and names the same tree.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from ledger.service.report import REPORT_FORMAT as REPORT_FORMAT
from ledger.service.report import note_text, report_digest
from ledger.tlog.note import NoteError, Verifier, open_checkpoint, open_note


class ReportError(Exception):
    """A report does not verify (altered, or not a report of this ledger)."""


@dataclass(frozen=True)
class ReportCheck:
    origin: str
    party: str
    tree_size: int
    root_hash: str
    digest: str
    period: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"ok": True, **self.__dict__}


def verify_report(doc: Any, verifier: Verifier) -> ReportCheck:
    """Check a report offline: its note's signature by the ledger's key, that the note names the
    report's own digest, origin, tree size and root, and that its checkpoint verifies and names the
    same tree. :class:`ReportError` saying what does not hold."""
    if not isinstance(doc, dict) or doc.get("format") != REPORT_FORMAT:
        raise ReportError(f"not a supervisory report: format is not {REPORT_FORMAT!r}")
    signature, checkpoint = doc.get("signature"), doc.get("checkpoint")
    if not isinstance(signature, str) or not isinstance(checkpoint, dict):
        raise ReportError("the report has no signature or no checkpoint")
    try:
        opened = open_note(signature, [verifier])
    except NoteError as e:
        raise ReportError(f"signature: {e}") from None
    if not any(s.verified for s in opened.signatures):
        raise ReportError("signature: the note is not signed by this ledger's key")
    try:
        expected = note_text(doc)
    except (KeyError, TypeError, ValueError) as e:
        raise ReportError(f"the report cannot be canonicalized: {e}") from None
    if opened.text != expected:
        got = opened.text.split("\n")
        want = expected.split("\n")
        names = ("format", "origin", "tree size", "root hash", "digest")
        differs = [n for n, a, b in zip(names, got, want, strict=False) if a != b] or ["text"]
        raise ReportError(f"the report was altered: its signed {', '.join(differs)} differ from its content")
    try:
        cp = open_checkpoint(str(checkpoint.get("note")), verifier, str(doc.get("origin")))
    except NoteError as e:
        raise ReportError(f"checkpoint: {e}") from None
    if cp.size != checkpoint.get("tree_size") or base64.b64encode(cp.root_hash).decode() != checkpoint.get(
            "root_hash"):
        raise ReportError("the checkpoint note names another tree than the report")
    return ReportCheck(origin=str(doc["origin"]), party=str(doc.get("party")), tree_size=cp.size,
                       root_hash=checkpoint["root_hash"], digest=report_digest(doc), period=doc.get("period") or {})


# -- CSV ------------------------------------------------------------------------------------

#: The CSV's columns (docs/AUDIT.md, "The supervisory report").
CSV_COLUMNS = ("section", "measure", "key", "value")
#: The report's sections of figures, in order.
SECTIONS = ("transfers", "authorizations", "consents", "preservations", "erasures", "consultations", "control",
            "findings")
_NOT_KEYS = frozenset({"article", "title"})


def csv_rows(doc: dict[str, Any]) -> list[tuple[str, str, str, Any]]:
    """The report as rows of :data:`CSV_COLUMNS`: first what identifies and signs it, then one row
    per figure. A list's item is named by its text fields (``key``, joined by ``|``)."""
    period = doc["period"]
    cp = doc["checkpoint"]
    rows: list[tuple[str, str, str, Any]] = [
        ("report", "format", "", doc["format"]), ("report", "origin", "", doc["origin"]),
        ("report", "party", "", doc["party"]), ("report", "period_from", "", period["from"] or ""),
        ("report", "period_to", "", period["to"] or ""), ("report", "generated_at", "", doc["generated_at"]),
        ("checkpoint", "tree_size", "", cp["tree_size"]), ("checkpoint", "root_hash", "", cp["root_hash"]),
        ("checkpoint", "note", "", cp["note"]),
        ("report", "sha256", "", report_digest(doc)), ("report", "signature", "", doc["signature"]),
    ]
    for section in SECTIONS:
        for name, value in doc[section].items():
            if isinstance(value, dict):
                rows.extend((section, f"{name}.{k}", "", _cell(v)) for k, v in value.items())
            elif isinstance(value, list):
                for item in value:
                    if name == "open_items":
                        rows.extend((section, f"{name}.{k}", item["id"], _cell(v)) for k, v in item.items()
                                    if k != "id")
                        continue
                    key = "|".join("" if v is None else str(v) for k, v in item.items()
                                   if k not in _NOT_KEYS and not _is_number(v))
                    rows.extend((section, f"{name}.{k}", key, v) for k, v in item.items() if _is_number(v))
            else:
                rows.append((section, name, "", _cell(value)))
    return rows


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: Any) -> Any:
    return "" if value is None else value


def render_csv(doc: dict[str, Any]) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_rows(doc))
    return out.getvalue()


def render(doc: dict[str, Any], fmt: str) -> bytes:
    """The report's bytes in ``fmt`` (json, csv or pdf)."""
    if fmt == "csv":
        return render_csv(doc).encode("utf-8")
    if fmt == "pdf":
        from ledger.audit.report_pdf import render_pdf

        return render_pdf(doc)
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


MEDIA_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8", "pdf": "application/pdf"}
