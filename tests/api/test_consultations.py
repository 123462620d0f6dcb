"""Consultation logs over HTTP (LED art. 25): every read of personal data is logged, with its
justification; the logs are read by auditors for a stated purpose; a Party may require a
justification; the log is tamper-evident and is itself erased when its period ends."""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest

from domain.consultation import ConsultationLog
from tests.support import builders
from tests.support import preservation as pres
from tests.support.api import Api, problem, run_init
from tests.support.server import Server, add_keys, consultation_leaves

WHY = {"X-Justification": "case 2026/17: checking the lawfulness of the transfer", "X-Officer": "Insp. Weber"}


def read(api: Api, path: str, who: str, **headers: str) -> httpx.Response:
    assert api.client is not None
    return api.client.get(path, headers={**api.headers(who), **headers})


def logs(api: Api, who: str = "*-auditor", purpose: str = "lawfulness", **params: Any) -> dict[str, Any]:
    return api.ok(api.get("/v1/audit/consultations", who, params={"purpose": purpose, **params}), 200)


def set_policy(api: Api, party: str, required: bool) -> None:
    api.app.state.ledger.set_party_policy(party, justification_required=required,
                                          set_by={"party": party, "authority": f"{party}/DPO", "officer": "Dr. Roth"})


def test_a_read_is_logged_with_who_what_route_and_justification_never_the_values(api: Api) -> None:
    t = api.transfer("DE", "FR", subjects=["Jan Kowalski, born 1980"])
    read(api, f"/v1/transfers/{t['id']}", "FR-recorder", **WHY)
    [entry] = logs(api)["items"]
    assert entry["route"] == "GET /v1/transfers/{transfer_id}" and entry["via"] == "api"
    assert entry["objects"] == [f"transfer:{t['id']}"] and entry["parties"] == ["DE", "FR"]
    assert (entry["party"], entry["status"]) == ("FR", 200)
    assert entry["reader"] == {"officer": "Insp. Weber", "justification": WHY["X-Justification"]}
    assert entry["at"].endswith("Z") and len(entry["at"]) == 27
    # The leaf holds the entry; its personal part (officer, justification) only as a commitment.
    feed = api.ok(api.get("/v1/events", params={"limit": 1000}), 200)["items"]
    leaf = next(e for e in feed if e["leaf_index"] == entry["leaf_index"])
    assert leaf["topic"] == ConsultationLog.Logged.TOPIC
    assert leaf["event"]["readers"].startswith("commitment:")
    assert "Weber" not in str(leaf["event"]) and "lawfulness of the transfer" not in str(leaf["event"])
    assert "Kowalski" not in str(leaf["event"])  # only ids of what was read


@pytest.mark.parametrize("route", [
    "/v1/transfers/{t}", "/v1/transfers/{t}/lineage", "/v1/transfers", "/v1/transfers/{t}/uses",
    "/v1/authorization-requests/{a}", "/v1/authorizations/{a}", "/v1/authorization-requests",
    "/v1/audit/lineage/{t}", "/v1/audit/authorizations", "/v1/audit/findings",
])
def test_every_read_of_personal_data_is_logged_naming_what_it_read(api: Api, route: str) -> None:
    root = api.transfer("DE", "FR")
    auth = api.request("FR", "INTERPOL", root)
    path = route.format(t=root["id"], a=auth["id"])
    who = "*-auditor" if route.startswith("/v1/audit") else "FR-recorder"
    before = logs(api)["items"]
    api.ok(read(api, path, who), 200)
    mine = [e for e in logs(api)["items"] if e not in before and e.get("purpose") is None]
    [entry] = mine
    assert entry["route"] == "GET " + route.replace("{t}", "{transfer_id}").replace("{a}", "{authorization_id}")
    named = {root["id"], auth["id"]} & {ref.split(":", 1)[1] for ref in entry["objects"]}
    assert named or route == "/v1/audit/findings", entry["objects"]  # no finding here: nothing named


def test_reads_that_hold_no_personal_data_are_not_logged(api: Api) -> None:
    api.transfer("DE", "FR")
    for path, who in (("/healthz", "*-auditor"), ("/v1/checkpoint", "*-verifier"),
                      ("/v1/audit/statistics", "*-auditor"), ("/v1/audit/projections", "*-auditor")):
        assert read(api, path, who).status_code == 200
    assert logs(api)["items"] == []


def test_healthz_shows_what_waits_to_be_written(api: Api) -> None:
    t = api.transfer("DE", "FR")
    read(api, f"/v1/transfers/{t['id']}", "FR-recorder")
    read(api, "/v1/transfers", "FR-recorder")
    assert api.ok(api.get("/healthz", None), 200)["consultation_log"] == {"buffered": 2, "written": 0,
                                                                           "failed_flushes": 0}
    logs(api)
    assert api.ok(api.get("/healthz", None), 200)["consultation_log"]["written"] == 2


def test_the_feed_logs_the_range_of_leaves_read(api: Api) -> None:
    api.transfer("DE", "FR")
    api.transfer("DE", "NL")
    api.ok(api.get("/v1/events", params={"after": 0, "limit": 1}), 200)
    [entry] = logs(api)["items"]
    assert entry["objects"] == ["leaves:1-1"] and entry["route"] == "GET /v1/events"


def test_a_preservation_read_is_logged(api: Api) -> None:
    made = api.ok(api.post("/v1/preservations", pres.preservation(), "DE-authority"), 201)
    api.ok(read(api, f"/v1/preservations/{made['id']}", "FR-recorder"), 200)
    [entry] = logs(api)["items"]
    assert entry["objects"] == [f"preservation:{made['id']}"] and entry["parties"] == ["DE", "FR"]


def test_a_partys_policy_can_make_the_justification_mandatory(api: Api) -> None:
    t = api.transfer("DE", "FR")
    set_policy(api, "FR", True)
    body = problem(read(api, f"/v1/transfers/{t['id']}", "FR-recorder"), 428, "justification-required")
    assert body["field"] == "X-Justification" and "FR" in body["detail"]
    problem(read(api, f"/v1/transfers/{t['id']}", "FR-recorder", **{"X-Justification": "  "}), 428,
            "justification-required")
    assert logs(api)["items"] == []  # refused reads read nothing, and log nothing
    api.ok(read(api, f"/v1/transfers/{t['id']}", "FR-recorder", **WHY), 200)
    api.ok(api.get(f"/v1/transfers/{t['id']}", "FR-recorder", params={"justification": "by query"}), 200)
    # DE's principals are not bound by FR's policy; FR can lift it.
    api.ok(read(api, f"/v1/transfers/{t['id']}", "DE-recorder"), 200)
    set_policy(api, "FR", False)
    api.ok(read(api, f"/v1/transfers/{t['id']}", "FR-recorder"), 200)
    reasons = [e["reader"]["justification"] for e in logs(api)["items"] if e.get("purpose") is None]
    assert reasons == [WHY["X-Justification"], "by query", None, None]


def test_the_logs_are_read_only_by_auditors_for_a_purpose_art_25_2(api: Api) -> None:
    problem(api.get("/v1/audit/consultations", "*-auditor"), 422, "purpose-required")
    problem(api.get("/v1/audit/consultations", "*-auditor", params={"purpose": "curiosity"}), 422,
            "unknown-log-purpose")
    problem(api.get("/v1/audit/consultations", "DE-recorder", params={"purpose": "lawfulness"}), 403,
            "role-required")
    problem(api.get("/v1/audit/consultations", "*-auditor", params={"purpose": "integrity", "cursor": "x"}), 422)
    # Reading the logs is itself logged, with its purpose.
    logs(api, purpose="self-monitoring")
    [entry] = logs(api, purpose="integrity")["items"]
    assert entry["route"] == "GET /v1/audit/consultations" and entry["purpose"] == "self-monitoring"


def test_a_partys_auditor_sees_the_reads_of_its_share_only(api: Api) -> None:
    de_fr = api.transfer("DE", "FR")
    br_nl = api.transfer("BR", "NL")
    read(api, f"/v1/transfers/{de_fr['id']}", "FR-recorder")
    read(api, f"/v1/transfers/{br_nl['id']}", "NL-recorder")
    read(api, f"/v1/transfers/{br_nl['id']}", "BR-recorder")
    de = [e["objects"] for e in logs(api, "DE-auditor")["items"] if e.get("purpose") is None]
    assert de == [[f"transfer:{de_fr['id']}"]]  # read by FR, about DE's transfer
    nl = [e["objects"] for e in logs(api, "NL-auditor")["items"] if e.get("purpose") is None]
    assert nl == [[f"transfer:{br_nl['id']}"]] * 2


def test_filters_and_cursor_paging(api: Api) -> None:
    one, two = api.transfer("DE", "FR"), api.transfer("DE", "NL")
    for _ in range(3):
        read(api, f"/v1/transfers/{one['id']}", "FR-recorder")
    read(api, f"/v1/transfers/{two['id']}", "NL-recorder")
    everything = logs(api)["items"]
    assert len(everything) == 4
    fr_principal = everything[0]["principal"]
    assert len(logs(api, principal=fr_principal)["items"]) == 3
    assert len(logs(api, party="NL")["items"]) == 1
    assert len(logs(api, transfer=two["id"])["items"]) == 1
    assert logs(api, since=everything[3]["at"])["items"][0]["id"] == everything[3]["id"]
    assert [e["id"] for e in logs(api, until=everything[1]["at"])["items"]] == [everything[0]["id"]]
    future = (date.today() + timedelta(days=2)).isoformat() + "T00:00:00Z"
    assert logs(api, since=future)["items"] == []
    pages, cursor = [], None
    while True:
        page = logs(api, principal=fr_principal, limit=2, **({"cursor": cursor} if cursor else {}))
        pages.append([e["id"] for e in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sum(pages, []) == [e["id"] for e in everything[:3]] and len(pages) == 2


def test_each_entry_is_a_leaf_an_auditor_can_prove(api: Api) -> None:
    t = api.transfer("DE", "FR")
    read(api, f"/v1/transfers/{t['id']}", "FR-recorder")
    [entry] = logs(api)["items"]
    size = api.tree_size()
    proof = api.ok(api.get("/v1/proofs/inclusion", "*-verifier",
                           params={"index": entry["leaf_index"], "tree_size": size}), 200)
    assert proof["leaf_index"] == entry["leaf_index"]


def test_the_logs_personal_part_is_erased_when_their_period_ends(api: Api) -> None:
    t = api.transfer("DE", "FR")
    ledger = api.app.state.ledger
    now = ledger.clock()
    ledger.clock = lambda: now.replace(year=now.year - 3) - timedelta(days=2)  # a read three years ago
    try:
        read(api, f"/v1/transfers/{t['id']}", "FR-recorder", **WHY)
        ledger.consultations.flush()
    finally:
        ledger.clock = lambda: now
    [entry] = logs(api)["items"]
    log_until = date.fromisoformat(ledger.repository.get(UUID(entry["log_id"])).log_until)
    assert log_until == now.date() - timedelta(days=2)  # the logs' own period: three years (LED art. 25)
    assert entry["reader"]["officer"] == "Insp. Weber"
    ledger.run_retention(log_until)  # its last day: kept
    assert logs(api)["items"][0]["reader"]["officer"] == "Insp. Weber"
    report = ledger.run_retention(now.date())
    assert [day["until"] for day in report["actor_logs"]] == [log_until.isoformat()]
    erased = logs(api)["items"][0]
    assert set(erased["reader"]) == {"erased", "commitment"}
    assert erased["reader"]["erased"]["retention_class"] == "actor-log"
    assert erased["objects"] == entry["objects"] and erased["principal"] == entry["principal"]
    # the later reads of the logs (kept three years from now) still name their reader
    assert all(e["reader"].get("officer", "") is None for e in logs(api)["items"][1:])


def test_a_full_log_refuses_reads_rather_than_serve_them_unlogged(api: Api) -> None:
    t = api.transfer("DE", "FR")
    writer = api.app.state.ledger.consultations
    writer.max_buffered = writer.buffered
    body = problem(read(api, f"/v1/transfers/{t['id']}", "FR-recorder"), 503, "consultation-log-unavailable")
    assert "logged" in body["detail"]


def test_a_served_ledger_writes_the_log_within_its_interval_and_a_kill_loses_no_older_read(
        settings: Any, tmp_path: Any) -> None:
    """The bound of docs/OPERATIONS.md: a kill -9 loses at most the reads of the last flush interval."""
    run_init(settings)
    keys = add_keys(settings)
    server = Server(settings, tmp_path / "server.log")
    try:
        server.start()
        with httpx.Client(base_url=server.url, timeout=10.0) as client:
            created = client.post("/v1/transfers", json=builders.transfer("DE", "FR"),
                                  headers={"Authorization": f"Bearer {keys['DE-recorder']}"}).json()
            fr = {"Authorization": f"Bearer {keys['FR-recorder']}", **WHY}
            for _ in range(20):
                assert client.get(f"/v1/transfers/{created['id']}", headers=fr).status_code == 200
            time.sleep(0.5)  # five flush intervals
            assert server.process is not None
            server.process.kill()
            server.process.wait(timeout=10)
        server.kill()
        assert consultation_leaves(settings) >= 1
        server.start()
        with httpx.Client(base_url=server.url, timeout=10.0) as client:
            answer = client.get("/v1/audit/consultations", params={"purpose": "integrity"},
                                headers={"Authorization": f"Bearer {keys['*-auditor']}"}).json()
        reads = [e for e in answer["items"] if e["route"] == "GET /v1/transfers/{transfer_id}"]
        assert len(reads) == 20 and {e["reader"]["officer"] for e in reads} == {"Insp. Weber"}
        server.assert_stopped_cleanly(server.stop())
    finally:
        server.kill()
