"""Metrics in the Prometheus text format (``GET /metrics``, or ``serve --metrics-port`` on loopback).

The official client library, ``prometheus_client`` (decision 20), with one registry per app.
Requests are counted and timed by ``api.observe``, by method, route template (never
the ids in a path: no personal data, a bounded number of series) and status; problems
by their status and rule. Everything about the ledger is read when scraped, from what the
app already keeps: tree size, checkpoint and cosignature ages, the last verification,
the group committer's counters and batch sizes, projection lag, the consultation log and
the retention job. docs/OPERATIONS.md, "Metrics", lists every series.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from api.deps import CurrentPrincipal, require_role
from ledger.audit.last_verify import last_verification

PREFIX = "transfer_ledger"
#: Latency buckets (seconds): a command waits for its batch's durable commit, a read for its query.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Group-commit batch size buckets (commands per durable commit).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    """The app's registry, its request metrics, and the collector of the ledger's state."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(f"{PREFIX}_http_requests", "HTTP requests answered, by method, route and status",
                                ("method", "route", "status"), registry=self.registry)
        self.latency = Histogram(f"{PREFIX}_http_request_duration_seconds",
                                 "Time to answer, by method and route", ("method", "route"),
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.problems = Counter(f"{PREFIX}_problems", "RFC 9457 problems answered, by status and rule "
                                "(503s included: overloaded, consultation-log-unavailable...)",
                                ("status", "rule"), registry=self.registry)
        self.retention_runs = Counter(f"{PREFIX}_retention_runs", "Runs of the retention job, by outcome",
                                      ("outcome",), registry=self.registry)
        self.retention_items = Counter(f"{PREFIX}_retention_items", "What the retention job did, by kind "
                                       "(erased, held, failed, actor_log_days)", ("kind",), registry=self.registry)
        self.retention_last = 0.0

    def record_retention(self, report: dict[str, Any] | None) -> None:
        """One run of the retention job: its report, or None when it failed."""
        self.retention_last = time.time()
        if report is None:
            self.retention_runs.labels("failed").inc()
            return
        self.retention_runs.labels("ok").inc()
        for kind, key in (("erased", "erased"), ("held", "held"), ("failed", "failed"),
                          ("actor_log_days", "actor_logs")):
            self.retention_items.labels(kind).inc(len(report.get(key) or ()))

    def watch(self, app: Any, data_dir: Path) -> None:
        """Collect the ledger's state from ``app.state`` at each scrape."""
        self.registry.register(_LedgerCollector(app, data_dir, self))


def _seconds_since(moment: str | None) -> float | None:
    if not moment:
        return None
    return max(0.0, time.time() - datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp())


class _LedgerCollector(Collector):
    """The ledger's state, read when scraped (nothing is kept between scrapes)."""

    def __init__(self, app: Any, data_dir: Path, metrics: Metrics) -> None:
        self.app, self.data_dir, self.metrics = app, data_dir, metrics

    def describe(self) -> list[Any]:
        return []  # read at scrape time only: nothing to check at registration

    def collect(self) -> Iterator[Any]:
        state = self.app.state
        ledger = getattr(state, "ledger", None)
        if ledger is None:  # not started
            return
        size = ledger.store.head().size
        yield GaugeMetricFamily(f"{PREFIX}_tree_size", "Leaves in the ledger's tree", value=size)
        stored = ledger.store.checkpoints()
        if stored:
            last = stored[-1]
            yield GaugeMetricFamily(f"{PREFIX}_checkpoint_tree_size", "Tree size of the newest stored checkpoint",
                                    value=last.tree_size)
            age = _seconds_since(last.created_at)
            if age is not None:
                yield GaugeMetricFamily(f"{PREFIX}_checkpoint_age_seconds",
                                        "Seconds since the newest stored checkpoint was signed", value=age)
        cosigned = GaugeMetricFamily(f"{PREFIX}_cosignature_age_seconds",
                                     "Seconds since each witness's newest cosignature", labels=("witness",))
        for witness, newest in state.cosignatures.newest_by_witness().items():
            cosigned.add_metric((witness,), max(0.0, time.time() - newest))
        yield cosigned
        yield from self._verification()
        yield from self._group_commit(ledger)
        runner = getattr(state, "projections", None)
        if runner is not None:
            lag = GaugeMetricFamily(f"{PREFIX}_projection_lag_leaves",
                                    "Leaves each read model has not applied yet", labels=("model",))
            for model in runner.status()["models"]:
                lag.add_metric((model["name"],), model["behind"])
            yield lag
        log = ledger.consultations
        yield GaugeMetricFamily(f"{PREFIX}_consultation_log_buffered",
                                "Reads answered and not yet written to the consultation log", value=log.buffered)
        yield CounterMetricFamily(f"{PREFIX}_consultation_log_written", "Consultation log entries written",
                                  value=log.written)
        yield CounterMetricFamily(f"{PREFIX}_consultation_log_failed_flushes",
                                  "Writes of the consultation log that failed (retried)", value=log.failed_flushes)
        if self.metrics.retention_last:
            yield GaugeMetricFamily(f"{PREFIX}_retention_last_run_timestamp_seconds",
                                    "When the retention job last ran (POSIX time)", value=self.metrics.retention_last)

    def _verification(self) -> Iterator[Any]:
        last = last_verification(self.data_dir)
        if last is None:
            return
        yield GaugeMetricFamily(f"{PREFIX}_last_verify_ok", "1 if the last complete verification found the "
                                "ledger intact, 0 if it found a problem", value=1 if last.get("ok") else 0)
        yield GaugeMetricFamily(f"{PREFIX}_last_verify_duration_seconds", "How long the last verification took",
                                value=float(last.get("seconds") or 0))
        yield GaugeMetricFamily(f"{PREFIX}_last_verify_tree_size", "Leaves the last verification covered",
                                value=int(last.get("tree_size") or 0))
        at = _seconds_since(last.get("at"))
        if at is not None:
            yield GaugeMetricFamily(f"{PREFIX}_last_verify_age_seconds", "Seconds since the last verification",
                                    value=at)

    def _group_commit(self, ledger: Any) -> Iterator[Any]:
        committer = ledger.committer
        if committer is None:
            return
        stats = committer.stats
        yield GaugeMetricFamily(f"{PREFIX}_group_commit_queue_depth", "Commands waiting for a batch",
                                value=committer.waiting)
        for name, value, text in (("batches", stats.batches, "Batches written (one durable commit each)"),
                                  ("commands", stats.commands, "Commands written in batches"),
                                  ("refused_overloaded", stats.refused_overloaded,
                                   "Commands refused 503 because the queue was full"),
                                  ("batches_rerun", stats.batches_rerun,
                                   "Batches whose commands had to run one by one")):
            yield CounterMetricFamily(f"{PREFIX}_group_commit_{name}", text, value=value)
        sizes = dict(stats.sizes)
        buckets, running = [], 0
        for bound in BATCH_BUCKETS:
            running = sum(n for size, n in sizes.items() if size <= bound)
            buckets.append((str(bound), running))
        total = sum(sizes.values())
        buckets.append(("+Inf", total))
        yield HistogramMetricFamily(f"{PREFIX}_group_commit_batch_size", "Commands per durable commit",
                                    buckets=buckets, sum_value=sum(size * n for size, n in sizes.items()))


# -- the route ---------------------------------------------------------------------------

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response, summary="Metrics in the Prometheus text format",
            responses={200: {"description": "The metrics (docs/OPERATIONS.md, \"Metrics\")",
                             "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}},
                       403: {"description": "The key lacks the role verifier or admin (`role-required`)"}})
def metrics(request: Request, principal: CurrentPrincipal) -> Response:
    require_role(principal, "verifier", "admin")
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
