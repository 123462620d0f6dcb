"""The auditor's console in a real browser (Chromium, through Playwright) against a real server.

Each test does what an auditor does: sign in, search, open a transfer, read the proof the
page recomputed, follow the lineage to a third country, see a finding; and what an
attacker or a careless operator does: alter a row, reach another Party's transfer by URL,
post a form from elsewhere.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from ledger.tlog.cosignature import Cosigner
from tests.support.console import Console, screenshot, sign_in


def test_sign_in_keeps_the_key_out_of_urls_and_storage(page: Any, console: Console) -> None:
    page.goto(console.url + "/console/transfers")
    assert "/console/login" in page.url  # not signed in: sent to sign in, and back after
    sign_in(page, console, path="/console/transfers")
    assert page.url.endswith("/console/transfers")
    key = console.api.keys["*-auditor"]
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["tl_console"]
    assert session["httpOnly"] and session["sameSite"] == "Strict" and session["path"] == "/console"
    assert key not in session["value"]  # sealed, not the key in clear
    assert page.evaluate("document.cookie") == ""  # no script can read it
    assert page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)") == "{}{}"
    assert key not in page.content() and key not in page.url


def test_a_wrong_key_is_refused_on_the_form(page: Any, console: Console) -> None:
    page.goto(console.url + "/console/login")
    page.fill("input[name=api_key]", "tl_" + "0" * 40)
    page.click("button[type=submit]")
    assert "unknown or was revoked" in page.text_content("[role=alert]")
    assert "tl_console" not in {c["name"] for c in page.context.cookies()}


def test_search_open_a_transfer_and_its_proof_verifies_in_the_page(page: Any, console: Console) -> None:
    root = console.seeded["root"]
    sign_in(page, console)
    page.click("nav >> text=Transfers")
    page.fill("input[name=request_reference]", "MLA-2026-0042")
    page.click("form.search button")
    rows = page.locator("#transfers tbody tr")
    assert rows.count() == 1
    screenshot(page, "search")
    rows.first.locator("a").click()
    assert page.url.endswith(f"/console/transfers/{root['id']}")
    result = page.locator("#proof-result")
    result.locator("xpath=self::*[@data-state='ok']").wait_for()
    assert "Verified in this page" in result.text_content()
    # each step's hash was written by the page's own recomputation
    steps = page.locator("#proof-steps tbody tr[data-step]")
    for i in range(steps.count()):
        assert re.fullmatch(r"[A-Za-z0-9+/]{43}=", steps.nth(i).locator(".result code").text_content())
    assert "Transferred DE → FR" in page.text_content("#timeline")
    assert "Authorization refused" in page.text_content("#timeline")
    assert "Used: investigation" in page.text_content("#timeline")
    assert "Consent asked by FR of DE" in page.text_content("#timeline")
    screenshot(page, "transfer")
    with page.expect_download() as download:
        page.click("text=Download the proof")
    text = open(download.value.path(), encoding="utf-8").read()
    assert text.startswith("c2sp.org/tlog-proof@v1\n") and f"\nindex {root['leaf_index']}\n" in text


def test_a_search_with_no_match_and_paging_by_cursor(page: Any, console: Console) -> None:
    sign_in(page, console)
    page.goto(console.url + "/console/transfers?proceeding=no-such-proceeding")
    assert "No transfer matches this search" in page.text_content("#transfers")
    page.goto(console.url + "/console/transfers?party=DE&handling_code=H0")
    assert "No transfer matches" in page.text_content("#transfers")
    page.goto(console.url + "/console/transfers?legal_basis=art47")
    assert page.locator("#transfers tbody tr").count() == 1  # the onward hop to BR


def test_the_lineage_graph_leads_to_the_third_country(page: Any, console: Console) -> None:
    root, onward = console.seeded["root"], console.seeded["onward"]
    sign_in(page, console, path=f"/console/transfers/{root['id']}")
    page.click("#lineage-link")
    graph = page.locator("#lineage-graph svg")
    assert graph.locator("a[data-status=authorized]").count() == 1
    assert graph.locator(".hop.refused").count() == 1  # FR's request for INTERPOL, refused by DE
    screenshot(page, "lineage")
    graph.locator("a[data-status=authorized]").click()
    assert page.url.endswith(f"/console/transfers/{onward['id']}")
    assert "FR → BR" in page.text_content("h1")


def test_a_finding_links_to_the_transfer_that_raised_it(page: Any, console: Console) -> None:
    late = console.seeded["late"]
    sign_in(page, console)
    page.click("nav >> text=Findings")
    page.select_option("select[name=rule]", "control-plan-missing")
    page.click("form.search button")
    row = page.locator("#findings tbody tr[data-rule=control-plan-missing]")
    assert row.count() == 1 and "Order 949 annex 3 §6" in row.text_content()
    screenshot(page, "findings")
    row.locator("a", has_text="open").first.click()
    assert page.url.endswith(f"/console/transfers/{late['id']}")


def test_the_registry_lists_the_refusal(page: Any, console: Console) -> None:
    sign_in(page, console)
    page.click("nav >> text=Authorizations")
    page.select_option("select[name=status]", "refused")
    page.click("form.search button")
    rows = page.locator("#authorizations tbody tr[data-status=refused]")
    assert rows.count() == 1 and "no proceeding named" in rows.first.text_content()


def test_a_party_auditor_cannot_reach_another_partys_transfer_by_url(page: Any, console: Console) -> None:
    de_only = console.seeded["root"]
    sign_in(page, console, "NL-auditor")
    page.goto(console.url + f"/console/transfers/{de_only['id']}")
    assert "404" in page.text_content("h1") and de_only["request_reference"] not in page.content()
    page.goto(console.url + f"/console/transfers/{de_only['id']}/lineage")
    assert "404" in page.text_content("h1")
    page.goto(console.url + "/console/transfers")
    ids = page.locator("#transfers tbody a").all_text_contents()
    assert len(ids) == 1  # NL's share: the DE -> NL transfer only
    page.goto(console.url + f"/console/transfers/{console.seeded['late']['id']}")
    assert "DE → NL" in page.text_content("h1")


def test_reads_in_the_console_are_logged_with_the_justification(page: Any, console: Console) -> None:
    root = console.seeded["root"]
    sign_in(page, console, justification="complaint C-7 of a data subject")
    page.goto(console.url + f"/console/transfers/{root['id']}")
    page.locator("#proof-result[data-state=ok]").wait_for()
    logs = httpx.get(console.url + "/v1/audit/consultations", params={"purpose": "lawfulness", "transfer": root["id"]},
                     headers={"Authorization": f"Bearer {console.api.keys['*-auditor']}"}, timeout=10)
    assert logs.status_code == 200, logs.text
    mine = [e for e in logs.json()["items"] if e["route"] == "GET /console/transfers/{transfer_id}"]
    assert mine and mine[-1]["reader"]["justification"] == "complaint C-7 of a data subject"
    assert mine[-1]["reader"]["officer"] == "Insp. Weber"


def test_a_form_posted_without_its_csrf_token_changes_nothing(page: Any, console: Console) -> None:
    sign_in(page, console)
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    with httpx.Client(base_url=console.url, cookies=cookies, timeout=10) as client:
        forged = client.post("/console/trust", data={"action": "pin"})
        assert forged.status_code == 403 and "CSRF" in forged.text
        assert "tl_console_trust" not in forged.headers.get("set-cookie", "")
        signed_out = client.post("/console/logout", data={"csrf": "0" * 64})
        assert signed_out.status_code == 403
    page.goto(console.url + "/console/")
    assert page.locator("#overall").count() == 1  # still signed in


def test_a_verifier_sees_the_status_but_no_personal_data(page: Any, console: Console) -> None:
    sign_in(page, console, "*-verifier")
    assert page.locator("#overall").count() == 1
    assert page.locator("nav >> text=Transfers").count() == 0
    page.goto(console.url + f"/console/transfers/{console.seeded['root']['id']}")
    assert "403" in page.text_content("h1")


def test_pinning_then_growing_proves_consistency(page: Any, console: Console) -> None:
    sign_in(page, console)
    page.click("#pin")
    page.goto(console.url + "/console/")
    check = page.locator("[data-check=consistency]")
    assert check.get_attribute("data-state") == "ok"
    console.api.transfer("FR", "DE")
    page.reload()
    assert check.get_attribute("data-state") == "ok" and "only grew" in check.text_content()
    screenshot(page, "status")


def test_an_altered_row_turns_the_status_red_with_the_first_bad_index(page: Any, own_console: Console) -> None:
    console = own_console
    sign_in(page, console)
    page.click("#verify-now")
    assert page.locator("[data-check=verify]").get_attribute("data-state") == "ok"
    assert page.get_attribute("#overall", "data-state") in ("ok", "warn")
    target = console.seeded["onward"]["leaf_index"]
    backend = console.backend
    [(notification_id,)] = backend.execute(
        "SELECT notification_id FROM ledger_leaves WHERE leaf_index = ?", (target,))
    backend.execute(f"UPDATE {backend.events_table} SET state = ? WHERE {backend.notification_id} = ?",
                    (b'{"tampered": true}', notification_id))
    page.click("#verify-now")
    assert page.get_attribute("#overall", "data-state") == "bad"
    assert page.locator("[data-check=verify]").get_attribute("data-state") == "bad"
    assert page.text_content("#first-bad-index") == str(target)
    assert f"first bad index {target}" in page.text_content("[data-check=verify]")
    screenshot(page, "status-altered")


def test_a_rewritten_tree_refuses_signing_and_shows_both_roots_side_by_side(page: Any,
                                                                             own_console: Console) -> None:
    console = own_console
    sign_in(page, console)
    page.click("#pin")  # signs and stores the checkpoint of the current tree
    # every stored subtree starting at leaf 0 rewritten: the root at the signed size changes
    console.backend.execute("UPDATE ledger_nodes SET hash = ? WHERE idx = 0", (bytes(32),))
    page.goto(console.url + "/console/")
    assert page.get_attribute("#overall", "data-state") == "bad"
    assert page.locator("[data-check=checkpoint]").get_attribute("data-state") == "bad"
    sides = page.locator("#split .card")
    assert sides.count() == 2
    left, right = (sides.nth(i).locator("code.hash").text_content() for i in (0, 1))
    assert left != right  # what was signed, and what the stored tree holds now
    screenshot(page, "status-split")


def test_witness_cosignatures_are_checked_against_the_auditors_quorum(page: Any, console: Console) -> None:
    witness = Cosigner.from_seed("witness.example/w1", bytes(range(32)))
    note = httpx.get(console.url + "/v1/checkpoint", timeout=10,
                     headers={"Authorization": f"Bearer {console.api.keys['*-auditor']}"}).text
    text = note[: note.index("\n\n") + 1]
    size = int(text.split("\n")[1])
    line = witness.cosign(text, int(time.time()))
    stored = httpx.post(console.url + "/v1/checkpoint/cosignatures", timeout=10,
                        headers={"Authorization": f"Bearer {console.api.keys['*-auditor']}"},
                        json={"tree_size": size, "vkey": witness.verifier().vkey(), "cosignature": line})
    assert stored.status_code == 201, stored.text
    sign_in(page, console)
    check = page.locator("[data-check=witnesses]")
    assert check.get_attribute("data-state") == "warn" and "no quorum is checked" in check.text_content()
    page.fill("textarea[name=witnesses]", witness.verifier().vkey())
    page.fill("input[name=quorum]", "1")
    page.click("text=Save the witness policy")
    assert check.get_attribute("data-state") == "ok", check.text_content()
    assert "1 of your 1 trusted witnesses" in check.text_content()
    other = Cosigner.from_seed("witness.example/w2", bytes(32))
    page.fill("textarea[name=witnesses]", witness.verifier().vkey() + "\n" + other.verifier().vkey())
    page.fill("input[name=quorum]", "2")
    page.click("text=Save the witness policy")
    assert check.get_attribute("data-state") == "bad" and "quorum is not met" in check.text_content()
    page.fill("textarea[name=witnesses]", "not a vkey")
    page.click("text=Save the witness policy")
    assert "422" in page.text_content("h1")


def test_time_travel_shows_the_registry_as_it_was_and_the_checkpoint_covering_it(page: Any,
                                                                                 console: Console) -> None:
    registry = httpx.get(console.url + "/v1/audit/authorizations", params={"status": "refused"}, timeout=10,
                         headers={"Authorization": f"Bearer {console.api.keys['*-auditor']}"}).json()
    [refused] = registry["items"]
    sign_in(page, console, path="/console/authorizations")
    assert page.locator("#authorizations tr[data-status=refused]").count() == 1
    before_refusal = refused["requested_leaf"]  # requested, not yet decided
    page.fill("form.asof input[name=at_index]", str(before_refusal))
    page.click("form.asof button")
    assert f"at_index={before_refusal}" in page.url
    assert page.locator("#authorizations tr[data-status=refused]").count() == 0
    assert page.locator("#authorizations tr[data-status=pending]").count() == 1
    covering = int(page.text_content("#asof-checkpoint"))
    assert covering > before_refusal  # a signed tree that holds the leaf viewed
    page.click("text=back to now")
    assert page.locator("#authorizations tr[data-status=refused]").count() == 1


def test_a_transfer_viewed_before_it_was_recorded_is_not_found(page: Any, console: Console) -> None:
    onward = console.seeded["onward"]
    sign_in(page, console)
    page.goto(console.url + f"/console/transfers/{onward['id']}?at_index={onward['leaf_index'] - 1}")
    assert "404" in page.text_content("h1") and "not yet" in page.text_content("[role=alert]")
    page.goto(console.url + f"/console/transfers/{onward['id']}?at_index={onward['leaf_index']}")
    page.locator("#proof-result[data-state=ok]").wait_for()
    assert page.locator("#asof-banner").count() == 1


def test_the_lineage_diff_names_the_hops_added_between_two_tree_sizes(page: Any, console: Console) -> None:
    root, onward = console.seeded["root"], console.seeded["onward"]
    sign_in(page, console, path=f"/console/transfers/{root['id']}/lineage")
    assert page.locator("#diff").count() == 1, page.content()[:3000]
    page.fill("input[name=diff_from]", "1")
    page.fill("input[name=diff_to]", str(onward["leaf_index"] + 1))
    page.click("#diff button")
    assert page.text_content("#diff-added") == "1"
    assert "FR → BR" in page.text_content("#diff-list")
    page.locator("#diff-list a").click()
    assert page.url.endswith(f"/console/transfers/{onward['id']}")


def test_lists_download_as_csv(page: Any, console: Console) -> None:
    sign_in(page, console, path="/console/transfers?party=BR")
    with page.expect_download() as download:
        page.click("#csv")
    rows = open(download.value.path(), encoding="utf-8").read().splitlines()
    assert rows[0].startswith("leaf_index,id,transferred_at,sender")
    assert len(rows) == 2 and console.seeded["onward"]["id"] in rows[1]
    page.goto(console.url + "/console/findings")
    with page.expect_download() as download:
        page.click("#csv")
    assert "control-plan-missing" in open(download.value.path(), encoding="utf-8").read()


def test_the_audit_bundle_of_a_selection_verifies_offline(page: Any, console: Console, tmp_path: Any) -> None:
    import subprocess
    import sys
    import zipfile

    root = console.seeded["root"]
    sign_in(page, console, path="/console/transfers")
    page.check(f"input[name=transfer_ids][value='{root['id']}']")
    with page.expect_download() as download:
        page.click("#bundle")
    with zipfile.ZipFile(download.value.path()) as archive:
        archive.extractall(tmp_path)
    vkey = (console.server.settings.data_dir / "ledger.vkey").read_text().strip()
    done = subprocess.run([sys.executable, "-m", "ledger.cli", "verify-export", str(tmp_path / "bundle"),
                           "--vkey", vkey], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert any(p.name.startswith(root["id"]) or root["id"] in p.name for p in (tmp_path / "bundle").rglob("*"))


def test_a_party_auditor_gets_no_bundle_of_the_whole_ledger(page: Any, console: Console) -> None:
    sign_in(page, console, "DE-auditor", path="/console/transfers")
    assert page.locator("#bundle").count() == 0
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    page.goto(console.url + "/console/")
    token = page.get_attribute("input[name=csrf]", "value")
    with httpx.Client(base_url=console.url, cookies=cookies, timeout=10) as client:
        refused = client.post("/console/bundle", data={"csrf": token, "transfer_ids": console.seeded["root"]["id"]})
    assert refused.status_code == 403 and "whole ledger" in refused.text


def test_the_control_page_lists_the_shares_checks(page: Any, console: Console) -> None:
    sign_in(page, console, "DE-auditor")
    page.click("nav >> text=Control")
    assert "No internal control check recorded for DE" in page.text_content("#checks")
    assert page.locator("#control-findings li[data-rule=control-plan-missing]").count() == 1


def test_a_findings_evidence_leaf_opens_with_its_event_and_proof(page: Any, console: Console) -> None:
    late = console.seeded["late"]
    sign_in(page, console, path="/console/findings?rule=control-plan-missing")
    page.locator("#findings a.leaf-link").first.click()
    assert page.url.endswith(f"/console/leaves/{late['leaf_index']}")
    assert "TransferRecorded" in page.text_content("h1")
    assert late["id"] in page.text_content("#event") and "verified by the server" in page.content()
    page.click("text=Sign out")
    assert "You are signed out" in page.content()
    sign_in(page, console, "DE-auditor", path=f"/console/leaves/{late['leaf_index']}")
    assert "403" in page.text_content("h1")  # the whole feed is for auditors of the whole ledger


def test_the_reads_log_asks_a_purpose_and_shows_who_read_what_and_why(page: Any, console: Console) -> None:
    root = console.seeded["root"]
    sign_in(page, console, justification="supervisory check SC-3")
    page.goto(console.url + f"/console/transfers/{root['id']}")
    page.click("nav >> text=Reads log")
    assert page.locator("#consultations").count() == 0  # no purpose yet: nothing shown
    page.select_option("select[name=purpose]", "self-monitoring")
    page.fill("input[name=transfer]", root["id"])
    page.click("form.search button")
    rows = page.locator("#consultations tbody tr")
    assert rows.count() >= 1
    assert "supervisory check SC-3" in page.text_content("#consultations")
    assert "GET /console/transfers/{transfer_id}" in page.text_content("#consultations")
    screenshot(page, "consultations")


def test_search_pages_by_cursor_in_commit_order(page: Any, console: Console) -> None:
    made = [console.api.transfer("DE", "FR", request_reference="PAGED-1")["leaf_index"] for _ in range(30)]
    sign_in(page, console, path="/console/transfers?request_reference=PAGED-1")
    first = [int(x) for x in page.locator("#transfers tbody td:nth-child(2) a").all_text_contents()]
    assert first == made[:25]
    page.click("a.next")
    second = [int(x) for x in page.locator("#transfers tbody td:nth-child(2) a").all_text_contents()]
    assert second == made[25:] and page.locator("a.next").count() == 0
    assert "request_reference=PAGED-1" in page.url  # the search is kept across pages


def test_pages_work_without_javascript(browser: Any, console: Console) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page, console, path=f"/console/transfers/{console.seeded['root']['id']}")
        assert "The server's check: verified" in page.text_content("noscript") or \
            "The server's check: verified" in page.content()
        page.goto(console.url + f"/console/transfers/{console.seeded['root']['id']}/lineage")
        assert page.locator("#lineage-graph svg a[data-status=authorized]").count() == 1
        page.click("#lineage-graph svg a[data-status=authorized]")
        assert page.url.endswith(f"/console/transfers/{console.seeded['onward']['id']}")
    finally:
        context.close()


def test_the_control_page_as_of_a_leaf_names_its_checkpoint(page: Any, console: Console) -> None:
    sign_in(page, console, path=f"/console/control?at_index={console.seeded['late']['leaf_index']}")
    assert page.locator("#asof-banner").count() == 1 and int(page.text_content("#asof-checkpoint")) > 0
    assert page.locator("#control-findings li[data-rule=control-plan-missing]").count() == 1
