"""docs/DOMAIN.md names every rule of art. 42 that domain/preservation.py enforces, and each rule name it raises."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import domain.preservation

DOMAIN_MD = Path(__file__).resolve().parents[2] / "docs" / "DOMAIN.md"


def test_every_rule_of_domain_preservation_is_cited_with_its_name() -> None:
    text = DOMAIN_MD.read_text("utf-8")
    source = inspect.getsource(domain.preservation)
    rules = [name for name, obj in inspect.getmembers(domain.preservation, inspect.isfunction)
             if obj.__module__ == "domain.preservation" and ("check_" in name or "§" in (obj.__doc__ or ""))
             and not name.startswith("_")]
    assert "period_too_short" in rules
    assert [name for name in rules if f"`domain.preservation.{name}`" not in text] == []
    raised = set(re.findall(r'rule="([a-z-]+)"', source))
    assert "preservation-period-too-short" in raised
    assert sorted(r for r in raised if f"`{r}`" not in text) == []
