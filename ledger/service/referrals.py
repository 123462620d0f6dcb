"""The third-country referral's commands and reads (the Ministry's letter; art. 43 §1, art. 40 §4).

:class:`ReferralCommands` is part of :class:`ledger.service.application.TransferLedger`
(a mixin, as ``ledger.service.custody``): the command parses its draft and checks that
its Parties hold together at once (``domain.referral``), then prepares: the transfer to
the third Party is checked exactly as ``POST /v1/transfers`` checks one (art. 36 §3 for
data received: the same rules, the same refusals), and the transfer, the grant's use and
the referral are saved in one transaction: a refusal records none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from domain.errors import NotFound
from domain.model import Transfer
from domain.referral import Referral, ReferralDraft, check_referral_consistent, referral_id
from domain.rules import check_not_to_self
from domain.values import parse_uuid

if TYPE_CHECKING:
    from ledger.service.application import Prepare, Prepared
    from ledger.storage.idempotency import IdempotencyClaim
    from ledger.tlog.leaf import AppendedLeaf


class ReferralCommands:
    """Third-country referrals: the transfer to the third Party and the notice to the requesting Party."""

    def record_referral(self, data: Any, *, idempotency: IdempotencyClaim | None = None) -> dict[str, Any]:
        """Record a referral: its transfer and its notice, together."""
        return self._run(self.plan_record_referral(data, idempotency=idempotency))  # type: ignore[attr-defined,no-any-return]

    def plan_record_referral(self, data: Any, *, idempotency: IdempotencyClaim | None = None) -> Prepare:
        now = self.clock()  # type: ignore[attr-defined]
        draft = ReferralDraft.parse(data).as_of(now)
        check_referral_consistent(draft)
        check_not_to_self(draft.transfer.sender, draft.transfer.recipient)

        def prepare() -> Prepared:
            transfer, authorization, consent = self._checked_transfer(draft.transfer, now)  # type: ignore[attr-defined]
            referral = Referral.made(draft, transfer.id, transfer.origin)

            def respond(leaves: dict[tuple[str, int], AppendedLeaf]) -> dict[str, Any]:
                view = self._referral_fields(referral, leaves)
                view["transfer"] = self._transfer_view(transfer, leaves[(str(transfer.id), 1)])  # type: ignore[attr-defined]
                return view  # just recorded by this process: its values are in memory, in clear

            return self._prepared(consent, transfer, authorization, referral, resource=referral,  # type: ignore[attr-defined,no-any-return]
                                  kind="referral", idempotency=idempotency, respond=respond)

        return prepare

    # -- reads ------------------------------------------------------------------

    def get_referral(self, referral: Any) -> dict[str, Any]:
        """A referral with its transfer as ``GET /v1/transfers/{id}`` reads it (without ancestors)."""
        aggregate = self._get_referral(parse_uuid(referral, "referral_id"))
        return self._referral_view(aggregate)

    def list_referrals(
        self, *, visible: Callable[[dict[str, Any]], bool], party: str | None = None,
        third_party: str | None = None, after: int = 0, limit: int = 50, mentions: Sequence[str] = (),
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Referrals in commit order after a cursor, filtered; and the next cursor. ``party``
        matches any Party to the referral; ``mentions`` as for ``list_transfers``."""
        def keep(view: dict[str, Any]) -> bool:
            if party is not None and party not in referral_parties(view):
                return False
            if third_party is not None and view["third_party"] != third_party:
                return False
            return visible(view)

        named = [v for v in (party, third_party) if v is not None]
        return self._scan(Referral.Made.TOPIC, after, limit, self._referral_view, keep,  # type: ignore[attr-defined,no-any-return]
                          [*mentions, *named])

    def referral_of(self, transfer_id: UUID) -> str | None:
        """The id of the referral a transfer was made under, or None."""
        try:
            aggregate = self._load(referral_id(transfer_id))  # type: ignore[attr-defined]
        except AggregateNotFoundError:
            return None
        return str(aggregate.id) if isinstance(aggregate, Referral) else None

    def _referral_view(self, referral: Referral) -> dict[str, Any]:
        view = self.open_personal(self._referral_fields(referral), referral.id)  # type: ignore[attr-defined]
        transfer: Transfer = self._get_transfer(referral.transfer_id, "transfer_id")  # type: ignore[attr-defined]
        view["transfer"] = self._transfer_view(transfer)  # type: ignore[attr-defined]
        return view  # type: ignore[no-any-return]

    def _referral_fields(self, referral: Referral,
                         leaves: dict[tuple[str, int], AppendedLeaf] | None = None) -> dict[str, Any]:
        appended = (leaves or {}).get((str(referral.id), 1))
        leaf = ({"leaf_index": appended.leaf_index, "recorded_at": appended.recorded_at} if appended is not None
                else self._leaf(referral.id, 1))  # type: ignore[attr-defined]
        data = referral.data
        return {"id": str(referral.id), **data, "notice": dict(data["notice"]), **leaf}

    def _get_referral(self, ident: UUID) -> Referral:
        try:
            aggregate = self._load(ident)  # type: ignore[attr-defined]
        except AggregateNotFoundError:
            aggregate = None
        if not isinstance(aggregate, Referral):
            raise NotFound(f"no referral {ident}", rule="referral-not-found", field="referral_id",
                           values={"id": str(ident)})
        return aggregate


def referral_parties(view: dict[str, Any]) -> set[str]:
    """Who reads a referral: the requesting, referring and third Parties, and its transfer's origin."""
    return {view["requesting_party"], view["referring_party"], view["third_party"], view["origin"]}
