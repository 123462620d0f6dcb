"""Group commit over HTTP: a full queue answers 503 with Retry-After, and loses nothing."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import GC_YOUNGEST_THRESHOLD, create_app, create_app_from_env
from ledger.config import ConfigError, Settings
from tests.support import builders
from tests.support.api import Api, problem, run_init, serving
from tests.support.group_commit import Call, committer_held, queued


@pytest.fixture
def small_queue(settings: Settings) -> Iterator[Api]:
    api = Api(run_init(Settings(settings.data_dir, settings.database_url, commit_queue=1))).start()
    try:
        api.add_principals()
        yield api
    finally:
        api.stop()


def test_a_full_queue_answers_503_with_retry_after_and_the_retry_is_recorded(small_queue: Api) -> None:
    api = small_queue
    ledger = api.app.state.ledger
    with committer_held(ledger):
        waiting = Call(lambda: api.post("/v1/transfers", builders.transfer("DE", "FR")))
        queued(ledger, 1)
        busy = api.post("/v1/transfers", builders.transfer("DE", "NL"), idem="retry-me")
        body = problem(busy, 503, "overloaded")
        assert busy.headers["retry-after"] == "1"
        assert "waiting to be written" in body["detail"]
    assert waiting.outcome().status_code == 201
    assert api.tree_size() == 1  # the refused request recorded nothing
    # the key was not used up by the 503: the retry records the transfer once
    retried = api.post("/v1/transfers", builders.transfer("DE", "NL"), idem="retry-me")
    again = api.post("/v1/transfers", builders.transfer("DE", "NL"), idem="retry-me")
    assert retried.status_code == 201 and again.json() == retried.json()
    assert api.tree_size() == 2
    health = api.ok(api.get("/healthz", None), 200)["group_commit"]
    assert health["refused_overloaded"] == 1


def test_concurrent_requests_share_batches(api: Api) -> None:
    ledger = api.app.state.ledger
    with committer_held(ledger):
        calls = []
        for i in range(6):
            calls.append(Call(lambda i=i: api.post(
                "/v1/transfers", builders.transfer("DE", "FR", request_reference=f"R-{i}"))))
            queued(ledger, i + 1)
    answers = [call.outcome() for call in calls]
    assert [a.status_code for a in answers] == [201] * 6
    assert sorted(a.json()["leaf_index"] for a in answers) == list(range(6))
    assert api.ok(api.get("/healthz", None), 200)["group_commit"]["largest_batch"] == 6


def test_commit_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSFER_LEDGER_COMMIT_BATCH", "8")
    monkeypatch.setenv("TRANSFER_LEDGER_COMMIT_QUEUE", "32")
    settings = Settings.from_env("somewhere")
    assert (settings.commit_batch, settings.commit_queue) == (8, 32)
    monkeypatch.setenv("TRANSFER_LEDGER_COMMIT_QUEUE", "0")
    with pytest.raises(ConfigError, match="TRANSFER_LEDGER_COMMIT_QUEUE must be a whole number"):
        Settings.from_env("somewhere")


@pytest.fixture
def gc_restored() -> Iterator[None]:
    """Put the process's garbage collector back as it was (the suite's own settings)."""
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_the_served_app_freezes_start_up_objects_and_collects_young_objects_less_often(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, gc_restored: None
) -> None:
    """What `serve` and `uvicorn --factory` run: the GC is set up for serving once started."""
    run_init(settings)
    monkeypatch.setenv("TRANSFER_LEDGER_DATA_DIR", str(settings.data_dir))
    if settings.database_url:
        monkeypatch.setenv("TRANSFER_LEDGER_DATABASE_URL", settings.database_url)
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    app = create_app_from_env()
    assert gc.get_freeze_count() == 0  # nothing happens before the server starts
    with TestClient(app) as client:
        assert gc.get_threshold() == (GC_YOUNGEST_THRESHOLD, 10, 10)
        assert gc.get_freeze_count() > 10_000  # modules, routes and models: out of every collection
        assert client.get("/healthz").status_code == 200


def test_the_served_app_loads_the_stored_nodes_for_proofs_in_the_background(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, gc_restored: None
) -> None:
    with serving(settings) as api:
        for _ in range(40):
            api.transfer("DE", "FR")
        size = api.ok(api.get("/healthz", None), 200)["tree_size"]
    monkeypatch.setenv("TRANSFER_LEDGER_DATA_DIR", str(settings.data_dir))
    if settings.database_url:
        monkeypatch.setenv("TRANSFER_LEDGER_DATABASE_URL", settings.database_url)
    with TestClient(create_app_from_env()) as client:
        proofs = client.app.state.proofs  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while proofs.size < size and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proofs.size == size  # loaded without any proof being asked for


def test_an_app_made_in_process_leaves_the_gc_alone(settings: Settings, gc_restored: None) -> None:
    run_init(settings)
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_threshold() == (700, 10, 10)
        assert gc.get_freeze_count() == 0
