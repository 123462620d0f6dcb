"""Preservation requests (art. 42) over HTTP: who may act, each rule's problem, reads, lists and
the auditors' questions (on the suite's backend)."""

from __future__ import annotations

from typing import Any

from tests.support import preservation as p
from tests.support.api import Api, problem


def made(api: Api, **overrides: Any) -> dict[str, Any]:
    return api.ok(api.post("/v1/preservations", p.preservation(**overrides), "DE-authority"), 201)


def act(api: Api, preservation: dict[str, Any], step: str, body: dict[str, Any], who: str) -> Any:
    return api.post(f"/v1/preservations/{preservation['id']}/{step}", body, who)


def test_a_preservation_with_an_extension_follow_up_decision_and_release(api: Api) -> None:
    created = made(api, period_days=90)
    assert (created["status"], created["days_left"], created["requesting_party"]) == ("preserved", 90, "DE")
    assert created["facts"] == p.preservation()["facts"] and created["custodian"] == "Example Mail SAS"
    extended = api.ok(act(api, created, "extension", p.extension(days=30), "DE-authority"), 200)
    assert extended["days_left"] == 120 and extended["extensions"][0]["period_days"] == 30
    followed = api.ok(act(api, created, "follow-up", p.follow_up(), "DE-authority"), 200)
    assert (followed["status"], followed["days_left"]) == ("awaiting-decision", None)
    decided = api.ok(act(api, created, "follow-up/decision", p.decision(), "FR-authority"), 200)
    assert decided["status"] == "decided" and decided["decision"]["decision"] == "granted"
    released = api.ok(act(api, created, "release", p.release(), "FR-authority"), 200)
    assert released["status"] == "released" and released["release"]["leaf_index"] == created["leaf_index"] + 4
    assert api.ok(api.get(f"/v1/preservations/{created['id']}", "FR-recorder"), 200) == released


def test_a_period_under_60_days_is_422_and_records_nothing(api: Api) -> None:
    size = api.tree_size()
    body = problem(api.post("/v1/preservations", p.preservation(period_days=59), "DE-authority"), 422,
                   "preservation-period-too-short")
    assert body["field"] == "period_days"
    problem(api.post("/v1/preservations", p.preservation(mla_request_intended=False), "DE-authority"), 422,
            "mla-request-not-intended")
    problem(api.post("/v1/preservations", p.preservation("DE", "DE"), "DE-authority"), 422, "preservation-to-self")
    problem(api.post("/v1/preservations", p.preservation(requested_at="2999-01-01T00:00:00Z"), "DE-authority"), 422,
            "time-in-future")
    assert api.tree_size() == size


def test_only_authorities_of_the_party_concerned_act(api: Api) -> None:
    problem(api.post("/v1/preservations", p.preservation(), "DE-recorder"), 403, "role-required")
    problem(api.post("/v1/preservations", p.preservation(), "FR-authority"), 403, "not-your-party")
    created = made(api)
    size = api.tree_size()
    problem(act(api, created, "extension", p.extension("FR"), "FR-authority"), 403, "not-requesting-party")
    problem(act(api, created, "follow-up", p.follow_up("FR"), "FR-authority"), 403, "not-requesting-party")
    problem(act(api, created, "release", p.release("DE"), "DE-authority"), 403, "not-requested-party")
    problem(act(api, created, "extension", p.extension("FR"), "DE-authority"), 403, "not-your-party")
    # a Party with no part in it is told it does not exist
    problem(act(api, created, "extension", p.extension("NL"), "NL-authority"), 404, "preservation-not-found")
    problem(api.get(f"/v1/preservations/{created['id']}", "NL-recorder"), 404, "preservation-not-found")
    problem(api.get("/v1/preservations/00000000-0000-4000-8000-000000000000", "DE-recorder"), 404,
            "preservation-not-found")
    assert api.tree_size() == size


def test_rules_refuse_with_409(api: Api) -> None:
    expired = made(api, requested_at=p.days_ago(61))
    assert (expired["status"], expired["days_left"]) == ("expired", 0)
    problem(act(api, expired, "extension", p.extension(), "DE-authority"), 409, "preservation-expired")
    running = made(api)
    problem(act(api, running, "release", p.release(), "FR-authority"), 409, "preservation-period-running")
    api.ok(act(api, running, "follow-up", p.follow_up(), "DE-authority"), 200)
    body = problem(act(api, running, "release", p.release(), "FR-authority"), 409, "follow-up-awaiting-decision")
    assert body["article"] == "art. 42 §8"
    problem(act(api, running, "follow-up/decision", p.decision(outcome="refused"), "FR-authority"), 422,
            "refusal-without-reasons")


def test_lists_page_by_cursor_and_show_each_party_its_share(api: Api) -> None:
    ids = [made(api)["id"] for _ in range(3)]
    other = api.ok(api.post("/v1/preservations", p.preservation("NL", "BR"), "NL-authority"), 201)
    first = api.ok(api.get("/v1/preservations?limit=2", "DE-recorder"), 200)
    rest = api.ok(api.get(f"/v1/preservations?limit=2&cursor={first['next_cursor']}", "DE-recorder"), 200)
    assert [i["id"] for i in first["items"] + rest["items"]] == ids and rest["next_cursor"] is None
    everything = api.ok(api.get("/v1/preservations?party=BR"), 200)
    assert [i["id"] for i in everything["items"]] == [other["id"]]
    assert api.ok(api.get("/v1/preservations?status=expired", "DE-recorder"), 200)["items"] == []


def test_auditors_see_what_is_about_to_expire_and_what_expired_or_was_released_early(api: Api) -> None:
    soon = made(api, requested_at=p.days_ago(58))
    made(api)
    lapsed = made(api, requested_at=p.days_ago(70))
    answer = api.ok(api.get("/v1/audit/preservations?expiring_within=7d"), 200)
    assert [(i["id"], i["days_left"]) for i in answer["items"]] == [(soon["id"], 2)]
    assert api.ok(api.get("/v1/audit/preservations?expiring_within=24h"), 200)["items"] == []
    assert api.ok(api.get("/v1/audit/preservations?expiring_within=7d", "NL-auditor"), 200)["items"] == []
    body = problem(api.get("/v1/audit/preservations?expiring_within=week"), 422, "invalid-duration")
    assert body["field"] == "expiring_within"
    problem(api.get("/v1/audit/preservations?expiring_within=7d", "DE-recorder"), 403, "role-required")
    found = api.ok(api.get("/v1/audit/findings?rule=preservation-expired-unattended", "DE-auditor"), 200)
    assert [f["id"] for f in found["items"]] == [f"preservation-expired-unattended/{lapsed['id']}"]


def test_a_retried_command_records_once(api: Api) -> None:
    first = api.post("/v1/preservations", p.preservation(), "DE-authority", idem="pres-1")
    size = api.tree_size()
    again = api.post("/v1/preservations", p.preservation(), "DE-authority", idem="pres-1")
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"] and api.tree_size() == size
