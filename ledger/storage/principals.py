"""API principals and their keys.

Every API key belongs to one **principal**: a Party (or ``*``, the ledger as
a whole) and a set of roles (docs/API.md, "Keys, roles and access"). Keys are shown once,
when made, and stored only as hashes, in the table ``api_principals`` of the
ledger's own database: every API process on every host sees the same
principals, and a revocation takes effect everywhere at once.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from domain.custody import transfer_readers
from domain.errors import InvalidInput
from domain.parties import parse_party
from domain.values import format_datetime
from ledger.storage.sql import SqlAccess

ROLES = ("recorder", "authority", "auditor", "verifier", "admin")

#: The party of principals that act on the ledger as a whole (e.g. its auditors).
GLOBAL_PARTY = "*"

#: Roles that act for one Party: a recorder records what its Party sent, an
#: authority decides for its Party as the origin. Neither means anything for ``*``.
PARTY_ROLES = frozenset({"recorder", "authority"})

#: Roles that read transfers and authorizations, personal data included: those of their Party's
#: share, or every one for an auditor of ``*`` (docs/API.md, "Keys, roles and access"). A verifier
#: (or an admin) reads none.
READER_ROLES = frozenset({"recorder", "authority", "auditor"})

KEY_PREFIX = "tl_"
_KEY = re.compile(r"tl_[A-Za-z0-9_-]{43}\Z")
#: Shown by ``principals list`` to tell keys apart: the marker and 7 of the
#: 43 random characters, which leaves 214 unknown bits.
_DISPLAY_PREFIX_LENGTH = 10
_MAX_NAME = 200

_COLUMNS = "id, party, roles, name, key_prefix, created_at, revoked_at"
#: The table, created with the recorder's schema (``ledger.storage.schema``).
CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS {api_principals} ("
    "id TEXT PRIMARY KEY, "
    "party TEXT NOT NULL, "
    "roles TEXT NOT NULL, "
    "name TEXT, "
    "key_hash TEXT NOT NULL UNIQUE, "
    "key_prefix TEXT NOT NULL, "
    "created_at TEXT NOT NULL, "
    "revoked_at TEXT)"
)


class PrincipalError(ValueError):
    """A principal cannot be made or changed as asked (exit status 2, HTTP 4xx)."""


@dataclass(frozen=True)
class Principal:
    """Who holds an API key: a Party (or ``*``) and its roles."""

    id: str
    party: str
    roles: frozenset[str]
    name: str | None
    created_at: str
    revoked_at: str | None
    key_prefix: str = ""

    def has_role(self, role: str) -> bool:
        """Whether the principal has ``role``; a name not in :data:`ROLES` is a bug."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
        return role in self.roles

    @property
    def is_global(self) -> bool:
        """A principal of the ledger as a whole (party ``*``), e.g. its auditor."""
        return self.party == GLOBAL_PARTY

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def reads_everything(self) -> bool:
        """An auditor of the whole ledger (party ``*``): reads every transfer and authorization."""
        return "auditor" in self.roles and self.is_global

    @property
    def is_reader(self) -> bool:
        """Whether the principal reads transfers and authorizations at all (of some share)."""
        return bool(READER_ROLES & self.roles)

    def can_read(self, parties: Iterable[str]) -> bool:
        """Whether the principal may read an object involving these Parties: an auditor of ``*``
        reads everything, a reader of a Party what involves its Party."""
        return self.reads_everything or (self.is_reader and self.party in set(parties))

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "party": self.party,
            "roles": sorted(self.roles),
            "name": self.name,
            "key_prefix": self.key_prefix,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def transfer_parties(transfer: Mapping[str, Any]) -> set[str]:
    """The Parties that may read a transfer (its share): sender, recipient and origin, or only its
    sender and recipient when it is confidential (``domain.custody.transfer_readers``, art. 40 §20).
    ``transfer`` is its view or its ``TransferRecorded`` state (the same members)."""
    handling = transfer.get("handling") or {}
    return transfer_readers(transfer["sender"]["party"], transfer["recipient"]["party"], transfer["origin"],
                            bool(handling.get("confidential")))


def authorization_parties(authorization: Mapping[str, Any]) -> set[str]:
    """The Parties an authorization involves: its origin, the requester and the recipient.
    ``authorization`` is its view or its ``AuthorizationRequested`` state."""
    return {authorization["origin"], authorization["requested_by"]["party"], authorization["recipient"]["party"]}


class PrincipalStore:
    """Principals and the hashes of their keys, in the ledger's database."""

    def __init__(self, sql: SqlAccess, *, cache_seconds: float = 0.0) -> None:
        """``cache_seconds`` > 0 keeps each authenticated key's principal that long in this
        process (the API server does: one lookup per key and second, not per request); a key
        revoked by another process is then refused within that time, one revoked through
        this store at once."""
        self._sql = sql
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[Principal, float]] = {}

    def add(self, party: str, roles: str | Iterable[str], name: str | None = None) -> tuple[Principal, str]:
        """Make a principal and its API key; the key is returned here and never again.

        ``roles`` is a non-empty subset of :data:`ROLES`, as names or one
        comma-separated string.
        """
        party = _parse_party(party)
        role_set = _parse_roles(roles)
        if party == GLOBAL_PARTY and role_set & PARTY_ROLES:
            names = sorted(role_set & PARTY_ROLES)
            what = f"role {names[0]} acts" if len(names) == 1 else f"roles {', '.join(names)} act"
            raise PrincipalError(
                f"roles: {what} for one Party; party {GLOBAL_PARTY!r} (the whole ledger) cannot have "
                f"{'it' if len(names) == 1 else 'them'}"
            )
        name = _parse_name(name)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        principal = Principal(
            id="p_" + base64.b32encode(secrets.token_bytes(10)).decode("ascii")[:10].lower(),
            party=party,
            roles=role_set,
            name=name,
            created_at=_now(),
            revoked_at=None,
            key_prefix=key[:_DISPLAY_PREFIX_LENGTH],
        )
        self._sql.query(
            f"INSERT INTO {{api_principals}} ({_COLUMNS}, key_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (principal.id, principal.party, ",".join(sorted(role_set)), principal.name,
             principal.key_prefix, principal.created_at, None, _key_hash(key)),
            commit=True,
        )
        return principal, key

    def authenticate(self, key: str) -> Principal | None:
        """The principal holding ``key``, or None (unknown, revoked or malformed key).

        One hash and one lookup by the unique index on the hash, whatever the key.
        """
        if not isinstance(key, str) or not _KEY.match(key):
            return None
        key_hash = _key_hash(key)
        if self._cache_seconds > 0:
            cached = self._cache.get(key_hash)
            if cached is not None and cached[1] > time.monotonic():
                return cached[0]
        rows = self._sql.query(
            f"SELECT {_COLUMNS} FROM {{api_principals}} WHERE key_hash = ? AND revoked_at IS NULL",
            (key_hash,),
        )
        if not rows:
            self._cache.pop(key_hash, None)
            return None
        principal = _principal(rows[0])
        if self._cache_seconds > 0:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key_hash] = (principal, time.monotonic() + self._cache_seconds)
        return principal

    def get(self, principal_id: str) -> Principal | None:
        """A principal by id, revoked or not; None if there is none."""
        rows = self._sql.query(f"SELECT {_COLUMNS} FROM {{api_principals}} WHERE id = ?", (principal_id,))
        return _principal(rows[0]) if rows else None

    def list(self) -> list[Principal]:
        """Every principal, revoked ones included, oldest first."""
        rows = self._sql.query(f"SELECT {_COLUMNS} FROM {{api_principals}} ORDER BY created_at, id")
        return [_principal(row) for row in rows]

    def revoke(self, principal_id: str) -> Principal:
        """Revoke a principal's key: from now on it authenticates nothing."""
        with self._sql.datastore.transaction(commit=True) as cursor:
            # A write first takes the write lock on SQLite (and the row's lock on
            # PostgreSQL), so the check below cannot race another revocation.
            self._sql.run_in(
                cursor, "UPDATE {api_principals} SET revoked_at = revoked_at WHERE id = ?", (principal_id,)
            )
            rows = self._sql.run_in(cursor, f"SELECT {_COLUMNS} FROM {{api_principals}} WHERE id = ?",
                                    (principal_id,))
            if not rows:
                raise PrincipalError(f"no principal {principal_id!r}")
            principal = _principal(rows[0])
            if principal.revoked_at is not None:
                raise PrincipalError(f"principal {principal_id} was already revoked at {principal.revoked_at}")
            revoked_at = _now()
            self._sql.run_in(cursor, "UPDATE {api_principals} SET revoked_at = ? WHERE id = ?",
                             (revoked_at, principal_id))
        for key_hash, (cached, _) in list(self._cache.items()):
            if cached.id == principal_id:
                del self._cache[key_hash]
        return replace(principal, revoked_at=revoked_at)


#: Most keys kept by an authentication cache (it starts again empty beyond).
_CACHE_LIMIT = 10_000


def _key_hash(key: str) -> str:
    # Keys are 256 random bits, so a fast hash is right: there is no small
    # space of likely keys for a slow, salted hash to protect.
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def _now() -> str:
    return format_datetime(datetime.now(UTC))


def _parse_party(value: Any) -> str:
    if value == GLOBAL_PARTY:
        return value
    try:
        return parse_party(value, "party")
    except InvalidInput as e:
        raise PrincipalError(f"party: {e.detail} ({GLOBAL_PARTY!r} names the whole ledger)") from None


def _parse_roles(value: str | Iterable[str]) -> frozenset[str]:
    names = value.split(",") if isinstance(value, str) else list(value)
    roles = frozenset(str(name).strip() for name in names) - {""}
    unknown = sorted(roles - set(ROLES))
    if unknown:
        raise PrincipalError(
            f"roles: unknown role{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"expected one or more of {', '.join(ROLES)}"
        )
    if not roles:
        raise PrincipalError(f"roles: at least one is required, of {', '.join(ROLES)}")
    return roles


def _parse_name(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PrincipalError(f"name: must be a string, got {type(value).__name__}")
    if not value.strip():
        return None
    if len(value) > _MAX_NAME:
        raise PrincipalError(f"name: {len(value)} characters long; the limit is {_MAX_NAME}")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise PrincipalError("name: contains control characters")
    return value.strip()


def _principal(row: dict[str, Any]) -> Principal:
    return Principal(
        id=row["id"],
        party=row["party"],
        roles=frozenset(row["roles"].split(",")),
        name=row["name"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        key_prefix=row["key_prefix"],
    )
