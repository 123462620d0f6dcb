"""A lineage drawn as SVG on the server: who held the data, hop by hop.

The first transferring State is on the left; each transfer is an arrow to the Party that
received it, one column further right per hop. An arrow is marked by what the read models
found: a first transfer (``first``), an onward transfer covered by an authorization
(``authorized``), one found without (``unauthorized``); a request the origin refused is a
dashed arrow to where the data did not go (``refused``). Every arrow and holder links to
the transfer's page. No script: the drawing is plain SVG (and prints).
"""

from __future__ import annotations

from html import escape
from typing import Any

from domain.parties import is_international_organization, party_name

COLUMN, ROW, BOX_W, BOX_H, MARGIN = 320, 72, 150, 40, 20


def _label(party: str) -> str:
    name = party_name(party)
    return f"{party} · {name}" if name and len(name) <= 14 else party


def lineage_svg(nodes: list[dict[str, Any]], origin: str, unauthorized: set[str],
                refused: list[dict[str, Any]], selected: str | None = None) -> str:
    """The SVG of a lineage: ``nodes`` its transfers (parents before children), ``unauthorized``
    the ids found without authorization, ``refused`` the refused requests (registry items)."""
    holders: list[dict[str, Any]] = []  # boxes: a Party holding the data at a depth
    held_by: dict[str, int] = {}  # transfer id -> the box of its recipient

    def box(party: str, depth: int, kind: str, transfer_id: str | None) -> int:
        holders.append({"party": party, "depth": depth, "kind": kind, "transfer": transfer_id, "row": 0})
        return len(holders) - 1

    root = box(origin, 0, "origin", None)
    edges: list[tuple[int, int, str, str | None, str]] = []  # from, to, status, transfer id, label
    for node in nodes:
        parent = node["parent_transfer_id"]
        start = held_by.get(parent, root) if parent else root
        depth = holders[start]["depth"] + 1
        kind = "organization" if is_international_organization(node["recipient"]) else "party"
        end = box(node["recipient"], depth, kind, node["id"])
        held_by[node["id"]] = end
        if parent is None:
            status = "first"
        elif node["id"] in unauthorized:
            status = "unauthorized"
        else:
            status = "authorized" if node.get("authorization_id") else "unauthorized"
        edges.append((start, end, status, node["id"], node["transferred_at"][:10]))
    for request in refused:
        start = held_by.get(request["parent_transfer_id"])
        if start is None:
            continue
        end = box(request["recipient"]["party"], holders[start]["depth"] + 1, "refused", None)
        edges.append((start, end, "refused", None, request["requested_at"][:10]))

    children: dict[int, list[int]] = {}
    for start, end, *_ in edges:
        children.setdefault(start, []).append(end)
    row = 0

    def place(index: int) -> None:
        nonlocal row
        holders[index]["row"] = row
        kids = children.get(index, [])
        if not kids:
            row += 1
        for kid in kids:
            place(kid)

    place(root)
    width = MARGIN * 2 + max(h["depth"] for h in holders) * COLUMN + BOX_W
    height = MARGIN * 2 + max(1, row) * ROW

    def xy(index: int) -> tuple[int, int]:
        h = holders[index]
        return MARGIN + h["depth"] * COLUMN, MARGIN + h["row"] * ROW

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" role="img" aria-label="Lineage of the data from {escape(origin)}">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead"/></marker></defs>']
    for start, end, status, transfer_id, label in edges:
        (x1, y1), (x2, y2) = xy(start), xy(end)
        line = (f'<line class="hop {status}" x1="{x1 + BOX_W}" y1="{y1 + BOX_H // 2}" x2="{x2 - 4}" '
                f'y2="{y2 + BOX_H // 2}" marker-end="url(#arrow)"/>'
                f'<text class="hop-label {status}" x="{(x1 + BOX_W + x2) // 2}" y="{(y1 + y2) // 2 + BOX_H // 2 - 8}" '
                f'text-anchor="middle">{escape(status)} · {escape(label)}</text>')
        if transfer_id:
            line = (f'<a href="/console/transfers/{escape(transfer_id)}" data-transfer="{escape(transfer_id)}" '
                    f'data-status="{status}"><title>{escape(status)} transfer {escape(transfer_id)}</title>{line}</a>')
        out.append(line)
    for index, h in enumerate(holders):
        x, y = xy(index)
        chosen = " selected" if h["transfer"] is not None and h["transfer"] == selected else ""
        shape = (f'<rect class="holder {h["kind"]}{chosen}" x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6"/>'
                 f'<text class="holder-label {h["kind"]}" x="{x + BOX_W // 2}" y="{y + BOX_H // 2 + 5}" '
                 f'text-anchor="middle">{escape(_label(h["party"]))}</text>')
        if h["transfer"]:
            shape = (f'<a href="/console/transfers/{escape(h["transfer"])}" data-holder="{escape(h["party"])}">'
                     f'<title>{escape(h["party"])}: received by transfer {escape(h["transfer"])}</title>{shape}</a>')
        out.append(shape)
    out.append("</svg>")
    return "".join(out)
