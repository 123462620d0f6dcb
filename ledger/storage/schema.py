"""The ledger's tables beside the events, for each backend's schema.

Each recorder creates its whole schema in one place, ``create_schema()``
(eventsourcing calls it, as ``create_table()``, when the store is opened):
eventsourcing's tables, the store's (``ledger.storage.store``) and these, the
API principals, the idempotency records, the witness cosignatures and the
personal data kept apart from the events (``personal``: meta, data keys, openings, erasures) and
the index of the consultation logs (``consultations``). The
stores of those tables (``principals``, ``idempotency``, ``cosignatures``)
create nothing themselves.
"""

from __future__ import annotations

from collections.abc import Callable

from ledger.storage import consultations, cosignatures, idempotency, personal, principals
from ledger.storage.sql import TABLE_REF

#: Written with ``{name}`` table references, as :class:`ledger.storage.sql.SqlAccess` runs them.
_BESIDE_THE_EVENTS = (principals.CREATE_TABLE, idempotency.CREATE_TABLE, cosignatures.CREATE_TABLE,
                      *personal.CREATE_TABLES, *consultations.CREATE_TABLES)


def tables_beside_the_events(table: Callable[[str], str]) -> list[str]:
    """The statements that create the tables beside the events, each table named by ``table(name)``."""
    return [TABLE_REF.sub(lambda m: table(m.group(1)), statement) for statement in _BESIDE_THE_EVENTS]
