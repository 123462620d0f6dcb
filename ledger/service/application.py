"""The event-sourced application: commands and queries of the ledger.

Commands (imperative): :meth:`TransferLedger.record_transfer`,
:meth:`~TransferLedger.request_authorization`, :meth:`~TransferLedger.decide`,
:meth:`~TransferLedger.revoke`, :meth:`~TransferLedger.set_party_policy`.
Queries: :meth:`~TransferLedger.get_transfer` (with origin and ancestors),
:meth:`~TransferLedger.get_authorization` (with its uses).

Every command parses its input (``domain.values``), applies the named rules
(``domain.rules``) and saves all it changed in one call, i.e. one database
transaction that also appends the ledger's leaves. An onward transfer and the
grant's ``Used`` event are saved together: if a revocation (or another use of
the last permitted transfer) committed first, the grant's version has moved,
the save fails with a conflict, and the command checks again against the
grant as it now stands. So a revocation that commits first always wins
(docs/DOMAIN.md, point 7).
"""

from __future__ import annotations

import asyncio
import functools
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, cast
from uuid import UUID

import rfc8785
from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
)
from eventsourcing.persistence import Mapper, Notification, RecordConflictError

from domain.consultation import DEFAULT_CONSULTATION_LOG_YEARS
from domain.custody import handling_codes
from domain.errors import DomainError, InvalidInput, NotFound
from domain.model import ActorLog, Authorization, PartyPolicy, Transfer, party_policy_id
from domain.parties import Actor, Official, parse_party
from domain.personal import (
    ACTOR_LOG,
    DEFAULT_LOG_RETENTION_YEARS,
    SUBJECT_DATA,
    check_erasure_by_party,
    check_erasure_possible,
    check_not_erased,
    check_not_restricted,
    check_notice_addressed_to,
    check_notice_unacknowledged,
    check_restricted,
    commitments_in,
    get_path,
    is_due,
    notice_parties,
    strings_in,
)
from domain.regimes import DEFAULT_REGIME, urgent_exception_problem
from domain.rules import (
    authorization_required,
    check_categories_received,
    check_conditions_within_request,
    check_decided_by_origin,
    check_decision_signature,
    check_holder_received_parent,
    check_not_to_self,
    check_onward_transfer_authorized,
    check_pending,
    check_refusal_reasoned,
    check_request_consistent,
    check_revocable,
    check_written_instrument,
    decision_document,
    origin_of,
    refuse,
    written_form_required,
)
from domain.values import (
    AcknowledgementDraft,
    AuthorizationRequestDraft,
    DecisionDraft,
    ErasureDraft,
    RestrictionDraft,
    RevocationDraft,
    TransferDraft,
    format_datetime,
    parse_uuid,
)
from ledger.service.consultations import ConsultationLogWriter
from ledger.service.control import ControlCommands
from ledger.service.custody import CustodyCommands
from ledger.service.group_commit import GroupCommitter
from ledger.service.preservation import PreservationCommands
from ledger.service.referrals import ReferralCommands
from ledger.service.sealing import Opener, Sealer, SealingMapper, subject_scope
from ledger.storage.high_water import HighWater
from ledger.storage.idempotency import (
    IdempotencyClaim,
    IdempotencyRecord,
    IdempotencyStore,
)
from ledger.storage.keyring import OPEN_BUCKET, Keyring
from ledger.storage.personal import DataKeyRow, ErasedField, OpeningRow, PersonalDataStore, opening_row
from ledger.storage.reads import LedgerReads
from ledger.storage.sql import SqlAccess
from ledger.storage.store import LedgerStore, ReadOnly
from ledger.tlog.commitment import Opening, commit, opening_aad, seal_openings, unseal_openings
from ledger.tlog.leaf import AppendedLeaf
from ledger.tlog.note import NoteError, Verifier


def signed_decision_bytes(authorization_id: str, origin: str, draft: DecisionDraft) -> bytes:
    """The message a Party signs for a decision: RFC 8785 of the decision document."""
    return rfc8785.dumps(
        decision_document(
            authorization_id, origin, draft.decision, draft.decided_by.as_dict(), draft.reasons,
            draft.granted_conditions.as_dict(),
        )
    )


#: Values a JSON encoder writes as they are, between quotes (see TransferLedger._scan).
_VERBATIM_IN_JSON = re.compile(r"[A-Za-z0-9-]+")

#: How often a command is re-checked after losing a race to another writer.
MAX_ATTEMPTS = 100


class _NothingLeft(Exception):
    """What a retention step was to destroy is gone already (another process did it)."""


class AlreadyDone(Exception):
    """A concurrent request with the same idempotency key recorded first."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__("already done")
        self.status, self.body = status, body


@dataclass
class Prepared:
    """A command checked against the ledger as it stands, ready to be saved.

    ``events`` are its new domain events in the order they are appended;
    ``respond`` makes the command's answer once the leaves are known.
    """

    events: list[Any]
    aggregates: tuple[Any, ...]
    idempotency_row: tuple[str, Sequence[Any]] | None
    idempotency: IdempotencyClaim | None
    respond: Callable[[dict[tuple[str, int], AppendedLeaf]], dict[str, Any]]
    #: Statements run in the save's transaction (an erasure destroys its keys there).
    statements: list[tuple[str, Sequence[Any]]] = field(default_factory=list)
    #: Run after the commit (an erasure journals its keys and clears the SQLite WAL).
    after_commit: Callable[[], None] | None = None
    #: Rows inserted with the events (the consultation log's index rows).
    rows: list[tuple[str, Sequence[Any]]] = field(default_factory=list)


#: A command's preparation: load what it needs, apply the rules, make its events.
Prepare = Callable[[], Prepared]


#: Who the retention job names as the officer who erased (the job acts under the holder's policy).
RETENTION_OFFICER = "transfer-ledger retention run"


def _log_retention_years(env: Any) -> Callable[[str], int]:
    """The log-retention period of a Party, in years: ``LOG_RETENTION_YEARS_BY_PARTY``
    (``RU=5,FR=3``), else ``LOG_RETENTION_YEARS``, else three (LED art. 25)."""
    default = int(env.get("LOG_RETENTION_YEARS") or DEFAULT_LOG_RETENTION_YEARS)
    by_party: dict[str, int] = {}
    for item in (env.get("LOG_RETENTION_YEARS_BY_PARTY") or "").split(","):
        if item.strip():
            party, _, years = item.partition("=")
            by_party[party.strip()] = int(years)
    return lambda party: by_party.get(party, default)


def _consultation_log_years(env: Any) -> int:
    """How long consultation logs are kept, in years: ``CONSULTATION_LOG_YEARS``, else three."""
    return int(env.get("CONSULTATION_LOG_YEARS") or DEFAULT_CONSULTATION_LOG_YEARS)


#: Seconds a Party's justification policy is held in memory (``justification_required``).
POLICY_CACHE_SECONDS = 5.0

_UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _ids_in(doc: Any) -> set[str]:
    """The aggregate ids (hyphenated UUIDs) a JSON-like document names."""
    return strings_in(doc, _UUID_TEXT.fullmatch)


#: The transfer's own subject-data fields (domain.model): what an erasure of it destroys.
_SUBJECT_PATHS = tuple(path for path, kind in Transfer.Recorded.PERSONAL.items() if kind == SUBJECT_DATA)


def _erased_in(view: dict[str, Any]) -> bool:
    """Whether a transfer's view shows one of its subject-data fields as erased (the opener's marker)."""
    return any(isinstance(v, dict) and "erased" in v for v in (get_path(view, p) for p in _SUBJECT_PATHS))


def _texts(value: Any) -> list[str]:
    """The texts of an opened value (a string, or a list of them) worth scrubbing from stored answers."""
    texts = value if isinstance(value, list) else [value]
    return [t for t in texts if isinstance(t, str) and len(t) >= 4]


def _fields_of(row: OpeningRow, openings: dict[str, Opening]) -> list[ErasedField]:
    """The commitments an opening row opens, as an erasure names them."""
    return [ErasedField(commit(o.salt, row.originator_id, row.originator_version, path, o.value),
                        row.originator_id, row.originator_version, path, row.retention_class)
            for path, o in openings.items()]


def _erased_by_event(fields: Iterable[ErasedField]) -> list[dict[str, Any]]:
    """An erasure event's ``erased``: the commitments by event, in event order."""
    by_event: dict[tuple[str, int], dict[str, str]] = {}
    for f in fields:
        by_event.setdefault((f.originator_id, f.originator_version), {})[f.path] = f.commitment
    return [{"originator_id": oid, "originator_version": version, "commitments": commitments}
            for (oid, version), commitments in sorted(by_event.items())]


def _insert_statement(table: str, values: Sequence[Any]) -> str:
    """An ``also_insert`` row as a statement of its own (run in order with an erasure's)."""
    return "INSERT INTO {" + table + "} VALUES (" + ",".join("?" * len(values)) + ")"


def _leaves_by_event(appended: list[AppendedLeaf]) -> dict[tuple[str, int], AppendedLeaf]:
    return {(leaf.originator_id, leaf.originator_version): leaf for leaf in appended}


@dataclass(frozen=True)
class TransferKeys:
    """The legal keys a search of transfers names (each None: any); all must match.

    ``authority`` matches the sender's or the recipient's authority; ``handling_code`` a code
    of ``handling.use_restrictions`` (free text counts as H3, ``domain.custody.handling_code``);
    ``until`` keeps transfers made before that time.
    """

    request_reference: str | None = None
    proceeding: str | None = None
    authority: str | None = None
    legal_basis: str | None = None
    regime: str | None = None
    handling_code: str | None = None
    until: datetime | None = None

    def match(self, view: dict[str, Any]) -> bool:
        if self.request_reference is not None and view.get("request_reference") != self.request_reference:
            return False
        if self.proceeding is not None and (view.get("purpose") or {}).get("proceeding") != self.proceeding:
            return False
        if self.authority is not None and self.authority not in (
            view["sender"].get("authority"), view["recipient"].get("authority")
        ):
            return False
        if self.legal_basis is not None and view.get("legal_basis") != self.legal_basis:
            return False
        if self.regime is not None and view.get("regime") != self.regime:
            return False
        if self.handling_code is not None and self.handling_code not in handling_codes(
            (view.get("handling") or {}).get("use_restrictions") or ()
        ):
            return False
        return self.until is None or datetime.fromisoformat(view["transferred_at"]) < self.until


class TransferLedger(CustodyCommands, PreservationCommands, ReferralCommands, ControlCommands, Application[UUID]):
    """The ledger of transfers and authorizations (art. 36 §3), uses and consents (art. 40 §19),
    preservations (art. 42), third-country referrals (art. 43) and internal control checks
    (Order 949, annex 3)."""

    name = "TransferLedger"

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(env)
        #: ``serve --read-only`` (``READ_ONLY``, a replica): nothing is written (:class:`ReadOnly`).
        self.read_only = self.store.read_only = (
            getattr(self.store, "read_only", False) or self.env.get("READ_ONLY", "") in ("y", "yes", "1", "true"))
        if self.env.get("CHECKPOINT_HIGH_WATER"):  # every checkpoint stored raises the data dir's record
            cast(LedgerReads, self.recorder).high_water = HighWater(self.env["CHECKPOINT_HIGH_WATER"])
        self.clock = clock or (lambda: datetime.now(UTC))
        self._idempotency: IdempotencyStore | None = None
        self._open_personal_data()
        self._committer: GroupCommitter | None = None
        self._write_lock = threading.Lock()
        # In the group-commit thread, while a batch is prepared: the aggregates
        # that earlier commands of the batch changed (not yet saved).
        self._batch = threading.local()
        self._justification_policy: dict[str, tuple[bool, float]] = {}
        self.consultations = ConsultationLogWriter(self, years=_consultation_log_years(self.env))

    # -- group commit ------------------------------------------------------------

    def start_group_commit(self, *, max_batch: int = 64, max_queue: int = 256) -> GroupCommitter:
        """From now on, commands are written in batches by one committer thread.

        Concurrent callers of the commands each wait for their own batch's
        commit; when ``max_queue`` commands are waiting, a command raises
        :class:`~ledger.service.group_commit.Overloaded` at once (nothing recorded).
        """
        if self._committer is None:
            self._committer = GroupCommitter(self._execute_batch, max_batch=max_batch, max_queue=max_queue)
            self._committer.start()
        return self._committer

    @property
    def committer(self) -> GroupCommitter | None:
        return self._committer

    def close(self) -> None:
        """Write the consultations logged and what is queued, stop the committer, close the database."""
        self.consultations.close()
        if self._committer is not None:
            self._committer.close()
            self._committer = None
        super().close()

    # -- personal data (event format 2, domain/personal.py) -------------------------

    def construct_mapper(self) -> Mapper[UUID]:
        return self.factory.mapper(transcoder=self.construct_transcoder(), mapper_class=SealingMapper)

    def _open_personal_data(self) -> None:
        """The ledger's event format, and for format 2 what seals and opens its personal data.

        ``DATA_KEYS_DIR`` (the data dir's ``data-keys``, from ``ledger.config``) holds the
        key-encryption keys. A ledger without events opened with it is started in event
        format 2; one opened without it, or one that has events of format 1, stays in format 1.
        """
        self.personal = PersonalDataStore(SqlAccess(self.recorder))
        keys_dir = self.env.get("DATA_KEYS_DIR")
        self.event_format = self.personal.event_format(2 if keys_dir else 1, self.store.head().size == 0)
        self.keyring: Keyring | None = Keyring(keys_dir) if keys_dir else None
        self.sealer: Sealer | None = None
        self.opener: Opener | None = None
        self.erasures_reapplied = 0
        mapper = self.mapper
        assert isinstance(mapper, SealingMapper)
        if self.event_format == 2:
            if self.keyring is None:
                mapper.sealer = None
                mapper.refuse_personal_data = True
                return
            years = _log_retention_years(self.env)
            self.sealer = Sealer(self.personal, self.keyring, years)
            self.opener = Opener(self.personal, self.sealer, self._erasure_leaf)
            mapper.sealer = self.sealer
            # Before anything is served: a database restored from a backup older than an
            # erasure gets it again (the journal in the data dir remembers it).
            self.erasures_reapplied = self.reapply_erasures()

    def _erasure_leaf(self, transfer_id: str, version: int) -> int | None:
        leaf = self.store.leaf_of_event(UUID(transfer_id), version)
        return leaf.leaf_index if leaf is not None else None

    def _record(self, processing_event: ProcessingEvent[UUID]) -> Any:
        """Record as eventsourcing does; in event format 2 the openings (and any new data
        keys) go into the same transaction, as rows to insert with the events."""
        if self.sealer is None:
            return super()._record(processing_event)
        rows = list(processing_event.saved_kwargs.get("also_insert", ()))
        processing_event.saved_kwargs["also_insert"] = rows
        self.sealer.begin(rows, dict(processing_event.aggregates))
        committed = False
        try:
            recordings = super()._record(processing_event)
            committed = True
            return recordings
        finally:
            self.sealer.end(committed)

    def open_personal(self, view: dict[str, Any], *aggregate_ids: UUID | str) -> dict[str, Any]:
        """``view`` with the personal values of these aggregates' events opened (format 2)."""
        if self.opener is None:
            return view
        return self.opener.open(view, aggregate_ids)  # type: ignore[no-any-return]

    def open_event_state(self, originator_id: str, state: dict[str, Any]) -> dict[str, Any]:
        """A stored event state with its personal values opened (``verify_ledger``'s ``open_state``)."""
        return self.open_personal(state, originator_id)

    def open_personal_named(self, doc: dict[str, Any]) -> dict[str, Any]:
        """``doc`` with the personal values of every aggregate it names (by id) opened."""
        if self.opener is None or not commitments_in(doc):
            return doc
        return self.open_personal(doc, *_ids_in(doc))

    async def run_async(self, prepare: Prepare) -> dict[str, Any]:
        """Run a planned command from an event loop: in the next batch, without a thread of
        the caller's waiting (the committer's writer thread writes it)."""
        if self._committer is not None:
            return await self._committer.submit_async(prepare)  # type: ignore[no-any-return]
        return await asyncio.to_thread(self._execute, prepare)

    def _run(self, prepare: Prepare) -> dict[str, Any]:
        """Prepare and save a command: in the next batch, or now on its own."""
        if self._committer is not None:
            return self._committer.submit(prepare)  # type: ignore[no-any-return]
        return self._execute(prepare)

    def _execute(self, prepare: Prepare) -> dict[str, Any]:
        """Prepare and save one command; prepare again if another writer committed first."""
        if self.read_only:
            raise ReadOnly("this server is read-only (a replica): nothing was recorded; "
                           "send commands to the primary")
        for attempt in range(MAX_ATTEMPTS):
            appended: list[AppendedLeaf] = []
            try:
                # One command of this process at a time from prepare to commit: every append is
                # serialized by the database anyway, and threads racing for one aggregate would
                # otherwise keep overtaking one another's reads (another process still can).
                with self._write_lock:
                    prepared = prepare()
                    self._save_prepared([prepared], appended)
            except RecordConflictError:
                done = self.replay(prepared.idempotency) if prepared.idempotency is not None else None
                if done is not None:
                    raise AlreadyDone(*done) from None
                # A decision, revocation or use committed first: check again, after a random
                # pause that grows with the attempts, so that writers racing for one grant
                # do not keep colliding in step.
                time.sleep(random.uniform(0, 0.001 * min(attempt + 1, 20)))
                continue
            return prepared.respond(_leaves_by_event(appended))
        raise RuntimeError("could not record the command: too much contention")

    def _execute_batch(self, prepares: Sequence[Prepare]) -> list[tuple[Any, BaseException | None]]:
        """Prepare commands one after another, each seeing the ones before it, and
        save them all in one transaction (one durable commit).

        Answers (results and refusals alike) are given only after the commit, as
        a refusal may rest on an earlier command of the batch. If the batch
        cannot be saved (another process wrote first, or two requests repeat an
        idempotency key), nothing of it was written, and each command runs again
        on its own.
        """
        if len(prepares) == 1:
            return [self._outcome(prepares[0])]
        outcomes = self._saved_together(prepares)
        if outcomes is None:  # nothing of the batch was saved
            if self._committer is not None:
                self._committer.stats.batches_rerun += 1
            return [self._outcome(prepare) for prepare in prepares]
        return outcomes

    def _saved_together(self, prepares: Sequence[Prepare], *, all_or_nothing: bool = False
                        ) -> list[tuple[Any, BaseException | None]] | None:
        """Stage the commands and save those not refused in one transaction: one (result, refusal)
        each; None when the transaction failed (nothing saved). With ``all_or_nothing``, a refusal
        saves nothing (the others' results are then None)."""
        staged = self._stage(prepares)
        if all_or_nothing and any(not isinstance(item, Prepared) for item in staged):
            return [(None, item) if isinstance(item, BaseException) else (None, None) for item in staged]
        ready = [item for item in staged if isinstance(item, Prepared)]
        appended: list[AppendedLeaf] = []
        try:
            if ready:
                self._save_prepared(ready, appended)
        except Exception:  # noqa: BLE001 - the caller runs them again, or reports it
            if all_or_nothing:
                raise
            return None
        leaves = _leaves_by_event(appended)
        return [(item.respond(leaves), None) if isinstance(item, Prepared) else (None, item) for item in staged]

    def _stage(self, prepares: Sequence[Prepare]) -> list[Prepared | BaseException]:
        """Prepare the commands one after another, each seeing the aggregates the ones before it
        changed; a refusal in place of each refused one."""
        staged: list[Prepared | BaseException] = []
        pending: dict[UUID, Any] = {}
        self._batch.pending = pending
        try:
            for prepare in prepares:
                try:
                    prepared = prepare()
                except Exception as error:  # noqa: BLE001 - answered after the commit
                    staged.append(error)
                    continue
                pending.update((aggregate.id, aggregate) for aggregate in prepared.aggregates)
                staged.append(prepared)
        finally:
            self._batch.pending = None
        return staged

    def record_planned(self, prepares: Sequence[Prepare], *, all_or_nothing: bool = False
                       ) -> list[tuple[Any, BaseException | None]]:
        """Run planned commands as one batch outside group commit (a bulk import): prepared in
        order, the ones not refused saved in one transaction; one (result, refusal) each. With
        ``all_or_nothing``, a refusal saves nothing (the others' results are then None)."""
        with self._write_lock:
            outcomes = self._saved_together(prepares, all_or_nothing=all_or_nothing)
        if outcomes is None:  # another writer came first: each again on its own (re-checked, idempotent)
            return [self._outcome(prepare) for prepare in prepares]
        return outcomes

    def _outcome(self, prepare: Prepare) -> tuple[Any, BaseException | None]:
        try:
            return self._execute(prepare), None
        except Exception as error:  # noqa: BLE001 - given to the caller
            return None, error

    def _save_prepared(self, prepared: Sequence[Prepared], appended: list[AppendedLeaf]) -> None:
        """Save the commands' events with their idempotency rows, in one transaction."""
        events = [event for item in prepared for event in item.events]
        rows = (*(item.idempotency_row for item in prepared if item.idempotency_row is not None),
                *(row for item in prepared for row in item.rows))
        statements = [statement for item in prepared for statement in item.statements]
        # As Application.save, for events already collected from their aggregates: save()
        # would check every object against two runtime protocols first (~20 µs an event).
        processing = ProcessingEvent[UUID]()
        processing.events.extend(events)
        processing.aggregates.update((aggregate.id, aggregate) for item in prepared for aggregate in item.aggregates)
        processing.saved_kwargs.update(leaf_sink=appended, also_insert=rows)
        if statements:
            processing.saved_kwargs["also_run"] = statements
        recordings = self._record(processing)
        for item in prepared:
            if item.after_commit is not None:
                item.after_commit()
        self._take_snapshots(processing)
        self._notify(recordings)

    def _prepared(
        self,
        *aggregates: Any,
        resource: Any,
        kind: str,
        idempotency: IdempotencyClaim | None,
        respond: Callable[[dict[tuple[str, int], AppendedLeaf]], dict[str, Any]],
    ) -> Prepared:
        changed = tuple(aggregate for aggregate in aggregates if aggregate is not None)
        events = [event for aggregate in changed for event in aggregate.collect_events()]
        row = (
            IdempotencyStore.row_for(idempotency, kind, str(resource.id), resource.version)
            if idempotency is not None
            else None
        )
        return Prepared(events, changed, row, idempotency, respond)

    @property
    def store(self) -> LedgerStore:
        """The tamper-evident store: leaves, nodes, head and checkpoints."""
        return self.recorder  # type: ignore[return-value]

    @property
    def idempotency(self) -> IdempotencyStore:
        if self._idempotency is None:
            self._idempotency = IdempotencyStore(SqlAccess(self.recorder))
        return self._idempotency

    # -- idempotency -----------------------------------------------------------

    def replay(self, claim: IdempotencyClaim) -> tuple[int, dict[str, Any]] | None:
        """The first response to this key, if the command was already done.

        Raises :class:`~ledger.storage.idempotency.IdempotencyKeyReused` if the key
        named another request.
        """
        record = self.idempotency.lookup(claim)
        return None if record is None else self._response_of(record)

    def remember_refusal(self, claim: IdempotencyClaim, status: int, body: dict[str, Any]) -> None:
        """Store a refusal, so a retry with the same key gets the same answer."""
        self.idempotency.save_refusal(claim, status, body)

    def _response_of(self, record: IdempotencyRecord) -> tuple[int, dict[str, Any]]:
        if record.response is not None:
            return record.status_code, record.response
        assert record.resource_id is not None
        if record.resource_kind == "preservation":
            return record.status_code, self.get_preservation(record.resource_id, version=record.resource_version)
        if record.resource_kind == "control-plan":
            return record.status_code, self.get_control_plan(record.resource_id, version=record.resource_version)
        if record.resource_kind == "control-check":
            return record.status_code, self.get_control_check(record.resource_id, version=record.resource_version)
        if record.resource_kind == "transfer":
            transfer = self._get_transfer(UUID(record.resource_id), "id")
            return record.status_code, self._transfer_view(transfer)
        if record.resource_kind is not None and record.resource_kind.startswith("notice:"):
            notice = record.resource_kind.split(":", 1)[1]
            transfer = self._get_transfer(UUID(record.resource_id), "id")
            return record.status_code, next(n for n in self._notices_of(transfer) if n["id"] == notice)
        if record.resource_kind is not None and record.resource_kind.startswith("use:"):
            transfer = self._get_transfer(UUID(record.resource_id), "id")
            return record.status_code, self._use_view(transfer, record.resource_kind.split(":", 1)[1])
        if record.resource_kind == "referral":
            return record.status_code, self.get_referral(record.resource_id)
        if record.resource_kind == "consent-request":
            consent = self.repository.get(UUID(record.resource_id), version=record.resource_version)
            return record.status_code, self.open_personal(self._consent_fields(consent), consent.id)
        authorization = self.repository.get(UUID(record.resource_id), version=record.resource_version)
        return record.status_code, self._authorization_view(authorization)

    # -- commands --------------------------------------------------------------

    def record_transfer(self, data: Any, *, idempotency: IdempotencyClaim | None = None) -> dict[str, Any]:
        """Record a transfer; an onward transfer only under the origin's grant."""
        return self._run(self.plan_record_transfer(data, idempotency=idempotency))

    def plan_record_transfer(self, data: Any, *, idempotency: IdempotencyClaim | None = None) -> Prepare:
        """Parse the request now (refusing bad input); the preparation to run, alone or in a batch."""
        now = self.clock()
        draft = TransferDraft.parse(data, now=now)
        check_not_to_self(draft.sender, draft.recipient)
        return lambda: self._prepare_transfer(draft, now, idempotency)

    def _prepare_transfer(
        self, draft: TransferDraft, now: datetime, idempotency: IdempotencyClaim | None
    ) -> Prepared:
        transfer, authorization, consent = self._checked_transfer(draft, now)

        def respond(leaves: dict[tuple[str, int], AppendedLeaf]) -> dict[str, Any]:
            return self._transfer_view(transfer, leaves[(str(transfer.id), 1)])

        return self._prepared(consent, transfer, authorization, resource=transfer, kind="transfer",
                              idempotency=idempotency, respond=respond)

    def _checked_transfer(self, draft: TransferDraft, now: datetime
                          ) -> tuple[Transfer, Authorization | None, Any]:
        """The transfer ``draft`` describes, checked by the rules of art. 36 §3 (and H2), the grant
        it is made under and the provider's consent for H2 data (their uses triggered), to be saved
        together, the consent first."""
        parent = self._parent_of(draft)
        origin = origin_of(draft.sender.party, parent)
        authorization = self._authorization_for(draft, parent, origin, now)
        consent = self.provider_consent_for(draft, parent, origin)
        transfer = Transfer.record(draft, parent, origin)
        if authorization is not None:
            # Saved with the transfer: if a revocation or the grant's last use
            # commits first, the grant's version has moved and the save fails.
            authorization.record_use(transfer.id)
        if consent is not None:
            consent.record_use(transfer.id)  # saved before the transfer: its leaf comes first (projections.custody)
        return transfer, authorization, consent

    def request_authorization(
        self, data: Any, *, idempotency: IdempotencyClaim | None = None
    ) -> dict[str, Any]:
        """Record the holder's notification of intention and request (art. 36 §3)."""
        return self._run(self.plan_request_authorization(data, idempotency=idempotency))

    def plan_request_authorization(self, data: Any, *, idempotency: IdempotencyClaim | None = None) -> Prepare:
        draft = AuthorizationRequestDraft.parse(data)

        def prepare() -> Prepared:
            parent = self._get_transfer(draft.parent_transfer_id, "parent_transfer_id")
            check_not_erased(parent.erasure is not None, str(parent.id), "parent_transfer_id")
            check_request_consistent(draft, parent)
            authorization = Authorization.requested(draft, parent)
            return self._authorization_prepared(authorization, idempotency)

        return prepare

    def decide(
        self, authorization_id: Any, data: Any, *, idempotency: IdempotencyClaim | None = None
    ) -> dict[str, Any]:
        """The origin grants (with conditions) or refuses (with reasons) a request."""
        return self._run(self.plan_decide(authorization_id, data, idempotency=idempotency))

    def plan_decide(
        self, authorization_id: Any, data: Any, *, idempotency: IdempotencyClaim | None = None
    ) -> Prepare:
        auth_id = parse_uuid(authorization_id, "authorization_id")
        draft = DecisionDraft.parse(data)
        check_refusal_reasoned(draft)

        def prepare() -> Prepared:
            authorization = self._get_authorization(auth_id, "authorization_id")
            check_decided_by_origin(draft.decided_by, authorization, "decided_by")
            check_pending(authorization)
            signature = self._checked_signature(authorization, draft)
            if draft.decision == "granted":
                check_conditions_within_request(draft.granted_conditions, authorization)
                parent = self._get_transfer(authorization.parent_transfer_id, "parent_transfer_id")
                required = written_form_required(
                    parent.origin_requires_written_form, self._policy_requires_writing(authorization.origin)
                )
                check_written_instrument(
                    draft.granted_conditions, required, authorization.origin, signed=signature is not None
                )
                authorization.grant(draft.decided_by, draft.granted_conditions, draft.reasons, signature)
            else:
                authorization.refuse(draft.decided_by, draft.reasons or "", signature)
            return self._authorization_prepared(authorization, idempotency)

        return prepare

    def revoke(
        self, authorization_id: Any, data: Any, *, idempotency: IdempotencyClaim | None = None
    ) -> dict[str, Any]:
        """The origin revokes a grant; later onward transfers under it are refused."""
        return self._run(self.plan_revoke(authorization_id, data, idempotency=idempotency))

    def plan_revoke(
        self, authorization_id: Any, data: Any, *, idempotency: IdempotencyClaim | None = None
    ) -> Prepare:
        auth_id = parse_uuid(authorization_id, "authorization_id")
        draft = RevocationDraft.parse(data)

        def prepare() -> Prepared:
            authorization = self._get_authorization(auth_id, "authorization_id")
            check_decided_by_origin(draft.revoked_by, authorization, "revoked_by")
            check_revocable(authorization)
            authorization.revoke(draft.revoked_by, draft.reasons)
            return self._authorization_prepared(authorization, idempotency)

        return prepare

    def _authorization_prepared(
        self, authorization: Authorization, idempotency: IdempotencyClaim | None
    ) -> Prepared:
        # The answer shows the authorization as this command left it (a later
        # command of the same batch may change it again).
        view = self._authorization_view(authorization)
        return self._prepared(authorization, resource=authorization, kind="authorization",
                              idempotency=idempotency, respond=lambda _leaves: view)

    # -- erasure and restriction (domain/personal.py) ---------------------------------

    def erase_personal_data(
        self, transfer_id: Any, data: Any, *, idempotency: IdempotencyClaim | None = None
    ) -> dict[str, Any]:
        """Destroy a transfer's subject data (Order 949 §15): its data key, with the erasure event."""
        return self._run(self.plan_erase_personal_data(transfer_id, data, idempotency=idempotency))

    def plan_erase_personal_data(
        self, transfer_id: Any, data: Any, *, idempotency: IdempotencyClaim | None = None
    ) -> Prepare:
        tid = parse_uuid(transfer_id, "transfer_id")
        draft = ErasureDraft.parse(data)

        def prepare() -> Prepared:
            transfer = self._get_transfer(tid, "transfer_id")
            check_erasure_by_party(draft.erased_by, transfer.sender.party, transfer.recipient.party)
            key = self.personal.live_key(subject_scope(tid)) if self.sealer is not None else None
            check_not_erased(transfer.erasure is not None, str(tid))
            check_erasure_possible(key is not None, str(tid))
            check_not_restricted(transfer.restriction is not None, str(tid))
            assert key is not None
            return self._erasure_prepared(transfer, key, draft.ground, draft.erased_by, draft.reasons, idempotency)

        return prepare

    def _erasure_prepared(self, transfer: Transfer, key: DataKeyRow, ground: str, erased_by: Actor,
                          reasons: str, idempotency: IdempotencyClaim | None) -> Prepared:
        """The erasure event of ``key``'s data, with the statements that destroy the key and its
        openings in the same transaction, and what to journal once it commits."""
        opened = self._opened_under([key])
        fields = [f for row, openings in opened for f in _fields_of(row, openings)]
        retention_class = key.scope.split(":", 1)[0]
        notify = notice_parties(erased_by.party, transfer.origin, transfer.sender.party,
                                [d.recipient.party for d in self._descendants(transfer)])
        transfer.erase(retention_class, ground, erased_by, reasons, [key.key_id], _erased_by_event(fields), notify)
        erased_at = format_datetime(transfer.modified_on)
        statements = self._destroying([key], fields, [o for _, openings in opened for o in openings.values()],
                                      str(transfer.id), transfer.version, erased_at)

        def respond(_leaves: dict[tuple[str, int], AppendedLeaf]) -> dict[str, Any]:
            return self._transfer_view(self._get_transfer(transfer.id, "transfer_id"))

        prepared = self._prepared(transfer, resource=transfer, kind="transfer", idempotency=idempotency,
                                  respond=respond)
        prepared.statements = statements
        prepared.after_commit = self._after_erasure([key], fields, str(transfer.id), transfer.version, erased_at)
        return prepared

    def _opened_under(self, keys: Sequence[DataKeyRow]) -> list[tuple[OpeningRow, dict[str, Opening]]]:
        """The openings sealed under ``keys``, decrypted (none for a key already unreadable)."""
        assert self.sealer is not None
        out = []
        for key in keys:
            data_key = self.sealer.unwrap(key)
            for row in self.personal.openings_of_keys([key.key_id]):
                aad = opening_aad(row.originator_id, row.originator_version, row.retention_class, row.key_id)
                out.append((row, unseal_openings(data_key, aad, row.sealed) if data_key is not None else {}))
        return out

    def _destroying(self, keys: Sequence[DataKeyRow], fields: Sequence[ErasedField], openings: Iterable[Opening],
                    erasure_id: str, version: int, erased_at: str) -> list[tuple[str, Sequence[Any]]]:
        """The statements an erasure runs in its own transaction: the keys destroyed, their openings
        deleted, the commitments noted as erased, and stored answers that quoted a value scrubbed."""
        return [
            *self.personal.erasure_statements([k.key_id for k in keys], fields, erasure_id, version, erased_at),
            *self.idempotency.scrub_statements([t for o in openings for t in _texts(o.value)]),
        ]

    def _after_erasure(self, keys: Sequence[DataKeyRow], fields: Sequence[ErasedField], erasure_id: str,
                       version: int, erased_at: str) -> Callable[[], None]:
        """Once an erasure committed: journal it in the data dir (a restored database gets it again)
        and clear the SQLite WAL of the old pages."""
        keyring = self.keyring
        assert keyring is not None

        def after_commit() -> None:
            for key in keys:
                keyring.journal({
                    "key_id": key.key_id, "scope": key.scope,
                    "erasure": {"transfer_id": erasure_id, "version": version}, "erased_at": erased_at,
                    "fields": [[f.commitment, f.originator_id, f.originator_version, f.path, f.retention_class]
                               for f in fields],
                })
            self.store.clear_old_pages()

        return after_commit

    def _descendants(self, transfer: Transfer) -> list[Transfer]:
        """Every onward transfer of ``transfer``'s data, at any depth (a scan of its lineage)."""
        root = str(transfer.root_transfer_id)
        below, found = {transfer.id}, []
        for notification in self._notifications(Transfer.Recorded.TOPIC, mentions=(root,)):
            candidate = self._load(notification.originator_id)
            if candidate.parent_transfer_id in below:
                below.add(candidate.id)
                found.append(candidate)
        return found

    def list_notices(self, *, party: str | None, after: int = 0, limit: int = 50
                     ) -> tuple[list[dict[str, Any]], int | None]:
        """Erasure notices in commit order after a cursor: those addressed to ``party`` (all, if None)."""
        items: list[dict[str, Any]] = []
        mentions = (party,) if party is not None else ()
        for notification in self._notifications(Transfer.PersonalDataErased.TOPIC, after, mentions):
            transfer = self._get_transfer(notification.originator_id, "transfer_id")
            items.extend(n for n in self._notices_of(transfer) if party is None or n["party"] == party)
            if len(items) >= limit:
                return items, notification.id
        return items, None

    def _notices_of(self, transfer: Transfer) -> list[dict[str, Any]]:
        erasure = transfer.erasure
        if erasure is None:
            return []
        leaf = self._leaf(transfer.id, erasure["version"])["leaf_index"]
        acknowledged = transfer.acknowledged
        out = []
        for notice in erasure["notices"]:
            ack = acknowledged.get(notice["notice_id"])
            out.append({
                "id": notice["notice_id"], "party": notice["party"], "transfer_id": str(transfer.id),
                "ground": erasure["ground"], "erased_at": format_datetime(erasure["erased_at"]),
                "erasure_leaf_index": leaf,
                "acknowledgement": None if ack is None else {
                    "acknowledged_by": ack["acknowledged_by"],
                    "acknowledged_at": format_datetime(ack["acknowledged_at"]),
                    "leaf_index": self._leaf(transfer.id, ack["version"])["leaf_index"]},
            })
        return self.open_personal({"notices": out}, transfer.id)["notices"]  # type: ignore[no-any-return]

    def find_notice(self, notice: Any) -> tuple[Transfer, dict[str, Any]]:
        """The transfer whose erasure a notice tells of, and the notice; NotFound if none."""
        nid = str(parse_uuid(notice, "notice_id"))
        for notification in self._notifications(Transfer.PersonalDataErased.TOPIC, mentions=(nid,)):
            transfer = self._get_transfer(notification.originator_id, "transfer_id")
            for item in self._notices_of(transfer):
                if item["id"] == nid:
                    return transfer, item
        raise NotFound(f"no erasure notice {nid}", rule="notice-not-found", field="notice_id", values={"id": nid})

    def acknowledge_notice(self, notice: Any, data: Any, *, idempotency: IdempotencyClaim | None = None
                           ) -> dict[str, Any]:
        return self._run(self.plan_acknowledge_notice(notice, data, idempotency=idempotency))

    def plan_acknowledge_notice(self, notice: Any, data: Any, *, idempotency: IdempotencyClaim | None = None
                                ) -> Prepare:
        """The addressee acknowledges an erasure notice: an event on the erased transfer."""
        draft = AcknowledgementDraft.parse(data)
        nid = str(parse_uuid(notice, "notice_id"))

        def prepare() -> Prepared:
            transfer, item = self.find_notice(nid)  # read again at each attempt: the newest version
            check_notice_addressed_to(draft.acknowledged_by.party, item["party"], nid)
            check_notice_unacknowledged(nid in transfer.acknowledged, nid)
            transfer.acknowledge_notice(nid, draft.acknowledged_by)

            def respond(_leaves: dict[tuple[str, int], AppendedLeaf]) -> dict[str, Any]:
                return next(n for n in self._notices_of(self._get_transfer(transfer.id, "transfer_id"))
                            if n["id"] == nid)

            return self._prepared(transfer, resource=transfer, kind=f"notice:{nid}", idempotency=idempotency,
                                  respond=respond)

        return prepare

    def restrict_processing(
        self, transfer_id: Any, data: Any, *, lift: bool = False, idempotency: IdempotencyClaim | None = None
    ) -> dict[str, Any]:
        """Place (or lift) an evidence hold on a transfer's personal data (LED art. 16(3))."""
        return self._run(self.plan_restrict_processing(transfer_id, data, lift=lift, idempotency=idempotency))

    def plan_restrict_processing(
        self, transfer_id: Any, data: Any, *, lift: bool = False, idempotency: IdempotencyClaim | None = None
    ) -> Prepare:
        tid = parse_uuid(transfer_id, "transfer_id")
        draft = RestrictionDraft.parse(data)

        def prepare() -> Prepared:
            transfer = self._get_transfer(tid, "transfer_id")
            check_erasure_by_party(draft.by, transfer.sender.party, transfer.recipient.party, "by.party")
            check_not_erased(transfer.erasure is not None, str(tid))
            if lift:
                check_restricted(transfer.restriction is not None, str(tid))
                transfer.lift_restriction(draft.by, draft.reasons)
            else:
                check_not_restricted(transfer.restriction is not None, str(tid))
                transfer.restrict(draft.by, draft.reasons)

            def respond(_leaves: dict[tuple[str, int], AppendedLeaf]) -> dict[str, Any]:
                return self._transfer_view(transfer)

            return self._prepared(transfer, resource=transfer, kind="transfer", idempotency=idempotency,
                                  respond=respond)

        return prepare

    def retention_due(self, today: date) -> list[tuple[UUID, str]]:
        """The transfers whose subject data are past their ``retention_until`` on ``today`` and
        not yet erased (Order 949 §15), with whether each is ``due`` or ``held`` (a hold stands)."""
        if self.sealer is None:
            return []
        month = today.strftime("%Y-%m")
        found: list[tuple[UUID, str]] = []
        for key in self.personal.live_keys():
            if not key.scope.startswith(SUBJECT_DATA + ":") or key.bucket == OPEN_BUCKET or key.bucket > month:
                continue
            transfer = self._get_transfer(UUID(key.scope.split(":", 1)[1]), "transfer_id")
            until = transfer.data.get("retention_until")
            if transfer.erasure is None and is_due(date.fromisoformat(until) if until else None, today):
                found.append((transfer.id, "held" if transfer.restriction is not None else "due"))
        return sorted(found, key=lambda item: str(item[0]))

    def run_retention(self, today: date | None = None, *, dry_run: bool = False,
                      progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """The scheduled job: erase every transfer's subject data whose period has ended and that no
        hold covers, each with ground ``retention-expired`` under the recipient's name (the
        Party holding the data). Idempotent: what was erased is not due again."""
        today = today or self.clock().date()
        due = self.retention_due(today)
        report: dict[str, Any] = {"today": today.isoformat(), "dry_run": dry_run,
                                  "due": [str(t) for t, state in due if state == "due"],
                                  "held": [str(t) for t, state in due if state == "held"],
                                  "erased": [], "failed": []}
        todo = [t for t, state in due if state == "due"]
        report["actor_logs"] = [] if dry_run else self._erase_actor_logs(today)
        report["keks_destroyed"] = [] if dry_run else self._destroy_spent_keks(today)
        for done, transfer_id in enumerate(todo, 1):
            if not dry_run:
                try:
                    recipient = self._get_transfer(transfer_id, "transfer_id").recipient.party
                    self.erase_personal_data(transfer_id, {
                        "erased_by": {"party": recipient, "authority": f"{recipient}/retention-job",
                                      "officer": RETENTION_OFFICER},
                        "ground": "retention-expired",
                        "reasons": f"retention period ended ({today.isoformat()}); Order 949 §15",
                    })
                    report["erased"].append(str(transfer_id))
                except DomainError as error:  # a hold placed meanwhile, an erasure by hand meanwhile
                    report["failed"].append({"transfer_id": str(transfer_id), "rule": error.rule,
                                             "detail": error.detail})
            if progress is not None:
                progress(done, len(todo))
        return report

    def _erase_actor_logs(self, today: date) -> list[dict[str, Any]]:
        """Destroy the actor-log keys of every day that has passed (LED art. 25): one ActorLog
        event a day. The events of a transfer under a hold keep theirs: their openings are sealed
        again under a key of the transfer's own, in the same transaction, before the day's key goes."""
        if self.sealer is None:
            return []
        by_day: dict[str, list[DataKeyRow]] = {}
        for key in self.personal.live_keys():
            if key.scope.startswith(ACTOR_LOG + ":"):
                day = key.scope.split(":", 1)[1]
                if is_due(date.fromisoformat(day), today):
                    by_day.setdefault(day, []).append(key)
        done = []
        for day in sorted(by_day):
            try:
                done.append(self._run(functools.partial(self._actor_log_prepared, day)))
            except _NothingLeft:
                continue  # another process erased that day meanwhile
        return done

    def _destroy_spent_keks(self, today: date) -> list[str]:
        """Destroy the key-encryption key of every bucket whose month has passed and that wraps no
        live data key any more: an old backup of the database then opens nothing of that month
        (docs/decisions/0012-personal-data-erasure.md). The buckets destroyed."""
        assert self.keyring is not None
        month, live = today.strftime("%Y-%m"), self.personal.live_buckets()
        spent = [b for b in self.keyring.buckets() if b != OPEN_BUCKET and b < month and b not in live]
        return [bucket for bucket in spent if self.keyring.destroy(bucket) is not None]

    def _actor_log_prepared(self, day: str) -> Prepared:
        assert self.sealer is not None and self.keyring is not None
        keys = [k for k in self.personal.live_keys() if k.scope == f"{ACTOR_LOG}:{day}"]
        if not keys:
            raise _NothingLeft(day)
        erased: list[ErasedField] = []
        erased_openings: list[Opening] = []
        kept: list[dict[str, Any]] = []
        reseal: list[tuple[str, Sequence[Any]]] = []
        held_keys: dict[str, tuple[str, bytes]] = {}
        for row, openings in self._opened_under(keys):
            held = self._held_transfer_of(row.originator_id)
            if held is None or not openings:
                erased.extend(_fields_of(row, openings))
                erased_openings.extend(openings.values())
                continue
            scope = f"{ACTOR_LOG}-held:{held}"
            if scope not in held_keys:
                live = self.personal.live_key(scope)
                live_key = self.sealer.unwrap(live) if live is not None else None
                if live is not None and live_key is not None:
                    held_keys[scope] = (live.key_id, live_key)
                else:
                    key_id, fresh, (table, values) = self.sealer.new_data_key(scope, None)
                    reseal.append((_insert_statement(table, values), values))
                    held_keys[scope] = (key_id, fresh)
            key_id, held_key = held_keys[scope]
            table, values = opening_row(row.originator_id, row.originator_version, row.retention_class, key_id,
                                        seal_openings(held_key, opening_aad(row.originator_id, row.originator_version,
                                                                            row.retention_class, key_id), openings))
            reseal.append((_insert_statement(table, values), values))
            kept.append({"originator_id": row.originator_id, "originator_version": row.originator_version,
                         "held_by_transfer": held})
        log = ActorLog.erased(day, [k.key_id for k in keys], _erased_by_event(erased), kept)
        erased_at = format_datetime(log.created_on)
        # the day's openings go first (erasure statements), then the held ones come back under their own key
        statements = [*self._destroying(keys, erased, erased_openings, str(log.id), 1, erased_at), *reseal]

        def respond(_leaves: dict[tuple[str, int], AppendedLeaf]) -> dict[str, Any]:
            return {"until": day, "key_ids": [k.key_id for k in keys], "erased": len(erased), "kept": len(kept)}

        prepared = self._prepared(log, resource=log, kind="actor-log", idempotency=None, respond=respond)
        prepared.statements = statements
        prepared.after_commit = self._after_erasure(keys, erased, str(log.id), 1, erased_at)
        return prepared

    def _held_transfer_of(self, originator_id: str) -> str | None:
        """The transfer under a hold whose data an event is about, if any (itself, or an
        authorization's parent)."""
        try:
            aggregate = self._load(UUID(originator_id))
        except (AggregateNotFoundError, ValueError):
            return None
        scope = getattr(aggregate, "subject_scope", None)
        if scope is None:
            return None
        transfer = aggregate if isinstance(aggregate, Transfer) else self._load(scope)
        held = isinstance(transfer, Transfer) and transfer.restriction is not None  # (a preservation holds none)
        return str(transfer.id) if held else None

    def reapply_erasures(self) -> int:
        """Erasures the data dir's journal holds that this database does not: destroyed again
        (a database restored from an older backup), before anything is served. How many."""
        if self.keyring is None or self.event_format != 2 or self.read_only:
            return 0  # a read-only replica: the primary reapplies them, and they replicate
        count = 0
        for entry in self.keyring.journaled():
            live = [k for k in self.personal.keys([entry["key_id"]]) if k.wrapped is not None]
            if not live:
                continue
            fields = [ErasedField(*f) for f in entry.get("fields", [])]
            erasure = entry["erasure"]
            # As the erasure did: the key destroyed, its openings deleted, the commitments noted, and
            # the stored answers that quoted a value scrubbed (those its key-encryption key still opens).
            opened = [o for _, openings in self._opened_under(live) for o in openings.values()]
            self.personal.sql.script(self._destroying(live, fields, opened, erasure["transfer_id"],
                                                      erasure["version"], entry["erased_at"]))
            count += 1
        if count:
            self.store.clear_old_pages()
        return count

    def _checked_signature(self, authorization: Authorization, draft: DecisionDraft) -> dict[str, str] | None:
        """The decision's signature, verified under a key registered to the origin."""
        if draft.signature is None:
            return None
        policy = self._get_policy(authorization.origin)
        keys: dict[str, str] = dict(policy.keys) if policy is not None else {}
        vkey = keys.get(draft.signature.key)
        valid = vkey is not None and Verifier.from_vkey(vkey).verify(
            signed_decision_bytes(str(authorization.id), authorization.origin, draft), draft.signature.value
        )
        check_decision_signature(draft.signature.key, authorization.origin, list(keys), valid)
        return draft.signature.as_dict()

    def register_party_key(self, party: str, vkey: str, *, registered_by: Any) -> dict[str, Any]:
        """A Party registers an Ed25519 verifier key (C2SP vkey) to sign decisions with."""
        party = parse_party(party, "party")
        actor = Official.parse(registered_by, "registered_by")
        if actor.party != party:
            raise InvalidInput(
                f"{actor.party} cannot register a key for {party}", rule="not-own-policy",
                field="registered_by.party", values={"party": party, "registered_by": actor.party},
            )
        try:
            verifier = Verifier.from_vkey(vkey)
        except NoteError as e:
            raise InvalidInput(f"vkey: {e}", rule="invalid-vkey", field="vkey") from None
        key = f"{verifier.name}+{verifier.key_id:08x}"
        for _ in range(MAX_ATTEMPTS):
            policy = self._get_policy(party)
            if policy is None:
                policy = PartyPolicy._create(PartyPolicy.Registered, id=party_policy_id(party), party=party)
            if key in policy.keys:
                return {"party": party, "key": key, "vkey": policy.keys[key]}
            policy.register_key(verifier.vkey(), key, actor)
            try:
                self.save(policy)
            except RecordConflictError:
                continue
            return {"party": party, "key": key, "vkey": verifier.vkey()}
        raise RuntimeError("could not register the key: too much contention")

    def set_party_policy(self, party: str, *, written_authorization_required: bool | None = None,
                         justification_required: bool | None = None, set_by: Any) -> dict[str, Any]:
        """Record a Party's standing policy: on written authorizations (art. 36 §3), and on the
        justification of every read of personal data (LED art. 25(1)); None leaves one as it is."""
        party = parse_party(party, "party")
        actor = Official.parse(set_by, "set_by")
        if actor.party != party:
            raise InvalidInput(
                f"{actor.party} cannot set the policy of {party}",
                rule="not-own-policy",
                field="set_by.party",
                values={"party": party, "set_by": actor.party},
            )
        for _ in range(MAX_ATTEMPTS):
            policy = self._get_policy(party)
            if policy is None:
                policy = PartyPolicy._create(PartyPolicy.Registered, id=party_policy_id(party), party=party)
            if written_authorization_required is not None:
                policy.set_written_form_requirement(written_authorization_required, actor)
            if justification_required is not None:
                policy.set_justification_requirement(justification_required, actor)
            try:
                self.save(policy)
            except RecordConflictError:
                continue
            self._justification_policy.pop(party, None)
            return {"party": party, "written_authorization_required": policy.written_authorization_required,
                    "justification_required": getattr(policy, "justification_required", False)}
        raise RuntimeError("could not record the policy: too much contention")

    # -- queries ---------------------------------------------------------------

    def get_transfer(self, transfer_id: Any) -> dict[str, Any]:
        """A transfer with its origin, leaf index, ancestors (parent first) and the referral it was
        made under, if any."""
        transfer = self._get_transfer(parse_uuid(transfer_id, "transfer_id"), "transfer_id")
        view = self._transfer_view(transfer)
        ancestors = []
        parent_id = transfer.parent_transfer_id
        while parent_id is not None:
            parent = self._get_transfer(parent_id, "parent_transfer_id")
            ancestors.append(self._transfer_view(parent))
            parent_id = parent.parent_transfer_id
        view["ancestors"] = ancestors
        view["referral_id"] = self.referral_of(transfer.id)
        return view

    def get_authorization(self, authorization_id: Any) -> dict[str, Any]:
        """An authorization request, its decision, revocation and uses."""
        auth = self._get_authorization(parse_uuid(authorization_id, "authorization_id"), "authorization_id")
        return self._authorization_view(auth)

    def list_transfers(
        self,
        *,
        visible: Callable[[dict[str, Any]], bool],
        party: str | None = None,
        origin: str | None = None,
        since: datetime | None = None,
        after: int = 0,
        limit: int = 50,
        mentions: Sequence[str] = (),
        keys: TransferKeys | None = None,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Transfers in commit order after a cursor, filtered; and the next cursor.

        ``party`` matches the sender, the recipient or the origin; ``since``
        keeps transfers made at or after that time; ``keys`` the legal keys a
        search names (:class:`TransferKeys`). ``mentions``: values that every
        transfer ``visible`` keeps has in its recorded event (a Party, a root transfer
        id), used to pass over the others without loading them. Scans the event
        feed: the read models of ``projections/`` answer this faster.
        """
        def keep(view: dict[str, Any]) -> bool:
            if party is not None and party not in (
                view["sender"]["party"], view["recipient"]["party"], view["origin"]
            ):
                return False
            if origin is not None and view["origin"] != origin:
                return False
            if since is not None and datetime.fromisoformat(view["transferred_at"]) < since:
                return False
            if keys is not None and not keys.match(view):
                return False
            return visible(view)

        return self._scan(Transfer.Recorded.TOPIC, after, limit, self._transfer_view, keep,
                          [*mentions, *(v for v in (party, origin) if v is not None)])

    def list_authorizations(
        self,
        *,
        visible: Callable[[dict[str, Any]], bool],
        status: str | None = None,
        party: str | None = None,
        after: int = 0,
        limit: int = 50,
        mentions: Sequence[str] = (),
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Authorization requests in commit order after a cursor, filtered; and the next cursor.

        ``mentions`` as for :meth:`list_transfers`, of the request's event."""
        def keep(view: dict[str, Any]) -> bool:
            if status is not None and view["status"] != status:
                return False
            if party is not None and party not in (
                view["origin"], view["requested_by"]["party"], view["recipient"]["party"]
            ):
                return False
            return visible(view)

        return self._scan(Authorization.Requested.TOPIC, after, limit, self._authorization_view, keep,
                          [*mentions, party] if party is not None else mentions)

    def _scan(
        self,
        topic: str,
        after: int,
        limit: int,
        view_of: Callable[[Any], dict[str, Any]],
        keep: Callable[[dict[str, Any]], bool],
        mentions: Sequence[str] = (),
    ) -> tuple[list[dict[str, Any]], int | None]:
        """The views ``keep`` keeps of the aggregates whose first event has ``topic``.

        An event whose stored JSON lacks one of ``mentions`` (as a JSON string) is passed
        over without loading its aggregate: a bytes search instead of a query and a replay.
        Only where that test cannot miss: states stored as plain JSON (no compression or
        encryption), and values of letters, digits and hyphens (Party codes, UUIDs), which
        every JSON encoder writes as they are.
        """
        items: list[dict[str, Any]] = []
        for notification in self._notifications(topic, after, mentions):
            view = view_of(self.repository.get(notification.originator_id))
            if keep(view):
                items.append(view)
                if len(items) == limit:
                    return items, notification.id
        return items, None

    def _notifications(self, topic: str, after: int = 0, mentions: Sequence[str] = ()) -> Iterator[Notification]:
        """The stored events of ``topic`` after a cursor, in commit order, 500 a query; those whose
        stored JSON lacks one of ``mentions`` are passed over (see :meth:`_scan`)."""
        plain = self.mapper.compressor is None and self.mapper.cipher is None
        needles = [f'"{m}"'.encode() for m in mentions if plain and _VERBATIM_IN_JSON.fullmatch(m)]
        cursor = after
        while True:
            page = self.recorder.select_notifications(
                start=cursor, limit=500, topics=[topic], inclusive_of_start=False
            )
            for notification in page:
                if not needles or all(needle in notification.state for needle in needles):
                    yield notification
            if len(page) < 500:
                return
            cursor = page[-1].id

    # -- helpers ---------------------------------------------------------------

    def _parent_of(self, draft: TransferDraft) -> Transfer | None:
        if draft.parent_transfer_id is None:
            return None
        parent = self._get_transfer(draft.parent_transfer_id, "parent_transfer_id")
        check_not_erased(parent.erasure is not None, str(parent.id), "parent_transfer_id")
        check_holder_received_parent(draft.sender.party, parent, "sender.party")
        check_categories_received(draft.data_categories, parent)
        return parent

    def _authorization_for(
        self, draft: TransferDraft, parent: Transfer | None, origin: str, now: datetime
    ) -> Authorization | None:
        if draft.urgent is not None:  # LED art. 35(2), where the regime has it: no prior authorization
            refuse(urgent_exception_problem(parent.data.get("regime", DEFAULT_REGIME) if parent else None))
            if draft.authorization_id is not None:
                raise InvalidInput("an urgent transfer is made without prior authorization: leave authorization_id "
                                   "out, or urgent", rule="urgent-with-authorization", field="urgent",
                                   article="LED art. 35(2)")
            return None
        needed = parent is not None and authorization_required(
            origin, draft.sender.party, draft.recipient.party
        )
        if not needed:
            if draft.authorization_id is not None:
                reason = (
                    "a first transfer needs no authorization"
                    if parent is None
                    else f"returning data to their origin {origin} (or the origin sending its own data) "
                    "needs no authorization"
                )
                raise InvalidInput(
                    f"authorization_id given, but {reason}",
                    rule="authorization-not-needed",
                    field="authorization_id",
                    article="art. 36 §3",
                )
            return None
        assert parent is not None
        authorization = (
            self._get_authorization(draft.authorization_id, "authorization_id")
            if draft.authorization_id is not None
            else None
        )
        required = written_form_required(
            parent.origin_requires_written_form, self._policy_requires_writing(origin)
        )
        check_onward_transfer_authorized(draft, origin, authorization, written_required=required, now=now)
        return authorization

    def _load(self, aggregate_id: UUID) -> Any:
        """An aggregate as it stands: changed by an earlier command of the batch
        being prepared in this thread, or as stored."""
        pending = getattr(self._batch, "pending", None)
        if pending:
            aggregate = pending.get(aggregate_id)
            if aggregate is not None:
                return aggregate
        return self.repository.get(aggregate_id)

    def _get_transfer(self, transfer_id: UUID, field: str) -> Transfer:
        try:
            aggregate = self._load(transfer_id)
        except AggregateNotFoundError:
            raise NotFound(f"no transfer {transfer_id}", rule="transfer-not-found", field=field,
                           values={"id": str(transfer_id)}) from None
        if not isinstance(aggregate, Transfer):
            raise NotFound(f"{transfer_id} is not a transfer", rule="transfer-not-found", field=field,
                           values={"id": str(transfer_id)})
        return aggregate

    def _get_authorization(self, authorization_id: UUID, field: str) -> Authorization:
        try:
            aggregate = self._load(authorization_id)
        except AggregateNotFoundError:
            raise NotFound(
                f"no authorization request {authorization_id}",
                rule="authorization-not-found",
                field=field,
                values={"id": str(authorization_id)},
            ) from None
        if not isinstance(aggregate, Authorization):
            raise NotFound(
                f"{authorization_id} is not an authorization request",
                rule="authorization-not-found",
                field=field,
                values={"id": str(authorization_id)},
            )
        return aggregate

    def _get_policy(self, party: str) -> PartyPolicy | None:
        try:
            policy = self._load(party_policy_id(party))
        except AggregateNotFoundError:
            return None
        assert isinstance(policy, PartyPolicy)
        return policy

    def justification_required(self, party: str) -> bool:
        """Whether the Party's policy requires a justification for every read of personal data
        (held for a few seconds: another process's change is seen within ``POLICY_CACHE_SECONDS``)."""
        now = time.monotonic()
        cached = self._justification_policy.get(party)
        if cached is not None and now - cached[1] < POLICY_CACHE_SECONDS:
            return cached[0]
        policy = self._get_policy(party)
        required = bool(policy is not None and getattr(policy, "justification_required", False))
        self._justification_policy[party] = (required, now)
        return required

    def _policy_requires_writing(self, party: str) -> bool:
        policy = self._get_policy(party)
        return bool(policy and policy.written_authorization_required)

    def _leaf(self, aggregate_id: UUID, version: int) -> dict[str, Any]:
        leaf = self.store.leaf_of_event(aggregate_id, version)
        if leaf is None:
            return {"leaf_index": None, "recorded_at": None}
        return {"leaf_index": leaf.leaf_index, "recorded_at": leaf.recorded_at}

    def _transfer_view(self, transfer: Transfer, appended: AppendedLeaf | None = None, *,
                       reread: bool = False) -> dict[str, Any]:
        view: dict[str, Any] = {"id": str(transfer.id), **transfer.data}
        view.pop("origin_requires_written_form", None)
        if appended is not None:
            view.update(leaf_index=appended.leaf_index, recorded_at=appended.recorded_at)
        else:
            view.update(self._leaf(transfer.id, 1))
        erasure, restriction = transfer.erasure, transfer.restriction
        view["uses"] = self.use_views(transfer)
        urgent_notice = transfer.urgent_notice
        if urgent_notice is not None:
            version = urgent_notice.pop("version")
            urgent_notice["leaf_index"] = self._leaf(transfer.id, version)["leaf_index"]
        view["urgent_notice"] = urgent_notice
        view["erasure"] = view["restriction"] = None
        if erasure is not None:
            version = erasure.pop("version")
            view["erasure"] = {**erasure, "erased_at": format_datetime(erasure["erased_at"]),
                               "leaf_index": self._leaf(transfer.id, version)["leaf_index"]}
        if restriction is not None:
            version = restriction.pop("version")
            view["restriction"] = {**restriction, "restricted_at": format_datetime(restriction["restricted_at"]),
                                   "leaf_index": self._leaf(transfer.id, version)["leaf_index"]}
        if appended is not None:
            return view  # just recorded by this process: its values are in memory, in clear
        opened = self.open_personal(view, transfer.id)
        if erasure is None and not reread and _erased_in(opened):
            # An erasure committed between loading the transfer and opening its values: read it
            # again, so that no answer shows half an erasure. (Still none: a database restored
            # from before the erasure, which the data dir's journal re-applied.)
            return self._transfer_view(self.repository.get(transfer.id), reread=True)
        return opened

    def _authorization_view(self, auth: Authorization) -> dict[str, Any]:
        return self.open_personal(self._authorization_fields(auth), auth.id)

    def _authorization_fields(self, auth: Authorization) -> dict[str, Any]:
        request = auth.request
        decision = auth.decision
        conditions = decision["conditions"] if decision else None
        max_transfers = conditions.get("max_transfers") if conditions else None
        return {
            "id": str(auth.id),
            "status": auth.status,
            "origin": auth.origin,
            "parent_transfer_id": request["parent_transfer_id"],
            "root_transfer_id": request["root_transfer_id"],
            "requested_by": request["requested_by"],
            "recipient": request["recipient"],
            "purpose": request["purpose"],
            "data_categories": request["data_categories"],
            "justification": request["justification"],
            "requested_at": format_datetime(auth.created_on),
            "decision": (
                {
                    "decision": decision["decision"],
                    "decided_by": decision["decided_by"],
                    "reasons": decision["reasons"],
                    "signature": decision.get("signature"),
                    "decided_at": format_datetime(decision["decided_at"]),
                }
                if decision
                else None
            ),
            "conditions": conditions,
            "revocation": (
                {**auth.revocation, "revoked_at": format_datetime(auth.revocation["revoked_at"])}
                if auth.revocation
                else None
            ),
            "uses": list(auth.uses),
            "remaining_transfers": (
                max(0, max_transfers - len(auth.uses)) if max_transfers is not None else None
            ),
            "version": auth.version,
        }
