"""The supervisory report over HTTP and on the command line: its figures, its formats, its
signature (checked offline), who may read it, and what is refused."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import zlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger.audit.report import CSV_COLUMNS
from ledger.audit.report_pdf import render_pdf
from ledger.service.report import REPORT_FORMAT, report_digest
from ledger.tlog.note import Signer
from tests.support import builders
from tests.support import control as ctl
from tests.support import preservation as pres
from tests.support.api import ORIGIN_LINE, Api, problem
from tests.support.cli import run

SUBJECT = "Olga Nikolaevna Smirnova"
JUSTIFICATION = "matches the suspect's account"
TODAY = datetime.now(UTC).date()
PERIOD = {"from": (TODAY - timedelta(days=1)).isoformat(), "to": TODAY.isoformat()}


def erasure(ground: str) -> dict[str, Any]:
    return {"erased_by": builders.actor("FR"), "ground": ground, "reasons": "proceeding closed"}


def scenario(api: Api) -> dict[str, Any]:
    """Five transfers (one onward, under a grant), a refused request, a consent, a preservation, an
    erasure on time and one late, reads of personal data and of the consultation log, a control check."""
    root, auth = api.chain()  # DE -> FR; FR asks DE to pass it on to INTERPOL; DE grants
    onward = api.onward("FR", "INTERPOL", root, auth)
    refused = api.decide(api.request("FR", "BR", root), builders.refuse("DE"))
    to_nl = api.transfer("DE", "NL")
    early = api.transfer("DE", "FR", subjects=[SUBJECT], justification=JUSTIFICATION, retention_until="2099-12-31")
    late = api.transfer("DE", "FR", subjects=[SUBJECT], retention_until="2026-01-31")
    consent = api.ok(api.post("/v1/consent-requests", builders.consent_request(root), "FR-recorder"), 201)
    api.ok(api.post(f"/v1/consent-requests/{consent['id']}/decision",
                    {"decision": "granted", "decided_by": builders.actor("DE")}, "DE-authority"), 200)
    api.ok(api.post("/v1/preservations", pres.preservation(), "DE-authority"), 201)
    api.ok(api.get(f"/v1/transfers/{early['id']}", "FR-recorder"), 200)  # a read of personal data: logged
    api.ok(api.post(f"/v1/transfers/{early['id']}/erasure", erasure("purpose-achieved"), "FR-authority"), 200)
    api.ok(api.post(f"/v1/transfers/{late['id']}/erasure", erasure("retention-expired"), "FR-authority"), 200)
    api.ok(api.get("/v1/audit/consultations", "*-auditor", params={"purpose": "lawfulness"}), 200)
    check = api.ok(api.post("/v1/control/checks", ctl.unplanned(
        received_on=TODAY.isoformat(), decided_on=TODAY.isoformat(),
        ends_on=(TODAY + timedelta(days=20)).isoformat()), "DE-auditor"), 201)
    api.ok(api.post(f"/v1/control/checks/{check['id']}/conclusion",
                    ctl.conclusion("DE", ctl.measure((TODAY + timedelta(days=30)).isoformat())), "DE-auditor"), 200)
    return {"root": root, "auth": auth, "onward": onward, "refused": refused, "to_nl": to_nl, "early": early,
            "late": late}


def report(api: Api, who: str = "*-auditor", **params: Any) -> dict[str, Any]:
    query = {k: v for k, v in {**PERIOD, **params}.items() if v is not None}  # None: the parameter left out
    response = api.get("/v1/audit/report", who, params=query)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()  # type: ignore[no-any-return]


def by(items: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return {item[key]: item for item in items}


def test_the_report_counts_exactly_what_happened_in_the_period(api: Api, tmp_path: Path) -> None:
    w = scenario(api)
    doc = report(api)
    assert doc["format"] == REPORT_FORMAT and doc["origin"] == ORIGIN_LINE and doc["party"] == "*"
    assert doc["period"] == {**PERIOD, "from_inclusive": True, "to_inclusive": True}
    # as of a signed checkpoint: the whole tree when asked
    checkpoint = api.checkpoint()
    assert doc["checkpoint"]["tree_size"] == checkpoint.size
    assert doc["checkpoint"]["root_hash"] == base64.b64encode(checkpoint.root_hash).decode()
    t = doc["transfers"]
    assert (t["total"], t["first"], t["onward"], t["onward_under_authorization"]) == (5, 4, 1, 1)
    assert by(t["by_party"], "party") == {
        "DE": {"party": "DE", "sent": 4, "received": 0, "originated": 5},
        "FR": {"party": "FR", "sent": 1, "received": 3, "originated": 0},
        "INTERPOL": {"party": "INTERPOL", "sent": 0, "received": 1, "originated": 0},
        "NL": {"party": "NL", "sent": 0, "received": 1, "originated": 0},
    }
    assert t["by_legal_basis"] == [{"legal_basis": "art44", "transfers": 4}, {"legal_basis": "art47", "transfers": 1}]
    assert t["by_regime"] == [{"regime": "un-cybercrime", "transfers": 5}]
    a = doc["authorizations"]
    assert (a["requested"], a["granted"], a["refused"], a["revoked"], a["decided"], a["pending_at_checkpoint"]) == (
        2, 1, 1, 0, 2, 0)
    hours = a["hours_to_decide"]
    assert hours["decisions"] == 2 and 0 <= hours["median"] <= hours["max"] < 1
    assert a["by_origin"] == [{"origin": "DE", "requested": 2, "granted": 1, "refused": 1, "revoked": 0}]
    assert {k: doc["consents"][k] for k in ("requested", "granted", "refused", "pending_at_checkpoint")} == {
        "requested": 1, "granted": 1, "refused": 0, "pending_at_checkpoint": 0}
    assert doc["preservations"]["requested"] == 1 and doc["preservations"]["active_at_checkpoint"] == 1
    e = doc["erasures"]
    assert e["subject_data"] == {"on_time": 1, "late": 1, "without_retention_date": 0}
    assert by(e["by_retention_class"], "retention_class")["subject-data"]["erasures"] == 2
    assert e["due_not_erased_at_checkpoint"] == 0
    c = doc["control"]
    assert (c["checks_opened"], c["checks_concluded"], c["measures_set"], c["measures_completed"],
            c["measures_open_at_checkpoint"]) == (1, 1, 1, 0, 1)
    assert c["checks_opened_by_kind"] == [{"kind": "unplanned", "count": 1}]
    f = doc["findings"]
    assert [(i["rule"], i["reason"], i["transfer_id"]) for i in f["open_items"]] == [
        ("retention-period-expired", "erased-late", w["late"]["id"])]
    assert f["open_by_rule"] == [{"rule": "retention-period-expired", "article": "Order 949 §12, §15",
                                  "title": f["open_by_rule"][0]["title"], "findings": 1}]
    assert "not recorded" in doc["not_counted"]
    # the consultations: exactly the entries the log holds (a read of the report is not one)
    log = api.ok(api.get("/v1/audit/consultations", "*-auditor", params={"purpose": "self-monitoring"}), 200)
    entries = [i for i in log["items"] if i["purpose"] != "self-monitoring"]
    assert doc["consultations"]["entries"] == len(entries) >= 2
    expected: dict[tuple[str, str, str | None], int] = {}
    for item in entries:
        k = (item["principal"], item["party"], item.get("purpose"))
        expected[k] = expected.get(k, 0) + 1
    assert {(i["principal"], i["party"], i["purpose"]): i["reads"]
            for i in doc["consultations"]["by_principal_and_purpose"]} == expected
    assert by(doc["consultations"]["by_purpose"], "purpose")["lawfulness"]["reads"] == 1
    # nothing personal: not the subject, the officer, the justification, nor any reason given
    text = json.dumps(doc, ensure_ascii=False)
    for personal in (SUBJECT, builders.actor("DE")["officer"], JUSTIFICATION, "proceeding closed",
                     "no proceeding named"):
        assert personal not in text
    # another period counts nothing, and still shows what is open
    empty = report(api, **{"from": "2020-01-01", "to": "2020-12-31"})
    assert empty["transfers"]["total"] == 0 and empty["authorizations"]["requested"] == 0
    assert empty["erasures"]["total"] == 0 and empty["consultations"]["entries"] == 0
    assert empty["findings"]["open"] == 1 and empty["findings"]["detected_in_period"] == 0


def test_the_signature_verifies_offline_and_one_changed_byte_fails(api: Api, tmp_path: Path) -> None:
    scenario(api)
    response = api.get("/v1/audit/report", params=PERIOD)
    path = tmp_path / "report.json"
    path.write_bytes(response.content)
    doc = response.json()
    text, signature = doc["signature"].split("\n\n", 1)
    assert text.split("\n") == [REPORT_FORMAT, ORIGIN_LINE, str(doc["checkpoint"]["tree_size"]),
                                doc["checkpoint"]["root_hash"], f"sha256:{report_digest(doc)}"]
    assert signature.startswith(f"\u2014 {ORIGIN_LINE} ")
    vkey = str(api.settings.vkey_file)
    ok = json.loads(run("verify-report", str(path), "--vkey", vkey, "--json").stdout)
    assert ok["ok"] and ok["tree_size"] == doc["checkpoint"]["tree_size"] and ok["digest"] == report_digest(doc)
    assert run("verify-report", str(path), "--vkey", vkey).stdout.startswith("OK: report of *, ")
    # one byte changed: a figure
    data = response.content
    at = data.index(b'"total": 5')
    path.write_bytes(data[:at + 9] + b"6" + data[at + 10:])
    failed = run("verify-report", str(path), "--vkey", vkey, check=1).stdout
    assert failed.startswith("FAILED: the report was altered: its signed digest differ"), failed
    # one byte changed: the JSON no longer parses
    path.write_bytes(data[:-3] + b"X" + data[-2:])
    assert run("verify-report", str(path), "--vkey", vkey, check=1).stdout.startswith("FAILED: not a JSON report")
    # the tree it names, changed with the digest recomputed, no longer matches the signed note
    forged = {**doc, "checkpoint": {**doc["checkpoint"], "tree_size": doc["checkpoint"]["tree_size"] - 1}}
    path.write_text(json.dumps(forged))
    assert run("verify-report", str(path), "--vkey", vkey, check=1).stdout.startswith("FAILED: the report was altered")
    # another ledger's key
    path.write_bytes(data)
    other = Signer.generate(ORIGIN_LINE).vkey()
    assert run("verify-report", str(path), "--vkey", other, check=1).stdout.startswith("FAILED: signature")
    # usage: no such file, no such key
    assert run("verify-report", str(tmp_path / "none.json"), "--vkey", vkey, check=2).stderr.startswith(
        "transfer-ledger: error: cannot read")
    run("verify-report", str(path), "--vkey", str(tmp_path / "none.vkey"), check=2)


def test_csv_has_the_documented_columns_and_the_same_figures(api: Api) -> None:
    scenario(api)
    response = api.get("/v1/audit/report", params={**PERIOD, "format": "csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="report-all-' in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert tuple(rows[0]) == CSV_COLUMNS == ("section", "measure", "key", "value")
    cells = {(s, m, k): v for s, m, k, v in rows[1:]}
    assert cells[("transfers", "total", "")] == "5"
    assert cells[("transfers", "by_party.received", "FR")] == "3"
    assert cells[("transfers", "by_legal_basis.transfers", "art47")] == "1"
    assert cells[("authorizations", "refused", "")] == "1"
    assert cells[("erasures", "subject_data.late", "")] == "1"
    assert cells[("findings", "open_by_rule.findings", "retention-period-expired")] == "1"
    # what identifies and signs it: the same tree and digest as the signature names
    size, digest = cells[("checkpoint", "tree_size", "")], cells[("report", "sha256", "")]
    assert cells[("report", "signature", "")].split("\n")[2:5] == [size, cells[("checkpoint", "root_hash", "")],
                                                                    f"sha256:{digest}"]


def _pdf_text(pdf: bytes) -> str:
    """The page streams of a reportlab PDF, undone of their filters (ASCII85, Flate)."""
    out = []
    for match in re.finditer(rb"<<(.*?)>>\s*stream\r?\n(.*?)endstream", pdf, re.S):
        header, data = match.groups()
        if b"ASCII85Decode" in header:
            data = data.strip().removeprefix(b"<~").removesuffix(b"~>")
            data = base64.a85decode(data, ignorechars=b" \t\r\n")
        if b"FlateDecode" in header:
            data = zlib.decompress(data)
        out.append(data.decode("latin-1"))
    return "\n".join(out)


def test_the_pdf_shows_the_checkpoint_and_the_signature(api: Api) -> None:
    scenario(api)
    response = api.get("/v1/audit/report", params={**PERIOD, "format": "pdf"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    pdf = response.content
    assert pdf.startswith(b"%PDF-")
    text = _pdf_text(pdf)
    size = re.search(r"\(checkpoint tree size\) Tj.*?\((\d+)\) Tj", text, re.S)
    assert size is not None, text[:2000]
    doc = report(api)
    tree = doc["checkpoint"]["tree_size"]
    assert int(size.group(1)) == tree
    # the PDF of a JSON report, made again: the same bytes (invariant), uncompressed it shows the notes
    assert render_pdf(doc) == render_pdf(doc)
    plain = render_pdf(doc, compress=False).decode("latin-1")
    assert f"sha256:{report_digest(doc)}" in plain and doc["checkpoint"]["root_hash"] in plain
    assert f"({tree}) Tj" in plain and REPORT_FORMAT in plain


def test_a_partys_auditor_gets_its_share_only(api: Api) -> None:
    scenario(api)
    nl = report(api, "NL-auditor")
    assert nl["party"] == "NL"
    assert nl["transfers"]["total"] == 1 and [p["party"] for p in nl["transfers"]["by_party"]] == ["DE", "NL"]
    assert nl["authorizations"]["requested"] == 0 and nl["erasures"]["total"] == 0
    assert nl["control"]["checks_opened"] == 0 and nl["findings"]["open"] == 0
    de = report(api, "DE-auditor")
    assert de["party"] == "DE" and de["transfers"]["total"] == 5 and de["control"]["checks_opened"] == 1
    # an auditor of * narrows to a Party: the same figures as that Party's auditor
    narrowed = report(api, "*-auditor", party="NL")
    assert narrowed["party"] == "NL"
    for section in ("transfers", "authorizations", "consents", "erasures", "control"):
        assert narrowed[section] == nl[section], section
    # a Party's auditor cannot ask for another Party's share; its own is fine
    problem(api.get("/v1/audit/report", "NL-auditor", params={"party": "DE"}), 403, "not-your-party")
    assert report(api, "NL-auditor", party="NL")["transfers"] == nl["transfers"]


@pytest.mark.parametrize("who", ["DE-recorder", "FR-authority", "*-verifier", "*-admin"])
def test_only_auditors_read_it(api: Api, who: str) -> None:
    problem(api.get("/v1/audit/report", who), 403, "role-required")


@pytest.mark.parametrize(("params", "rule", "field"), [
    ({"from": "2026-13-01"}, "invalid-date", "from"),
    ({"to": "yesterday"}, "invalid-date", "to"),
    ({"to": ""}, "invalid-date", "to"),
    ({"from": "2026-03-02", "to": "2026-03-01"}, "invalid-period", "from"),
    ({"format": "xml"}, "unknown-format", "format"),
])
def test_bad_input_is_a_422_problem_naming_the_field(api: Api, params: dict[str, str], rule: str,
                                                     field: str) -> None:
    body = problem(api.get("/v1/audit/report", params=params), 422, rule)
    assert body["field"] == field


def test_an_empty_ledger_reports_zeros(api: Api) -> None:
    doc = report(api, **{"from": None, "to": None})
    assert doc["period"]["from"] is None and doc["transfers"]["total"] == 0


def test_the_cli_writes_the_report_in_each_format(api: Api, tmp_path: Path) -> None:
    scenario(api)
    out = tmp_path / "report.json"
    done = run("report", "--from", PERIOD["from"], "--to", PERIOD["to"], "--out", str(out), settings=api.settings)
    assert "written to" in done.stdout and done.stderr == ""
    doc = json.loads(out.read_text("utf-8"))
    assert doc["transfers"]["total"] == 5 and doc["party"] == "*"
    run("verify-report", str(out), "--vkey", str(api.settings.vkey_file))
    nl = tmp_path / "nl.csv"
    run("report", "--party", "NL", "--format", "csv", "--out", str(nl), settings=api.settings)
    assert ["transfers", "total", "", "1"] in list(csv.reader(io.StringIO(nl.read_text("utf-8"))))
    pdf = tmp_path / "report.pdf"
    run("report", "--format", "pdf", "--out", str(pdf), settings=api.settings)
    assert pdf.read_bytes().startswith(b"%PDF-")
    # bad input: one line, exit 2
    for args, says in ((["--from", "2026-02-30"], "from must be a date"),
                       (["--from", "2026-03-02", "--to", "2026-03-01"], "is after to"),
                       (["--format", "xml"], "format must be one of json, csv, pdf"),
                       (["--out", str(out)], "exists")):
        argv = ["report", "--out", str(tmp_path / "x.json"), *args]
        failed = run(*argv, settings=api.settings, check=2)
        lines = failed.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("transfer-ledger: error: ") and says in lines[0], lines
    assert not (tmp_path / "x.json").exists()


def test_the_period_is_inclusive_of_both_days() -> None:
    from ledger.service.report import parse_period

    period = parse_period("2026-03-01", "2026-03-31")
    assert period.holds("2026-03-01T00:00:00.000000Z") and period.holds("2026-03-31T23:59:59.999999Z")
    assert period.holds("2026-03-31") and not period.holds("2026-04-01T00:00:00.000000Z")
    assert not period.holds("2026-02-28T23:59:59.999999Z")
    assert parse_period(None, None).holds("0001-01-01T00:00:00.000000Z")
    assert date(2026, 3, 1) == period.start
