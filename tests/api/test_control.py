"""Internal control checks (Order 949 annex 3) over HTTP: who records and reads them, each rule's problem,
and the findings auditors ask for (on the suite's backend)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from tests.support import builders
from tests.support import control as c
from tests.support.api import Api, problem

TODAY = date.today()


def day(offset: int) -> str:
    return (TODAY + timedelta(days=offset)).isoformat()


def unplanned(party: str = "DE", **overrides: Any) -> dict[str, Any]:
    dates = {"received_on": day(0), "decided_on": day(0), "ends_on": day(20)}
    return c.unplanned(party, **{**dates, **{k: v for k, v in overrides.items() if k in dates}},
                       **{k: v for k, v in overrides.items() if k not in dates})


def test_a_plan_a_planned_check_its_conclusion_and_a_measure(api: Api) -> None:
    year = TODAY.year
    plan = api.ok(api.post("/v1/control/plans", c.plan("DE", year, c.planned(f"{year}-01-05", f"{year}-02-04")),
                           "DE-auditor"), 201)
    assert api.ok(api.get(f"/v1/control/plans/{plan['id']}", "DE-recorder"), 200) == plan
    check = api.ok(api.post("/v1/control/checks", c.of_plan(plan["id"]), "DE-auditor"), 201)
    assert (check["kind"], check["starts_on"]) == ("planned", f"{year}-01-05")
    body = c.conclusion("DE", c.measure(day(30)))
    done = api.ok(api.post(f"/v1/control/checks/{check['id']}/conclusion", body, "DE-auditor"), 200)
    assert done["status"] == "concluded" and done["measures"][0]["id"] == "m1"
    completed = api.ok(api.post(f"/v1/control/checks/{check['id']}/measures/m1/completion", c.completion(),
                                "*-admin"), 200)
    assert completed["measures"][0]["status"] == "completed"
    assert api.ok(api.get(f"/v1/control/checks/{check['id']}", "*-auditor"), 200) == completed


def test_who_records_and_reads_control_checks(api: Api) -> None:
    problem(api.post("/v1/control/plans", c.plan(), "DE-authority"), 403, "role-required")
    problem(api.post("/v1/control/plans", c.plan(), "NL-auditor"), 403, "not-your-party")
    problem(api.post("/v1/control/checks", unplanned(), "*-auditor"), 403, "not-your-party")
    check = api.ok(api.post("/v1/control/checks", unplanned(), "*-admin"), 201)
    assert check["conclusion"] is None and check["participants"] == [c.CHAIR, "KOK Lang"]
    other = api.ok(api.post("/v1/control/checks", unplanned("NL"), "NL-auditor"), 201)
    # another Party's check does not exist for the key
    problem(api.get(f"/v1/control/checks/{check['id']}", "NL-recorder"), 404, "control-check-not-found")
    problem(api.post(f"/v1/control/checks/{check['id']}/conclusion", c.conclusion(), "NL-auditor"), 404,
            "control-check-not-found")
    problem(api.get("/v1/control/checks/not-a-uuid", "DE-recorder"), 404)
    mine = api.ok(api.get("/v1/control/checks", "DE-recorder"), 200)["items"]
    assert [i["id"] for i in mine] == [check["id"]]
    everything = api.ok(api.get("/v1/control/checks", "*-auditor"), 200)["items"]
    assert {i["id"] for i in everything} == {check["id"], other["id"]}
    assert [i["id"] for i in api.ok(api.get("/v1/control/checks?party=NL", "*-auditor"), 200)["items"]] == [
        other["id"]]


def test_each_rule_is_a_problem_and_records_nothing(api: Api) -> None:
    sent = api.ok(api.post("/v1/transfers", builders.transfer("DE", "FR", ordered_by="OStA Kraus"),
                           "DE-recorder"), 201)
    size = api.tree_size()
    late = unplanned(ground={"kind": "violation-report", "reference": "R-7", "received_on": day(-30)})
    body = problem(api.post("/v1/control/checks", late, "DE-auditor"), 409, "check-organized-late")
    assert body["article"] == "Order 949 annex 3 §9"
    body = problem(api.post("/v1/control/checks", unplanned(participants=["OStA Kraus"],
                                                            events=[sent["leaf_index"]]), "DE-auditor"),
                   409, "interested-participant")
    assert body["field"] == "participants[0]"
    problem(api.post("/v1/control/checks", unplanned(ends_on=day(45)), "DE-auditor"), 422,
            "check-longer-than-a-month")
    problem(api.post("/v1/control/plans", c.plan(checks=[]), "DE-auditor"), 422)
    problem(api.post("/v1/control/checks", unplanned(tree_size=size + 5), "DE-auditor"), 422,
            "tree-size-not-reached")
    assert api.tree_size() == size
    check = api.ok(api.post("/v1/control/checks", unplanned(), "DE-auditor"), 201)
    api.ok(api.post(f"/v1/control/checks/{check['id']}/conclusion", c.conclusion(), "DE-auditor"), 200)
    problem(api.post(f"/v1/control/checks/{check['id']}/conclusion", c.conclusion(), "DE-auditor"), 409,
            "check-already-concluded")
    problem(api.post(f"/v1/control/checks/{check['id']}/measures/m1/completion", c.completion(), "DE-auditor"),
            404, "measure-not-found")


def test_an_idempotent_retry_answers_the_first_check(api: Api) -> None:
    first = api.post("/v1/control/checks", unplanned(), "DE-auditor", idem="chk-1")
    again = api.post("/v1/control/checks", unplanned(), "DE-auditor", idem="chk-1")
    assert api.ok(first, 201) == api.ok(again, 201)


def test_overdue_measures_are_findings(api: Api) -> None:
    check = api.ok(api.post("/v1/control/checks", unplanned(decided_on=day(-10), ends_on=day(-1),
                                                            ground={"kind": "complaint", "reference": "C-2",
                                                                    "received_on": day(-10)}), "DE-auditor"), 201)
    api.ok(api.post(f"/v1/control/checks/{check['id']}/conclusion", c.conclusion("DE", c.measure(day(-1))),
                    "DE-auditor"), 200)
    found = api.ok(api.get("/v1/audit/findings?rule=control-measure-overdue", "DE-auditor"), 200)
    assert [f["reason"] for f in found["items"]] == ["not-completed"]
    assert api.ok(api.get("/v1/audit/findings?rule=control-measure-overdue", "NL-auditor"), 200)["items"] == []


def test_a_unit_without_a_plan_is_a_finding_whose_evidence_names_the_transfer(api: Api) -> None:
    last_year = TODAY.year - 1
    sent = api.transfer("DE", "FR", transferred_at=f"{last_year}-06-01T10:00:00Z")
    found = api.ok(api.get("/v1/audit/findings?rule=control-plan-missing", "DE-auditor"), 200)["items"]
    assert [(f["reason"], f["parties"]["sender"]) for f in found] == [("no-plan", "DE")]
    assert found[0]["evidence"][0]["event"] == "TransferRecorded"
    assert found[0]["evidence"][0]["id"] == sent["id"]
    assert found[0]["evidence"][0]["year"] == last_year
