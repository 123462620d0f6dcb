"""Uses of received data and consents over HTTP (art. 40 §19, §25; handling codes H0-H3).

Each rule allowed, refused (with its problem, and nothing recorded) and, for who may act,
answered as docs/API.md ("Uses and consents") says.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from domain.values import format_datetime
from tests.support import builders
from tests.support.api import Api, problem
from tests.support.builders import OTHER_PROCEEDING


def _use(api: Api, transfer: dict[str, Any], body: dict[str, Any], who: str = "FR-recorder",
         idem: str | None = None) -> Any:
    return api.post(f"/v1/transfers/{transfer['id']}/uses", body, who, idem=idem)


def _consent(api: Api, transfer: dict[str, Any], decision: str | None = "granted", **overrides: Any
             ) -> dict[str, Any]:
    """FR asks DE's consent for ``transfer``'s data; DE decides (``None``: left pending)."""
    consent = api.ok(api.post("/v1/consent-requests", builders.consent_request(transfer, **overrides),
                              "FR-recorder"), 201)
    if decision is None:
        return consent
    body: dict[str, Any] = {"decision": decision, "decided_by": builders.actor("DE")}
    if decision == "refused":
        body["reasons"] = "the fraud case is not covered by the request"
    return api.ok(api.post(f"/v1/consent-requests/{consent['id']}/decision", body, "DE-authority"), 200)


def test_a_use_in_the_stated_proceeding_is_recorded_and_read_back(module_api: Api) -> None:
    api = module_api
    t = api.transfer("DE", "FR")
    size = api.tree_size()
    use = api.ok(_use(api, t, builders.use()), 201)
    assert use["proceeding"] == builders.PURPOSE["proceeding"] and use["kind"] == "investigation"
    assert use["transfer_id"] == t["id"] and use["leaf_index"] == size and api.tree_size() == size + 1
    assert use["used_by"] == builders.actor("FR") and use["consent_id"] is None
    read = api.ok(api.get(f"/v1/transfers/{t['id']}", "DE-recorder"), 200)
    assert read["uses"] == [use]
    assert api.ok(api.get(f"/v1/transfers/{t['id']}/uses", "*-auditor"), 200)["items"] == [use]


def test_a_use_in_another_proceeding_needs_the_senders_consent(module_api: Api) -> None:
    api = module_api
    t = api.transfer("DE", "FR")
    size = api.tree_size()
    refused = problem(_use(api, t, builders.use(proceeding=OTHER_PROCEEDING)), 409, "specialty-consent-required")
    assert refused["article"] == "art. 40 §19" and refused["field"] == "consent_id"
    assert "prior consent of DE" in refused["detail"] and OTHER_PROCEEDING in refused["detail"]
    assert api.tree_size() == size  # nothing recorded
    consent = _consent(api, t)
    assert consent["status"] == "granted" and consent["sender"] == "DE"
    assert consent["decision"]["decided_by"]["party"] == "DE" and consent["decision"]["leaf_index"] == size + 1
    use = api.ok(_use(api, t, builders.use(proceeding=OTHER_PROCEEDING, consent_id=consent["id"])), 201)
    assert use["consent_id"] == consent["id"]
    # a consent covers its proceeding only
    third = problem(_use(api, t, builders.use(proceeding="FR-PNC-2026-1234", consent_id=consent["id"])), 409,
                    "specialty-consent-required")
    assert f"covers proceeding '{OTHER_PROCEEDING}' only" in third["detail"]


def test_a_refused_or_pending_consent_covers_nothing(module_api: Api) -> None:
    api = module_api
    t = api.transfer("DE", "FR")
    pending = _consent(api, t, decision=None)
    assert pending["status"] == "pending" and pending["decision"] is None
    problem(api.get(f"/v1/consent-requests/{pending['id']}/decision", "FR-recorder"), 404, "consent-not-decided")
    out = problem(_use(api, t, builders.use(proceeding=OTHER_PROCEEDING, consent_id=pending["id"])), 409,
                  "specialty-consent-required")
    assert "is pending" in out["detail"]
    refused = _consent(api, t, decision="refused")
    assert refused["status"] == "refused"
    assert refused["decision"]["reasons"] == "the fraud case is not covered by the request"
    out = problem(_use(api, t, builders.use(proceeding=OTHER_PROCEEDING, consent_id=refused["id"])), 409,
                  "specialty-consent-required")
    assert "is refused" in out["detail"]
    # and a consent of another transfer covers nothing here
    other = api.transfer("DE", "FR")
    granted = _consent(api, other)
    out = problem(_use(api, t, builders.use(proceeding=OTHER_PROCEEDING, consent_id=granted["id"])), 409,
                  "specialty-consent-required")
    assert f"concerns transfer {other['id']}" in out["detail"]


def test_consent_decisions_belong_to_the_sender_and_are_made_once(module_api: Api) -> None:
    api = module_api
    t = api.transfer("DE", "FR")
    consent = _consent(api, t, decision=None)
    path = f"/v1/consent-requests/{consent['id']}/decision"
    grant = {"decision": "granted", "decided_by": builders.actor("FR")}
    problem(api.post(path, grant, "FR-authority"), 403, "consent-decided-by-sender")
    problem(api.post(path, grant, "DE-recorder"), 403, "role-required")
    problem(api.post(path, {**grant, "decided_by": builders.actor("DE")}, "NL-authority"), 404)
    problem(api.post(path, {"decision": "refused", "decided_by": builders.actor("DE")}, "DE-authority"), 422,
            "refusal-without-reasons")
    problem(api.post(path, {"decision": "refused", "decided_by": builders.actor("DE"), "reasons": "no",
                            "conditions": ["x"]}, "DE-authority"), 422, "conditions-on-refusal")
    done = api.ok(api.post(path, {**grant, "decided_by": builders.actor("DE"), "conditions": ["no press"]},
                           "DE-authority"), 200)
    assert done["decision"]["conditions"] == ["no press"]
    problem(api.post(path, {**grant, "decided_by": builders.actor("DE")}, "DE-authority"), 409,
            "consent-already-decided")
    assert api.ok(api.get(f"/v1/consent-requests/{consent['id']}/decision", "FR-recorder"), 200) == done["decision"]
    problem(api.get(f"/v1/consent-requests/{consent['id']}", "NL-recorder"), 404, "consent-request-not-found")


def test_only_the_recipient_records_uses_and_asks_consent(module_api: Api) -> None:
    api = module_api
    t = api.transfer("DE", "FR")
    problem(_use(api, t, builders.use("DE"), "DE-recorder"), 403, "not-the-recipient")
    problem(_use(api, t, builders.use("NL"), "NL-recorder"), 404, "transfer-not-found")
    problem(_use(api, t, builders.use("DE"), "FR-recorder"), 403, "not-your-party")
    problem(_use(api, t, builders.use(), "FR-authority"), 403, "role-required")
    problem(api.post("/v1/consent-requests", builders.consent_request(t, "DE"), "DE-recorder"), 403,
            "not-the-recipient")
    bad = problem(_use(api, t, builders.use(kind="gossip")), 422)
    assert bad["errors"][0]["field"] == "kind"
    assert api.ok(api.get(f"/v1/transfers/{t['id']}/uses", "FR-recorder"), 200)["items"] == []


def test_h1_data_are_used_as_evidence_only_with_consent(module_api: Api) -> None:
    api = module_api
    t = api.transfer("DE", "FR", handling={"use_restrictions": ["H1"]})
    assert t["handling"]["use_restrictions"] == ["H1"]
    api.ok(_use(api, t, builders.use()), 201)  # an investigative use needs nothing more
    evidence = builders.use(kind="evidence-in-proceedings")
    out = problem(_use(api, t, evidence), 409, "specialty-consent-required")
    assert "H1" in out["detail"]
    narrow = _consent(api, t, proceeding=builders.PURPOSE["proceeding"], uses=["investigation"])
    out = problem(_use(api, t, {**evidence, "consent_id": narrow["id"]}), 409, "specialty-consent-required")
    assert "covers investigation only" in out["detail"]
    wide = _consent(api, t, proceeding=builders.PURPOSE["proceeding"])
    assert api.ok(_use(api, t, {**evidence, "consent_id": wide["id"]}), 201)["kind"] == "evidence-in-proceedings"


def test_exculpatory_information_needs_notice_not_consent(module_api: Api) -> None:
    api = module_api
    t = api.transfer("DE", "FR")
    other = builders.use(proceeding=OTHER_PROCEEDING, exculpatory=True)
    out = problem(_use(api, t, other), 422, "exculpatory-notice-required")
    assert out["article"] == "art. 40 §19"
    earlier = format_datetime(datetime.now(UTC) - timedelta(hours=1))
    prior = api.ok(_use(api, t, {**other, "notice": {"notified_at": earlier}}), 201)
    assert prior["notice"]["notified_at"] == earlier and prior["consent_id"] is None
    # a notice after the use, when prior notice was impossible
    late = api.ok(_use(api, t, {**other, "notice": {"prior_impossible": "the hearing was the same morning"}}), 201)
    assert late["notice"] == {"notified_at": None, "prior_impossible": "the hearing was the same morning"}
    path = f"/v1/transfers/{t['id']}/uses/{late['id']}/notice"
    problem(api.post(path, {"notified_by": builders.actor("DE")}, "DE-recorder"), 403, "not-the-recipient")
    given = api.ok(api.post(path, {"notified_by": builders.actor("FR")}, "FR-recorder"), 200)
    assert given["notice"]["notified_by"] == builders.actor("FR")
    assert given["notice"]["leaf_index"] == api.tree_size() - 1 and given["id"] == late["id"]
    problem(api.post(path, {"notified_by": builders.actor("FR")}, "FR-recorder"), 409, "use-notice-not-pending")
    problem(api.post(f"/v1/transfers/{t['id']}/uses/{prior['id']}/notice", {"notified_by": builders.actor("FR")},
                     "FR-recorder"), 409, "use-notice-not-pending")
    problem(api.post(f"/v1/transfers/{t['id']}/uses/{t['id']}/notice", {"notified_by": builders.actor("FR")},
                     "FR-recorder"), 404, "use-not-found")


def test_handling_codes_are_checked_and_inherited_down_the_lineage(module_api: Api) -> None:
    api = module_api
    problem(api.post("/v1/transfers", builders.transfer(handling={"use_restrictions": ["H7"]})), 422,
            "unknown-handling-code")
    problem(api.post("/v1/transfers", builders.transfer(handling={"use_restrictions": ["H3"]})), 422,
            "handling-code-without-text")
    root = api.transfer("DE", "FR", handling={"use_restrictions": ["h0", "H3 - no disclosure to the press"]})
    assert root["handling"]["use_restrictions"] == ["H0", "H3: no disclosure to the press"]
    auth = api.grant(api.request("FR", "INTERPOL", root))
    child = api.onward("FR", "INTERPOL", root, auth, handling={"use_restrictions": ["H1"]})
    assert child["handling"]["use_restrictions"] == ["H0", "H3: no disclosure to the press", "H1"]


def test_an_erased_transfer_is_used_no_more_and_its_use_reads_as_erased(api: Api) -> None:
    t = api.transfer("DE", "FR")
    use = api.ok(_use(api, t, builders.use(description="matched to Olga N. Smirnova")), 201)
    api.ok(api.post(f"/v1/transfers/{t['id']}/erasure", {"erased_by": builders.actor("FR"),
                                                          "ground": "purpose-achieved", "reasons": "closed"},
                    "FR-authority"), 200)
    problem(_use(api, t, builders.use()), 409, "personal-data-erased")
    read = api.ok(api.get(f"/v1/transfers/{t['id']}/uses", "FR-recorder"), 200)["items"][0]
    assert read["id"] == use["id"] and set(read["description"]) == {"erased", "commitment"}
    assert read["used_by"] == builders.actor("FR")  # the log of who acted stays
    assert "Smirnova" not in api.get(f"/v1/transfers/{t['id']}", "*-auditor").text


def test_a_retried_use_with_its_idempotency_key_is_recorded_once(module_api: Api) -> None:
    api = module_api
    t = api.transfer("DE", "FR")
    first = api.ok(_use(api, t, builders.use(), idem="fr-use-1"), 201)
    size = api.tree_size()
    again = api.ok(_use(api, t, builders.use(), idem="fr-use-1"), 201)
    assert again == first and api.tree_size() == size
    consent = api.ok(api.post("/v1/consent-requests", builders.consent_request(t), "FR-recorder",
                              idem="fr-consent-1"), 201)
    assert api.ok(api.post("/v1/consent-requests", builders.consent_request(t), "FR-recorder",
                           idem="fr-consent-1"), 201) == consent


def _h2_chain(api: Api) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """DE sends FR data carrying H2; FR passes them to INTERPOL under DE's grant (FR got them from
    their origin: DE's grant is the provider's permission); DE grants INTERPOL's request to pass
    them on to BR."""
    root = api.transfer("DE", "FR", handling={"use_restrictions": ["H2"]})
    t2 = api.onward("FR", "INTERPOL", root, api.grant(api.request("FR", "INTERPOL", root)))
    assert t2["handling"]["use_restrictions"] == ["H2"]
    return root, t2, api.grant(api.request("INTERPOL", "BR", t2))


def test_h2_data_are_passed_on_only_with_the_consent_of_who_sent_them(module_api: Api) -> None:
    api = module_api
    _, t2, a2 = _h2_chain(api)
    size = api.tree_size()
    out = problem(api.post("/v1/transfers", builders.onward("INTERPOL", "BR", t2, a2), "INTERPOL-recorder"), 409,
                  "h2-consent-required")
    assert "needs the consent of FR" in out["detail"] and out["field"] == "consent_id"
    assert api.tree_size() == size
    ask = builders.consent_request(t2, "INTERPOL", proceeding=builders.PURPOSE["proceeding"],
                                   recipient=builders.actor("BR", officer=None))
    consent = api.ok(api.post("/v1/consent-requests", ask, "INTERPOL-recorder"), 201)
    assert consent["sender"] == "FR" and consent["recipient"] == {"party": "BR", "authority": "BR/PF"}
    problem(api.post("/v1/transfers", builders.onward("INTERPOL", "BR", t2, a2, consent_id=consent["id"]),
                     "INTERPOL-recorder"), 409, "h2-consent-required")  # still pending
    api.ok(api.post(f"/v1/consent-requests/{consent['id']}/decision",
                    {"decision": "granted", "decided_by": builders.actor("FR")}, "FR-authority"), 200)
    t3 = api.ok(api.post("/v1/transfers", builders.onward("INTERPOL", "BR", t2, a2, consent_id=consent["id"]),
                         "INTERPOL-recorder"), 201)
    assert t3["handling"]["use_restrictions"] == ["H2"]
    read = api.ok(api.get(f"/v1/consent-requests/{consent['id']}", "FR-recorder"), 200)
    assert read["transfers"] == [t3["id"]] and read["leaf_index"] < t3["leaf_index"]
    # a consent to pass the data on is not a consent to use them in another proceeding
    out = problem(_use(api, t2, builders.use("INTERPOL", proceeding=OTHER_PROCEEDING, consent_id=consent["id"]),
                       "INTERPOL-recorder"), 409, "specialty-consent-required")
    assert "to pass the data on to BR, not to use them" in out["detail"]


def test_h2_needs_no_consent_to_give_the_data_back_or_when_none_applies(module_api: Api) -> None:
    api = module_api
    root, t2, _ = _h2_chain(api)
    back = api.grant(api.request("INTERPOL", "FR", t2))
    api.onward("INTERPOL", "FR", t2, back)  # back to the Party that sent them
    plain = api.transfer("DE", "FR")
    hop = api.onward("FR", "INTERPOL", plain, api.grant(api.request("FR", "INTERPOL", plain)))
    consent = _consent(api, plain)
    out = problem(api.post("/v1/transfers", builders.onward("FR", "INTERPOL", plain, api.grant(
        api.request("FR", "INTERPOL", plain)), consent_id=consent["id"]), "FR-recorder"), 422, "consent-not-needed")
    assert out["field"] == "consent_id" and hop["handling"]["use_restrictions"] == []


def test_a_confidential_transfer_is_read_by_its_own_parties_only(module_api: Api) -> None:
    api = module_api
    root = api.transfer("DE", "FR")
    secret = api.onward("FR", "INTERPOL", root, api.grant(api.request("FR", "INTERPOL", root)),
                        handling={"confidential": True})
    for key in ("FR-recorder", "INTERPOL-recorder", "*-auditor"):
        assert api.ok(api.get(f"/v1/transfers/{secret['id']}", key), 200)["handling"]["confidential"] is True
    for key in ("DE-recorder", "DE-authority", "DE-auditor", "BR-recorder"):  # DE is the origin, yet not a party
        problem(api.get(f"/v1/transfers/{secret['id']}", key), 404, "transfer-not-found")
    lineage = api.ok(api.get(f"/v1/transfers/{root['id']}/lineage", "DE-recorder"), 200)
    assert secret["id"] not in {d["id"] for d in lineage["descendants"]}
    assert secret["id"] in {d["id"] for d in api.ok(api.get(f"/v1/transfers/{root['id']}/lineage", "FR-recorder"),
                                                    200)["descendants"]}
    listed = api.ok(api.get("/v1/transfers", "DE-recorder", params={"limit": 500}), 200)["items"]
    assert secret["id"] not in {t["id"] for t in listed}


def test_spontaneous_information_binds_every_hop_with_its_restrictions(module_api: Api) -> None:
    """Art. 40 §4-§5: the sender's confidentiality and use restrictions bind every use and onward transfer."""
    api = module_api
    root = api.transfer("DE", "FR", legal_basis="art40-4", handling={"confidential": True, "use_restrictions": ["H1"]})
    hop = api.onward("FR", "INTERPOL", root, api.grant(api.request("FR", "INTERPOL", root)))
    assert hop["handling"]["confidential"] is True and hop["handling"]["use_restrictions"] == ["H1"]
    problem(api.get(f"/v1/transfers/{hop['id']}", "DE-recorder"), 404)  # confidential: its own parties only
    problem(_use(api, hop, builders.use("INTERPOL", kind="evidence-in-proceedings"), "INTERPOL-recorder"), 409,
            "specialty-consent-required")
