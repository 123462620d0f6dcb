"""The lineage graph's SVG (api.console.graph), checked as an SVG reader sees it: each hop's arrow
marked by what the read models found, each linking to its transfer; well-formed XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from api.console.graph import lineage_svg

SVG = "{http://www.w3.org/2000/svg}"


def node(ident: str, sender: str, recipient: str, parent: str | None, auth: str | None = None) -> dict[str, Any]:
    return {"id": ident, "sender": sender, "recipient": recipient, "origin": "DE", "parent_transfer_id": parent,
            "authorization_id": auth, "transferred_at": "2026-03-01T10:00:00Z", "leaf_index": 0, "depth": 0}


def hops(svg: str) -> dict[str, str]:
    root = ET.fromstring(svg)
    return {a.get("data-transfer") or "": a.get("data-status") or ""
            for a in root.iter(f"{SVG}a") if a.get("data-transfer")}


def test_each_hop_is_marked_and_links_to_its_transfer() -> None:
    nodes = [node("t1", "DE", "FR", None), node("t2", "FR", "BR", "t1", auth="a1"),
             node("t3", "FR", "US", "t1"), node("t4", "BR", "INTERPOL", "t2", auth="a2")]
    refused = [{"parent_transfer_id": "t2", "recipient": {"party": "CN"}, "requested_at": "2026-03-02T00:00:00Z"}]
    svg = lineage_svg(nodes, "DE", unauthorized={"t3"}, refused=refused, selected="t2")
    assert hops(svg) == {"t1": "first", "t2": "authorized", "t3": "unauthorized", "t4": "authorized"}
    root = ET.fromstring(svg)
    dashed = [line for line in root.iter(f"{SVG}line") if "refused" in (line.get("class") or "")]
    assert len(dashed) == 1  # the refused request: an arrow to where the data did not go
    links = {a.get("href") for a in root.iter(f"{SVG}a")}
    assert {f"/console/transfers/{t}" for t in ("t1", "t2", "t3", "t4")} <= links
    selected = [r for r in root.iter(f"{SVG}rect") if "selected" in (r.get("class") or "")]
    assert len(selected) == 1


def test_a_hop_without_authorization_is_unauthorized_even_without_a_finding() -> None:
    svg = lineage_svg([node("t1", "DE", "FR", None), node("t2", "FR", "NL", "t1")], "DE", set(), [])
    assert hops(svg)["t2"] == "unauthorized"


def test_names_are_escaped() -> None:
    svg = lineage_svg([node("t1", "DE", "<script>", None)], "DE", set(), [])
    assert "<script>" not in svg and ET.fromstring(svg) is not None
