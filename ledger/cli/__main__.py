"""``python -m ledger.cli``: the ``transfer-ledger`` command."""

from ledger.cli import main

main()
