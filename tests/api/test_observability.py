"""Metrics (Prometheus text format, parsed by the client library's own parser), request ids in
headers, problems and log lines, and JSON logs with no personal data, from a real server."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import Metrics
from tests.support import builders
from tests.support.api import Api, problem, run_init
from tests.support.server import Server, add_keys, cli, free_port


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) -> value, as Prometheus reads it."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(scrape: dict[Any, float], name: str, **labels: str) -> float | None:
    return scrape.get((name, tuple(sorted(labels.items()))))


def test_metrics_count_requests_by_route_template_and_problems_by_rule(api: Api) -> None:
    sent = [api.transfer("DE", "FR") for _ in range(3)]
    for t in sent:
        assert api.get(f"/v1/transfers/{t['id']}", "DE-recorder").status_code == 200
    problem(api.get("/v1/transfers/00000000-0000-4000-8000-000000000000", "DE-recorder"), 404, "transfer-not-found")
    response = api.get("/metrics", "*-verifier")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    scrape = samples(response.text)
    assert value(scrape, "transfer_ledger_http_requests_total", method="POST", route="/v1/transfers",
                 status="201") == 3
    assert value(scrape, "transfer_ledger_http_requests_total", method="GET", route="/v1/transfers/{transfer_id}",
                 status="200") == 3
    assert value(scrape, "transfer_ledger_problems_total", status="404", rule="transfer-not-found") == 1
    assert value(scrape, "transfer_ledger_http_request_duration_seconds_count", method="POST",
                 route="/v1/transfers") == 3
    assert not any(t["id"] in response.text for t in sent)  # templates, never ids
    assert value(scrape, "transfer_ledger_tree_size") == api.tree_size()
    assert value(scrape, "transfer_ledger_group_commit_commands_total") == 3
    assert value(scrape, "transfer_ledger_group_commit_batch_size_count") == \
        value(scrape, "transfer_ledger_group_commit_batches_total")
    assert value(scrape, "transfer_ledger_projection_lag_leaves", model="lineage") is not None


def test_metrics_need_a_verifier_or_admin_key(api: Api) -> None:
    problem(api.get("/metrics", "DE-recorder"), 403, "role-required")
    problem(api.get("/metrics", "*-auditor"), 403, "role-required")
    problem(api.get("/metrics", None), 401, "authentication-required")
    assert api.get("/metrics", "*-admin").status_code == 200


def test_checkpoint_cosignature_and_verification_ages(api: Api) -> None:
    api.transfer("DE", "FR")
    assert api.get("/v1/checkpoint", "*-verifier").status_code == 200  # signs one
    cli("verify", settings=api.settings)
    scrape = samples(api.get("/metrics", "*-verifier").text)
    assert value(scrape, "transfer_ledger_checkpoint_tree_size") == api.tree_size()
    assert 0 <= (value(scrape, "transfer_ledger_checkpoint_age_seconds") or -1) < 60
    assert value(scrape, "transfer_ledger_last_verify_ok") == 1
    assert value(scrape, "transfer_ledger_last_verify_tree_size") == api.tree_size()
    assert (value(scrape, "transfer_ledger_last_verify_duration_seconds") or -1) >= 0


def test_the_retention_jobs_results_are_counted() -> None:
    metrics = Metrics()
    metrics.record_retention({"erased": ["a", "b"], "held": ["c"], "failed": [], "actor_logs": ["d"]})
    metrics.record_retention(None)
    from prometheus_client import generate_latest

    scrape = samples(generate_latest(metrics.registry).decode())
    assert value(scrape, "transfer_ledger_retention_runs_total", outcome="ok") == 1
    assert value(scrape, "transfer_ledger_retention_runs_total", outcome="failed") == 1
    assert value(scrape, "transfer_ledger_retention_items_total", kind="erased") == 2
    assert value(scrape, "transfer_ledger_retention_items_total", kind="held") == 1


def test_every_answer_has_a_request_id_and_problems_carry_it(api: Api) -> None:
    ok = api.get("/healthz", None)
    assert len(ok.headers["x-request-id"]) == 16
    given = api.client.get("/v1/transfers/not-a-uuid", headers={**api.headers("DE-recorder"),  # type: ignore[union-attr]
                                                                "X-Request-Id": "job-42.retry_1"})
    body = problem(given, 404, "transfer-not-found")
    assert given.headers["x-request-id"] == "job-42.retry_1" == body["request_id"]
    odd = api.client.get("/healthz", headers={"X-Request-Id": "bad id with spaces"})  # type: ignore[union-attr]
    assert odd.headers["x-request-id"] != "bad id with spaces"


def test_a_served_ledger_logs_json_lines_without_personal_data_and_serves_metrics_on_loopback(
        settings: Any, tmp_path: Path) -> None:
    run_init(settings)
    keys = add_keys(settings)
    metrics_port = free_port()
    server = Server(settings, tmp_path / "server.log",
                    extra_args=("--log-format", "json", "--metrics-port", str(metrics_port)))
    subject = "Jean-Baptiste Exemplaire, born 1970-01-01"
    try:
        server.start()
        with httpx.Client(base_url=server.url, timeout=10.0) as client:
            body = builders.transfer("DE", "FR", subjects=[subject])
            created = client.post("/v1/transfers", json=body, headers={
                "Authorization": f"Bearer {keys['DE-recorder']}", "X-Request-Id": "rec-1"})
            assert created.status_code == 201, created.text
            read = client.get(f"/v1/transfers/{created.json()['id']}?justification=" + subject.replace(" ", "+"),
                              headers={"Authorization": f"Bearer {keys['FR-recorder']}"})
            assert read.status_code == 200
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)  # no key on loopback
        assert scraped.status_code == 200
        assert value(samples(scraped.text), "transfer_ledger_http_requests_total", method="POST",
                     route="/v1/transfers", status="201") == 1
        time.sleep(0.3)
    finally:
        server.stop()
    lines = [line for line in server.output().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert records and all({"time", "level", "logger", "message", "request_id"} <= set(r) for r in records)
    access = [r for r in records if r["logger"] == "transfer_ledger.access"]
    assert {"method": "POST", "route": "/v1/transfers", "status": 201, "request_id": "rec-1"}.items() <= \
        next(r for r in access if r["method"] == "POST").items()
    assert any(r["route"] == "/v1/transfers/{transfer_id}" for r in access)
    log = server.output()
    assert subject not in log and "Exemplaire" not in log  # neither the body nor the query string
    assert created.json()["id"] not in log


def test_a_metrics_port_with_several_workers_is_refused(settings: Any) -> None:
    run_init(settings)
    done = cli("serve", "--metrics-port", str(free_port()), "--workers", "2", settings=settings, check=2)
    assert "--metrics-port serves one process's metrics" in done.stderr
    bad = cli("serve", "--log-format", "xml", settings=settings, check=2)
    assert "xml" in bad.stderr
