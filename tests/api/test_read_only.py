"""``serve --read-only``: auditors on a replica (docs/OPERATIONS.md, "Auditors on a replica").

A real PostgreSQL streaming replica: a primary (``wal_level=replica``) and a hot standby made
by ``pg_basebackup -R``. The ledger is initialized and written on the primary by a normal
``serve``; ``serve --read-only`` on the standby, with a copy of the data dir, answers every
read with the primary's data, refuses every command with 503 ``read-only``, serves the newest
stored checkpoint instead of signing one, and refuses reads of personal data unless it is given
a local consultation log file. ``transfer-ledger verify`` works against the standby.

Skipped when the PostgreSQL server binaries are not installed. Then the same on SQLite, opened
read-only (``mode=ro``).
"""

from __future__ import annotations

import base64
import json
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.config import Settings
from ledger.tlog.merkle import verify_consistency, verify_inclusion
from ledger.tlog.note import open_checkpoint
from tests.support import builders
from tests.support.api import ORIGIN_LINE, Initialized, run_init
from tests.support.replica import Replica, postgres_bindir, streaming_replica
from tests.support.server import Server, add_keys, cli

BINDIR = postgres_bindir()


def expect(response: httpx.Response, status: int, rule: str | None = None) -> Any:
    assert response.status_code == status, (response.request.method, response.request.url, response.text)
    if rule is not None:
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        assert body["type"] == f"/problems/{rule}" and body["rule"] == rule and body["detail"], body
        return body
    return response.json() if response.headers.get("content-type", "").startswith("application/") else response.text


def client(server: Server, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=15.0, headers={"Authorization": f"Bearer {key}"})


@dataclass
class Written:
    """What the primary holds: the transfers recorded, the size of the tree, its stored checkpoint."""

    init: Initialized
    keys: dict[str, str]
    transfers: list[str]
    tree_size: int
    checkpoint: str


def write_on_primary(settings: Settings, log: Path) -> Written:
    """Record transfers through a normal ``serve``; sign a checkpoint; build the read models."""
    init = run_init(settings)
    keys = add_keys(settings)
    server = Server(settings, log).start()
    try:
        with client(server, keys["DE-recorder"]) as de, client(server, keys["*-auditor"]) as auditor:
            ids = [expect(de.post("/v1/transfers", json=builders.transfer("DE", country)), 201)["id"]
                   for country in ("FR", "NL", "BR")]
            expect(auditor.get(f"/v1/transfers/{ids[0]}"), 200)  # a read: the consultation log grows
            expect(auditor.get("/v1/audit/statistics"), 200)  # the read models, built on the primary
            # The last leaf is the consultation log's: wait for it, then sign the checkpoint of all.
            deadline = time.monotonic() + 10
            while expect(httpx.get(f"{server.url}/healthz", timeout=10), 200)["consultation_log"]["written"] < 1:
                assert time.monotonic() < deadline, "the consultation log was not written"
                time.sleep(0.05)
            expect(auditor.get("/v1/audit/statistics"), 200)
            checkpoint = expect(auditor.get("/v1/checkpoint"), 200)
            size = open_checkpoint(checkpoint, init.verifier, ORIGIN_LINE).size
            assert expect(auditor.get("/v1/audit/projections"), 200)["up_to_date"]
    finally:
        server.stop()
        server.kill()
    return Written(init, keys, ids, size, checkpoint)


def read_only_copy(settings: Settings, data_dir: Path, database_url: str | None) -> Settings:
    """The replica's data dir: a copy of the primary's (its keys and settings)."""
    shutil.copytree(settings.data_dir, data_dir)
    return Settings(data_dir, database_url)


def assert_reads_work(server: Server, written: Written) -> None:
    """Every read that needs no consultation log answers with the primary's data."""
    health = expect(httpx.get(f"{server.url}/healthz", timeout=10), 200)
    assert health["read_only"] is True and health["tree_size"] == written.tree_size
    assert health["group_commit"] is None
    with client(server, written.keys["*-auditor"]) as auditor:
        # The checkpoint: the newest stored, not signed here; and the one of a stored size.
        note = expect(auditor.get("/v1/checkpoint"), 200)
        assert note == written.checkpoint
        checkpoint = open_checkpoint(note, written.init.verifier, ORIGIN_LINE)
        assert expect(auditor.get("/v1/checkpoint", params={"tree_size": checkpoint.size}), 200) == note
        # Proofs verify against it.
        for index in range(checkpoint.size):
            proof = expect(auditor.get("/v1/proofs/inclusion",
                                       params={"index": index, "tree_size": checkpoint.size}), 200)
            verify_inclusion(base64.b64decode(proof["leaf_hash"]), index, checkpoint.size,
                             [base64.b64decode(p) for p in proof["proof"]], checkpoint.root_hash)
        consistency = expect(auditor.get("/v1/proofs/consistency",
                                         params={"first": 1, "second": checkpoint.size}), 200)
        first = open_checkpoint(expect(auditor.get("/v1/checkpoint", params={"tree_size": checkpoint.size}), 200),
                                written.init.verifier, ORIGIN_LINE)
        leaf0 = base64.b64decode(expect(auditor.get("/v1/proofs/inclusion",
                                                    params={"index": 0, "tree_size": 1}), 200)["leaf_hash"])
        verify_consistency(1, checkpoint.size, [base64.b64decode(p) for p in consistency["proof"]], leaf0,
                           first.root_hash)
        # The read models as the primary built them (replicated).
        statistics = expect(auditor.get("/v1/audit/statistics"), 200)
        assert statistics["position"] == written.tree_size - 1 and statistics["tree_size"] == written.tree_size
        assert expect(auditor.get("/v1/audit/projections"), 200)["up_to_date"]
        # Reads of personal data need a consultation log entry: refused, and not as if it may pass.
        refused = auditor.get(f"/v1/transfers/{written.transfers[0]}")
        expect(refused, 503, "consultation-log-unavailable")
        assert "Retry-After" not in refused.headers
        expect(auditor.get("/v1/transfers"), 503, "consultation-log-unavailable")
        expect(auditor.get("/v1/events"), 503, "consultation-log-unavailable")  # the leaves hold personal data


def assert_every_command_refused(server: Server, written: Written) -> None:
    """Every route that records something (every method but GET) answers 503 read-only."""
    schema = expect(httpx.get(f"{server.url}/openapi.json", timeout=10), 200)
    commands = [(method.upper(), path) for path, operations in schema["paths"].items()
                for method in operations if method.upper() not in ("GET", "HEAD", "OPTIONS")]
    assert ("POST", "/v1/transfers") in commands and ("DELETE", "/v1/transfers/{transfer_id}/restriction") in commands
    with client(server, written.keys["DE-recorder"]) as de:
        for method, path in commands:
            target = path
            for name in [part[1:-1] for part in path.split("/") if part.startswith("{")]:
                target = target.replace(f"{{{name}}}", str(uuid.uuid4()))
            expect(de.request(method, target, json=builders.transfer("DE", "FR")), 503, "read-only")
            operation = schema["paths"][path][method.lower()]
            assert "read-only" in operation["responses"]["503"]["description"], (method, path)
        # Before anything is checked: even without a key.
        expect(httpx.post(f"{server.url}/v1/transfers", json={}, timeout=10), 503, "read-only")


def assert_nothing_written(server: Server, written: Written) -> None:
    health = expect(httpx.get(f"{server.url}/healthz", timeout=10), 200)
    assert health["tree_size"] == written.tree_size
    assert health["consultation_log"]["written"] == 0 and health["consultation_log"]["buffered"] == 0


def assert_local_consultation_log(settings: Settings, written: Written, log: Path, tmp_path: Path) -> None:
    """Opted in: reads of personal data are answered, and logged to the local file first."""
    reads = tmp_path / "replica-reads.jsonl"
    server = Server(settings, log, extra_args=("--read-only", "--consultation-log-file", str(reads))).start()
    try:
        with client(server, written.keys["*-auditor"]) as auditor:
            view = expect(auditor.get(f"/v1/transfers/{written.transfers[1]}",
                                      headers={"X-Justification": "audit 2026-17"}), 200)
            assert view["id"] == written.transfers[1]
            lineage = expect(auditor.get(f"/v1/transfers/{written.transfers[1]}/lineage"), 200)
            assert lineage["transfer"]["id"] == written.transfers[1]
            feed = expect(auditor.get("/v1/events", params={"limit": 1000}), 200)
            assert [e["leaf_index"] for e in feed["items"]] == list(range(written.tree_size))
        entries = [json.loads(line) for line in reads.read_text("utf-8").splitlines()]
        assert [e["route"] for e in entries] == ["GET /v1/transfers/{transfer_id}",
                                                 "GET /v1/transfers/{transfer_id}/lineage", "GET /v1/events"]
        assert entries[0]["objects"] == [f"transfer:{written.transfers[1]}"]
        assert entries[0]["justification"] == "audit 2026-17" and entries[0]["party"] == "*"
        assert expect(httpx.get(f"{server.url}/healthz", timeout=10), 200)["tree_size"] == written.tree_size
    finally:
        server.stop()
        server.kill()


@pytest.fixture
def replica() -> Iterator[Replica]:
    if BINDIR is None:
        pytest.skip("PostgreSQL server binaries (initdb) are not installed")
    with streaming_replica(BINDIR) as made:
        yield made


def test_auditors_on_a_postgresql_replica(replica: Replica, tmp_path: Path) -> None:
    primary = Settings(tmp_path / "primary", replica.primary.url())
    primary.data_dir.mkdir()
    written = write_on_primary(primary, tmp_path / "primary.log")
    replica.wait_caught_up()
    settings = read_only_copy(primary, tmp_path / "replica", replica.standby.url())
    server = Server(settings, tmp_path / "replica.log", extra_args=("--read-only",)).start()
    try:
        assert_reads_work(server, written)
        assert_every_command_refused(server, written)
        assert_nothing_written(server, written)
    finally:
        status = server.stop()
        server.kill()
    server.assert_stopped_cleanly(status)
    # The standby was never written (it cannot be): the primary's size is the standby's.
    replica.wait_caught_up()
    count = "SELECT size FROM ledger_head"
    assert replica.standby.sql(count, db="ledger_test") == replica.primary.sql(count, db="ledger_test") \
        == str(written.tree_size)
    # A plain `serve` on the standby finds it read-only and acts as --read-only.
    server = Server(settings, tmp_path / "replica-plain.log").start()
    try:
        assert expect(httpx.get(f"{server.url}/healthz", timeout=10), 200)["read_only"] is True
        with client(server, written.keys["DE-recorder"]) as de:
            expect(de.post("/v1/transfers", json=builders.transfer("DE", "FR")), 503, "read-only")
    finally:
        server.stop()
        server.kill()
    # verify reads the standby (a read-only database creates no schema).
    done = cli("verify", settings=settings)
    assert done.stdout.startswith(f"OK: {written.tree_size} leaves"), done.stdout
    assert_local_consultation_log(settings, written, tmp_path / "replica-2.log", tmp_path)


def test_a_read_only_sqlite_ledger(tmp_path: Path) -> None:
    primary = Settings(tmp_path / "primary")
    primary.data_dir.mkdir()
    written = write_on_primary(primary, tmp_path / "primary.log")
    settings = read_only_copy(primary, tmp_path / "replica", None)
    before = settings.database_file.read_bytes()
    server = Server(settings, tmp_path / "replica.log", extra_args=("--read-only",)).start()
    try:
        assert_reads_work(server, written)
        assert_every_command_refused(server, written)
        assert_nothing_written(server, written)
    finally:
        status = server.stop()
        server.kill()
    server.assert_stopped_cleanly(status)
    assert settings.database_file.read_bytes() == before
    assert_local_consultation_log(settings, written, tmp_path / "replica-2.log", tmp_path)
    assert settings.database_file.read_bytes() == before
