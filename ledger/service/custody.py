"""The chain of custody's commands: uses of received data and consents to them (art. 40 §19).

:class:`CustodyCommands` is part of :class:`ledger.service.application.TransferLedger`
(a mixin, to keep these commands together): each command parses its draft at
once (bad input refused before anything is loaded), then prepares: loads what
it needs as it stands, applies the rules of ``domain.custody`` and makes the
events, saved in one transaction with what they guard.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from domain.custody import (
    HANDLING,
    Use,
    check_consent_decided_by_sender,
    check_consent_pending,
    check_consent_requested_by_recipient,
    check_used_by_recipient,
    exculpatory_notice_problem,
    h2_consent_needed,
    handling_codes,
    onward_transfer_not_consented,
    use_not_consented,
)
from domain.errors import InvalidInput, NotFound, RuleViolation
from domain.model import ConsentRequest, Transfer
from domain.personal import check_not_erased
from domain.regimes import check_urgent_notice_by_sender, check_urgent_notice_possible
from domain.rules import check_refusal_reasoned, refuse
from domain.values import (
    AfterNoticeDraft,
    ConsentDecisionDraft,
    ConsentRequestDraft,
    TransferDraft,
    UseDraft,
    check_not_in_future,
    format_datetime,
    parse_uuid,
)

if TYPE_CHECKING:
    from ledger.service.application import Prepare, Prepared
    from ledger.storage.idempotency import IdempotencyClaim
    from ledger.tlog.leaf import AppendedLeaf


class CustodyCommands:
    """Uses of received data, exculpatory notices, consent requests and decisions."""

    # -- uses -------------------------------------------------------------------

    def record_use(self, transfer_id: Any, data: Any, *, idempotency: IdempotencyClaim | None = None
                   ) -> dict[str, Any]:
        """The recipient records a use of the data it received (art. 40 §19)."""
        return self._run(self.plan_record_use(transfer_id, data, idempotency=idempotency))  # type: ignore[attr-defined]

    def plan_record_use(self, transfer_id: Any, data: Any, *, idempotency: IdempotencyClaim | None = None
                        ) -> Prepare:
        tid = parse_uuid(transfer_id, "transfer_id")
        now = self.clock()  # type: ignore[attr-defined]
        draft = UseDraft.parse(data).as_of(now)

        def prepare() -> Prepared:
            transfer: Transfer = self._get_transfer(tid, "transfer_id")  # type: ignore[attr-defined]
            check_used_by_recipient(draft.used_by.party, transfer.recipient.party, str(tid), "used_by.party")
            check_not_erased(transfer.erasure is not None, str(tid))
            use = Use(str(tid), draft.proceeding, draft.kind, draft.exculpatory,
                      str(draft.consent_id) if draft.consent_id else None)
            stated = transfer.purpose.proceeding
            notice = draft.notice
            assert draft.used_at is not None
            refuse(exculpatory_notice_problem(use, stated, notice.notified_at if notice else None,
                                              notice.prior_impossible if notice else None, draft.used_at))
            consent = self._get_consent(draft.consent_id, "consent_id") if draft.consent_id else None
            refuse(use_not_consented(use, stated, handling_codes(transfer.handling.use_restrictions),
                                     transfer.sender.party, consent.as_rule_input() if consent else None))
            use_id = transfer.record_use(draft)

            def respond(leaves: dict[tuple[str, int], AppendedLeaf]) -> dict[str, Any]:
                return self._use_view(transfer, use_id, leaves)

            return self._prepared(transfer, resource=transfer, kind=f"use:{use_id}",  # type: ignore[attr-defined]
                                  idempotency=idempotency, respond=respond)

        return prepare

    def give_use_notice(self, transfer_id: Any, use_id: Any, data: Any, *,
                        idempotency: IdempotencyClaim | None = None) -> dict[str, Any]:
        return self._run(self.plan_give_use_notice(  # type: ignore[attr-defined]
            transfer_id, use_id, data, idempotency=idempotency))

    def plan_give_use_notice(self, transfer_id: Any, use_id: Any, data: Any, *,
                             idempotency: IdempotencyClaim | None = None) -> Prepare:
        """The recipient records the notice of an exculpatory use, given after it (art. 40 §19)."""
        tid = parse_uuid(transfer_id, "transfer_id")
        uid = str(parse_uuid(use_id, "use_id"))
        draft, notified_at = self._notice_given(data)

        def prepare() -> Prepared:
            transfer: Transfer = self._get_transfer(tid, "transfer_id")  # type: ignore[attr-defined]
            check_used_by_recipient(draft.notified_by.party, transfer.recipient.party, str(tid),
                                    "notified_by.party")
            use = next((u for u in transfer.uses if u["id"] == uid), None)
            if use is None:
                raise NotFound(f"no use {uid} of transfer {tid}", rule="use-not-found", field="use_id",
                               values={"id": uid})
            pending = bool(use["exculpatory"] and (use["notice"] or {}).get("prior_impossible")
                           and not (use["notice"] or {}).get("notified_at"))
            if not pending:
                raise RuleViolation(
                    f"use {uid} awaits no notice: only an exculpatory use whose prior notice was impossible "
                    "is noticed after, once", rule="use-notice-not-pending", article="art. 40 §19")
            if notified_at < datetime.fromisoformat(use["used_at"]):
                raise InvalidInput("notified_at lies before the use: that would have been a prior notice",
                                   rule="notice-before-use", field="notified_at", article="art. 40 §19")
            transfer.give_use_notice(uid, draft.notified_by, notified_at)

            def respond(leaves: dict[tuple[str, int], AppendedLeaf]) -> dict[str, Any]:
                return self._use_view(transfer, uid, leaves)

            return self._prepared(transfer, resource=transfer, kind=f"use:{uid}",  # type: ignore[attr-defined]
                                  idempotency=idempotency, respond=respond)

        return prepare

    def _notice_given(self, data: Any) -> tuple[AfterNoticeDraft, datetime]:
        """A notice given after the fact, checked: its draft and when (now unless it says, not later)."""
        now = self.clock()  # type: ignore[attr-defined]
        draft = AfterNoticeDraft.parse(data)
        notified_at = draft.notified_at or now
        check_not_in_future(notified_at, now, "notified_at")
        return draft, notified_at

    def _use_view(self, transfer: Transfer, use_id: str,
                  leaves: dict[tuple[str, int], AppendedLeaf] | None = None) -> dict[str, Any]:
        use = next(u for u in self.use_views(transfer, leaves) if u["id"] == use_id)
        return self.open_personal(use, transfer.id)  # type: ignore[attr-defined,no-any-return]

    def use_views(self, transfer: Transfer,
                  leaves: dict[tuple[str, int], AppendedLeaf] | None = None) -> list[dict[str, Any]]:
        """A transfer's uses as the API shows them (personal values not opened yet)."""
        out = []
        for use in transfer.uses:
            version = use.pop("version")
            notice = dict(use["notice"]) if use["notice"] else None
            if notice is not None and "after_version" in notice:
                notice["leaf_index"] = self._leaf_index(transfer.id, notice.pop("after_version"), leaves)
            out.append({**use, "transfer_id": str(transfer.id), "notice": notice,
                        "leaf_index": self._leaf_index(transfer.id, version, leaves)})
        return out

    def _leaf_index(self, aggregate_id: UUID, version: int,
                    leaves: dict[tuple[str, int], AppendedLeaf] | None) -> int | None:
        appended = (leaves or {}).get((str(aggregate_id), version))
        if appended is not None:
            return appended.leaf_index
        return self._leaf(aggregate_id, version)["leaf_index"]  # type: ignore[attr-defined,no-any-return]

    # -- LED art. 35(2): informing the authorizing State of an urgent transfer -------

    def notify_urgent_transfer(self, transfer_id: Any, data: Any, *, idempotency: IdempotencyClaim | None = None
                               ) -> dict[str, Any]:
        return self._run(self.plan_notify_urgent_transfer(  # type: ignore[attr-defined]
            transfer_id, data, idempotency=idempotency))

    def plan_notify_urgent_transfer(self, transfer_id: Any, data: Any, *,
                                    idempotency: IdempotencyClaim | None = None) -> Prepare:
        """The sender of an urgent onward transfer records that the authorizing State (the origin)
        was informed (LED art. 35(2))."""
        tid = parse_uuid(transfer_id, "transfer_id")
        draft, notified_at = self._notice_given(data)

        def prepare() -> Prepared:
            transfer: Transfer = self._get_transfer(tid, "transfer_id")  # type: ignore[attr-defined]
            check_urgent_notice_by_sender(draft.notified_by.party, transfer.sender.party, str(tid),
                                          "notified_by.party")
            check_urgent_notice_possible(transfer.data.get("urgent") is not None, transfer.urgent_notice is not None,
                                         str(tid))
            transfer.notify_urgent_transfer(draft.notified_by, notified_at)

            def respond(_leaves: dict[tuple[str, int], AppendedLeaf]) -> dict[str, Any]:
                return self._transfer_view(self._get_transfer(tid, "transfer_id"))  # type: ignore[attr-defined]

            return self._prepared(transfer, resource=transfer, kind="transfer",  # type: ignore[attr-defined]
                                  idempotency=idempotency, respond=respond)

        return prepare

    # -- H2: the provider's consent to an onward transfer --------------------------

    def provider_consent_for(self, draft: TransferDraft, parent: Transfer | None, origin: str
                             ) -> ConsentRequest | None:
        """The consent an onward transfer of H2 data needs from the Party that sent them to the
        holder (``domain.custody.onward_transfer_not_consented``), loaded; None when none is needed."""
        consent = self._get_consent(draft.consent_id, "consent_id") if draft.consent_id else None
        if parent is None:
            if consent is not None:
                raise InvalidInput("consent_id given, but a first transfer needs no consent", rule="consent-not-needed",
                                   field="consent_id", article=HANDLING)
            return None
        codes = handling_codes(parent.handling.use_restrictions)
        if not h2_consent_needed(codes, parent.sender.party, origin, draft.recipient.party):
            if consent is not None:
                raise InvalidInput(
                    f"consent_id given, but this onward transfer needs no consent of {parent.sender.party} (H2 "
                    "applies only to data carrying it, passed on by a holder that did not get them from their origin)",
                    rule="consent-not-needed", field="consent_id", article=HANDLING)
            return None
        refuse(onward_transfer_not_consented(
            codes, parent.sender.party, origin, draft.recipient.party, draft.purpose.proceeding, str(parent.id),
            consent.as_rule_input() if consent else None))
        return consent

    # -- consent requests ----------------------------------------------------------

    def request_consent(self, data: Any, *, idempotency: IdempotencyClaim | None = None) -> dict[str, Any]:
        return self._run(self.plan_request_consent(data, idempotency=idempotency))  # type: ignore[attr-defined]

    def plan_request_consent(self, data: Any, *, idempotency: IdempotencyClaim | None = None) -> Prepare:
        """The recipient asks the sender's consent to another use (art. 40 §19)."""
        draft = ConsentRequestDraft.parse(data)

        def prepare() -> Prepared:
            transfer: Transfer = self._get_transfer(draft.transfer_id, "transfer_id")  # type: ignore[attr-defined]
            check_consent_requested_by_recipient(draft.requested_by.party, transfer.recipient.party,
                                                 str(transfer.id), "requested_by.party")
            check_not_erased(transfer.erasure is not None, str(transfer.id), "transfer_id")
            consent = ConsentRequest.requested(draft, transfer)
            return self._consent_prepared(consent, idempotency)

        return prepare

    def decide_consent(self, consent_id: Any, data: Any, *, idempotency: IdempotencyClaim | None = None
                       ) -> dict[str, Any]:
        return self._run(self.plan_decide_consent(  # type: ignore[attr-defined]
            consent_id, data, idempotency=idempotency))

    def plan_decide_consent(self, consent_id: Any, data: Any, *, idempotency: IdempotencyClaim | None = None
                            ) -> Prepare:
        """The requested Party grants (with conditions) or refuses (with reasons) a consent (art. 40 §25)."""
        cid = parse_uuid(consent_id, "consent_id")
        draft = ConsentDecisionDraft.parse(data)
        check_refusal_reasoned(draft)
        if draft.decision == "refused" and draft.conditions:
            raise InvalidInput("a refusal sets no conditions", rule="conditions-on-refusal", field="conditions")

        def prepare() -> Prepared:
            consent = self._get_consent(cid, "consent_id")
            check_consent_decided_by_sender(draft.decided_by.party, consent.sender, str(cid), "decided_by.party")
            check_consent_pending(str(cid), consent.status)
            consent.decide(draft)
            return self._consent_prepared(consent, idempotency)

        return prepare

    def get_consent_request(self, consent_id: Any) -> dict[str, Any]:
        consent = self._get_consent(parse_uuid(consent_id, "consent_id"), "consent_id")
        return self.open_personal(self._consent_fields(consent), consent.id)  # type: ignore[attr-defined,no-any-return]

    def _consent_prepared(self, consent: ConsentRequest, idempotency: IdempotencyClaim | None) -> Prepared:
        view = self._consent_fields(consent)  # as this command left it, in clear (just made in memory)

        def respond(leaves: dict[tuple[str, int], AppendedLeaf]) -> dict[str, Any]:
            view["leaf_index"] = self._leaf_index(consent.id, 1, leaves)
            if view["decision"] is not None:
                view["decision"]["leaf_index"] = self._leaf_index(consent.id, consent.version, leaves)
            return self.open_personal(view, consent.id)  # type: ignore[attr-defined,no-any-return]

        return self._prepared(consent, resource=consent, kind="consent-request",  # type: ignore[attr-defined]
                              idempotency=idempotency, respond=respond)

    def _consent_fields(self, consent: ConsentRequest) -> dict[str, Any]:
        request, decision = consent.request, consent.decision
        out = {
            "id": str(consent.id), "status": consent.status, "transfer_id": request["transfer_id"],
            "sender": request["sender"], "proceeding": request["proceeding"], "uses": list(request["uses"]),
            "recipient": request.get("recipient"), "transfers": list(getattr(consent, "transfers", [])),
            "requested_by": request["requested_by"], "reasons": request["reasons"],
            "requested_at": format_datetime(consent.created_on), "leaf_index": None, "decision": None,
        }
        if consent.version > 0 and self._persisted(consent):
            out["leaf_index"] = self._leaf(consent.id, 1)["leaf_index"]  # type: ignore[attr-defined]
        if decision is not None:
            version = decision.pop("version")
            out["decision"] = {**decision, "decided_at": format_datetime(decision["decided_at"]),
                               "leaf_index": self._leaf(consent.id, version)["leaf_index"]  # type: ignore[attr-defined]
                               if self._persisted(consent) else None}
        return out

    @staticmethod
    def _persisted(aggregate: Any) -> bool:
        return not getattr(aggregate, "_pending_events", None)

    def _get_consent(self, consent_id: UUID, field: str) -> ConsentRequest:
        try:
            aggregate = self._load(consent_id)  # type: ignore[attr-defined]
        except AggregateNotFoundError:
            aggregate = None
        if not isinstance(aggregate, ConsentRequest):
            raise NotFound(f"no consent request {consent_id}", rule="consent-request-not-found", field=field,
                           values={"id": str(consent_id)})
        return aggregate
