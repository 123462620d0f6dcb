"""The read models' tables (prefix ``proj_``), the same SQL on SQLite and PostgreSQL.

Each read model owns its tables and has one row in ``proj_tracking``: the
last leaf index it applied (``-1`` before the first) and the version of its
schema and logic. A version that differs from the code's makes the runner
rebuild the read models from zero.

Times are text in one fixed-width UTC form (``projections.events.norm_time``),
dates ``YYYY-MM-DD``, flags 0/1, lists comma-separated or JSON.
"""

from __future__ import annotations

from dataclasses import dataclass

from projections.control import CONTROL_TABLES
from projections.custody import CONSENT_COLUMNS, USE_COLUMNS
from projections.model import AUTH_COLUMNS, FINDING_COLUMNS, REFERRAL_COLUMNS, TRANSFER_COLUMNS, PolicyRec
from projections.preservation import PRESERVATION_TABLES


@dataclass(frozen=True)
class ReadModel:
    name: str
    version: int
    tables: tuple[str, ...]
    description: str


#: The read models. They are built together (the findings read the lineage and the
#: registry as they stood at each event), so each is rebuilt with the others.
MODELS: tuple[ReadModel, ...] = (
    ReadModel("lineage", 6, ("proj_transfers", "proj_erasures", "proj_notices", "proj_notice_acks",
                             "proj_referrals"),
              "every transfer with its parent, root, depth and origin: ancestors and descendants; "
              "erasures of their personal data, and the notices of them; third-country referrals"),
    ReadModel("authorizations", 1, ("proj_authorizations", "proj_authorization_uses", "proj_policies"),
              "requests by status, grants with conditions and uses, refusals, revocations; Party policies"),
    ReadModel("custody", 1, ("proj_consents", "proj_uses", "proj_use_notices", "proj_urgent_notices"),
              "consent requests of the requested Party and their decisions; uses of received data and the "
              "notices of exculpatory uses (art. 40 §19); notices of urgent transfers (LED art. 35(2))"),
    ReadModel("findings", 1, ("proj_findings",),
              "event-driven compliance findings, each with its rule, article and evidence leaves"),
    ReadModel("statistics", 2, ("proj_stats_transfers", "proj_stats_categories", "proj_stats_requests",
                                "proj_stats_referrals"),
              "transfers by month, route, legal basis and category; requests and decisions; referrals"),
    ReadModel("preservations", 1, ("proj_preservations",),
              "art. 42 preservation requests: period, extensions, follow-up, decision, release"),
    ReadModel("control", 1, ("proj_control_plans", "proj_control_checks", "proj_control_conclusions",
                             "proj_control_measures", "proj_control_completions"),
              "internal control checks (Order 949 annex 3): yearly plans, checks, conclusions, remedial "
              "measures and their completion"),
)
MODEL_NAMES = tuple(m.name for m in MODELS)

TRACKING = "proj_tracking"

_COLUMN_TYPES = {
    "leaf_index": "BIGINT", "root_leaf": "BIGINT", "depth": "INTEGER", "written_form": "INTEGER",
    "item_count": "BIGINT",
    "requested_leaf": "BIGINT", "decided_leaf": "BIGINT", "max_transfers": "BIGINT", "instrument": "INTEGER",
    "signed": "INTEGER", "uses": "BIGINT", "named": "BIGINT", "revoked_leaf": "BIGINT",
    "exculpatory": "INTEGER", "awaits_notice": "INTEGER", "urgent": "INTEGER",
    "decide_seconds": "DOUBLE PRECISION", "written_required": "INTEGER", "onward": "INTEGER",
}
_NOT_NULL = {"id", "leaf_index", "status", "rule"}


def _columns(names: tuple[str, ...], primary: str) -> str:
    parts = []
    for name in names:
        kind = _COLUMN_TYPES.get(name, "TEXT")
        suffix = " PRIMARY KEY" if name == primary else (" NOT NULL" if name in _NOT_NULL else "")
        parts.append(f"{name} {kind}{suffix}")
    return ", ".join(parts)


TABLES: dict[str, list[str]] = {
    TRACKING: [
        "CREATE TABLE IF NOT EXISTS {proj_tracking} (name TEXT PRIMARY KEY, position BIGINT NOT NULL, "
        "version INTEGER NOT NULL, updated_at TEXT NOT NULL)",
    ],
    "proj_transfers": [
        f"CREATE TABLE IF NOT EXISTS {{proj_transfers}} ({_columns(TRANSFER_COLUMNS, 'id')})",
        "CREATE INDEX IF NOT EXISTS proj_transfers_tree ON {proj_transfers} (root_leaf, parent_id)",
    ],
    "proj_erasures": [
        "CREATE TABLE IF NOT EXISTS {proj_erasures} (transfer_id TEXT NOT NULL, retention_class TEXT NOT NULL, "
        "erased_at TEXT NOT NULL, leaf_index BIGINT NOT NULL, PRIMARY KEY (transfer_id, retention_class))",
    ],
    "proj_notices": [
        "CREATE TABLE IF NOT EXISTS {proj_notices} (id TEXT PRIMARY KEY, transfer_id TEXT NOT NULL, "
        "party TEXT NOT NULL, erased_at TEXT NOT NULL, leaf_index BIGINT NOT NULL)",
    ],
    "proj_notice_acks": [
        "CREATE TABLE IF NOT EXISTS {proj_notice_acks} (notice_id TEXT PRIMARY KEY, acknowledged_at TEXT NOT NULL, "
        "leaf_index BIGINT NOT NULL)",
    ],
    "proj_referrals": [
        f"CREATE TABLE IF NOT EXISTS {{proj_referrals}} ({_columns(REFERRAL_COLUMNS, 'id')})",
        "CREATE INDEX IF NOT EXISTS proj_referrals_transfer ON {proj_referrals} (transfer_id)",
    ],
    "proj_authorizations": [
        f"CREATE TABLE IF NOT EXISTS {{proj_authorizations}} ({_columns(AUTH_COLUMNS, 'id')})",
        "CREATE INDEX IF NOT EXISTS proj_authorizations_status ON {proj_authorizations} (status, requested_at)",
    ],
    "proj_authorization_uses": [
        "CREATE TABLE IF NOT EXISTS {proj_authorization_uses} (authorization_id TEXT NOT NULL, "
        "transfer_id TEXT NOT NULL, leaf_index BIGINT NOT NULL, PRIMARY KEY (authorization_id, leaf_index))",
    ],
    "proj_policies": [
        f"CREATE TABLE IF NOT EXISTS {{proj_policies}} ({_columns(PolicyRec.COLUMNS, 'party')})",
    ],
    "proj_consents": [
        f"CREATE TABLE IF NOT EXISTS {{proj_consents}} ({_columns(CONSENT_COLUMNS, 'id')})",
    ],
    "proj_uses": [
        f"CREATE TABLE IF NOT EXISTS {{proj_uses}} ({_columns(USE_COLUMNS, 'id')})",
        "CREATE INDEX IF NOT EXISTS proj_uses_transfer ON {proj_uses} (transfer_id)",
    ],
    "proj_use_notices": [
        "CREATE TABLE IF NOT EXISTS {proj_use_notices} (use_id TEXT PRIMARY KEY, notified_at TEXT NOT NULL, "
        "leaf_index BIGINT NOT NULL)",
    ],
    "proj_urgent_notices": [
        "CREATE TABLE IF NOT EXISTS {proj_urgent_notices} (transfer_id TEXT PRIMARY KEY, notified_at TEXT NOT NULL, "
        "leaf_index BIGINT NOT NULL)",
    ],
    "proj_findings": [
        f"CREATE TABLE IF NOT EXISTS {{proj_findings}} ({_columns(FINDING_COLUMNS, 'id')})",
        "CREATE INDEX IF NOT EXISTS proj_findings_leaf ON {proj_findings} (leaf_index)",
    ],
    "proj_stats_transfers": [
        "CREATE TABLE IF NOT EXISTS {proj_stats_transfers} (month TEXT NOT NULL, origin TEXT NOT NULL, "
        "sender TEXT NOT NULL, recipient TEXT NOT NULL, legal_basis TEXT NOT NULL, transfers BIGINT NOT NULL, "
        "onward BIGINT NOT NULL, PRIMARY KEY (month, origin, sender, recipient, legal_basis))",
    ],
    "proj_stats_categories": [
        "CREATE TABLE IF NOT EXISTS {proj_stats_categories} (month TEXT NOT NULL, origin TEXT NOT NULL, "
        "sender TEXT NOT NULL, recipient TEXT NOT NULL, category TEXT NOT NULL, transfers BIGINT NOT NULL, "
        "PRIMARY KEY (month, origin, sender, recipient, category))",
    ],
    "proj_stats_referrals": [
        "CREATE TABLE IF NOT EXISTS {proj_stats_referrals} (month TEXT NOT NULL, requesting_party TEXT NOT NULL, "
        "referring_party TEXT NOT NULL, third_party TEXT NOT NULL, referrals BIGINT NOT NULL, onward BIGINT NOT NULL, "
        "PRIMARY KEY (month, requesting_party, referring_party, third_party))",
    ],
    "proj_stats_requests": [
        "CREATE TABLE IF NOT EXISTS {proj_stats_requests} (month TEXT NOT NULL, origin TEXT NOT NULL, "
        "holder TEXT NOT NULL, recipient TEXT NOT NULL, requested BIGINT NOT NULL, granted BIGINT NOT NULL, "
        "refused BIGINT NOT NULL, revoked BIGINT NOT NULL, decided_seconds DOUBLE PRECISION NOT NULL, "
        "PRIMARY KEY (month, origin, holder, recipient))",
    ],
}

TABLES.update(PRESERVATION_TABLES)
TABLES.update(CONTROL_TABLES)

MODEL_TABLES = tuple(table for model in MODELS for table in model.tables)

def statements(table: str, backend: str) -> list[str]:
    """The statements that create ``table`` on ``backend`` (the same on both, today)."""
    del backend
    return list(TABLES[table])
