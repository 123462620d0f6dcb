"""The HTTP API in-process: each endpoint's answers, field names (docs/API.md, "Bodies"),
the art. 36 §3 refusals, bad input, idempotency, pagination, the feed, proofs and OpenAPI."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import MAX_BODY_BYTES
from domain.values import DecisionDraft
from ledger.service.application import signed_decision_bytes
from ledger.tlog.merkle import ProofError, verify_consistency, verify_inclusion
from ledger.tlog.note import Signer
from tests.support import builders
from tests.support.api import Api, problem
from tests.support.backends import Backend

TRANSFER_IN = ("sender", "recipient", "legal_basis", "request_reference", "purpose", "data_categories", "subjects",
               "dataset_sha256", "item_count", "handling", "retention_until", "transferred_at", "justification",
               "ordered_by", "parent_transfer_id", "authorization_id")
TRANSFER_OUT = (*TRANSFER_IN, "id", "origin", "leaf_index", "recorded_at")
REQUEST_OUT = ("parent_transfer_id", "requested_by", "recipient", "purpose", "data_categories", "justification",
               "id", "status", "origin")
AUTHORIZATION_OUT = ("id", "status", "origin", "conditions", "uses")
INSTRUMENT = {"reference": "BfJ-2026-0311", "sha256": "ab" * 32}


def b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def full_transfer(sender: str, recipient: str, **overrides: Any) -> dict[str, Any]:
    """A transfer with every field of docs/API.md, "Bodies", set."""
    return builders.transfer(
        sender, recipient,
        request_reference="FR-MLA-2026-117",
        subjects=["subject-1", "subject-2"],
        item_count=42,
        handling={"confidential": True, "written_authorization_required": False,
                  "use_restrictions": ["no onward use in civil proceedings"]},
        retention_until="2031-12-31",
        transferred_at="2026-01-15T09:30:00Z",
        justification="urgent: ongoing attack",
        ordered_by="Staatsanwaltschaft Köln",
        **overrides,
    )


# -- happy paths and field names ---------------------------------------------------------------


def test_record_and_read_a_transfer(api: Api) -> None:
    body = full_transfer("DE", "FR")
    response = api.post("/v1/transfers", body, "DE-recorder")
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    out = response.json()
    assert set(TRANSFER_OUT) <= set(out)
    for name in TRANSFER_IN:
        if name in body:
            assert out[name] == body[name], name
    assert out["origin"] == "DE" and out["leaf_index"] == 0 and out["recorded_at"].endswith("Z")
    assert out["parent_transfer_id"] is None and out["authorization_id"] is None
    assert api.tree_size() == 1

    read = api.ok(api.get(f"/v1/transfers/{out['id']}", "FR-recorder"), 200)
    assert read == {**out, "ancestors": [], "referral_id": None}
    upper = api.ok(api.get(f"/v1/transfers/{out['id'].upper()}", "FR-recorder"), 200)
    assert upper["id"] == out["id"]


def test_the_openapi_examples_are_accepted(api: Api) -> None:
    """The request examples /docs shows record as they are (with the keys of their Parties)."""
    schemas = api.ok(api.get("/openapi.json", None), 200)["components"]["schemas"]
    root = api.ok(api.post("/v1/transfers", schemas["TransferIn"]["examples"][0], "DE-recorder"), 201)
    request = {**schemas["AuthorizationRequestIn"]["examples"][0], "parent_transfer_id": root["id"]}
    auth = api.ok(api.post("/v1/authorization-requests", request, "FR-recorder"), 201)
    decision = schemas["DecisionIn"]["examples"][0]
    granted = api.ok(api.post(f"/v1/authorization-requests/{auth['id']}/decision", decision, "DE-authority"), 200)
    assert granted["conditions"]["written_instrument"] == decision["conditions"]["written_instrument"]
    revocation = schemas["RevocationIn"]["examples"][0]
    assert api.ok(api.post(f"/v1/authorizations/{auth['id']}/revocation", revocation, "DE-authority"),
                  200)["status"] == "revoked"


def test_request_decide_transfer_revoke(api: Api) -> None:
    root = api.transfer("DE", "FR")
    response = api.post("/v1/authorization-requests", builders.request("FR", "INTERPOL", root), "FR-recorder")
    assert response.status_code == 201, response.text
    requested = response.json()
    assert set(REQUEST_OUT) <= set(requested)
    assert requested["status"] == "pending" and requested["origin"] == "DE"
    assert requested["parent_transfer_id"] == root["id"] and requested["decision"] is None

    body = builders.grant("DE", max_transfers=2, data_categories=["traffic"], valid_until="2099-01-01T00:00:00Z",
                          purpose={"proceeding": "FR-PNC-2026-0417"}, written_instrument=INSTRUMENT,
                          further_conditions=["no further transfer"])
    response = api.post(f"/v1/authorization-requests/{requested['id']}/decision", body, "DE-authority")
    assert response.status_code == 200, response.text
    granted = response.json()
    assert set(AUTHORIZATION_OUT) <= set(granted)
    assert granted["id"] == requested["id"] and granted["status"] == "granted" and granted["origin"] == "DE"
    assert granted["conditions"]["max_transfers"] == 2 and granted["conditions"]["written_instrument"] == INSTRUMENT
    assert granted["uses"] == [] and granted["remaining_transfers"] == 2
    assert granted["decision"]["decided_by"] == builders.actor("DE")

    onward = api.onward("FR", "INTERPOL", root, granted)
    assert onward["origin"] == "DE" and onward["parent_transfer_id"] == root["id"]
    assert onward["authorization_id"] == granted["id"] and onward["depth"] == 1
    for path in (f"/v1/authorizations/{granted['id']}", f"/v1/authorization-requests/{granted['id']}"):
        now = api.ok(api.get(path, "INTERPOL-recorder"), 200)
        assert now["uses"] == [onward["id"]] and now["remaining_transfers"] == 1

    response = api.post(f"/v1/authorizations/{granted['id']}/revocation", builders.revocation("DE"), "DE-authority")
    assert response.status_code == 200, response.text
    revoked = response.json()
    assert revoked["status"] == "revoked" and revoked["revocation"]["reasons"] == "proceeding closed"
    assert revoked["uses"] == [onward["id"]]


def test_a_refusal_is_recorded_with_its_reasons(api: Api) -> None:
    root = api.transfer("DE", "FR")
    auth = api.request("FR", "INTERPOL", root)
    refused = api.decide(auth, builders.refuse("DE", "no proceeding named in the request"))
    assert refused["status"] == "refused" and refused["decision"]["reasons"] == "no proceeding named in the request"
    assert refused["conditions"] is None


def test_a_decision_signed_by_the_origin_is_its_written_instrument(api: Api) -> None:
    signer = Signer.from_seed("bfj.bund.example/decisions", bytes(range(32)))
    api.app.state.ledger.register_party_key("DE", signer.vkey(), registered_by=builders.actor("DE"))
    root = api.transfer("DE", "FR", handling={"written_authorization_required": True})
    auth = api.request("FR", "INTERPOL", root)
    body = builders.grant("DE", max_transfers=1)
    signature = signer.sign_raw(signed_decision_bytes(auth["id"], "DE", DecisionDraft.parse(body)))
    signed = {**body, "signature": {"key": f"{signer.name}+{signer.key_id:08x}",
                                    "value": base64.b64encode(signature).decode()}}
    path = f"/v1/authorization-requests/{auth['id']}/decision"
    forged = {**signed, "signature": {**signed["signature"],
                                      "value": base64.b64encode(bytes(64)).decode()}}
    out = refused(api.post(path, forged, "DE-authority"), "decision-signature-invalid", "signature.value")
    assert out["values"]["origin"] == "DE"
    granted = api.ok(api.post(path, signed, "DE-authority"), 200)
    assert granted["decision"]["signature"] == signed["signature"]
    api.onward("FR", "INTERPOL", root, granted)
    problem(api.post(path, {**signed, "signature": {"key": "x+1", "value": "y"}}, "DE-authority"), 422)


def test_lineage_origin_ancestors_descendants(api: Api) -> None:
    root, a1 = api.chain()
    t2 = api.onward("FR", "INTERPOL", root, a1)
    a2 = api.grant(api.request("INTERPOL", "BR", t2))
    t3 = api.onward("INTERPOL", "BR", t2, a2)
    back = api.onward("BR", "DE", t3)  # returning data to their origin needs no authorization

    lineage = api.ok(api.get(f"/v1/transfers/{t2['id']}/lineage", "DE-recorder"), 200)
    assert lineage["origin"] == "DE" and lineage["id"] == t2["id"] and lineage["root_transfer_id"] == root["id"]
    assert lineage["transfer"]["id"] == t2["id"]
    assert [a["id"] for a in lineage["ancestors"]] == [root["id"]]
    assert [d["id"] for d in lineage["descendants"]] == [t3["id"], back["id"]]
    assert [d["depth"] for d in lineage["descendants"]] == [2, 3]
    whole = api.ok(api.get(f"/v1/transfers/{root['id']}/lineage", "*-auditor"), 200)
    assert [d["id"] for d in whole["descendants"]] == [t2["id"], t3["id"], back["id"]]
    detail = api.ok(api.get(f"/v1/transfers/{back['id']}", "DE-auditor"), 200)
    assert [a["id"] for a in detail["ancestors"]] == [t3["id"], t2["id"], root["id"]]


def test_healthz(api: Api) -> None:
    idle = {"batches": 0, "commands": 0, "largest_batch": 0, "refused_overloaded": 0,
            "batches_rerun": 0}
    assert api.ok(api.get("/healthz", None), 200) == {
        "status": "ok", "tree_size": 0, "read_only": False, "group_commit": idle,
        "consultation_log": {"buffered": 0, "written": 0, "failed_flushes": 0}}
    api.transfer("DE", "FR")
    assert api.tree_size() == 1
    health = api.ok(api.get("/healthz", None), 200)
    assert health["group_commit"] == {"batches": 1, "commands": 1, "largest_batch": 1,
                                      "refused_overloaded": 0, "batches_rerun": 0}


# -- art. 36 §3 refusals ------------------------------------------------------------------------


def refused(response: Any, rule: str, field: str | None) -> dict[str, Any]:
    body = problem(response, 409, rule)
    assert body["type"].endswith("/" + rule)
    assert body.get("field") == field
    assert body["article"].startswith("art.")
    return body


def test_onward_transfer_without_the_origins_authorization(api: Api) -> None:
    root = api.transfer("DE", "FR")
    size = api.tree_size()
    body = refused(api.post("/v1/transfers", builders.onward("FR", "INTERPOL", root), "FR-recorder"),
                   "onward-transfer-not-authorized", "authorization_id")
    assert "DE" in body["detail"] and body["values"]["origin"] == "DE"
    assert api.tree_size() == size


def test_written_instrument_required(api: Api) -> None:
    root = api.transfer("DE", "FR", handling={"written_authorization_required": True})
    auth = api.request("FR", "INTERPOL", root)
    refused(api.post(f"/v1/authorization-requests/{auth['id']}/decision", builders.grant("DE"), "DE-authority"),
            "written-instrument-required", "conditions.written_instrument")
    granted = api.grant(auth, written_instrument=INSTRUMENT)
    assert api.onward("FR", "INTERPOL", root, granted)["authorization_id"] == auth["id"]


def test_authorization_revoked(api: Api) -> None:
    root, auth = api.chain()
    api.revoke(auth)
    body = refused(api.post("/v1/transfers", builders.onward("FR", "INTERPOL", root, auth), "FR-recorder"),
                   "authorization-revoked", "authorization_id")
    # The ledger holds the reasons sealed (event format 2): the refusal points to them, never
    # quoting a commitment; the authorization's record opens them.
    assert "revoked by DE (its reasons are in the authorization's record)" in body["detail"]
    assert "commitment:" not in body["detail"]
    assert api.get(f"/v1/authorizations/{auth['id']}", "FR-recorder").json()["revocation"]["reasons"] \
        == "proceeding closed"
    refused(api.post(f"/v1/authorizations/{auth['id']}/revocation", builders.revocation("DE"), "DE-authority"),
            "authorization-not-granted", None)


@pytest.mark.parametrize(
    ("conditions", "overrides", "rule", "field"),
    [
        ({"max_transfers": 1}, {}, "authorization-exhausted", "authorization_id"),
        ({"valid_until": "2020-01-01T00:00:00Z"}, {}, "authorization-expired", "authorization_id"),
        ({"data_categories": ["traffic"]}, {"data_categories": ["subscriber"]}, "category-not-authorized",
         "data_categories"),
        ({}, {"purpose": {"proceeding": "another case"}}, "purpose-not-authorized", "purpose.proceeding"),
    ],
)
def test_onward_transfer_outside_the_grant(api: Api, conditions: dict[str, Any], overrides: dict[str, Any],
                                           rule: str, field: str) -> None:
    root, auth = api.chain(**conditions)
    if rule == "authorization-exhausted":
        api.onward("FR", "INTERPOL", root, auth)
    size = api.tree_size()
    refused(api.post("/v1/transfers", builders.onward("FR", "INTERPOL", root, auth, **overrides), "FR-recorder"),
            rule, field)
    assert api.tree_size() == size


def test_other_refusals_of_the_lineage_rules(api: Api) -> None:
    root = api.transfer("DE", "FR")
    pending = api.request("FR", "INTERPOL", root)
    refused(api.post("/v1/transfers", builders.onward("FR", "INTERPOL", root, pending), "FR-recorder"),
            "authorization-pending", "authorization_id")
    refused(api.post("/v1/transfers", builders.onward("FR", "BR", root, pending), "FR-recorder"),
            "recipient-not-authorized", "recipient.party")
    refused(api.post("/v1/transfers", builders.onward("FR", "INTERPOL", root, data_categories=["content"]),
                     "FR-recorder"), "category-not-received", "data_categories")
    refused(api.post("/v1/authorization-requests", builders.request("FR", "DE", root), "FR-recorder"),
            "authorization-not-needed", "recipient.party")
    no = api.decide(pending, builders.refuse("DE"))
    refused(api.post("/v1/transfers", builders.onward("FR", "INTERPOL", root, no), "FR-recorder"),
            "authorization-refused", "authorization_id")
    refused(api.post(f"/v1/authorization-requests/{no['id']}/decision", builders.grant("DE"), "DE-authority"),
            "authorization-already-decided", None)


def test_only_the_origin_decides(api: Api) -> None:
    root = api.transfer("DE", "FR")
    auth = api.request("FR", "INTERPOL", root)
    body = problem(api.post(f"/v1/authorization-requests/{auth['id']}/decision", builders.grant("FR"),
                            "FR-authority"), 403, "not-origin")
    assert "DE" in body["detail"] and "first transferring Party" in body["detail"]
    body = problem(api.post(f"/v1/authorization-requests/{auth['id']}/decision", builders.grant("FR"),
                            "DE-authority"), 403, "not-your-party")
    assert body["field"] == "decided_by.party"
    body = problem(api.post("/v1/transfers", builders.transfer("FR", "DE"), "DE-recorder"), 403, "not-your-party")
    assert body["field"] == "sender.party"


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "status", "rule", "field"),
    [
        ({"sender": None}, 422, "invalid-input", "sender"),
        ({"dataset_sha256": "not hex"}, 422, "invalid-input", "dataset_sha256"),
        ({"data_categories": []}, 422, "invalid-input", "data_categories"),
        ({"data_categories": ["biometrics"]}, 422, "invalid-input", "data_categories[0]"),
        ({"surprise": 1}, 422, "invalid-input", "surprise"),
        ({"recipient": {"party": "XX", "authority": "XX/POLICE"}}, 422, "unknown-party", "recipient.party"),
        ({"recipient": {"party": "FR", "authority": "DE/BKA"}}, 422, "authority-not-of-party", "recipient.authority"),
        ({"recipient": builders.actor("DE", None)}, 422, "transfer-to-self", "recipient.party"),
        ({"legal_basis": "art99"}, 422, "unknown-legal-basis", "legal_basis"),
        ({"transferred_at": "yesterday"}, 422, "malformed-date", "transferred_at"),
        ({"transferred_at": "2026-01-01T00:00:00"}, 422, "malformed-date", "transferred_at"),
        ({"transferred_at": "2999-01-01T00:00:00Z"}, 422, "time-in-future", "transferred_at"),
        ({"retention_until": "31.12.2030"}, 422, "malformed-date", "retention_until"),
        ({"item_count": -1}, 422, "invalid-input", "item_count"),
        ({"item_count": "5"}, 422, "invalid-input", "item_count"),  # what the schema says, without coercion
        ({"handling": {"written_authorization_required": "yes"}}, 422, "invalid-input",
         "handling.written_authorization_required"),
        ({"parent_transfer_id": "nope"}, 422, "invalid-id", "parent_transfer_id"),
        ({"parent_transfer_id": "00000000-0000-4000-8000-000000000000"}, 404, "transfer-not-found",
         "parent_transfer_id"),
        ({"authorization_id": "00000000-0000-4000-8000-000000000000"}, 422, "authorization-not-needed",
         "authorization_id"),
    ],
)
def test_bad_transfers_name_the_field(api: Api, change: dict[str, Any], status: int, rule: str, field: str) -> None:
    body = {**builders.transfer("DE", "FR"), **change}
    body = {k: v for k, v in body.items() if v is not None}
    out = problem(api.post("/v1/transfers", body, "DE-recorder"), status, rule)
    assert out["field"] == field, out
    assert api.tree_size() == 0


def test_bad_requests_decisions_and_revocations(api: Api) -> None:
    root = api.transfer("DE", "FR")
    out = problem(api.post("/v1/authorization-requests", builders.request("FR", "INTERPOL", root, justification=""),
                           "FR-recorder"), 422, "invalid-input")
    assert out["field"] == "justification"
    auth = api.request("FR", "INTERPOL", root)
    path = f"/v1/authorization-requests/{auth['id']}/decision"
    out = problem(api.post(path, {**builders.refuse("DE"), "reasons": None}, "DE-authority"), 422,
                  "refusal-without-reasons")
    assert out["field"] == "reasons" and out["article"] == "art. 40 §25"
    out = problem(api.post(path, {**builders.grant("DE"), "decision": "maybe"}, "DE-authority"), 422)
    assert out["field"] == "decision"
    out = problem(api.post(path, builders.grant("DE", data_categories=["subscriber"]), "DE-authority"), 422,
                  "category-not-requested")
    assert out["field"] == "conditions.data_categories"
    out = problem(api.post(path, builders.grant("DE", max_transfers=0), "DE-authority"), 422)
    assert out["field"] == "conditions.max_transfers"
    api.grant(auth)
    out = problem(api.post(f"/v1/authorizations/{auth['id']}/revocation", {"revoked_by": builders.actor("DE")},
                           "DE-authority"), 422)
    assert out["field"] == "reasons"


def test_malformed_json_is_400_and_other_json_422(api: Api) -> None:
    assert api.client is not None
    headers = {**api.headers("DE-recorder"), "Content-Type": "application/json"}
    for raw in (b"{", b'{"sender": ', b"\xff\xfe", b"[1, 2"):
        out = problem(api.client.post("/v1/transfers", content=raw, headers=headers), 400, "malformed-json")
        assert out["field"] == "body"
    for value in ([], "text", 3, None):
        out = problem(api.post("/v1/transfers", value, "DE-recorder"), 422, "invalid-input")
        assert out["field"] == "body"
    assert api.tree_size() == 0


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/transfers?limit=0", "limit"),
        ("/v1/transfers?limit=501", "limit"),
        ("/v1/transfers?cursor=abc", "cursor"),
        ("/v1/transfers?since=yesterday", "since"),
        ("/v1/transfers?since=2026-01-01T00:00:00", "since"),
        ("/v1/transfers?until=tomorrow", "until"),
        ("/v1/transfers?handling_code=H4", "handling_code"),
        ("/v1/authorization-requests?status=maybe", "status"),
        ("/v1/events?after=-2", "after"),
        ("/v1/events?limit=1001", "limit"),
        ("/v1/proofs/inclusion?index=0", "tree_size"),
        ("/v1/proofs/inclusion?index=0&tree_size=2", "tree_size"),
        ("/v1/proofs/inclusion?index=1&tree_size=1", "index"),
        ("/v1/proofs/inclusion?index=x&tree_size=1", "index"),
        ("/v1/proofs/consistency?first=0&second=1", "first"),
        ("/v1/proofs/consistency?first=1&second=2", "second"),
    ],
)
def test_bad_query_parameters_name_the_field(api: Api, path: str, field: str) -> None:
    api.transfer("DE", "FR")
    out = problem(api.get(path, "*-auditor"), 422)
    assert out["field"] == field, out


def test_not_found(api: Api) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    for path, rule in ((f"/v1/transfers/{unknown}", "transfer-not-found"),
                       (f"/v1/transfers/{unknown}/lineage", "transfer-not-found"),
                       ("/v1/transfers/not-a-uuid", "transfer-not-found"),
                       (f"/v1/authorizations/{unknown}", "authorization-not-found"),
                       (f"/v1/authorization-requests/{unknown}", "authorization-not-found"),
                       ("/v1/authorizations/None", "authorization-not-found"),
                       ("/v1/nothing-here", "not-found")):
        problem(api.get(path, "*-auditor"), 404, rule)
    problem(api.post(f"/v1/authorization-requests/{unknown}/decision", builders.grant("DE"), "DE-authority"), 404,
            "authorization-not-found")
    problem(api.post(f"/v1/authorizations/{unknown}/revocation", builders.revocation("DE"), "DE-authority"), 404,
            "authorization-not-found")
    out = problem(api.post("/v1/authorization-requests",
                           builders.request("FR", "INTERPOL", {"id": unknown}), "FR-recorder"), 404,
                  "transfer-not-found")
    assert out["field"] == "parent_transfer_id"


def test_another_partys_object_answers_exactly_as_an_unknown_one(api: Api) -> None:
    root = api.transfer("DE", "FR")
    unknown = "00000000-0000-4000-8000-000000000000"

    def without_ids(response: Any) -> dict[str, Any]:
        out = dict(response.json())
        for name in ("detail", "instance"):
            out[name] = out[name].replace(root["id"], "ID").replace(unknown, "ID")
        if "values" in out:
            out["values"] = {"id": "ID"}
        out.pop("request_id")  # each answer's own
        return out

    assert without_ids(api.get(f"/v1/transfers/{root['id']}", "NL-recorder")) == \
        without_ids(api.get(f"/v1/transfers/{unknown}", "NL-recorder"))
    mine = api.post("/v1/transfers", builders.onward("NL", "BR", root), "NL-recorder")
    none = api.post("/v1/transfers", builders.onward("NL", "BR", {"id": unknown}), "NL-recorder")
    assert mine.status_code == none.status_code == 404
    assert without_ids(mine) == without_ids(none)


def test_method_not_allowed_lists_every_method_of_the_path(api: Api) -> None:
    assert api.client is not None
    response = api.client.put("/v1/transfers", headers=api.headers("DE-recorder"), json={})
    problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "GET, POST"
    response = api.client.delete("/v1/authorization-requests", headers=api.headers("DE-recorder"))
    assert response.headers["allow"] == "GET, POST"


def test_bodies_over_the_limit_are_413(api: Api) -> None:
    assert api.client is not None
    body = builders.transfer("DE", "FR", justification="x" * 1990, subjects=["s" * 100] * 700)
    raw = json.dumps(body).encode()
    assert len(raw) > MAX_BODY_BYTES
    out = problem(api.post("/v1/transfers", body, "DE-recorder"), 413, "body-too-large")
    assert str(MAX_BODY_BYTES) in out["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts what arrives
        for i in range(0, len(raw), 8192):
            yield raw[i:i + 8192]

    headers = {**api.headers("DE-recorder"), "Content-Type": "application/json"}
    problem(api.client.post("/v1/transfers", content=chunks(), headers=headers), 413, "body-too-large")
    assert api.tree_size() == 0
    just_under = builders.transfer("DE", "FR", subjects=["s" * 100] * 500)
    assert len(json.dumps(just_under)) < MAX_BODY_BYTES
    api.ok(api.post("/v1/transfers", just_under, "DE-recorder"), 201)


def test_unexpected_errors_are_problems_that_reveal_nothing(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(api.app.state.ledger, "get_transfer", broken)
    client = TestClient(api.app, raise_server_exceptions=False)  # the same app, its lifespan already running
    response = client.get("/v1/transfers/00000000-0000-4000-8000-000000000000", headers=api.headers("*-auditor"))
    problem(response, 500, "internal-error")
    assert "secret" not in response.text


# -- idempotency --------------------------------------------------------------------------------------


def commands(api: Api) -> list[tuple[str, dict[str, Any], str]]:
    """One of each POST: (path, body, key)."""
    root = api.transfer("DE", "FR")
    pending = api.request("FR", "INTERPOL", root)
    granted = api.grant(api.request("FR", "INTERPOL", root))
    return [
        ("/v1/transfers", builders.transfer("DE", "FR"), "DE-recorder"),
        ("/v1/transfers", builders.onward("FR", "INTERPOL", root, granted), "FR-recorder"),
        ("/v1/authorization-requests", builders.request("FR", "INTERPOL", root), "FR-recorder"),
        (f"/v1/authorization-requests/{pending['id']}/decision", builders.grant("DE"), "DE-authority"),
        (f"/v1/authorizations/{granted['id']}/revocation", builders.revocation("DE"), "DE-authority"),
    ]


def test_a_retry_returns_the_first_response_and_records_nothing(api: Api) -> None:
    for i, (path, body, key) in enumerate(commands(api)):
        first = api.post(path, body, key, idem=f"retry-{i}")
        assert first.status_code in (200, 201), first.text
        size = api.tree_size()
        again = api.post(path, body, key, idem=f"retry-{i}")
        assert (again.status_code, again.json()) == (first.status_code, first.json()), path
        assert api.tree_size() == size, path
        other = api.post(path, {**body, "extra": 1} if "transfers" in path else body, key, idem=f"other-{i}")
        assert other.status_code != first.status_code or other.json() != first.json()


def test_the_same_key_with_another_body_is_422(api: Api) -> None:
    first = api.ok(api.post("/v1/transfers", builders.transfer("DE", "FR"), "DE-recorder", idem="k1"), 201)
    out = problem(api.post("/v1/transfers", builders.transfer("DE", "NL"), "DE-recorder", idem="k1"), 422,
                  "idempotency-key-reused")
    assert out["field"] == "Idempotency-Key"
    out = problem(api.post("/v1/authorization-requests", builders.request("FR", "INTERPOL", first),
                           "DE-recorder", idem="k1"), 403, "not-your-party")
    assert api.tree_size() == 1
    # Keys belong to their principal: FR's "k1" is another key.
    api.ok(api.post("/v1/transfers", builders.transfer("FR", "DE"), "FR-recorder", idem="k1"), 201)


def test_a_retry_saying_the_same_in_another_form_is_the_same_request(api: Api) -> None:
    body = builders.transfer("DE", "FR", transferred_at="2026-03-01T10:30:00+01:00",
                             data_categories=["traffic", "subscriber"])
    first = api.ok(api.post("/v1/transfers", body, "DE-recorder", idem="same"), 201)
    same = {**body, "transferred_at": "2026-03-01T09:30:00Z", "data_categories": ["subscriber", "traffic"],
            "item_count": None}
    again = api.ok(api.post("/v1/transfers", same, "DE-recorder", idem="same"), 201)
    assert again == first
    assert api.tree_size() == 1


def test_a_refusal_is_replayed_too(api: Api) -> None:
    root = api.transfer("DE", "FR")
    auth = api.request("FR", "INTERPOL", root)
    body = builders.onward("FR", "INTERPOL", root, auth)
    first = api.post("/v1/transfers", body, "FR-recorder", idem="onward-1")
    refused(first, "authorization-pending", "authorization_id")
    api.grant(auth)
    size = api.tree_size()
    again = api.post("/v1/transfers", body, "FR-recorder", idem="onward-1")
    assert (again.status_code, again.json()) == (409, first.json())
    assert again.headers["content-type"].startswith("application/problem+json")
    assert api.tree_size() == size
    api.ok(api.post("/v1/transfers", body, "FR-recorder", idem="onward-2"), 201)


def test_a_decision_retried_with_its_key_is_not_decided_twice(api: Api) -> None:
    root = api.transfer("DE", "FR")
    auth = api.request("FR", "INTERPOL", root)
    path = f"/v1/authorization-requests/{auth['id']}/decision"
    first = api.ok(api.post(path, builders.grant("DE"), "DE-authority", idem="decide"), 200)
    api.onward("FR", "INTERPOL", root, first)  # the authorization moved on meanwhile
    assert api.ok(api.post(path, builders.grant("DE"), "DE-authority", idem="decide"), 200) == first
    refused(api.post(path, builders.grant("DE"), "DE-authority"), "authorization-already-decided", None)


def test_a_retry_after_a_restart_gets_the_same_response(api: Api) -> None:
    body = builders.transfer("DE", "FR")
    first = api.ok(api.post("/v1/transfers", body, "DE-recorder", idem="across-restart"), 201)
    refusal = api.post("/v1/transfers", builders.onward("FR", "INTERPOL", first), "FR-recorder", idem="refused")
    api.restart()
    assert api.tree_size() == 1
    assert api.ok(api.post("/v1/transfers", body, "DE-recorder", idem="across-restart"), 201) == first
    again = api.post("/v1/transfers", builders.onward("FR", "INTERPOL", first), "FR-recorder", idem="refused")
    assert (again.status_code, again.json()) == (409, refusal.json())
    assert api.tree_size() == 1


def test_bad_idempotency_keys(api: Api) -> None:
    assert api.client is not None
    for bad in (b"", "é".encode(), b"k" * 256, b"tab\there"):
        headers = {**api.headers("DE-recorder"), "Idempotency-Key": bad}
        out = problem(api.client.post("/v1/transfers", json=builders.transfer("DE", "FR"), headers=headers), 422)
        assert out["field"] == "Idempotency-Key", bad
    assert api.tree_size() == 0


# -- pagination -----------------------------------------------------------------------------------------


def pages(api: Api, path: str, key: str, limit: int, **params: Any) -> list[list[dict[str, Any]]]:
    out: list[list[dict[str, Any]]] = []
    cursor = None
    for _ in range(100):
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor is not None else {})}
        page = api.ok(api.get(path, key, params=query), 200)
        assert set(page) == {"items", "next_cursor"}
        out.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return out
        assert isinstance(cursor, str) and len(page["items"]) == limit
    raise AssertionError("more than 100 pages")


def ids(pages_: list[list[dict[str, Any]]]) -> list[str]:
    return [item["id"] for page in pages_ for item in page]


def test_transfers_list_cursor_and_filters(api: Api) -> None:
    a = api.transfer("DE", "FR", transferred_at="2025-01-01T00:00:00Z")
    b = api.transfer("DE", "NL", transferred_at="2025-02-01T00:00:00Z")
    c = api.transfer("FR", "NL", transferred_at="2025-03-01T00:00:00Z")
    d = api.transfer("NL", "BR", transferred_at="2025-04-01T00:00:00Z")
    e = api.transfer("DE", "BR", transferred_at="2025-05-01T00:00:00+02:00")
    auth = api.grant(api.request("FR", "INTERPOL", a))
    f = api.onward("FR", "INTERPOL", a, auth, transferred_at="2025-06-01T00:00:00Z")
    everything = [x["id"] for x in (a, b, c, d, e, f)]

    for limit in (1, 2, 4, 500):
        got = pages(api, "/v1/transfers", "*-auditor", limit)
        assert ids(got) == everything
        assert all(len(page) <= limit for page in got)
    assert ids(pages(api, "/v1/transfers", "*-auditor", 2, party="NL")) == [b["id"], c["id"], d["id"]]
    assert ids(pages(api, "/v1/transfers", "*-auditor", 2, origin="DE")) == [a["id"], b["id"], e["id"], f["id"]]
    assert ids(pages(api, "/v1/transfers", "*-auditor", 2, since="2025-03-01T00:00:00Z")) == \
        [c["id"], d["id"], e["id"], f["id"]]
    assert ids(pages(api, "/v1/transfers", "*-auditor", 2, since="2025-04-30T23:00:00Z")) == [f["id"]]
    assert ids(pages(api, "/v1/transfers", "*-auditor", 3, party="INTERPOL", origin="DE")) == [f["id"]]
    assert ids(pages(api, "/v1/transfers", "*-auditor", 3, party="US")) == []
    # A Party's key lists only its share, whatever the filters ask.
    assert ids(pages(api, "/v1/transfers", "FR-recorder", 1)) == [a["id"], c["id"], f["id"]]
    assert ids(pages(api, "/v1/transfers", "FR-recorder", 2, party="NL")) == [c["id"]]
    assert ids(pages(api, "/v1/transfers", "DE-auditor", 2)) == [a["id"], b["id"], e["id"], f["id"]]


def test_transfers_are_searched_by_their_legal_keys(api: Api) -> None:
    a = api.transfer("DE", "FR", request_reference="MLA-1", transferred_at="2025-01-01T00:00:00Z",
                     handling={"use_restrictions": ["H2"]})
    b = api.transfer("DE", "NL", request_reference="MLA-2", transferred_at="2025-02-01T00:00:00Z",
                     purpose={"proceeding": "NL-OM-77", "description": "fraud"},
                     handling={"use_restrictions": ["no publication"]})
    auth = api.grant(api.request("FR", "INTERPOL", a))
    c = api.onward("FR", "INTERPOL", a, auth, transferred_at="2025-03-01T00:00:00Z",
                   handling={"use_restrictions": ["H2"]})

    def found(**query: str) -> list[str]:
        return ids(pages(api, "/v1/transfers", "*-auditor", 2, **query))

    assert found(request_reference="MLA-2") == [b["id"]]
    assert found(proceeding="NL-OM-77") == [b["id"]]
    assert found(authority=a["recipient"]["authority"]) == [a["id"], c["id"]]  # received, then sent on
    assert found(legal_basis="art47") == [c["id"]]
    assert found(regime=a["regime"]) == [a["id"], b["id"], c["id"]]
    assert found(handling_code="H2") == [a["id"], c["id"]]
    assert found(handling_code="H3") == [b["id"]]  # free text is an H3 restriction
    assert found(until="2025-02-01T00:00:00Z") == [a["id"]]
    assert found(since="2025-02-01T00:00:00Z", until="2025-03-01T00:00:00Z") == [b["id"]]
    assert found(request_reference="MLA-1", handling_code="H0") == []
    # a Party's key searches its own share only
    assert ids(pages(api, "/v1/transfers", "NL-recorder", 2, handling_code="H2")) == []


def test_authorization_requests_list_cursor_and_filters(api: Api) -> None:
    root = api.transfer("DE", "FR")
    pending = api.request("FR", "INTERPOL", root)
    granted = api.grant(api.request("FR", "INTERPOL", root))
    no = api.decide(api.request("FR", "BR", root), builders.refuse("DE"))
    revoked = api.revoke(api.grant(api.request("FR", "NL", root)))
    other_root = api.transfer("NL", "BR")
    other = api.request("BR", "US", other_root)
    everything = [x["id"] for x in (pending, granted, no, revoked, other)]

    for limit in (1, 2, 500):
        assert ids(pages(api, "/v1/authorization-requests", "*-auditor", limit)) == everything
    for status, item in (("pending", pending), ("granted", granted), ("refused", no), ("revoked", revoked)):
        listed = pages(api, "/v1/authorization-requests", "*-auditor", 1, status=status)
        expected = [item["id"], other["id"]] if status == "pending" else [item["id"]]
        assert ids(listed) == expected, status
        assert all(x["status"] == status for page in listed for x in page)
    assert ids(pages(api, "/v1/authorization-requests", "*-auditor", 2, party="BR")) == [no["id"], other["id"]]
    assert ids(pages(api, "/v1/authorization-requests", "FR-authority", 2)) == everything[:4]
    assert ids(pages(api, "/v1/authorization-requests", "NL-recorder", 2)) == [revoked["id"], other["id"]]


# -- the feed and proofs ---------------------------------------------------------------------------------


def test_events_in_leaf_order_with_the_hashes_the_proofs_use(api: Api) -> None:
    root, auth = api.chain()
    api.onward("FR", "INTERPOL", root, auth)
    api.transfer("NL", "BR")
    checkpoint = api.checkpoint()
    assert checkpoint.size == api.tree_size() == 6

    events: list[dict[str, Any]] = []
    after = None
    for _ in range(10):
        page = api.ok(api.get("/v1/events", "*-auditor", params={"limit": 2, **({"after": after} if after is not None
                                                                               else {})}), 200)
        events += page["items"]
        after = page["next_after"]
        if after is None:
            break
    assert [e["leaf_index"] for e in events] == list(range(6))
    assert events[0]["originator_id"] == root["id"] and events[0]["leaf_index"] == root["leaf_index"]
    assert events[0]["event"]["sender"]["party"] == "DE"
    assert [e["originator_id"] for e in events[:3]] == [root["id"], auth["id"], auth["id"]]
    for event in events:
        assert set(event) >= {"leaf_index", "leaf_hash", "recorded_at", "originator_id", "originator_version",
                              "topic", "event"}
        proof = api.ok(api.get("/v1/proofs/inclusion", "*-verifier",
                               params={"index": event["leaf_index"], "tree_size": checkpoint.size}), 200)
        assert proof["leaf_hash"] == event["leaf_hash"]
        verify_inclusion(b64(event["leaf_hash"]), event["leaf_index"], checkpoint.size,
                         [b64(p) for p in proof["proof"]], checkpoint.root_hash)
    assert api.ok(api.get("/v1/events", "*-auditor", params={"after": 5}), 200) == {"items": [], "next_after": None}


def test_inclusion_and_consistency_proofs_verify_against_signed_checkpoints(api: Api) -> None:
    api.transfer("DE", "FR")
    api.transfer("DE", "NL")
    api.transfer("FR", "NL")
    early = api.checkpoint()
    for _ in range(4):
        api.transfer("NL", "BR")
    late = api.checkpoint()
    assert (early.size, late.size) == (3, 7)

    for index in range(late.size):
        proof = api.ok(api.get("/v1/proofs/inclusion", "*-verifier",
                               params={"index": index, "tree_size": late.size}), 200)
        assert set(proof) == {"leaf_index", "tree_size", "leaf_hash", "proof"}
        assert (proof["leaf_index"], proof["tree_size"]) == (index, late.size)
        verify_inclusion(b64(proof["leaf_hash"]), index, late.size, [b64(p) for p in proof["proof"]],
                         late.root_hash)
        with pytest.raises(ProofError):
            verify_inclusion(b64(proof["leaf_hash"]), index, late.size, [b64(p) for p in proof["proof"]],
                             early.root_hash)

    proof = api.ok(api.get("/v1/proofs/consistency", "DE-auditor",
                           params={"first": early.size, "second": late.size}), 200)
    assert set(proof) == {"first", "second", "proof"} and (proof["first"], proof["second"]) == (3, 7)
    verify_consistency(early.size, late.size, [b64(p) for p in proof["proof"]], early.root_hash, late.root_hash)
    with pytest.raises(ProofError):
        verify_consistency(early.size, late.size, [b64(p) for p in proof["proof"]], late.root_hash, late.root_hash)
    same = api.ok(api.get("/v1/proofs/consistency", "*-verifier", params={"first": 7, "second": 7}), 200)
    assert same["proof"] == []


def test_the_checkpoint_is_a_signed_note_in_text(api: Api) -> None:
    response = api.get("/v1/checkpoint", "NL-recorder")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert api.checkpoint().size == 0
    api.transfer("DE", "FR")
    assert api.checkpoint().size == 1


# -- OpenAPI ------------------------------------------------------------------------------------------------

DESIGN_OPERATIONS = [
    ("post", "/v1/transfers"), ("get", "/v1/transfers/{transfer_id}"), ("get", "/v1/transfers"),
    ("get", "/v1/transfers/{transfer_id}/lineage"), ("post", "/v1/authorization-requests"),
    ("post", "/v1/authorization-requests/{authorization_id}/decision"),
    ("post", "/v1/authorizations/{authorization_id}/revocation"), ("get", "/v1/authorizations/{authorization_id}"),
    ("get", "/v1/events"), ("get", "/v1/checkpoint"), ("get", "/v1/proofs/inclusion"),
    ("get", "/v1/proofs/consistency"), ("get", "/healthz"),
    # beyond the table (the issue's list)
    ("get", "/v1/authorization-requests/{authorization_id}"), ("get", "/v1/authorization-requests"),
]


def test_openapi_describes_every_operation_schema_and_error(api: Api) -> None:
    doc = api.ok(api.get("/openapi.json", None), 200)
    operations = {(method, path) for path, item in doc["paths"].items() for method in item}
    assert operations >= set(DESIGN_OPERATIONS)
    schemas = doc["components"]["schemas"]
    assert {"Problem", "TransferIn", "TransferOut", "TransferDetailOut", "LineageOut", "AuthorizationRequestIn",
            "DecisionIn", "RevocationIn", "AuthorizationOut", "FeedPage", "InclusionProofOut",
            "ConsistencyProofOut", "Health"} <= set(schemas)
    assert {"type", "title", "status", "detail", "rule", "field"} <= set(schemas["Problem"]["properties"])
    assert doc["components"]["securitySchemes"]["ApiKey"] == {
        **doc["components"]["securitySchemes"]["ApiKey"], "type": "http", "scheme": "bearer"}
    params = {(m, p): {x["name"] for x in doc["paths"][p][m].get("parameters", [])} for m, p in DESIGN_OPERATIONS}
    assert {"after", "limit"} <= params[("get", "/v1/events")]
    assert {"index", "tree_size"} <= params[("get", "/v1/proofs/inclusion")]
    assert {"first", "second"} <= params[("get", "/v1/proofs/consistency")]
    assert {"party", "origin", "since", "cursor", "limit"} <= params[("get", "/v1/transfers")]
    for method, path in DESIGN_OPERATIONS:
        operation = doc["paths"][path][method]
        if method == "post":
            assert "Idempotency-Key" in params[(method, path)], path
            assert {"409", "413", "422"} <= set(operation["responses"]), path
        if path == "/healthz":
            assert "security" not in operation
            continue
        assert operation["security"] == [{"ApiKey": []}], path
        assert "401" in operation["responses"], path
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                assert response["content"] == {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}, (path, status)
    created = doc["paths"]["/v1/transfers"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert created == {"$ref": "#/components/schemas/TransferOut"}
    assert "200" in doc["paths"]["/v1/authorization-requests/{authorization_id}/decision"]["post"]["responses"]


def test_docs_and_problem_types_are_served(api: Api) -> None:
    docs = api.get("/docs", None)
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
    assert "swagger" in docs.text.lower()
    rule = api.ok(api.get("/problems/onward-transfer-not-authorized", None), 200)
    assert rule["type"] == "/problems/onward-transfer-not-authorized"


# -- fuzzing: no input makes a 500 -----------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def targets(module_api: Api) -> dict[str, tuple[str, dict[str, Any], str]]:
    api = module_api
    root = api.transfer("DE", "FR")
    pending = api.request("FR", "INTERPOL", root)
    granted = api.grant(api.request("FR", "INTERPOL", root))
    return {
        "transfer": ("/v1/transfers", builders.transfer("DE", "FR"), "DE-recorder"),
        "onward": ("/v1/transfers", builders.onward("FR", "INTERPOL", root, granted), "FR-recorder"),
        "request": ("/v1/authorization-requests", builders.request("FR", "INTERPOL", root), "FR-recorder"),
        "decision": (f"/v1/authorization-requests/{pending['id']}/decision", builders.grant("DE"), "DE-authority"),
        "revocation": (f"/v1/authorizations/{granted['id']}/revocation", builders.revocation("DE"), "DE-authority"),
    }


def assert_answered(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        assert body["status"] == response.status_code and body["detail"]


def mutated(body: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(body))
    target = out
    for name in path[:-1]:
        if not isinstance(target.get(name), dict):
            target[name] = {}
        target = target[name]
    target[path[-1]] = value
    return out


FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("target", ["transfer", "onward", "request", "decision", "revocation"])
@FUZZ
@given(body=JSON)
def test_random_json_bodies_never_make_a_500(module_api: Api, targets: Any, target: str, body: Any) -> None:
    path, _, key = targets[target]
    assert_answered(module_api.post(path, body, key))


@pytest.mark.parametrize("target", ["transfer", "onward", "request", "decision", "revocation"])
@FUZZ
@given(data=st.data())
def test_valid_bodies_with_one_random_field_never_make_a_500(module_api: Api, targets: Any, target: str,
                                                            data: st.DataObject) -> None:
    path, body, key = targets[target]
    names = sorted(body) + [f"{k}.{n}" for k, v in body.items() if isinstance(v, dict) for n in v]
    names += ["conditions.written_instrument.sha256", "handling.use_restrictions", "conditions.valid_until",
              "conditions.max_transfers", "transferred_at", "retention_until", "item_count", "surprise"]
    where = data.draw(st.sampled_from(names)).split(".")
    value = data.draw(JSON | st.sampled_from(["DE", "de", "INTERPOL", "*", "", " ", "\x00", "2026-01-01T00:00:00Z",
                                              "art40-4", "treaty:", "00000000-0000-4000-8000-000000000000"]))
    assert_answered(module_api.post(path, mutated(body, where, value), key))


@FUZZ
@given(raw=st.binary(max_size=200), idem=st.none() | st.text(st.characters(min_codepoint=32, max_codepoint=126),
                                                             max_size=300))
def test_raw_bytes_and_odd_idempotency_keys_never_make_a_500(module_api: Api, targets: Any, raw: bytes,
                                                            idem: str | None) -> None:
    path, _, key = targets["transfer"]
    assert module_api.client is not None
    headers = {**module_api.headers(key, idem), "Content-Type": "application/json"}
    assert_answered(module_api.client.post(path, content=raw, headers=headers))


def test_proofs_answer_503_when_stored_nodes_are_missing(api: Api, backend: Backend) -> None:
    for _ in range(4):
        api.transfer("DE", "FR")
    backend.execute("DELETE FROM ledger_nodes WHERE level = 1 AND idx = 1")
    api.restart()  # a fresh process: its copy of the nodes loads at the first proof
    for path, params in (("/v1/proofs/inclusion", {"index": 0, "tree_size": 4}),
                         ("/v1/proofs/consistency", {"first": 1, "second": 4})):
        body = problem(api.get(path, "*-verifier", params=params), 503, "nodes-missing")
        assert "transfer-ledger verify" in body["detail"]
    # a tree the missing node is not part of is still proved
    proof = api.ok(api.get("/v1/proofs/consistency", "*-verifier", params={"first": 1, "second": 2}), 200)
    assert len(proof["proof"]) == 1


def test_proofs_follow_the_tree_as_it_grows(api: Api) -> None:
    """The copy of the nodes grows with the tree: each proof verifies against a fresh checkpoint."""
    previous = None
    for n in range(1, 10):
        api.transfer("DE", "FR")
        checkpoint = api.checkpoint()
        assert checkpoint.size == n
        proof = api.ok(api.get("/v1/proofs/inclusion", "*-verifier",
                               params={"index": n - 1, "tree_size": n}), 200)
        verify_inclusion(b64(proof["leaf_hash"]), n - 1, n, [b64(p) for p in proof["proof"]], checkpoint.root_hash)
        if previous is not None:
            proof = api.ok(api.get("/v1/proofs/consistency", "*-verifier", params={"first": n - 1, "second": n}), 200)
            verify_consistency(n - 1, n, [b64(p) for p in proof["proof"]], previous.root_hash, checkpoint.root_hash)
        previous = checkpoint
