"""docs/DOMAIN.md against the code: what it says is enforced, and where, exists.

Every dotted name it cites (``domain.rules.check_pending``) resolves; every
check of ``domain.rules`` and every rule name they raise is on the page; so are
the findings of the read models and the data categories; every file it points
to is in the repository.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import domain.custody
import domain.regimes
import domain.rules
from domain.values import DATA_CATEGORIES
from projections.model import RULES

ROOT = Path(__file__).resolve().parents[2]
DOMAIN_MD = ROOT / "docs" / "DOMAIN.md"
CITED = re.compile(r"`((?:domain|ledger|projections|api)(?:\.\w+)+)`")
NAMED = re.compile(r"`([a-z0-9_-]+)`")
FILE = re.compile(r"\b((?:docs|tests|domain|ledger|projections|api)/[\w./-]+\.(?:md|py))\b")


def text() -> str:
    return DOMAIN_MD.read_text("utf-8")


def resolve(dotted: str) -> object:
    """The object a dotted name names: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for name in parts[split:]:
            obj = getattr(obj, name)
        return obj
    raise ModuleNotFoundError(dotted)


def test_every_cited_name_exists() -> None:
    cited = sorted(set(CITED.findall(text())))
    assert len(cited) > 20
    missing = []
    for dotted in cited:
        try:
            resolve(dotted)
        except (ModuleNotFoundError, AttributeError):
            missing.append(dotted)
    assert missing == []


RULE_MODULES = (domain.rules, domain.custody, domain.regimes)


def test_every_check_of_the_rule_modules_is_cited() -> None:
    cited = set(CITED.findall(text()))
    for module in RULE_MODULES:
        checks = [name for name, obj in inspect.getmembers(module, inspect.isfunction)
                  if obj.__module__ == module.__name__ and not name.startswith("_")]
        assert checks, module.__name__
        assert [name for name in checks if f"{module.__name__}.{name}" not in cited] == [], module.__name__


def test_every_rule_name_of_the_rule_modules_is_explained() -> None:
    named = set(NAMED.findall(text()))
    for module in RULE_MODULES:
        raised = set(re.findall(r'rule="([a-z0-9-]+)"', inspect.getsource(module)))
        assert raised, module.__name__
        assert sorted(raised - named) == [], module.__name__


def test_the_findings_and_the_categories_are_explained() -> None:
    named = set(NAMED.findall(text()))
    findings = {rule for rule, (article, _) in RULES.items() if article != "ledger integrity"}
    assert sorted(findings - named) == []
    assert sorted(set(DATA_CATEGORIES) - named) == []


def test_every_file_it_points_to_exists() -> None:
    files = set(FILE.findall(text()))
    assert "docs/decisions/0001-atomic-onward-transfer.md" in files
    assert sorted(f for f in files if not (ROOT / f).exists()) == []
