"""Each rule once: what the application refuses is exactly what the read
models find when the same event is written around the application.

Hypothesis writes histories of art. 36 §3: a first transfer, requests for
authorization, grants (with conditions), refusals, revocations, grants given
around the application (by another Party than the origin, or without the
written form the origin requires), and onward transfers of every kind. Each
onward transfer is first offered to the application; one it refuses is then
written around it, straight through eventsourcing. The findings of the read
models must then name exactly the transfers written around the application,
each with the rule the application refused it by, and nothing else.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from domain.errors import DomainError
from domain.rules import authorization_required
from ledger.config import eventsourcing_env
from ledger.service.application import TransferLedger
from tests.support import builders
from tests.support.backends import PG_URL, fresh_backend
from tests.support.world import around, around_grant, make_runner

#: The findings that mirror a refusal of the application (the others, like
#: flow-after-revocation, look at what the application lets through).
MIRRORED = ("onward-transfer-not-authorized", "lineage-inconsistent")
PARTIES = ["FR", "INTERPOL", "NL", "US", "BR", "DE"]
CATEGORIES = [["traffic"], ["subscriber"], ["subscriber", "traffic"], ["content"], ["traffic", "content"]]
PROCEEDINGS = [builders.PURPOSE["proceeding"], "another proceeding"]
VALID_UNTIL = [None, "2020-01-01T00:00:00Z", "2999-01-01T00:00:00Z"]

#: Where requests mostly go (a request to the origin, or to oneself, is refused as input).
ASKED = ["INTERPOL", "US", "BR", "NL", "INTERPOL", "DE"]
index = st.integers(0, 5)

#: A request by the Party that holds the data (the first steps of every history).
asking = st.tuples(st.just("request"), index, st.just("FR"), st.sampled_from(ASKED),
                   st.sampled_from([["traffic"], ["subscriber", "traffic"], *CATEGORIES]), st.just(True))

onward = st.tuples(st.just("onward"), index, st.sampled_from(PARTIES), st.sampled_from(PARTIES),
                   st.integers(-1, 5), st.sampled_from([["traffic"], *CATEGORIES]),
                   st.sampled_from([PROCEEDINGS[0], *PROCEEDINGS]),
                   st.sampled_from(["as asked", "as asked", "by the holder", "by anyone"]))

step = st.one_of(
    st.tuples(st.just("request"), index, st.sampled_from(PARTIES), st.sampled_from(ASKED),
              st.sampled_from([["traffic"], ["subscriber", "traffic"], *CATEGORIES]), st.booleans()),
    st.tuples(st.just("grant"), index, st.sampled_from([None, 1, 2]), st.sampled_from(VALID_UNTIL),
              st.sampled_from([None, ["traffic"], ["subscriber"]]), st.sampled_from([None, *PROCEEDINGS]),
              st.booleans()),
    st.tuples(st.just("refuse"), index),
    st.tuples(st.just("revoke"), index),
    st.tuples(st.just("grant-around"), index, st.sampled_from(["DE", "FR", "INTERPOL"])),
    *[onward] * 3,  # mostly onward transfers
)


def first_findings(ledger: TransferLedger) -> dict[str, str]:
    """The reason of each transfer's first finding, in the order the
    application checks: the lineage (the parent) first, then the grant. A
    transfer can break both (a Party that did not receive the data has no
    grant for them either); the application names the first."""
    runner = make_runner(ledger)
    runner.catch_up()
    found: dict[str, str] = {}
    for rule in reversed(MIRRORED):
        for finding in runner.db.query("SELECT transfer_id, reason FROM {proj_findings} WHERE rule = ?", (rule,)):
            found.setdefault(finding["transfer_id"], finding["reason"])
    return found


def pick(items: list[Any], index: int) -> Any:
    return items[index % len(items)] if items else None


def run_history(ledger: TransferLedger, written_policy: bool, steps: list[tuple[Any, ...]]) -> dict[str, str]:
    """Play the steps; the transfers written around the application, with the rule it refused each by."""
    if written_policy:
        ledger.set_party_policy("DE", written_authorization_required=True, set_by=builders.actor("DE"))
    transfers = [ledger.record_transfer(builders.transfer("DE", "FR"))]
    requests: list[dict[str, Any]] = []
    refused: dict[str, str] = {}
    for kind, *args in steps:
        try:
            if kind == "request":
                parent_index, holder, recipient, categories, by_holder = args
                parent = pick(transfers, parent_index)
                if by_holder:  # mostly, the Party that holds the data asks
                    holder = parent["recipient"]["party"]
                requests.append(ledger.request_authorization(builders.request(
                    holder, recipient, parent, data_categories=categories)))
            elif kind == "grant" and requests:
                index, most, until, categories, proceeding, written = args
                conditions: dict[str, Any] = {"max_transfers": most, "valid_until": until,
                                              "data_categories": categories}
                if proceeding is not None:
                    conditions["purpose"] = {"proceeding": proceeding, "description": "granted purpose"}
                if written:
                    conditions["written_instrument"] = {"reference": "BfJ 1/26", "sha256": "ab" * 32}
                ledger.decide(pick(requests, index)["id"], builders.grant("DE", **conditions))
            elif kind == "refuse" and requests:
                ledger.decide(pick(requests, args[0])["id"], builders.refuse("DE"))
            elif kind == "revoke" and requests:
                ledger.revoke(pick(requests, args[0])["id"], builders.revocation("DE"))
            elif kind == "grant-around" and requests:
                request = ledger.get_authorization(pick(requests, args[0])["id"])
                if request["status"] == "pending":
                    around_grant(ledger, request["id"], args[1])
        except DomainError:
            continue  # refused: nothing recorded, as for any client
        if kind != "onward":
            continue
        parent_index, sender, recipient, grant_index, categories, proceeding, who = args
        parent = pick(transfers, parent_index)
        grant = pick(requests, grant_index) if grant_index >= 0 else None
        if who == "as asked" and grant is not None:  # the transfer the grant's request asked for
            parent = next(t for t in transfers if t["id"] == grant["parent_transfer_id"])
            sender, recipient = grant["requested_by"]["party"], grant["recipient"]["party"]
        elif who != "by anyone":
            sender = parent["recipient"]["party"]
        if sender == recipient:
            continue  # not a transfer between Parties (refused as input, nothing to find)
        if grant is not None and not authorization_required(parent["origin"], sender, recipient):
            grant = None  # naming a grant where none is needed (to the origin, or by it) is refused as input
        purpose = {"proceeding": proceeding, "description": "ransomware"}
        body = builders.onward(sender, recipient, parent, grant, data_categories=categories, purpose=purpose)
        try:
            transfers.append(ledger.record_transfer(body))
        except DomainError as refusal:
            forged = around(ledger, sender, recipient, parent, grant["id"] if grant else None,
                            data_categories=categories, purpose=purpose)
            refused[forged] = refusal.rule
    return refused


@settings(max_examples=400 if PG_URL is None else 60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(written_policy=st.booleans(), asked=st.lists(asking, min_size=1, max_size=3),
       steps=st.lists(step, min_size=3, max_size=30))
def test_refusals_are_exactly_the_findings(
    tmp_path: Path, written_policy: bool, asked: list[tuple[Any, ...]], steps: list[tuple[Any, ...]],
) -> None:
    with fresh_backend(tmp_path / uuid.uuid4().hex) as backend:
        ledger = TransferLedger(eventsourcing_env(backend.settings))
        try:
            refused = run_history(ledger, written_policy, asked + steps)
            for rule in sorted(set(refused.values())):
                event(f"refused: {rule}")  # what the generator reaches (--hypothesis-show-statistics)
            event(f"onward transfers recorded: {min(ledger.store.head().size, 3)}+")
            assert first_findings(ledger) == refused
        finally:
            ledger.close()


def test_a_history_with_every_refusal_is_found_the_same() -> None:
    """The generator reaches the rules of point 1 and 6: a fixed history that
    meets most of them, so a generator that stopped reaching them would show."""
    import tempfile

    steps: list[tuple[Any, ...]] = [
        ("request", 0, "FR", "INTERPOL", ["traffic"], False),
        ("onward", 0, "FR", "INTERPOL", 0, ["traffic"], PROCEEDINGS[0], "by anyone"),  # pending
        ("grant", 0, None, None, None, None, False),
        ("onward", 0, "FR", "INTERPOL", 0, ["traffic"], PROCEEDINGS[1], "by anyone"),  # other proceeding
        ("onward", 0, "FR", "INTERPOL", 0, ["subscriber"], PROCEEDINGS[0], "by anyone"),  # category not authorized
        ("onward", 0, "FR", "BR", 0, ["traffic"], PROCEEDINGS[0], "by anyone"),  # other recipient
        ("onward", 0, "NL", "INTERPOL", 0, ["traffic"], PROCEEDINGS[0], "by anyone"),  # not the holder
        ("onward", 0, "FR", "INTERPOL", 0, ["content"], PROCEEDINGS[0], "by anyone"),  # category not received
        ("onward", 0, "FR", "INTERPOL", -1, ["traffic"], PROCEEDINGS[0], "by anyone"),  # no grant named
        ("request", 0, "FR", "US", ["traffic"], False),
        ("refuse", 1),
        ("onward", 0, "FR", "US", 1, ["traffic"], PROCEEDINGS[0], "by anyone"),  # refused
        ("request", 0, "FR", "BR", ["traffic"], False),
        ("grant", 2, None, "2020-01-01T00:00:00Z", None, None, False),
        ("onward", 0, "FR", "BR", 2, ["traffic"], PROCEEDINGS[0], "by anyone"),  # expired
        ("request", 0, "FR", "NL", ["traffic"], False),
        ("grant-around", 3, "FR"),
        ("onward", 0, "FR", "NL", 3, ["traffic"], PROCEEDINGS[0], "by anyone"),  # granted by the holder
        ("request", 0, "FR", "INTERPOL", ["traffic"], False),
        ("grant", 4, 1, None, None, None, False),
        ("onward", 0, "FR", "INTERPOL", 4, ["traffic"], PROCEEDINGS[0], "by anyone"),  # recorded
        ("onward", 0, "FR", "INTERPOL", 4, ["traffic"], PROCEEDINGS[0], "by anyone"),  # used up
    ]
    with tempfile.TemporaryDirectory() as root, fresh_backend(Path(root) / "d") as backend:
        ledger = TransferLedger(eventsourcing_env(backend.settings))
        try:
            refused = run_history(ledger, False, steps)
            assert set(refused.values()) == {
                "authorization-pending", "purpose-not-authorized", "category-not-authorized",
                "recipient-not-authorized", "not-holder", "category-not-received",
                "onward-transfer-not-authorized", "authorization-exhausted", "authorization-refused",
                "authorization-expired", "not-origin",
            }, refused
            assert first_findings(ledger) == refused
        finally:
            ledger.close()
