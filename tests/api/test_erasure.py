"""Erasure and restriction over HTTP: who may, what the transfer reads afterwards, what is refused."""

from __future__ import annotations

import base64
from typing import Any

from ledger.tlog.merkle import verify_inclusion
from tests.support import builders
from tests.support.api import Api, problem

SUBJECT = "Olga Nikolaevna Smirnova"


def erasure(party: str = "FR", ground: str = "purpose-achieved") -> dict[str, Any]:
    return {"erased_by": builders.actor(party), "ground": ground, "reasons": "proceeding closed"}


def hold(party: str = "FR") -> dict[str, Any]:
    return {"by": builders.actor(party), "reasons": "evidence for an appeal"}


def test_an_authority_of_the_recipient_erases_and_the_transfer_reads_as_erased(api: Api) -> None:
    t = api.transfer("DE", "FR", subjects=[SUBJECT], justification="matches the suspect's account")
    assert api.ok(api.get(f"/v1/transfers/{t['id']}", "FR-recorder"), 200)["subjects"] == [SUBJECT]
    out = api.ok(api.post(f"/v1/transfers/{t['id']}/erasure", erasure(), "FR-authority"), 200)
    assert set(out["subjects"]) == {"erased", "commitment"}
    assert out["subjects"]["commitment"].startswith("commitment:")
    assert out["justification"]["erased"]["leaf_index"] == out["erasure"]["leaf_index"] == api.tree_size() - 1
    assert out["erasure"]["ground"] == "purpose-achieved" and out["erasure"]["erased_by"]["party"] == "FR"
    assert out["sender"]["officer"] == builders.actor("DE")["officer"]  # the log of who acted stays
    read = api.ok(api.get(f"/v1/transfers/{t['id']}", "DE-recorder"), 200)
    assert read["subjects"] == out["subjects"] and read["erasure"] == out["erasure"]
    assert SUBJECT not in api.get(f"/v1/transfers/{t['id']}/lineage", "FR-recorder").text
    # the transfer's leaf still proves its place under the signed root
    checkpoint = api.checkpoint()
    proof = api.ok(api.get(f"/v1/proofs/inclusion?index={t['leaf_index']}&tree_size={checkpoint.size}",
                           "*-verifier"), 200)
    verify_inclusion(base64.b64decode(proof["leaf_hash"]), t["leaf_index"], checkpoint.size,
                     [base64.b64decode(p) for p in proof["proof"]], checkpoint.root_hash)
    # once is enough
    problem(api.post(f"/v1/transfers/{t['id']}/erasure", erasure(), "FR-authority"), 409, "personal-data-erased")


def test_who_may_not_erase(api: Api) -> None:
    t = api.transfer("DE", "FR", subjects=[SUBJECT])
    problem(api.post(f"/v1/transfers/{t['id']}/erasure", erasure(), "FR-recorder"), 403, "role-required")
    problem(api.post(f"/v1/transfers/{t['id']}/erasure", erasure("DE"), "FR-authority"), 403, "not-your-party")
    # a Party that cannot read the transfer is told nothing
    problem(api.post(f"/v1/transfers/{t['id']}/erasure", erasure("NL"), "NL-authority"), 404)
    bad = problem(api.post(f"/v1/transfers/{t['id']}/erasure", {**erasure(), "ground": "bored"}, "FR-authority"),
                  422)
    assert bad["field"] == "ground"
    problem(api.post(f"/v1/transfers/{t['id']}/erasure", {"erased_by": builders.actor("FR")}, "FR-authority"), 422)
    assert api.ok(api.get(f"/v1/transfers/{t['id']}", "FR-recorder"), 200)["subjects"] == [SUBJECT]


def test_a_hold_refuses_erasure_until_lifted(api: Api) -> None:
    t = api.transfer("DE", "FR", subjects=[SUBJECT])
    held = api.ok(api.post(f"/v1/transfers/{t['id']}/restriction", hold(), "FR-authority"), 200)
    assert held["restriction"]["reasons"] == "evidence for an appeal" and held["restriction"]["leaf_index"] >= 1
    problem(api.post(f"/v1/transfers/{t['id']}/erasure", erasure(), "FR-authority"), 409, "processing-restricted")
    problem(api.post(f"/v1/transfers/{t['id']}/restriction", hold(), "FR-authority"), 409, "processing-restricted")
    assert api.client is not None
    lifted = api.client.request("DELETE", f"/v1/transfers/{t['id']}/restriction", json=hold("DE"),
                                headers=api.headers("DE-authority"))
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["restriction"] is None
    again = api.client.request("DELETE", f"/v1/transfers/{t['id']}/restriction", json=hold("DE"),
                               headers=api.headers("DE-authority"))
    problem(again, 409, "not-restricted")
    api.ok(api.post(f"/v1/transfers/{t['id']}/erasure", erasure(), "FR-authority"), 200)


def test_an_erasure_retried_with_its_key_answers_the_same(api: Api) -> None:
    t = api.transfer("DE", "FR", subjects=[SUBJECT])
    first = api.ok(api.post(f"/v1/transfers/{t['id']}/erasure", erasure(), "FR-authority", idem="erase-1"), 200)
    size = api.tree_size()
    again = api.ok(api.post(f"/v1/transfers/{t['id']}/erasure", erasure(), "FR-authority", idem="erase-1"), 200)
    assert again == first and api.tree_size() == size


def test_an_erasure_certificate_verifies_offline_and_fails_when_altered(api: Api, tmp_path: Any) -> None:
    import json

    from tests.support.cli import run

    t = api.transfer("DE", "FR", subjects=[SUBJECT])
    problem(api.get(f"/v1/transfers/{t['id']}/erasure-certificate", "FR-recorder"), 404, "erasure-not-found")
    erased = api.ok(api.post(f"/v1/transfers/{t['id']}/erasure", erasure(), "FR-authority"), 200)
    problem(api.get(f"/v1/transfers/{t['id']}/erasure-certificate", "NL-recorder"), 404)
    certificate = api.ok(api.get(f"/v1/transfers/{t['id']}/erasure-certificate", "DE-recorder"), 200)
    assert certificate["leaf_index"] == erased["erasure"]["leaf_index"]
    assert certificate["erasure"]["key_ids"] == erased["erasure"]["key_ids"]
    assert erased["subjects"]["commitment"] in certificate["erasure"]["erased"][0]["commitments"].values()
    assert SUBJECT not in json.dumps(certificate) and "outside the ledger" in certificate["cannot_prove"]
    # no witness cosigned anything of this ledger: the certificate says so in words
    assert certificate["cosigned_by"] == [] and certificate["witnessing"].startswith("Not witnessed: ")
    path = tmp_path / "certificate.json"
    path.write_text(json.dumps(certificate))
    vkey = str(api.settings.vkey_file)
    ok = run("verify-certificate", str(path), "--vkey", vkey, "--json")
    report = json.loads(ok.stdout)
    assert report["ok"] and report["leaf_index"] == certificate["leaf_index"]
    assert report["key_ids"] == certificate["erasure"]["key_ids"] and report["commitments"] >= 2
    # a claim the leaf does not make, or another leaf, fails
    forged = {**certificate, "erasure": {**certificate["erasure"], "key_ids": ["0" * 32]}}
    path.write_text(json.dumps(forged))
    bad = run("verify-certificate", str(path), "--vkey", vkey, check=1)
    assert bad.stdout.startswith("FAILED: the certificate's erasure differs")
    leaf = base64.b64decode(certificate["leaf"])
    assert b'"recorded_at":"2' in leaf
    tampered = {**certificate, "leaf": base64.b64encode(leaf.replace(b'"recorded_at":"2', b'"recorded_at":"3')).decode()}
    path.write_text(json.dumps(tampered))
    failed = run("verify-certificate", str(path), "--vkey", vkey, check=1).stdout
    assert failed.startswith("FAILED: tlog-proof: line 3: the inclusion proof of leaf"), failed
    # the CLI writes the same certificate
    out = tmp_path / "cli.json"
    written = run("erasure-certificate", t["id"], "--out", str(out), settings=api.settings)
    assert "written to" in written.stdout
    checked = run("verify-certificate", str(out), "--vkey", vkey).stdout
    assert checked.startswith("OK: erasure of " + t["id"]) and "0 cosignature(s)" in checked
    assert "Witnessing: Not witnessed: " in checked


def test_notices_over_http(api: Api) -> None:
    root, auth = api.chain()  # DE -> FR; DE granted FR's onward transfer to INTERPOL
    api.onward("FR", "INTERPOL", root, auth)
    api.ok(api.post(f"/v1/transfers/{root['id']}/erasure", erasure("FR"), "FR-authority"), 200)
    page = api.ok(api.get("/v1/notices", "INTERPOL-recorder"), 200)
    assert [n["party"] for n in page["items"]] == ["INTERPOL"] and page["next_cursor"] is None
    notice = page["items"][0]
    assert api.ok(api.get("/v1/notices", "BR-recorder"), 200)["items"] == []
    assert [n["id"] for n in api.ok(api.get("/v1/notices", "*-auditor"), 200)["items"]] == [notice["id"]]
    body = {"acknowledged_by": builders.actor("INTERPOL")}
    problem(api.post(f"/v1/notices/{notice['id']}/acknowledgement", {"acknowledged_by": builders.actor("BR")},
                     "BR-authority"), 404, "notice-not-found")
    problem(api.post(f"/v1/notices/{notice['id']}/acknowledgement", body, "*-auditor"), 403, "role-required")
    done = api.ok(api.post(f"/v1/notices/{notice['id']}/acknowledgement", body, "INTERPOL-recorder",
                           idem="ack-1"), 200)
    assert done["acknowledgement"]["acknowledged_by"]["party"] == "INTERPOL"
    again = api.ok(api.post(f"/v1/notices/{notice['id']}/acknowledgement", body, "INTERPOL-recorder",
                            idem="ack-1"), 200)
    assert again == done
    problem(api.post(f"/v1/notices/{notice['id']}/acknowledgement", body, "INTERPOL-recorder"), 409,
            "notice-already-acknowledged")
    assert api.ok(api.get("/v1/notices", "INTERPOL-authority"), 200)["items"] == [done]


def test_serve_runs_the_retention_job_on_its_interval(api: Api) -> None:
    import time

    from fastapi.testclient import TestClient

    from api.app import create_app
    from ledger.config import Settings

    past = api.transfer("DE", "FR", subjects=[SUBJECT], retention_until="2026-01-31")
    api.stop()
    settings = Settings(api.settings.data_dir, api.settings.database_url, retention_interval=1)
    with TestClient(create_app(settings)) as client:
        headers = api.headers("FR-recorder")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            read = client.get(f"/v1/transfers/{past['id']}", headers=headers).json()
            if read["erasure"] is not None:
                break
            time.sleep(0.2)
        assert read["erasure"]["ground"] == "retention-expired", read
        assert "erased" in read["subjects"]


def test_the_findings_follow_erasures_and_their_notices(api: Api) -> None:
    root, auth = api.chain()
    api.onward("FR", "INTERPOL", root, auth)
    late = api.transfer("DE", "FR", subjects=[SUBJECT], retention_until="2026-01-31")
    kept = api.transfer("DE", "FR", subjects=[SUBJECT], retention_until="2026-01-31")

    def findings(rule: str, **params: Any) -> dict[str, str]:
        body = api.ok(api.get("/v1/audit/findings", "*-auditor", params={"rule": rule, **params}), 200)
        return {f["transfer_id"]: f["reason"] for f in body["items"]}

    assert findings("retention-period-expired") == {late["id"]: "retention-date-passed",
                                                    kept["id"]: "retention-date-passed"}
    api.ok(api.post(f"/v1/transfers/{late['id']}/erasure", erasure("FR", "retention-expired"), "FR-authority"), 200)
    # erased, but ten months after the period ended: still a finding, of another kind
    assert findings("retention-period-expired") == {late["id"]: "erased-late", kept["id"]: "retention-date-passed"}
    api.ok(api.post(f"/v1/transfers/{root['id']}/erasure", erasure("FR"), "FR-authority"), 200)
    assert findings("erasure-notice-unacknowledged") == {}  # within 30 days
    assert findings("erasure-notice-unacknowledged", notice_deadline_days=0) == {root["id"]: "not-acknowledged"}
    [notice] = api.ok(api.get("/v1/notices", "INTERPOL-recorder"), 200)["items"]
    api.ok(api.post(f"/v1/notices/{notice['id']}/acknowledgement",
                    {"acknowledged_by": builders.actor("INTERPOL")}, "INTERPOL-recorder"), 200)
    assert findings("erasure-notice-unacknowledged", notice_deadline_days=0) == {root["id"]: "acknowledged-late"}
    assert findings("erasure-notice-unacknowledged", notice_deadline_days=1) == {}
