"""Who may do what: every endpoint x role x relation, and the status code it answers.

The world (built once): DE sent t1 to FR; FR asked DE to pass it on to
INTERPOL (a1) and DE granted; FR sent t2 to INTERPOL under a1; INTERPOL asked
DE to pass it on to BR (a2), DE granted, INTERPOL sent t3 to BR. So DE is the
origin of everything, FR the holder of t1, INTERPOL the recipient of t2, BR a
Party further down the lineage, and NL a Party with nothing to do with it.
Commands get fresh objects of the same shape for each case.

Keys are ``<PARTY>-recorder`` / ``<PARTY>-authority``, ``*-auditor`` (the
whole ledger), ``DE-auditor`` (the origin's share), ``NL-auditor`` (an
unrelated Party's share), ``*-verifier``, ``*-admin``, ``none`` (no
Authorization header) and ``revoked``.

Rules (docs/API.md, "Access"): reading another Party's object answers 404 as
if it did not exist; a missing role 403 ``role-required``; acting for another
Party 403 ``not-your-party``; an involved Party that is not the origin trying
to decide or revoke 403 ``not-origin``.
"""

from __future__ import annotations

import itertools
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from ledger.tlog.cosignature import Cosigner
from tests.support import builders
from tests.support import control as ctl
from tests.support import preservation as pres
from tests.support.api import PARTIES, Api, problem

R, A = "recorder", "authority"
OTHERS = ("*-auditor", "DE-auditor", "NL-auditor", "*-verifier", "*-admin", "none", "revoked")
ALL_KEYS = tuple(f"{p}-{r}" for p in PARTIES for r in (R, A)) + OTHERS

ROLE = (403, "role-required")
PARTY = (403, "not-your-party")
ORIGIN = (403, "not-origin")
NO_KEY = {"none": (401, "authentication-required"), "revoked": (401, "invalid-api-key")}

#: How each Party relates to the object an endpoint acts on.
TRANSFER_T2 = {"FR": "sender", "INTERPOL": "recipient", "DE": "origin", "BR": "downstream", "NL": "unrelated"}
REQUEST_FR = {"FR": "holder", "INTERPOL": "recipient", "DE": "origin", "BR": "in-lineage", "NL": "unrelated"}
FIRST_DE_FR = {"DE": "sender+origin", "FR": "recipient", "INTERPOL": "unrelated", "BR": "unrelated",
               "NL": "unrelated"}
LEDGER = dict.fromkeys(PARTIES, "party")
KEY_RELATIONS = {"*-auditor": "global-auditor", "DE-auditor": "origin-auditor", "NL-auditor": "unrelated-auditor",
                 "*-verifier": "verifier", "*-admin": "admin", "none": "no-key", "revoked": "revoked-key"}


@dataclass
class World:
    t1: dict[str, Any]
    a1: dict[str, Any]
    t2: dict[str, Any]
    a2: dict[str, Any]
    t3: dict[str, Any]


@pytest.fixture(scope="module")
def world(module_api: Api) -> World:
    api = module_api
    t1, a1 = api.chain()
    t2 = api.onward("FR", "INTERPOL", t1, a1)
    a2 = api.grant(api.request("INTERPOL", "BR", t2))
    t3 = api.onward("INTERPOL", "BR", t2, a2)
    return World(t1, a1, t2, a2, t3)


Request = tuple[str, str, Any]  # method, path, JSON body (None for GET)
Prepare = Callable[[Api, World, str], Request]


def expectations(parties: dict[str, Any], others: dict[str, Any]) -> dict[str, Any]:
    """Per key: parties maps '<PARTY>-<role>' (or '<PARTY>' for both roles) to what it gets."""
    out: dict[str, Any] = {}
    for name, expected in parties.items():
        keys = [name] if "-" in name else [f"{name}-{R}", f"{name}-{A}"]
        out.update(dict.fromkeys(keys, expected))
    out.update(others)
    missing = set(ALL_KEYS) - set(out)
    assert not missing, missing
    return out


@dataclass(frozen=True)
class Endpoint:
    name: str
    prepare: Prepare
    relations: dict[str, str]
    expected: dict[str, Any]


def get(path: Callable[[World], str]) -> Prepare:
    return lambda api, w, key: ("GET", path(w), None)


# -- what each endpoint answers to whom -------------------------------------------------------------

READ_OTHERS = {"*-auditor": 200, "DE-auditor": 200, "NL-auditor": None, "*-verifier": ROLE, "*-admin": ROLE,
               **NO_KEY}


def read(rule: str) -> dict[str, Any]:
    others = {**READ_OTHERS, "NL-auditor": (404, rule)}
    return expectations({"DE": 200, "FR": 200, "INTERPOL": 200, "BR": (404, rule), "NL": (404, rule)}, others)


LISTS = expectations(dict.fromkeys(PARTIES, 200),
                     {"*-auditor": 200, "DE-auditor": 200, "NL-auditor": 200, "*-verifier": ROLE,
                      "*-admin": ROLE, **NO_KEY})
PROOFS = expectations(dict.fromkeys(PARTIES, ROLE),
                      {"*-auditor": 200, "DE-auditor": 200, "NL-auditor": 200, "*-verifier": 200,
                       "*-admin": ROLE, **NO_KEY})
#: The read models (api.audit_routes): auditors only; a Party's auditor gets its share (possibly empty).
AUDITORS = expectations(dict.fromkeys(PARTIES, ROLE),
                        {"*-auditor": 200, "DE-auditor": 200, "NL-auditor": 200, "*-verifier": ROLE,
                         "*-admin": ROLE, **NO_KEY})
ANY_KEY = expectations(dict.fromkeys(PARTIES, 200), {**dict.fromkeys(OTHERS[:5], 200), **NO_KEY})
ANYONE = expectations(dict.fromkeys(PARTIES, 200), dict.fromkeys(OTHERS, 200))
COMMAND_OTHERS = {**dict.fromkeys(OTHERS[:5], ROLE), **NO_KEY}


def record_first(api: Api, w: World, key: str) -> Request:
    return "POST", "/v1/transfers", builders.transfer("DE", "FR")


def record_onward(api: Api, w: World, key: str) -> Request:
    return "POST", "/v1/transfers", builders.onward("FR", "INTERPOL", w.t1, w.a1)


def record_onward_as_self(api: Api, w: World, key: str) -> Request:
    """The key's Party passes on t1 (or t2, for BR) in its own name."""
    me = key.split("-")[0]
    parent, to = (w.t2, "NL") if me == "BR" else (w.t1, "BR" if me == "INTERPOL" else "INTERPOL")
    return "POST", "/v1/transfers", builders.onward(me, to, parent)


def record_onward_with_others_grant(api: Api, w: World, key: str) -> Request:
    """FR passes t1 on under a2, a grant INTERPOL asked for: FR has nothing to do with it."""
    return "POST", "/v1/transfers", builders.onward("FR", "INTERPOL", w.t1, w.a2)


def request_authorization(api: Api, w: World, key: str) -> Request:
    return "POST", "/v1/authorization-requests", builders.request("FR", "INTERPOL", w.t1)


def request_as_self(api: Api, w: World, key: str) -> Request:
    me = key.split("-")[0]
    return "POST", "/v1/authorization-requests", builders.request(me, "BR" if me == "INTERPOL" else "INTERPOL",
                                                                 w.t1)


_witnesses = itertools.count()


def cosign(api: Api, w: World, key: str) -> Request:
    """A new witness's cosignature of the latest checkpoint (only verifiers send them)."""
    note = api.get("/v1/checkpoint", "*-verifier").text
    text = note.split("\n\n", 1)[0] + "\n"
    witness = Cosigner.generate(f"witness.example/access-{next(_witnesses)}")
    body = {"tree_size": int(text.split("\n")[1]), "vkey": witness.vkey(),
            "cosignature": witness.cosign(text, int(time.time()))}
    return "POST", "/v1/checkpoint/cosignatures", body


def decide(by: str) -> Prepare:
    def prepare(api: Api, w: World, key: str) -> Request:
        pending = api.request("FR", "INTERPOL", w.t1)
        return "POST", f"/v1/authorization-requests/{pending['id']}/decision", builders.grant(by)

    return prepare


def revoke(by: str) -> Prepare:
    def prepare(api: Api, w: World, key: str) -> Request:
        granted = api.grant(api.request("FR", "INTERPOL", w.t1))
        return "POST", f"/v1/authorizations/{granted['id']}/revocation", builders.revocation(by)

    return prepare


def on_own_transfer(method: str, action: str, body: Callable[[str], dict[str, Any]]) -> Prepare:
    """A fresh FR -> INTERPOL transfer; the key's Party erases it, or holds or frees its data."""
    def prepare(api: Api, w: World, key: str) -> Request:
        t = api.transfer("FR", "INTERPOL")
        if method == "DELETE":
            api.ok(api.post(f"/v1/transfers/{t['id']}/restriction", hold("FR"), "FR-authority"), 200)
        me = key.split("-")[0]
        return method, f"/v1/transfers/{t['id']}/{action}", body(me if me in PARTIES else "FR")

    return prepare


def certificate_of_erased_onward(api: Api, w: World, key: str) -> Request:
    """An onward transfer FR -> INTERPOL of DE's data, erased by FR: its certificate is read like it."""
    root = api.transfer("DE", "FR")
    hop = api.onward("FR", "INTERPOL", root, api.grant(api.request("FR", "INTERPOL", root)))
    api.ok(api.post(f"/v1/transfers/{hop['id']}/erasure", erase("FR"), "FR-authority"), 200)
    return "GET", f"/v1/transfers/{hop['id']}/erasure-certificate", None


def acknowledge(api: Api, w: World, key: str) -> Request:
    """The notice to INTERPOL of the erasure of a transfer DE -> FR that FR passed on to INTERPOL."""
    root = api.transfer("DE", "FR")
    api.onward("FR", "INTERPOL", root, api.grant(api.request("FR", "INTERPOL", root)))
    api.ok(api.post(f"/v1/transfers/{root['id']}/erasure", erase("FR"), "FR-authority"), 200)
    notice = next(n for n in api.ok(api.get("/v1/notices", "INTERPOL-recorder", params={"limit": 500}), 200)["items"]
                  if n["transfer_id"] == root["id"])
    me = key.split("-")[0]
    return ("POST", f"/v1/notices/{notice['id']}/acknowledgement",
            {"acknowledged_by": builders.actor(me if me in PARTIES else "INTERPOL")})


def erase(party: str) -> dict[str, Any]:
    return {"erased_by": builders.actor(party), "ground": "purpose-achieved", "reasons": "proceeding closed"}


def hold(party: str) -> dict[str, Any]:
    return {"by": builders.actor(party), "reasons": "evidence"}


#: A transfer FR sent to INTERPOL: its sender or recipient erases or restricts its data (Order 949 §15).
OWN_TRANSFER = {"FR": "sender", "INTERPOL": "recipient", "DE": "unrelated", "BR": "unrelated", "NL": "unrelated"}
PARTIES_TO_IT = expectations(
    {"FR-authority": 200, "INTERPOL-authority": 200, "DE-authority": (404, "transfer-not-found"),
     "BR-authority": (404, "transfer-not-found"), "NL-authority": (404, "transfer-not-found"),
     **{f"{p}-{R}": ROLE for p in PARTIES}},
    COMMAND_OTHERS,
)

def custody(action: str) -> Prepare:
    """A fresh FR -> INTERPOL transfer: the key's Party records a use of its data, asks consent, gives
    the notice of an exculpatory use, or (the sender) decides on INTERPOL's consent request."""
    def prepare(api: Api, w: World, key: str) -> Request:
        me = key.split("-")[0]
        me = me if me in PARTIES else "INTERPOL"
        t = api.transfer("FR", "INTERPOL")
        if action == "use":
            return "POST", f"/v1/transfers/{t['id']}/uses", builders.use(me)
        if action == "consent":
            return "POST", "/v1/consent-requests", builders.consent_request(t, me)
        if action == "notice":
            use = api.ok(api.post(f"/v1/transfers/{t['id']}/uses", builders.use(
                "INTERPOL", proceeding=builders.OTHER_PROCEEDING, exculpatory=True,
                notice={"prior_impossible": "same-day hearing"}), "INTERPOL-recorder"), 201)
            return "POST", f"/v1/transfers/{t['id']}/uses/{use['id']}/notice", {"notified_by": builders.actor(me)}
        consent = api.ok(api.post("/v1/consent-requests", builders.consent_request(t, "INTERPOL"),
                                  "INTERPOL-recorder"), 201)
        return ("POST", f"/v1/consent-requests/{consent['id']}/decision",
                {"decision": "granted", "decided_by": builders.actor(me)})

    return prepare


def urgent_notice(api: Api, w: World, key: str) -> Request:
    """A fresh urgent onward transfer FR -> INTERPOL of DE's data received under LED (art. 35(2)): its
    sender informs DE; the key's Party says it does."""
    root = api.transfer("DE", "FR", regime="eu-led")
    hop = api.ok(api.post("/v1/transfers", builders.onward("FR", "INTERPOL", root, regime="eu-led", urgent={
        "threat": "public-security", "grounds": "imminent attack", "why_no_prior_authorization": "night"}),
        "FR-recorder"), 201)
    me = key.split("-")[0]
    return "POST", f"/v1/transfers/{hop['id']}/urgent-notice", {"notified_by": builders.actor(me if me in PARTIES
                                                                                          else "FR")}


def consent_on_t2(decided: bool) -> Prepare:
    def prepare(api: Api, w: World, key: str) -> Request:
        consent = api.ok(api.post("/v1/consent-requests", builders.consent_request(w.t2, "INTERPOL"),
                                  "INTERPOL-recorder"), 201)
        if decided:
            api.ok(api.post(f"/v1/consent-requests/{consent['id']}/decision",
                            {"decision": "granted", "decided_by": builders.actor("FR")}, "FR-authority"), 200)
            return "GET", f"/v1/consent-requests/{consent['id']}/decision", None
        return "GET", f"/v1/consent-requests/{consent['id']}", None

    return prepare


#: The recipient of a transfer FR sent to INTERPOL records uses of its data and asks consent (art. 40 §19).
RECIPIENT_ACTS = {
    **{f"{p}-{A}": ROLE for p in PARTIES}, "FR-recorder": (403, "not-the-recipient"),
    **{f"{p}-{R}": (404, "transfer-not-found") for p in ("DE", "BR", "NL")},
}
#: ... and its sender decides on a consent to another use.
SENDER_DECIDES = expectations(
    {"FR-authority": 200, "INTERPOL-authority": (403, "consent-decided-by-sender"),
     **{f"{p}-{A}": (404, "consent-request-not-found") for p in ("DE", "BR", "NL")},
     **{f"{p}-{R}": ROLE for p in PARTIES}},
    COMMAND_OTHERS,
)

def refer(onward: bool) -> Prepare:
    """FR, executing DE's request, refers the data to BR: its own finding, or (onward) t1's data
    without DE's grant (art. 36 §3 refuses it, as for any onward transfer)."""
    def prepare(api: Api, w: World, key: str) -> Request:
        return "POST", "/v1/referrals", builders.referral("FR", "DE", "BR", parent=w.t1 if onward else None)

    return prepare


def referral_read(api: Api, w: World, key: str) -> Request:
    made = api.ok(api.post("/v1/referrals", builders.referral("FR", "DE", "BR"), "FR-recorder"), 201)
    return "GET", f"/v1/referrals/{made['id']}", None


#: A referral FR made of DE's request to BR: its Parties read it.
REFERRAL = {"FR": "referring", "DE": "requesting", "BR": "third", "INTERPOL": "unrelated", "NL": "unrelated"}
REFERRAL_READ = expectations(
    {"DE": 200, "FR": 200, "BR": 200, "INTERPOL": (404, "referral-not-found"), "NL": (404, "referral-not-found")},
    {**READ_OTHERS, "NL-auditor": (404, "referral-not-found")})

ORIGIN_DECIDES = expectations(
    {"DE-authority": 200, "FR-authority": ORIGIN, "INTERPOL-authority": ORIGIN,
     "BR-authority": (404, "authorization-not-found"), "NL-authority": (404, "authorization-not-found"),
     **{f"{p}-{R}": ROLE for p in PARTIES}},
    COMMAND_OTHERS,
)

def preservation(api: Api, *, requested_days_ago: float = 0, follow_up: bool = False) -> dict[str, Any]:
    """A fresh preservation DE asked of FR (art. 42), its period started that long ago."""
    made = api.ok(api.post("/v1/preservations", pres.preservation(requested_at=pres.days_ago(requested_days_ago)),
                           "DE-authority"), 201)
    if follow_up:
        api.ok(api.post(f"/v1/preservations/{made['id']}/follow-up", pres.follow_up(), "DE-authority"), 200)
    return made


def on_preservation(step: str, body: Callable[[str], dict[str, Any]], **state: Any) -> Prepare:
    """The key's Party (DE, if it names none) takes a step on a fresh preservation DE asked of FR."""
    def prepare(api: Api, w: World, key: str) -> Request:
        made = preservation(api, **state)
        me = key.split("-")[0]
        return "POST", f"/v1/preservations/{made['id']}/{step}", body(me if me in PARTIES else "DE")

    return prepare


#: A preservation DE asked of FR: DE is the requesting Party, FR the requested one.
PRESERVATION = {"DE": "requesting", "FR": "requested", "INTERPOL": "unrelated", "BR": "unrelated", "NL": "unrelated"}
NOT_FOUND_PRESERVATION = (404, "preservation-not-found")


def preservation_step(allowed: str, refused: tuple[int, str]) -> dict[str, Any]:
    """Only an authority of ``allowed`` takes the step; the other Party to it is told which rule; others 404."""
    other = "FR" if allowed == "DE" else "DE"
    return expectations(
        {f"{allowed}-authority": 200, f"{other}-authority": refused,
         **{f"{p}-authority": NOT_FOUND_PRESERVATION for p in ("INTERPOL", "BR", "NL")},
         **{f"{p}-{R}": ROLE for p in PARTIES}},
        COMMAND_OTHERS,
    )


#: A control check of a DE unit: only DE's commission (its auditor) or an admin records it.
CONTROL = {"DE": "checked", "FR": "unrelated", "INTERPOL": "unrelated", "BR": "unrelated", "NL": "unrelated"}


def control_check(api: Api, *, concluded: bool = False) -> dict[str, Any]:
    """A fresh unplanned check of DE's unit (concluded with one measure, if asked)."""
    from datetime import date, timedelta

    today = date.today()
    made = api.ok(api.post("/v1/control/checks", ctl.unplanned(
        received_on=today.isoformat(), decided_on=today.isoformat(),
        ends_on=(today + timedelta(days=20)).isoformat()), "DE-auditor"), 201)
    if concluded:
        api.ok(api.post(f"/v1/control/checks/{made['id']}/conclusion",
                        ctl.conclusion("DE", ctl.measure((today + timedelta(days=30)).isoformat())), "DE-auditor"), 200)
    return made


def control_command(status: int, not_found: tuple[int, str] | None = None) -> dict[str, Any]:
    return expectations(dict.fromkeys(PARTIES, ROLE), {
        "*-auditor": PARTY, "DE-auditor": status, "NL-auditor": not_found or PARTY, "*-verifier": ROLE,
        "*-admin": status, **NO_KEY})


def control_read(rule: str) -> dict[str, Any]:
    return expectations({"DE": 200, **dict.fromkeys(("FR", "INTERPOL", "BR", "NL"), (404, rule))},
                        {**READ_OTHERS, "NL-auditor": (404, rule)})


ENDPOINTS = [
    Endpoint("POST /v1/control/plans", lambda api, w, key: ("POST", "/v1/control/plans",
                                                            ctl.plan("DE", 2026)), CONTROL, control_command(201)),
    Endpoint("POST /v1/control/checks", lambda api, w, key: ("POST", "/v1/control/checks", {
        **ctl.of_plan(api.ok(api.post("/v1/control/plans", ctl.plan("DE", 2026), "DE-auditor"), 201)["id"])}),
        CONTROL, control_command(201)),
    Endpoint("POST /v1/control/checks/{id}/conclusion", lambda api, w, key: (
        "POST", f"/v1/control/checks/{control_check(api)['id']}/conclusion", ctl.conclusion()), CONTROL,
        control_command(200, (404, "control-check-not-found"))),
    Endpoint("POST /v1/control/checks/{id}/measures/{id}/completion", lambda api, w, key: (
        "POST", f"/v1/control/checks/{control_check(api, concluded=True)['id']}/measures/m1/completion",
        ctl.completion()), CONTROL, control_command(200, (404, "control-check-not-found"))),
    Endpoint("GET /v1/control/plans/{id}", lambda api, w, key: (
        "GET", f"/v1/control/plans/{api.ok(api.post('/v1/control/plans', ctl.plan(), 'DE-auditor'), 201)['id']}",
        None), CONTROL, control_read("control-plan-not-found")),
    Endpoint("GET /v1/control/checks/{id}", lambda api, w, key: (
        "GET", f"/v1/control/checks/{control_check(api)['id']}", None), CONTROL,
        control_read("control-check-not-found")),
    Endpoint("GET /v1/control/checks", get(lambda w: "/v1/control/checks"), LEDGER, LISTS),
    Endpoint("POST /v1/transfers (first)", record_first, FIRST_DE_FR, expectations(
        {"DE-recorder": 201, "FR-recorder": PARTY, "INTERPOL-recorder": PARTY, "BR-recorder": PARTY,
         "NL-recorder": PARTY, **{f"{p}-{A}": ROLE for p in PARTIES}}, COMMAND_OTHERS)),
    Endpoint("POST /v1/transfers (onward)", record_onward, {**TRANSFER_T2, "FR": "holder"}, expectations(
        {"FR-recorder": 201, "DE-recorder": PARTY, "INTERPOL-recorder": PARTY, "BR-recorder": PARTY,
         "NL-recorder": PARTY, **{f"{p}-{A}": ROLE for p in PARTIES}}, COMMAND_OTHERS)),
    Endpoint("POST /v1/transfers (onward of t1 in its own name)", record_onward_as_self,
             {"DE": "origin", "INTERPOL": "downstream", "BR": "downstream", "NL": "unrelated"},
             {"DE-recorder": (409, "not-holder"), "INTERPOL-recorder": (404, "transfer-not-found"),
              "BR-recorder": (404, "transfer-not-found"), "NL-recorder": (404, "transfer-not-found")}),
    Endpoint("POST /v1/transfers (under another's grant)", record_onward_with_others_grant, {"FR": "holder"},
             {"FR-recorder": (404, "authorization-not-found")}),
    Endpoint("GET /v1/transfers/{id}", get(lambda w: f"/v1/transfers/{w.t2['id']}"), TRANSFER_T2,
             read("transfer-not-found")),
    Endpoint("GET /v1/transfers/{id}/lineage", get(lambda w: f"/v1/transfers/{w.t2['id']}/lineage"),
             TRANSFER_T2, read("transfer-not-found")),
    Endpoint("GET /v1/transfers", get(lambda w: "/v1/transfers"), LEDGER, LISTS),
    Endpoint("POST /v1/authorization-requests", request_authorization, REQUEST_FR, expectations(
        {"FR-recorder": 201, "DE-recorder": PARTY, "INTERPOL-recorder": PARTY, "BR-recorder": PARTY,
         "NL-recorder": PARTY, **{f"{p}-{A}": ROLE for p in PARTIES}}, COMMAND_OTHERS)),
    Endpoint("POST /v1/authorization-requests (in its own name)", request_as_self,
             {"DE": "origin", "INTERPOL": "downstream", "NL": "unrelated"},
             {"DE-recorder": (409, "not-holder"), "INTERPOL-recorder": (404, "transfer-not-found"),
              "NL-recorder": (404, "transfer-not-found")}),
    Endpoint("GET /v1/authorization-requests/{id}",
             get(lambda w: f"/v1/authorization-requests/{w.a1['id']}"), REQUEST_FR, read("authorization-not-found")),
    Endpoint("GET /v1/authorizations/{id}", get(lambda w: f"/v1/authorizations/{w.a1['id']}"), REQUEST_FR,
             read("authorization-not-found")),
    Endpoint("GET /v1/authorization-requests", get(lambda w: "/v1/authorization-requests"), LEDGER, LISTS),
    Endpoint("POST /v1/authorization-requests/{id}/decision", decide("DE"), REQUEST_FR, ORIGIN_DECIDES),
    Endpoint("POST /v1/authorization-requests/{id}/decision (for another Party)", decide("FR"), REQUEST_FR,
             {"DE-authority": PARTY}),
    Endpoint("POST /v1/authorizations/{id}/revocation", revoke("DE"), REQUEST_FR, ORIGIN_DECIDES),
    Endpoint("POST /v1/authorizations/{id}/revocation (for another Party)", revoke("FR"), REQUEST_FR,
             {"DE-authority": PARTY}),
    Endpoint("POST /v1/transfers/{id}/erasure", on_own_transfer("POST", "erasure", erase), OWN_TRANSFER,
             PARTIES_TO_IT),
    Endpoint("GET /v1/notices", get(lambda w: "/v1/notices"), LEDGER, LISTS),
    Endpoint("POST /v1/notices/{id}/acknowledgement", acknowledge,
             {"INTERPOL": "addressee", "DE": "unrelated", "FR": "unrelated", "BR": "unrelated", "NL": "unrelated"},
             expectations({"INTERPOL": 200, **{p: (404, "notice-not-found") for p in ("DE", "FR", "BR", "NL")}},
                          COMMAND_OTHERS)),
    Endpoint("GET /v1/transfers/{id}/erasure-certificate", certificate_of_erased_onward, TRANSFER_T2,
             read("transfer-not-found")),
    Endpoint("POST /v1/transfers/{id}/restriction", on_own_transfer("POST", "restriction", hold), OWN_TRANSFER,
             PARTIES_TO_IT),
    Endpoint("DELETE /v1/transfers/{id}/restriction", on_own_transfer("DELETE", "restriction", hold),
             OWN_TRANSFER, PARTIES_TO_IT),
    Endpoint("POST /v1/transfers/{id}/erasure (for another Party)",
             lambda api, w, key: on_own_transfer("POST", "erasure", lambda _: erase("INTERPOL"))(api, w, key),
             OWN_TRANSFER, {"FR-authority": PARTY}),
    Endpoint("POST /v1/transfers/{id}/uses", custody("use"), OWN_TRANSFER,
             expectations({**RECIPIENT_ACTS, "INTERPOL-recorder": 201}, COMMAND_OTHERS)),
    Endpoint("GET /v1/transfers/{id}/uses", get(lambda w: f"/v1/transfers/{w.t2['id']}/uses"), TRANSFER_T2,
             read("transfer-not-found")),
    Endpoint("POST /v1/transfers/{id}/uses/{id}/notice", custody("notice"), OWN_TRANSFER,
             expectations({**RECIPIENT_ACTS, "INTERPOL-recorder": 200}, COMMAND_OTHERS)),
    Endpoint("POST /v1/consent-requests", custody("consent"), OWN_TRANSFER,
             expectations({**RECIPIENT_ACTS, "INTERPOL-recorder": 201}, COMMAND_OTHERS)),
    Endpoint("POST /v1/consent-requests/{id}/decision", custody("decide"), OWN_TRANSFER, SENDER_DECIDES),
    Endpoint("POST /v1/transfers/{id}/urgent-notice", urgent_notice,
             {"FR": "sender", "INTERPOL": "recipient", "DE": "origin", "BR": "unrelated", "NL": "unrelated"},
             expectations({**{f"{p}-{A}": ROLE for p in PARTIES}, "FR-recorder": 200,
                           "INTERPOL-recorder": (403, "not-the-sender"), "DE-recorder": (403, "not-the-sender"),
                           "BR-recorder": (404, "transfer-not-found"), "NL-recorder": (404, "transfer-not-found")},
                          COMMAND_OTHERS)),
    Endpoint("GET /v1/consent-requests/{id}", consent_on_t2(False), TRANSFER_T2, read("consent-request-not-found")),
    Endpoint("GET /v1/consent-requests/{id}/decision", consent_on_t2(True), TRANSFER_T2,
             read("consent-request-not-found")),
    Endpoint("POST /v1/preservations", lambda api, w, key: ("POST", "/v1/preservations", pres.preservation()),
             PRESERVATION, expectations(
                 {"DE-authority": 201, **{f"{p}-{A}": PARTY for p in PARTIES if p != "DE"},
                  **{f"{p}-{R}": ROLE for p in PARTIES}}, COMMAND_OTHERS)),
    Endpoint("POST /v1/preservations/{id}/extension", on_preservation("extension", pres.extension), PRESERVATION,
             preservation_step("DE", (403, "not-requesting-party"))),
    Endpoint("POST /v1/preservations/{id}/follow-up", on_preservation("follow-up", pres.follow_up), PRESERVATION,
             preservation_step("DE", (403, "not-requesting-party"))),
    Endpoint("POST /v1/preservations/{id}/follow-up/decision",
             on_preservation("follow-up/decision", pres.decision, follow_up=True), PRESERVATION,
             preservation_step("FR", (403, "not-requested-party"))),
    Endpoint("POST /v1/preservations/{id}/release", on_preservation("release", pres.release, requested_days_ago=61),
             PRESERVATION, preservation_step("FR", (403, "not-requested-party"))),
    Endpoint("GET /v1/preservations/{id}",
             lambda api, w, key: ("GET", f"/v1/preservations/{preservation(api)['id']}", None), PRESERVATION,
             expectations({"DE": 200, "FR": 200, **dict.fromkeys(("INTERPOL", "BR", "NL"), NOT_FOUND_PRESERVATION)},
                          {**READ_OTHERS, "NL-auditor": NOT_FOUND_PRESERVATION})),
    Endpoint("GET /v1/preservations", get(lambda w: "/v1/preservations"), LEDGER, LISTS),
    Endpoint("GET /v1/audit/preservations", get(lambda w: "/v1/audit/preservations?expiring_within=7d"), LEDGER,
             AUDITORS),
    Endpoint("GET /v1/audit/consultations", get(lambda w: "/v1/audit/consultations?purpose=lawfulness"), LEDGER,
             AUDITORS),
    Endpoint("POST /v1/referrals", refer(False), REFERRAL, expectations(
        {"FR-recorder": 201, **{f"{p}-{R}": PARTY for p in ("DE", "INTERPOL", "BR", "NL")},
         **{f"{p}-{A}": ROLE for p in PARTIES}}, COMMAND_OTHERS)),
    Endpoint("POST /v1/referrals (passing on t1 without DE's grant)", refer(True), REFERRAL,
             {"FR-recorder": (409, "onward-transfer-not-authorized")}),
    Endpoint("GET /v1/referrals/{id}", referral_read, REFERRAL, REFERRAL_READ),
    Endpoint("GET /v1/referrals", get(lambda w: "/v1/referrals"), LEDGER, LISTS),
    Endpoint("GET /v1/events", get(lambda w: "/v1/events"), LEDGER, expectations(
        dict.fromkeys(PARTIES, ROLE),
        {"*-auditor": 200, "DE-auditor": PARTY, "NL-auditor": PARTY, "*-verifier": ROLE, "*-admin": ROLE,
         **NO_KEY})),
    Endpoint("GET /v1/checkpoint", get(lambda w: "/v1/checkpoint"), LEDGER, ANY_KEY),
    Endpoint("POST /v1/checkpoint/cosignatures", cosign, LEDGER, expectations(
        dict.fromkeys(PARTIES, ROLE),
        {"*-auditor": ROLE, "DE-auditor": ROLE, "NL-auditor": ROLE, "*-verifier": 201, "*-admin": ROLE,
         **NO_KEY})),
    Endpoint("GET /v1/proofs/inclusion", get(lambda w: "/v1/proofs/inclusion?index=1&tree_size=3"), LEDGER,
             PROOFS),
    Endpoint("GET /v1/proofs/consistency", get(lambda w: "/v1/proofs/consistency?first=2&second=5"), LEDGER,
             PROOFS),
    Endpoint("GET /healthz", get(lambda w: "/healthz"), LEDGER, ANYONE),
    Endpoint("GET /metrics", get(lambda w: "/metrics"), LEDGER, expectations(
        dict.fromkeys(PARTIES, ROLE), {"*-auditor": ROLE, "DE-auditor": ROLE, "NL-auditor": ROLE, "*-verifier": 200,
                                      "*-admin": 200, **NO_KEY})),
    # each item answered in its place: a recorder of DE records DE's transfer; another Party's recorder
    # is told, in the item, that it is not its Party's (the request itself answers 200)
    Endpoint("POST /v1/transfers/batch", lambda api, w, key: ("POST", "/v1/transfers/batch", {
        "items": [{"key": f"batch-{key}-{uuid.uuid4()}", "transfer": builders.transfer("DE", "FR")}]}),
        FIRST_DE_FR, expectations({f"{p}-{R}": 200 for p in PARTIES} | {f"{p}-{A}": ROLE for p in PARTIES},
                                  COMMAND_OTHERS)),
    *(Endpoint(f"GET /v1/audit/{name}", get(lambda w, name=name: f"/v1/audit/{name}"), LEDGER, AUDITORS)
      for name in ("findings", "statistics", "authorizations", "state", "projections", "report")),
    Endpoint("GET /v1/audit/lineage/{id}", get(lambda w: f"/v1/audit/lineage/{w.t2['id']}"), TRANSFER_T2,
             expectations(dict.fromkeys(PARTIES, ROLE),
                          {"*-auditor": 200, "DE-auditor": 200, "NL-auditor": (404, "transfer-not-found"),
                           "*-verifier": ROLE, "*-admin": ROLE, **NO_KEY})),
]


def cases() -> Iterator[Any]:
    for endpoint in ENDPOINTS:
        for key, expected in endpoint.expected.items():
            party = key.split("-")[0]
            relation = KEY_RELATIONS.get(key) or f"{endpoint.relations.get(party, 'unrelated')}-{key.split('-')[1]}"
            status, rule = expected if isinstance(expected, tuple) else (expected, None)
            yield pytest.param(endpoint, key, status, rule, id=f"{endpoint.name} | {relation} ({key}) -> {status}")


@pytest.mark.parametrize(("endpoint", "key", "status", "rule"), list(cases()))
def test_access(module_api: Api, world: World, endpoint: Endpoint, key: str, status: int, rule: str | None) -> None:
    method, path, body = endpoint.prepare(module_api, world, key)
    assert module_api.client is not None
    response = module_api.client.request(method, path, json=body, headers=module_api.headers(key))
    if status >= 400:
        problem(response, status, rule)
    else:
        assert response.status_code == status, response.text


def test_the_table_covers_every_endpoint_and_key(module_api: Api) -> None:
    """Every route of the app is in the table, and every key is tried on each."""
    paths = module_api.app.openapi()["paths"]
    routes = {f"{method.upper()} {re.sub(r'{[a-z_]+}', '{id}', path)}" for path in paths for method in paths[path]}
    covered = {e.name.split(" (")[0] for e in ENDPOINTS}
    assert not routes - covered, f"add the access rows of {sorted(routes - covered)} to ENDPOINTS"
    assert not covered - routes, f"no such routes: {sorted(covered - routes)}"
    for endpoint in ENDPOINTS:
        if "(" not in endpoint.name or endpoint.name.endswith("(first)"):
            assert set(endpoint.expected) == set(ALL_KEYS), endpoint.name


def test_a_key_that_is_not_bearer_or_malformed_is_401(module_api: Api) -> None:
    client = module_api.client
    assert client is not None
    for value in ("Basic dXNlcjpwdw==", "Bearer", "Bearer    ", "tl_" + "x" * 43, "Bearer tl_short",
                  "Bearer " + "x" * 5000):
        response = client.get("/v1/checkpoint", headers={"Authorization": value})
        body = problem(response, 401)
        assert body["rule"] in ("authentication-required", "invalid-api-key")
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_unrelated_parties_see_nothing_in_the_lists(module_api: Api, world: World) -> None:
    """Lists are filtered by the same rule as reads: NL sees none of the lineage, BR only its own."""
    ids = {world.t1["id"], world.t2["id"], world.t3["id"]}

    def listed(path: str, key: str) -> set[str]:
        out: set[str] = set()
        cursor = None
        for _ in range(100):
            params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            page = module_api.ok(module_api.get(path, key, params=params), 200)
            out |= {item["id"] for item in page["items"]}
            cursor = page["next_cursor"]
            if cursor is None:
                return out
        raise AssertionError("more than 100 pages")

    assert not listed("/v1/transfers", "NL-recorder") & ids
    assert not listed("/v1/transfers", "NL-auditor") & ids
    assert listed("/v1/transfers", "BR-recorder") & ids == {world.t3["id"]}
    assert listed("/v1/transfers", "DE-auditor") >= ids
    assert listed("/v1/transfers", "*-auditor") >= ids
    assert not listed("/v1/authorization-requests", "NL-authority") & {world.a1["id"], world.a2["id"]}
    assert listed("/v1/authorization-requests", "BR-recorder") & {world.a1["id"], world.a2["id"]} == {world.a2["id"]}


def test_a_downstream_party_reads_only_the_ancestors_it_took_part_in(module_api: Api, world: World) -> None:
    """BR received t3 (INTERPOL -> BR) but none of t2 (FR -> INTERPOL) or t1 (DE -> FR)."""
    mine = module_api.ok(module_api.get(f"/v1/transfers/{world.t3['id']}", "BR-recorder"), 200)
    assert mine["origin"] == "DE" and mine["ancestors"] == []
    interpol = module_api.ok(module_api.get(f"/v1/transfers/{world.t3['id']}", "INTERPOL-recorder"), 200)
    assert [a["id"] for a in interpol["ancestors"]] == [world.t2["id"]]
    origin = module_api.ok(module_api.get(f"/v1/transfers/{world.t3['id']}", "DE-authority"), 200)
    assert [a["id"] for a in origin["ancestors"]] == [world.t2["id"], world.t1["id"]]
    lineage = module_api.ok(module_api.get(f"/v1/transfers/{world.t1['id']}/lineage", "FR-recorder"), 200)
    assert world.t3["id"] not in {d["id"] for d in lineage["descendants"]}
    assert world.t2["id"] in {d["id"] for d in lineage["descendants"]}
