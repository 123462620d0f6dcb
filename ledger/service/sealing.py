"""Event format 2: personal values sealed on the way to the store, opened on the way to a reader.

:class:`SealingMapper` is eventsourcing's mapper with one step more. For an
event whose class declares ``PERSONAL`` fields (``domain.model``,
``domain.personal``), each personal value in the state to be stored is
replaced by a salted commitment, a ``personal_data`` member says which fields
were sealed, in which class, under which key and until when, and one opening
per class is encrypted under a data key (``ledger.tlog.commitment``). The
opening rows, and the rows of data keys made for them, are inserted in the
same transaction as the events (the recorder's ``also_insert``): an event and
its openings commit together or not at all. The in-memory aggregate keeps its
clear values; one loaded from the store holds the commitments, which is all
the rules need (no rule reads a personal value).

:class:`Opener` does the reverse for readers: it finds the commitments in a
view, decrypts the openings of the aggregates named, checks that each opens
its commitment, and puts the values back; an erased field reads as erased,
with when and under which erasure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import Mapper, StoredEvent

from domain.personal import ACTOR_LOG, SUBJECT_DATA, actor_log_until, commitments_in, get_path, set_path
from domain.values import format_datetime
from ledger.storage.keyring import OPEN_BUCKET, Keyring
from ledger.storage.personal import DataKeyRow, ErasedField, PersonalDataStore, key_row, opening_row
from ledger.tlog.commitment import (
    Committer,
    SealError,
    canonical_json,
    new_key,
    new_key_id,
    new_salts,
    opening_aad,
    opening_plaintext,
    seal_plaintext,
    unseal_openings,
    unwrap_key,
    wrap_key,
)
from ledger.tlog.leaf import originator_id_text

PERSONAL_DATA_FORMAT = "transfer-ledger/personal-data/v1"


def subject_scope(transfer_id: UUID | str) -> str:
    return f"{SUBJECT_DATA}:{transfer_id}"


def actor_scope(until: date) -> str:
    """The log of who acted, of every event due on the same day, shares one data key."""
    return f"{ACTOR_LOG}:{until.isoformat()}"


def bucket_of(until: date | None) -> str:
    """The key-encryption key's bucket: the month the data are due, or ``open``."""
    return f"{until.year:04d}-{until.month:02d}" if until is not None else OPEN_BUCKET


@dataclass
class _Pending:
    """Data keys made for the events of the save under way (not committed yet)."""

    keys: dict[str, tuple[str, AESGCM]]
    rows: list[tuple[str, Any]]
    created_at: str  # of the keys made in the save
    keks: dict[str, Any] = field(default_factory=dict)  # by bucket: the KEKs found live in the save


class Sealer:
    """Seals the personal values of the events an application saves (event format 2)."""

    def __init__(self, store: PersonalDataStore, keyring: Keyring,
                 log_retention_years: Callable[[str], int], now: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.keyring = keyring
        self.log_retention_years = log_retention_years
        self.now = now or (lambda: datetime.now(UTC))
        self._local = threading.local()
        self._wrappers: dict[str, AESGCM] = {}  # by KEK id: AES-GCM objects made once
        # The actor-log keys of the days events are due, committed: a key of day D seals the
        # events recorded 3 years (the Party's period) before D, and is destroyed only once D
        # has passed, so a process never writes under a key destroyed meanwhile.
        self._day_keys: dict[str, tuple[str, AESGCM]] = {}

    # -- one save ------------------------------------------------------------------

    def begin(self, rows: list[tuple[str, Any]], aggregates: dict[Any, Any]) -> None:
        """The save under way in this thread: rows to insert with it, its aggregates by id."""
        self._local.pending = _Pending({}, rows, format_datetime(self.now()))
        self._local.aggregates = aggregates

    def end(self, committed: bool) -> None:
        """The save is over: the day keys it made are kept for the next saves if it committed."""
        pending: _Pending | None = self._local.pending
        if committed and pending is not None:
            for scope, made in pending.keys.items():
                if scope.startswith(ACTOR_LOG + ":"):
                    self._day_keys[scope] = made
        self._local.pending = None
        self._local.aggregates = None

    def _key(self, scope: str, until: date | None, *, new_aggregate: bool) -> tuple[str, AESGCM]:
        """The data key of ``scope``: made in this save, stored and live, or new (without a
        query when the scope is a new aggregate's own)."""
        pending: _Pending = self._local.pending
        made = pending.keys.get(scope) or self._day_keys.get(scope)
        if made is not None:
            return made
        stored = None if new_aggregate else self.store.live_key(scope)
        if stored is not None:
            key = self.unwrap(stored)
            if key is not None:
                pending.keys[scope] = (stored.key_id, AESGCM(key))
                return pending.keys[scope]
        key_id, key, row = self.new_data_key(scope, until, pending.created_at)
        pending.rows.append(row)
        pending.keys[scope] = (key_id, AESGCM(key))
        return pending.keys[scope]

    def new_data_key(self, scope: str, until: date | None,
                     created_at: str | None = None) -> tuple[str, bytes, tuple[str, tuple[Any, ...]]]:
        """A fresh data key for ``scope``, wrapped under the KEK of the bucket ``until`` falls in:
        its id, the key, and the row that stores it (to insert with what it seals)."""
        bucket = bucket_of(until)
        pending: _Pending | None = getattr(self._local, "pending", None)
        kek = pending.keks.get(bucket) if pending is not None else None
        if kek is None:
            kek = self.keyring.for_bucket(bucket)  # checks that its file is there: once per save
            if pending is not None:
                pending.keks[bucket] = kek
        wrapper = self._wrappers.get(kek.kek_id)
        if wrapper is None:
            wrapper = self._wrappers[kek.kek_id] = AESGCM(kek.key)
        key_id, key = new_key_id(), new_key()
        row = key_row(key_id, scope, kek.kek_id, bucket, wrap_key(wrapper, key_id, scope, key),
                      created_at or format_datetime(self.now()))
        return key_id, key, row

    def unwrap(self, row: DataKeyRow) -> bytes | None:
        """A stored data key, unwrapped; None once destroyed (or its KEK is)."""
        if row.wrapped is None:
            return None
        kek = self.keyring.by_id(row.kek_id, row.bucket)
        if kek is None:
            return None
        return unwrap_key(kek.key, row.key_id, row.scope, row.wrapped)

    # -- one event -------------------------------------------------------------------

    def seal(self, event: Any, state: dict[str, Any], originator_id: str, version: int) -> None:
        """Replace the personal values of ``state`` (the event's, about to be encoded) by
        commitments, and queue the openings' rows. Each value is written in JCS once: its
        commitment and its opening are computed from the same bytes."""
        personal: dict[str, str] = getattr(type(event), "PERSONAL", {})
        pending: _Pending | None = getattr(self._local, "pending", None)
        if pending is None:
            raise RuntimeError("an event with personal data saved outside a sealed save")
        present = [(path, retention_class, value) for path, retention_class in personal.items()
                   if (value := get_path(state, path)) is not None]
        if not present:
            return
        oid = originator_id_text(originator_id)
        commit_to = Committer(oid, version)
        by_class: dict[str, list[tuple[str, bytes, bytes]]] = {}
        fields: dict[str, str] = {}
        for salt, (path, retention_class, value) in zip(new_salts(len(present)), present, strict=True):
            value_json = canonical_json(value)
            set_path(state, path, commit_to(salt, path, value, value_json))  # the event's own dicts stay
            by_class.setdefault(retention_class, []).append((path, salt, value_json))
            fields[path] = retention_class
        block: dict[str, Any] = {"format": PERSONAL_DATA_FORMAT, "fields": fields}
        aggregate = self._local.aggregates.get(event.originator_id)
        for retention_class, sealed_fields in by_class.items():
            if retention_class == SUBJECT_DATA:
                of_transfer = getattr(aggregate, "subject_scope", None) if aggregate is not None else None
                of_transfer = str(of_transfer or originator_id)
                until_text = state.get("retention_until") if of_transfer == oid else None
                until = date.fromisoformat(until_text) if until_text else None
                key_id, key = self._key(subject_scope(of_transfer), until,
                                        new_aggregate=version == 1 and of_transfer == oid)
                info: dict[str, Any] = {"key_id": key_id, "of_transfer": of_transfer}
                if of_transfer == oid:
                    info["until"] = until_text
            else:
                log_until = getattr(type(event), "LOG_UNTIL", None)
                if log_until is not None:  # a log with a period of its own (the consultation logs)
                    until = date.fromisoformat(state[log_until])
                else:
                    acting = get_path(state, getattr(type(event), "ACTING", "") + ".party")
                    acted_at = getattr(event, "timestamp", None) or self.now()
                    until = actor_log_until(acted_at, self.log_retention_years(str(acting)))
                key_id, key = self._key(actor_scope(until), until, new_aggregate=False)
                info = {"key_id": key_id, "until": until.isoformat()}
            block[retention_class] = info
            pending.rows.append(opening_row(
                oid, version, retention_class, key_id,
                seal_plaintext(key, opening_aad(oid, version, retention_class, key_id),
                               opening_plaintext(sealed_fields)),
            ))
        state["personal_data"] = block


class SealingMapper(Mapper[UUID]):
    """eventsourcing's mapper, sealing personal values when a :class:`Sealer` is set."""

    sealer: Sealer | None = None
    #: Set for a ledger of event format 2 opened without its data keys: nothing personal is written.
    refuse_personal_data = False

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        sealer = self.sealer
        if sealer is None or not getattr(type(domain_event), "PERSONAL", None):
            if self.refuse_personal_data and getattr(type(domain_event), "PERSONAL", None):
                raise SealError("this ledger stores personal data sealed (event format 2): "
                                "open it with its data-key directory (DATA_KEYS_DIR)")
            return super().to_stored_event(domain_event)
        event_state = dict(vars(domain_event))
        originator_id = event_state.pop("originator_id")
        originator_version = event_state.pop("originator_version")
        sealer.seal(domain_event, event_state, originator_id, originator_version)
        stored_state = self.transcoder.encode(event_state)
        if self.compressor:
            stored_state = self.compressor.compress(stored_state)
        if self.cipher:
            stored_state = self.cipher.encrypt(stored_state)
        topic = type(domain_event).TOPIC
        return StoredEvent(originator_id=originator_id, originator_version=originator_version, topic=topic,
                           state=stored_state)


# -- reading ------------------------------------------------------------------------


def _replaced(doc: Any, values: dict[str, Any]) -> Any:
    if isinstance(doc, dict):
        return {k: _replaced(v, values) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_replaced(v, values) for v in doc]
    if isinstance(doc, str) and doc in values:
        return values[doc]
    return doc


@dataclass(frozen=True)
class Opened:
    """What the store holds of some aggregates' personal data."""

    values: dict[str, Any]  # commitment -> value
    fields: dict[str, ErasedField]  # commitment -> where it is (openings that opened)
    salts: dict[str, bytes]  # commitment -> its salt (what an export writes beside the value)


class Opener:
    """Opens the commitments of views for readers allowed to see personal data."""

    def __init__(self, store: PersonalDataStore, sealer: Sealer,
                 erasure_leaf: Callable[[str, int], int | None]) -> None:
        self.store = store
        self.sealer = sealer
        self.erasure_leaf = erasure_leaf

    def opened(self, originator_ids: Iterable[UUID | str]) -> Opened:
        """Decrypt the openings of these aggregates' events; only those that open their commitment count."""
        values: dict[str, Any] = {}
        fields: dict[str, ErasedField] = {}
        salts: dict[str, bytes] = {}
        keys: dict[str, bytes | None] = {}
        for row in self.store.openings(originator_id_text(i) if isinstance(i, UUID) else i for i in originator_ids):
            if row.key is None:
                continue
            if row.key_id not in keys:
                try:
                    keys[row.key_id] = self.sealer.unwrap(row.key)
                except SealError:
                    keys[row.key_id] = None
            key = keys[row.key_id]
            if key is None:
                continue
            try:
                openings = unseal_openings(
                    key, opening_aad(row.originator_id, row.originator_version, row.retention_class, row.key_id),
                    row.sealed)
            except SealError:
                continue
            commit_to = Committer(row.originator_id, row.originator_version)
            for path, o in openings.items():
                token = commit_to(o.salt, path, o.value)
                values[token] = o.value
                fields[token] = ErasedField(token, row.originator_id, row.originator_version, path,
                                            row.retention_class)
                salts[token] = o.salt
        return Opened(values, fields, salts)

    def open(self, doc: Any, originator_ids: Iterable[UUID | str]) -> Any:
        """``doc`` with each commitment of these aggregates' events replaced by its value, or,
        where it was erased, by what says so: ``{"erased": {...}, "commitment": ...}``."""
        tokens = commitments_in(doc)
        if not tokens:
            return doc
        opened = self.opened(originator_ids)
        values: dict[str, Any] = dict(opened.values)
        missing = tokens - values.keys()
        if missing:
            leaves: dict[tuple[str, int], int | None] = {}
            for row in self.store.erased(missing):
                where = (row.erasure_id, row.erasure_version)
                if where not in leaves:
                    leaves[where] = self.erasure_leaf(*where)
                values[row.commitment] = {
                    "erased": {"erased_at": row.erased_at, "leaf_index": leaves[where],
                               "erasure": {"originator_id": row.erasure_id, "version": row.erasure_version},
                               "retention_class": row.retention_class},
                    "commitment": row.commitment,
                }
        return _replaced(doc, values)
