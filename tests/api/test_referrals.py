"""Third-country referrals over HTTP (docs/API.md, "Referrals"; the Ministry's letter, art. 43 §1,
art. 40 §4, art. 36 §3).

FR, executing DE's request, finds the data lead to NL: it informs NL and tells DE where to turn.
Each rule allowed, refused with its problem and nothing recorded, and who reads what.
"""

from __future__ import annotations

from tests.support import builders
from tests.support.api import Api, problem


def test_a_referral_is_recorded_and_read_by_its_parties(module_api: Api) -> None:
    api = module_api
    size = api.tree_size()
    made = api.ok(api.post("/v1/referrals", builders.referral(), "FR-recorder"), 201)
    assert api.tree_size() == size + 2
    assert made["transfer"]["leaf_index"] == size and made["leaf_index"] == size + 1
    assert made["transfer"]["recipient"]["party"] == "NL" and made["transfer"]["origin"] == "FR"
    for key in ("FR-recorder", "DE-authority", "NL-recorder", "*-auditor", "DE-auditor"):
        assert api.ok(api.get(f"/v1/referrals/{made['id']}", key), 200)["third_party"] == "NL"
    # DE is told where to turn, but the transfer FR -> NL of FR's own finding is not DE's to read
    told = api.ok(api.get(f"/v1/referrals/{made['id']}", "DE-recorder"), 200)
    assert told["transfer"] is None and told["notice"]["recipient"]["party"] == "DE"
    problem(api.get(f"/v1/transfers/{made['transfer_id']}", "DE-recorder"), 404, "transfer-not-found")
    read = api.ok(api.get(f"/v1/transfers/{made['transfer_id']}", "NL-recorder"), 200)
    assert read["referral_id"] == made["id"]
    assert api.ok(api.get(f"/v1/referrals/{made['id']}", "NL-recorder"), 200)["transfer"]["id"] == read["id"]
    for key in ("INTERPOL-recorder", "BR-authority", "INTERPOL-authority"):
        problem(api.get(f"/v1/referrals/{made['id']}", key), 404, "referral-not-found")
    problem(api.get("/v1/referrals/not-a-uuid", "FR-recorder"), 404, "referral-not-found")
    listed = api.ok(api.get("/v1/referrals", "DE-recorder", params={"third_party": "NL", "limit": 500}), 200)
    assert made["id"] in {r["id"] for r in listed["items"]}
    assert not api.ok(api.get("/v1/referrals", "INTERPOL-recorder", params={"limit": 500}), 200)["items"]


def test_passing_on_received_data_to_the_third_country_needs_the_origins_grant(module_api: Api) -> None:
    api = module_api
    root = api.transfer("DE", "FR")
    size = api.tree_size()
    refused = problem(api.post("/v1/referrals", builders.referral(parent=root), "FR-recorder"), 409,
                      "onward-transfer-not-authorized")
    assert refused["article"] == "art. 36 §3" and api.tree_size() == size  # neither transfer nor notice
    grant = api.grant(api.request("FR", "NL", root))
    body = builders.referral(parent=root, transfer_=builders.onward("FR", "NL", root, grant, legal_basis="art40-4"))
    made = api.ok(api.post("/v1/referrals", body, "FR-recorder"), 201)
    assert made["origin"] == "DE" and made["authorization_id"] == grant["id"] and api.tree_size() == size + 5
    lineage = api.ok(api.get(f"/v1/transfers/{root['id']}/lineage", "DE-recorder"), 200)
    assert made["transfer_id"] in {d["id"] for d in lineage["descendants"]}
    assert api.ok(api.get(f"/v1/referrals/{made['id']}", "DE-recorder"), 200)["transfer"]["origin"] == "DE"


def test_consistency_rules_are_refused_with_their_field(module_api: Api) -> None:
    api = module_api
    size = api.tree_size()
    for overrides, rule, field in (
        ({"requesting_party": "FR"}, "referral-of-own-request", "requesting_party"),
        ({"third_party": "DE"}, "third-party-is-requesting-party", "third_party"),
        ({"third_party": "BR"}, "referral-transfer-not-to-third-party", "transfer.recipient.party"),
        ({"notice": {"notified_by": builders.actor("FR"), "recipient": builders.actor("BR", officer=None)}},
         "notice-not-to-requesting-party", "notice.recipient.party"),
    ):
        out = problem(api.post("/v1/referrals", builders.referral(**overrides), "FR-recorder"), 422, rule)
        assert out["field"] == field
    problem(api.post("/v1/referrals", builders.referral(finding=""), "FR-recorder"), 422)
    assert api.tree_size() == size


def test_only_the_referring_partys_recorder_refers(module_api: Api) -> None:
    api = module_api
    problem(api.post("/v1/referrals", builders.referral(), "DE-recorder"), 403, "not-your-party")
    problem(api.post("/v1/referrals", builders.referral(), "FR-authority"), 403, "role-required")
    notice = {"notified_by": builders.actor("DE"), "recipient": builders.actor("DE", officer=None)}
    out = problem(api.post("/v1/referrals", builders.referral(notice=notice), "FR-recorder"), 403, "not-your-party")
    assert out["field"] == "notice.notified_by.party"


def test_a_retry_with_the_same_key_answers_the_first_referral(module_api: Api) -> None:
    api = module_api
    first = api.ok(api.post("/v1/referrals", builders.referral(), "FR-recorder", idem="ref-1"), 201)
    size = api.tree_size()
    again = api.ok(api.post("/v1/referrals", builders.referral(), "FR-recorder", idem="ref-1"), 201)
    assert again["id"] == first["id"] and api.tree_size() == size


def test_auditors_count_referrals_and_see_them_in_the_lineage(module_api: Api) -> None:
    api = module_api
    before = api.ok(api.get("/v1/audit/statistics", "*-auditor"), 200)["referrals"]
    made = api.ok(api.post("/v1/referrals", builders.referral("FR", "DE", "BR"), "FR-recorder"), 201)
    after = api.ok(api.get("/v1/audit/statistics", "*-auditor"), 200)["referrals"]
    assert after["total"] == before.get("total", 0) + 1
    route = next(r for r in after["by_route"] if (r["requesting_party"], r["referring_party"],
                                                  r["third_party"]) == ("DE", "FR", "BR"))
    assert route["referrals"] >= 1
    hop = api.ok(api.get(f"/v1/audit/lineage/{made['transfer_id']}", "*-auditor"), 200)["transfer"]
    assert hop["referral_id"] == made["id"]
    assert api.ok(api.get("/v1/audit/statistics", "NL-auditor"), 200)["referrals"]["by_route"] == [
        r for r in after["by_route"] if "NL" in (r["requesting_party"], r["referring_party"], r["third_party"])]
