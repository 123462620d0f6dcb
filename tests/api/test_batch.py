"""POST /v1/transfers/batch: a recording system catching up; each item checked as if recorded alone,
refusals in their place, idempotent by each item's key (on the suite's backend)."""

from __future__ import annotations

from typing import Any

from tests.support import builders
from tests.support.api import Api, problem


def batch(api: Api, items: list[dict[str, Any]], who: str = "DE-recorder", **extra: Any) -> dict[str, Any]:
    return api.ok(api.post("/v1/transfers/batch", {"items": items, **extra}, who), 200)


def test_items_are_recorded_and_refused_in_their_place(api: Api) -> None:
    root = api.transfer("DE", "FR")
    size = api.tree_size()
    answer = batch(api, [
        {"key": "a", "transfer": builders.transfer("DE", "NL", request_reference="B-1")},
        {"key": "b", "transfer": builders.transfer("FR", "NL")},  # not DE's to record
        {"key": "c", "transfer": builders.onward("DE", "BR", root)},  # DE does not hold root's data
        {"key": "d", "transfer": builders.transfer("DE", "BR", request_reference="B-2")},
    ])
    assert (answer["recorded"], answer["refused"], answer["already"]) == (2, 2, 0)
    statuses = [(i["index"], i["status"], (i["problem"] or {}).get("rule")) for i in answer["items"]]
    assert statuses[0] == (0, 201, None) and statuses[3] == (3, 201, None)
    assert statuses[1] == (1, 403, "not-your-party")
    assert statuses[2][1] == 409 and statuses[2][2]  # the rule POST /v1/transfers gives
    single = api.post("/v1/transfers", builders.onward("DE", "BR", root), "DE-recorder")
    assert single.status_code == 409 and single.json()["rule"] == statuses[2][2]
    assert api.tree_size() == size + 2
    recorded = answer["items"][0]["transfer"]
    assert api.ok(api.get(f"/v1/transfers/{recorded['id']}", "DE-recorder"), 200)["request_reference"] == "B-1"


def test_a_retry_records_nothing_twice(api: Api) -> None:
    items = [{"key": f"k{i}", "transfer": builders.transfer("DE", "FR", request_reference=f"R-{i}")}
             for i in range(5)]
    first = batch(api, items)
    size = api.tree_size()
    again = batch(api, items)
    assert first["recorded"] == 5 and again["recorded"] == 0 and again["already"] == 5
    assert [i["status"] for i in again["items"]] == [200] * 5
    assert [i["transfer"]["id"] for i in again["items"]] == [i["transfer"]["id"] for i in first["items"]]
    assert api.tree_size() == size


def test_all_or_nothing_records_nothing_when_an_item_is_refused(api: Api) -> None:
    size = api.tree_size()
    answer = batch(api, [{"key": "x", "transfer": builders.transfer("DE", "FR")},
                         {"key": "y", "transfer": builders.transfer("DE", "DE")}], all_or_nothing=True)
    assert answer["rolled_back"] and answer["recorded"] == 0 and api.tree_size() == size
    assert answer["items"][0]["transfer"] is None and answer["items"][1]["status"] == 422


def test_bad_requests(api: Api) -> None:
    problem(api.post("/v1/transfers/batch", {"items": []}, "DE-recorder"), 422, "invalid-input")
    problem(api.post("/v1/transfers/batch", {"items": [{"key": "a"}]}, "DE-recorder"), 422, "invalid-input")
    problem(api.post("/v1/transfers/batch", {"items": [{"key": "a", "transfer": {}}]}, "*-auditor"), 403,
            "role-required")
    dup = batch(api, [{"key": "same", "transfer": builders.transfer("DE", "FR")},
                      {"key": "same", "transfer": builders.transfer("DE", "NL")}])
    assert [i["status"] for i in dup["items"]] == [201, 422]
    assert dup["items"][1]["problem"]["rule"] == "duplicate-key"


def test_the_batch_path_allows_post_only(api: Api) -> None:
    """A literal path is its route's, not an id of /v1/transfers/{transfer_id} (RFC 9110 §15.5.6)."""
    response = api.client.options("/v1/transfers/batch")  # type: ignore[union-attr]
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert api.client.options("/v1/control/checks").headers["allow"] == "GET, POST"  # type: ignore[union-attr]


def test_other_methods_of_the_batch_path_are_405_not_a_transfer_named_batch(api: Api) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = api.client.request(method, "/v1/transfers/batch", headers=api.headers("DE-recorder"))  # type: ignore[union-attr]
        body = problem(response, 405, "method-not-allowed")
        assert response.headers["allow"] == "POST", body


def test_a_transfer_without_a_sender_is_refused_by_its_own_validation(api: Api) -> None:
    answer = batch(api, [{"key": "empty", "transfer": {}}])
    assert answer["items"][0]["status"] == 422 and answer["items"][0]["problem"]["field"] == "sender"
    problem(api.post("/v1/transfers/batch", {"items": [{"key": "a", "transfer": {}}], "all_or_nothing": 0},
                     "DE-recorder"), 422, "invalid-input")
