"""The supervisory report as a PDF a supervisor can file (reportlab: docs/decisions/0015).

The PDF shows the same figures as the JSON report, the checkpoint it was computed at
(tree size, root hash, the signed checkpoint note) and the report's signature note in
full, so that a reader can check the paper against the JSON (``transfer-ledger
verify-report``): the note's digest is the SHA-256 of the JSON's canonical form.

It is made in reportlab's invariant mode: the same report gives the same bytes (no
creation time, no random document id), so a PDF can be made again from its JSON.
"""

from __future__ import annotations

import io
from typing import Any

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, Preformatted, SimpleDocTemplate, Spacer, Table, TableStyle
from reportlab.platypus.flowables import Flowable

from ledger.audit.report import SECTIONS
from ledger.service.report import report_digest

TITLES = {
    "transfers": "Transfers",
    "authorizations": "Onward transfers: authorization requests and decisions",
    "consents": "Consents (specialty)",
    "preservations": "Preservations (art. 42)",
    "erasures": "Erasures of personal data",
    "consultations": "Consultations of personal data (the consultation log)",
    "control": "Internal control checks and measures",
    "findings": "Findings",
}


def _escape(text: Any) -> str:
    return str("" if text is None else text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _table(rows: list[list[Any]], header: bool = True) -> Table:
    table = Table([[_escape(c) for c in row] for row in rows], hAlign="LEFT", repeatRows=1 if header else 0)
    style = [("FONT", (0, 0), (-1, -1), "Helvetica", 8), ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
             ("VALIGN", (0, 0), (-1, -1), "TOP")]
    if header:
        style += [("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8), ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke)]
    table.setStyle(TableStyle(style))
    return table


def _section(name: str, figures: dict[str, Any], styles: Any) -> list[Flowable]:
    out: list[Flowable] = [Paragraph(_escape(TITLES.get(name, name)), styles["Heading2"])]
    scalars = [[key.replace("_", " "), value] for key, value in figures.items()
               if not isinstance(value, dict | list)]
    for key, value in figures.items():
        if isinstance(value, dict):
            scalars += [[f"{key.replace('_', ' ')}: {k.replace('_', ' ')}", "" if v is None else v]
                        for k, v in value.items()]
    if scalars:
        out.append(_table([["figure", "value"], *scalars]))
    for key, value in figures.items():
        if not isinstance(value, list):
            continue
        out.append(Paragraph(_escape(key.replace("_", " ")), styles["Heading4"]))
        if not value:
            out.append(Paragraph("none", styles["Normal"]))
            continue
        columns = [c for c in value[0] if c != "title"]
        out.append(_table([columns, *[[item.get(c) for c in columns] for item in value]]))
    return out


def render_pdf(doc: dict[str, Any], *, compress: bool = True) -> bytes:
    """The PDF of a signed report (``compress=False``: its page streams left uncompressed)."""
    styles = getSampleStyleSheet()
    mono = styles["Code"]
    mono.fontSize, mono.leading = 7, 8.5
    cp = doc["checkpoint"]
    period = doc["period"]
    story: list[Flowable] = [
        Paragraph("Supervisory report of the transfer ledger", styles["Title"]),
        _table([
            ["format", doc["format"]], ["origin", doc["origin"]], ["party (share)", doc["party"]],
            ["period", f"{period['from'] or '(open)'} to {period['to'] or '(open)'}, both days included"],
            ["generated at (findings judged at)", doc["generated_at"]],
            ["checkpoint tree size", cp["tree_size"]], ["checkpoint root hash", cp["root_hash"]],
            ["SHA-256 of the canonical JSON", report_digest(doc)],
        ], header=False),
        Spacer(1, 3 * mm),
        Paragraph(_escape(doc["personal_data"]), styles["Normal"]),
        Spacer(1, 2 * mm),
        Paragraph(_escape(doc["not_counted"]), styles["Normal"]),
    ]
    for name in SECTIONS:
        story += _section(name, doc[name], styles)
    story += [
        Paragraph("The checkpoint the report was computed at (C2SP signed note)", styles["Heading2"]),
        Preformatted(cp["note"], mono),
        Paragraph("The report's signature (C2SP signed note)", styles["Heading2"]),
        Paragraph("Its text names the report format, the origin, the tree size, the root hash and the SHA-256 "
                  "of the report's canonical JSON (RFC 8785, without its signature). Check the JSON report with "
                  "<font face='Courier'>transfer-ledger verify-report REPORT.json --vkey VKEY</font>.",
                  styles["Normal"]),
        Preformatted(doc["signature"], mono),
    ]
    out = io.BytesIO()
    SimpleDocTemplate(
        out, pagesize=A4, invariant=1, pageCompression=1 if compress else 0,
        title=f"Supervisory report, tree size {cp['tree_size']}", author=doc["origin"],
        leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm, bottomMargin=15 * mm,
    ).build(story)
    return out.getvalue()
