"""Read models built from the ledger's event feed, tracked and rebuildable.

- ``lineage``: every transfer with its parent, root, depth and origin, so the
  ancestors and the whole tree of descendants of any transfer come from one
  query each (``proj_transfers``);
- ``authorizations``: the registry of requests by status, grants with their
  conditions, uses, remaining transfers and expiry, refusals with reasons,
  revocations, and the Parties' standing policies;
- ``findings``: compliance findings, each naming its rule and article and
  the leaves that prove it (``projections.model`` for the event-driven ones,
  ``projections.queries`` for those that depend on "now");
- ``statistics``: transfers by month, sender -> recipient, legal basis, data
  category and origin; requests granted, refused and pending, time to decide.

``projections.runner`` follows the feed and keeps them exactly once (rows and
position in one transaction), ``projections.replay`` rebuilds them in memory
"as of" any leaf index or time, ``projections.queries`` reads them.

Dependencies: ``projections -> domain`` only. The caller gives the ledger's
store (``read_feed``, ``head``, ``checkpoints``) and its ``SqlAccess``;
:func:`runner_for` wires both from a ledger application.
"""

from __future__ import annotations

from typing import Any

from projections.db import LedgerDb
from projections.events import decoder_for
from projections.runner import ProjectionRunner


def runner_for(application: Any, sql: Any, **options: Any) -> ProjectionRunner:
    """A runner over a ledger application's store and database (``sql``: its ``SqlAccess``)."""
    return ProjectionRunner(application.store, LedgerDb(sql), decode=decoder_for(application.mapper), **options)
