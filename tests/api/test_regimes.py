"""Legal regimes over HTTP (domain/regimes.py): the Convention has no urgent exception, LED art. 35(2) has
one, with its notice to the authorizing State; and the finding when that notice is late or missing."""

from __future__ import annotations

from typing import Any

from tests.support import builders
from tests.support.api import Api, problem

URGENT = {"threat": "public-security", "grounds": "an attack on a hospital is planned for tonight",
          "why_no_prior_authorization": "the BfJ duty officer could not be reached before the attack"}


def _urgent(api: Api, parent: dict[str, Any], **overrides: Any) -> Any:
    body = builders.onward("FR", "NL", parent, regime="eu-led", urgent=URGENT, **overrides)
    return api.post("/v1/transfers", body, "FR-recorder")


def test_every_transfer_records_its_regime(module_api: Api) -> None:
    api = module_api
    assert api.transfer("DE", "FR")["regime"] == "un-cybercrime"
    for regime in ("eu-led", "budapest-p2", "treaty:MLAT-DE-FR-1961"):
        assert api.transfer("DE", "FR", regime=regime)["regime"] == regime
    bad = problem(api.post("/v1/transfers", builders.transfer(regime="mars")), 422, "unknown-regime")
    assert bad["field"] == "regime"


def test_the_convention_has_no_urgent_exception(module_api: Api) -> None:
    api = module_api
    size = api.tree_size()
    for regime in ("un-cybercrime", "budapest-p2"):
        root = api.transfer("DE", "FR", regime=regime)
        size = api.tree_size()
        out = problem(_urgent(api, root), 409, "no-urgent-exception")
        assert out["field"] == "urgent" and "however urgent" in out["detail"]
        assert api.tree_size() == size
    problem(api.post("/v1/transfers", builders.transfer(urgent=URGENT, regime="eu-led")), 422, "urgent-not-onward")


def test_led_allows_an_urgent_onward_transfer_and_the_state_is_informed(module_api: Api) -> None:
    api = module_api
    root = api.transfer("DE", "FR", regime="eu-led")
    problem(api.post("/v1/transfers", builders.onward("FR", "NL", root, regime="eu-led"), "FR-recorder"), 409,
            "onward-transfer-not-authorized")  # not urgent: the prior authorization is still needed
    hop = api.ok(_urgent(api, root), 201)
    assert hop["urgent"] == URGENT and hop["urgent_notice"] is None and hop["authorization_id"] is None
    path = f"/v1/transfers/{hop['id']}/urgent-notice"
    problem(api.post(path, {"notified_by": builders.actor("NL")}, "NL-recorder"), 403, "not-the-sender")
    problem(api.post(path, {"notified_by": builders.actor("FR")}, "FR-authority"), 403, "role-required")
    told = api.ok(api.post(path, {"notified_by": builders.actor("FR")}, "FR-recorder"), 200)
    assert told["urgent_notice"]["notified_party"] == "DE"
    assert told["urgent_notice"]["leaf_index"] == api.tree_size() - 1
    problem(api.post(path, {"notified_by": builders.actor("FR")}, "FR-recorder"), 409, "urgent-notice-already-given")
    plain = api.transfer("DE", "FR")
    problem(api.post(f"/v1/transfers/{plain['id']}/urgent-notice", {"notified_by": builders.actor("DE")},
                     "DE-recorder"), 409, "not-urgent")
    # an urgent transfer names no grant
    auth = api.grant(api.request("FR", "NL", root))
    problem(_urgent(api, root, authorization_id=auth["id"]), 422, "urgent-with-authorization")


def test_an_urgent_transfer_is_no_finding_while_its_notice_is_not_due(module_api: Api) -> None:
    api = module_api
    root = api.transfer("DE", "FR", regime="eu-led")
    hop = api.ok(_urgent(api, root), 201)
    found = api.ok(api.get("/v1/audit/findings"), 200)["items"]
    assert hop["id"] not in {f["transfer_id"] for f in found}  # the exception held; the notice is not due yet
