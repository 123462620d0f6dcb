"""The ``transfer-ledger`` command line.

Exit status everywhere: 0 success, 1 integrity failure or refused by a rule,
2 usage or environment error. Errors are one line on stderr.
"""

from __future__ import annotations

from typing import Any

# The commands register on the root app as their modules are imported, in this order
# (the order --help lists them in).
# isort: off
from ledger.cli import commands, principals, policy, witness, projections, personal, report, imports, backup  # noqa: F401
# isort: on
from ledger.cli.common import app

__all__ = ["app", "main"]


def main() -> Any:
    return app()
