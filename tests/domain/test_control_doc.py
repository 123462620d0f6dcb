"""docs/DOMAIN.md names every rule of Order 949 annex 3 that domain/control.py enforces, and each rule name it raises."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import domain.control
import ledger.service.control

DOMAIN_MD = Path(__file__).resolve().parents[2] / "docs" / "DOMAIN.md"


def test_every_rule_of_domain_control_is_cited_with_its_name() -> None:
    text = DOMAIN_MD.read_text("utf-8")
    source = inspect.getsource(domain.control)
    rules = [name for name, obj in inspect.getmembers(domain.control, inspect.isfunction)
             if obj.__module__ == "domain.control" and ("check_" in name or "§" in (obj.__doc__ or ""))
             and not name.startswith("_")]
    assert "organized_late" in rules and "interested_participant" in rules
    assert [name for name in rules if f"`domain.control.{name}`" not in text] == []
    raised = set(re.findall(r'rule="([a-z-]+)"', source + inspect.getsource(ledger.service.control)))
    assert "check-organized-late" in raised
    assert sorted(r for r in raised if f"`{r}`" not in text) == []
