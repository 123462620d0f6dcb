"""The import contracts of docs/ARCHITECTURE.md, checked on every module's imports.

Every ``import`` and ``from ... import`` is read from the source (those inside
functions too), so a contract cannot be broken by a late import. A broken
contract names the module, the line and the import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("domain", "ledger", "projections", "api")
#: Libraries that talk to the outside world: a database, the network, a terminal, a web framework.
INFRASTRUCTURE = ("sqlite3", "psycopg", "psycopg_pool", "httpx", "fastapi", "starlette", "uvicorn", "typer",
                  "rich", "eventsourcing.sqlite", "eventsourcing.postgres")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text("utf-8"), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # ``from ledger.tlog import merkle`` imports the module ledger.tlog.merkle
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


MODULES = {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def within(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


#: (the modules it binds, what they may not import, why)
CONTRACTS = [
    ("domain", ("ledger", "api", "projections", *INFRASTRUCTURE), "the domain is pure: rules and values only"),
    ("ledger.tlog", ("ledger.storage", "ledger.service", "ledger.audit", "ledger.witness", "ledger.cli",
                     "ledger.config", "api", "projections", "eventsourcing", *INFRASTRUCTURE),
     "spec primitives import nothing of ours but ledger.tlog (and domain at most)"),
    ("projections", ("ledger", "api", "httpx", "fastapi", "starlette", "uvicorn", "typer"),
     "read models depend on the domain only"),
    ("ledger", ("api",), "api depends on ledger, never the reverse (serve loads the app by name)"),
    ("ledger.storage", ("ledger.service", "ledger.audit", "ledger.witness", "ledger.cli"),
     "storage is below the service layer"),
    ("ledger.service", ("ledger.cli", "ledger.audit", "ledger.witness"), "the service layer knows no entry point"),
    ("ledger.audit", ("ledger.cli", "ledger.witness", "api", "projections"),
     "audit tools read the store and the tlog formats; they know no entry point"
     " (verify-export needs no database at all: tests/ledger/test_export.py)"),
]


@pytest.mark.parametrize(("bound", "forbidden", "why"), CONTRACTS, ids=[c[0] for c in CONTRACTS])
def test_import_contract(bound: str, forbidden: tuple[str, ...], why: str) -> None:
    broken = [f"{name}:{line} imports {imported}"
              for name, path in MODULES.items() if within(name, bound)
              for line, imported in imports_of(path) if within(imported, *forbidden)]
    assert not broken, f"{why}:\n" + "\n".join(broken)


def test_the_contracts_see_every_package() -> None:
    """The walk finds the modules the contracts bind (a renamed package would bind nothing)."""
    for bound, _, _ in CONTRACTS:
        assert any(within(name, bound) for name in MODULES), bound
    assert "ledger.tlog.merkle" in MODULES and "ledger.cli" in MODULES


def test_tests_share_helpers_through_tests_support_only() -> None:
    """A test module never imports another test module or a conftest: what tests share is in
    tests/support/ (conftest files only pick fixtures from there)."""
    broken = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if "testdata" in path.parts:
            continue
        for line, imported in imports_of(path):
            last = imported.split(".")[-1]
            if imported.startswith("tests.") and (last.startswith("test_") or last == "conftest"):
                broken.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    assert not broken, "\n".join(broken)
