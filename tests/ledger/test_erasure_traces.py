"""No trace of an erased value in what a running ledger keeps in memory or writes to its logs
(docs/decisions/0012-personal-data-erasure.md, "What an attacker can still read after an erasure").

Memory: after an erasure through a running application (and through the HTTP API's app, with its
read models, its idempotency answers and its group committer), every Python object reachable from
the garbage collector's roots and from the stacks of every thread is walked, and no ``str``,
``bytes`` or ``bytearray`` among them may hold the erased values or the destroyed data key. The
test keeps the values only in objects it names (the needles), and drops every answer that quoted
them before it looks. What this cannot see: memory held outside Python objects (the SQLite and
OpenSSL libraries' own buffers, freed memory not yet reused).

Logs: everything logged at DEBUG by every logger while transfers are recorded, read and erased in
process, and the whole output of ``transfer-ledger serve`` through the same, hold no personal value
of a format 2 ledger at all, erased or not.
"""

from __future__ import annotations

import gc
import json
import logging
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.config import Settings
from ledger.service.application import TransferLedger
from ledger.service.sealing import subject_scope
from tests.support import builders
from tests.support.api import Api, run_init, serving
from tests.support.server import Server, add_keys


class Needles:
    """Unique personal values, made at random for one test, and the only objects meant to hold them.

    Each value is ASCII, so it reads the same in a ``str``, in UTF-8 and in JSON."""

    def __init__(self) -> None:
        tag = secrets.token_hex(6)
        self.values: dict[str, str] = {
            "subject": f"Zinaida Qx{tag} Korovyeva",
            "justification": f"account Qj{tag} used for the ransom",
            "purpose": f"extortion of clinic Qp{tag}",
            "request_justification": f"cross-match Qr{tag} against the notices",
            # the log of who acted: kept after the subject data are erased, never logged
            "officer": f"Insp. Qo{tag} Lindqvist",
            "ordered_by": f"Prosecutor Qb{tag} Vogel",
            "erasure_reasons": f"proceeding Qe{tag} closed",
        }
        self.key: bytes | None = None

    def __getitem__(self, name: str) -> str:
        # a fresh copy each time, so the ledger never holds the very object the needle is
        return "".join(list(self.values[name]))

    @property
    def erased(self) -> dict[str, str]:
        return {k: self.values[k] for k in ("subject", "justification", "purpose", "request_justification")}

    def transfer(self, **overrides: Any) -> dict[str, Any]:
        return builders.transfer(
            "DE", "FR", **{"subjects": [self["subject"]], "justification": self["justification"],
                           "purpose": {"proceeding": "FR-PNC-2026-0417", "description": self["purpose"]},
                           "sender": builders.actor("DE", self["officer"]), "ordered_by": self["ordered_by"],
                           "retention_until": "2031-03-31", **overrides})

    def request(self, parent: dict[str, Any]) -> dict[str, Any]:
        return builders.request("FR", "INTERPOL", parent, justification=self["request_justification"],
                                requested_by=builders.actor("FR", self["officer"]),
                                purpose={"proceeding": "FR-PNC-2026-0417", "description": self["purpose"]})

    def erasure(self) -> dict[str, Any]:
        return {"erased_by": builders.actor("FR"), "ground": "purpose-achieved",
                "reasons": self["erasure_reasons"]}


def _readable(obj: object, texts: dict[str, str], raw: dict[str, bytes]) -> list[str]:
    if isinstance(obj, str):
        return [name for name, text in texts.items() if text in obj]
    if isinstance(obj, bytes | bytearray):
        return [name for name, data in raw.items() if data in obj]
    return []


def holders(needles: Needles, names: dict[str, str], key: bytes | None) -> dict[str, list[str]]:
    """Which of ``names`` (and the data key, as ``"data key"``) some object reachable in this
    process holds, each with where it was found (the holder's type, and its containers')."""
    # The stacks, whose running frames the collector does not show: every thread's frames and
    # their locals (this thread's from the caller up; this scan's own frame holds the needles).
    # Each frame's locals are read first, so that a snapshot taken by an earlier scan no longer
    # keeps alive what the frame has let go of since.
    here = threading.get_ident()
    frames: list[Any] = []
    for top in [*(f for ident, f in sys._current_frames().items() if ident != here), sys._getframe(1)]:
        frame: Any = top
        while frame is not None:
            frames.append(frame)
            frame.f_locals  # noqa: B018 - refreshes the frame's snapshot of its locals
            frame = frame.f_back
    del top, frame
    gc.collect()
    texts = {name: "".join(list(value)) for name, value in names.items()}
    raw = {name: text.encode("ascii") for name, text in texts.items()}
    if key is not None:
        raw["data key"] = bytes(bytearray(key))
    mine: list[object] = [needles, needles.values, needles.key, names, texts, raw, *names.values(),
                          *texts.values(), *raw.values(), sys._getframe(), frames]
    skip = {id(o) for o in mine}
    skip.add(id(mine))
    found: dict[str, list[str]] = {}
    skip.add(id(found))
    roots: list[object] = gc.get_objects()
    skip.add(id(roots))
    roots.extend(frames)
    roots.extend(frame.f_locals for frame in frames)
    seen: set[int] = set(skip)
    parents: dict[int, object] = {}
    seen.add(id(parents))
    stack: list[tuple[object, object]] = [(o, None) for o in roots if id(o) not in seen]
    skip.add(id(stack))
    seen.add(id(stack))
    seen.add(id(seen))
    while stack:
        obj, parent = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        parents[id(obj)] = parent
        hit = _readable(obj, texts, raw)
        for name in hit:
            where = _path(parent, parents) if parent is not None else "referred to by " + ", ".join(
                f"{type(r).__name__} {_describe(r)}" for r in gc.get_referrers(obj) if id(r) not in skip)
            found.setdefault(name, []).append(f"{type(obj).__name__} {_describe(obj)} in {where}")
        if hit or isinstance(obj, str | bytes | bytearray | int | float):
            continue
        for referent in gc.get_referents(obj):
            if id(referent) not in seen:
                stack.append((referent, obj))
    return found


def _path(parent: object, parents: dict[int, object], depth: int = 6) -> str:
    """Where a holder sits: its containers, innermost first, described without their contents."""
    out = []
    while parent is not None and depth:
        out.append(f"{type(parent).__name__} {_describe(parent)}")
        parent = parents.get(id(parent))
        depth -= 1
    return " < ".join(out)


def _describe(parent: object) -> str:
    """What a holder's container is, without quoting its contents."""
    if isinstance(parent, dict):
        return "with keys " + ", ".join(sorted(str(k) for k in parent if isinstance(k, str))[:12])
    code = getattr(parent, "f_code", None)
    if code is not None:
        return f"({code.co_qualname})"
    module = getattr(type(parent), "__module__", "")
    return f"({module})"


def data_key_of(ledger: TransferLedger, transfer_id: str) -> bytes:
    """The transfer's subject-data key, unwrapped as the ledger does, before it is destroyed."""
    assert ledger.sealer is not None
    row = ledger.personal.live_key(subject_scope(transfer_id))
    assert row is not None
    key = ledger.sealer.unwrap(row)
    assert key is not None and len(key) == 32
    return key


# -- memory ------------------------------------------------------------------------------------


def test_no_erased_value_stays_in_the_memory_of_the_application(ledger: TransferLedger) -> None:
    needles = Needles()
    recorded = ledger.record_transfer(needles.transfer())
    transfer_id = recorded["id"]
    ledger.request_authorization(needles.request(recorded))
    # every way of reading it, so every cache a read fills is filled
    assert ledger.get_transfer(transfer_id)["subjects"] == [needles.values["subject"]]
    ledger.list_transfers(visible=lambda _view: True)
    ledger.list_authorizations(visible=lambda _view: True)
    needles.key = data_key_of(ledger, transfer_id)
    # the scan sees a value wherever a live object holds it: here, an answer the test still holds
    kept = ledger.get_transfer(transfer_id)
    key_copy = bytes(bytearray(needles.key))
    seen = holders(needles, needles.erased, needles.key)
    assert {"subject", "justification", "purpose", "data key"} <= set(seen), seen
    del kept, key_copy, seen, recorded

    erased = ledger.erase_personal_data(transfer_id, needles.erasure())
    assert "erased" in erased["subjects"]
    assert ledger.get_transfer(transfer_id)["justification"]["erased"]["retention_class"] == "subject-data"
    ledger.list_transfers(visible=lambda _view: True)
    ledger.list_authorizations(visible=lambda _view: True)
    del erased

    assert holders(needles, needles.erased, needles.key) == {}


def test_no_erased_value_stays_in_the_memory_of_the_http_api(settings: Settings) -> None:
    needles = Needles()
    with serving(settings) as api:
        app_ledger: TransferLedger = api.app.state.ledger
        assert app_ledger.committer is not None  # the API writes through the group committer
        made = api.ok(api.post("/v1/transfers", needles.transfer(), "DE-recorder", idem="t-1"), 201)
        transfer_id = made["id"]
        api.ok(api.post("/v1/authorization-requests", needles.request(made), "FR-recorder", idem="r-1"), 201)
        # a retry answered from the stored answer; reads through every read model and the feed
        api.ok(api.post("/v1/transfers", needles.transfer(), "DE-recorder", idem="t-1"), 201)
        _read_everything(api, transfer_id)
        needles.key = data_key_of(app_ledger, transfer_id)
        del made, app_ledger

        api.ok(api.post(f"/v1/transfers/{transfer_id}/erasure", needles.erasure(), "FR-authority"), 200)
        _read_everything(api, transfer_id)
        # the idempotent retry of the transfer now answers with what is left
        retried = api.ok(api.post("/v1/transfers", needles.transfer(), "DE-recorder", idem="t-1"), 201)
        assert "erased" in retried["subjects"]
        del retried

        found = holders(needles, needles.erased, needles.key)
        assert found == {}, json.dumps(found, indent=1)


def _read_everything(api: Api, transfer_id: str) -> None:
    """Every answer that can quote the transfer's subject data, read once and dropped."""
    for path, who in ((f"/v1/transfers/{transfer_id}", "FR-recorder"),
                      (f"/v1/transfers/{transfer_id}/lineage", "DE-recorder"),
                      ("/v1/transfers", "*-auditor"),
                      ("/v1/authorization-requests", "*-auditor"),
                      (f"/v1/audit/lineage/{transfer_id}", "*-auditor"),
                      ("/v1/audit/authorizations", "*-auditor"),
                      ("/v1/audit/findings", "*-auditor"),
                      ("/v1/audit/statistics", "*-auditor"),
                      ("/v1/events", "*-auditor")):
        response = api.get(path, who)
        assert response.status_code == 200, (path, response.text)
        del response


# -- logs ----------------------------------------------------------------------------------------


@pytest.fixture
def every_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger at DEBUG, each record captured (also those of loggers that do not propagate)."""
    caplog.set_level(logging.DEBUG)
    quiet = [lg for lg in logging.Logger.manager.loggerDict.values()
             if isinstance(lg, logging.Logger) and not lg.propagate]
    for lg in quiet:
        lg.addHandler(caplog.handler)
    old_levels = {name: lg.level for name, lg in logging.Logger.manager.loggerDict.items()
                  if isinstance(lg, logging.Logger)}
    for lg in logging.Logger.manager.loggerDict.values():
        if isinstance(lg, logging.Logger):
            lg.setLevel(logging.DEBUG)
    try:
        yield caplog
    finally:
        for lg in quiet:
            lg.removeHandler(caplog.handler)
        for name, level in old_levels.items():
            logging.getLogger(name).setLevel(level)


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    """All that was logged, as formatted, with each record's arguments and exception text."""
    parts = [caplog.text]
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(repr(record.args))
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


def assert_no_personal_value(text: str, needles: Needles) -> None:
    logged = {name for name, value in needles.values.items() if value in text}
    assert logged == set(), f"personal values logged: {sorted(logged)}"


def test_nothing_personal_is_logged_in_process(settings: Settings, every_log: pytest.LogCaptureFixture) -> None:
    needles = Needles()
    with serving(Settings(settings.data_dir, settings.database_url, retention_interval=1)) as api:
        made = api.ok(api.post("/v1/transfers", needles.transfer(), "DE-recorder"), 201)
        api.ok(api.post("/v1/authorization-requests", needles.request(made), "FR-recorder"), 201)
        # refused and invalid commands quoting personal values are answered, and not logged
        body = needles.transfer(legal_basis="nonsense")
        assert api.post("/v1/transfers", body, "DE-recorder").status_code == 422
        assert api.post("/v1/transfers", needles.transfer(), "FR-recorder").status_code == 403
        _read_everything(api, made["id"])
        api.ok(api.post(f"/v1/transfers/{made['id']}/erasure", needles.erasure(), "FR-authority"), 200)
        _read_everything(api, made["id"])
        # the retention job, which logs what it did, erases one whose period ended
        due = api.ok(api.post("/v1/transfers", needles.transfer(retention_until="2026-01-31"), "DE-recorder"), 201)
        _wait_until_erased(api, due["id"])
    assert "retention: 1 transfer(s) erased" in every_log.text  # the capture sees the app's own log
    assert_no_personal_value(_logged(every_log), needles)


def _wait_until_erased(api: Api, transfer_id: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if api.ok(api.get(f"/v1/transfers/{transfer_id}", "FR-recorder"), 200)["erasure"] is not None:
            return
        time.sleep(0.2)
    raise AssertionError(f"the retention job did not erase {transfer_id}")


def test_nothing_personal_is_in_the_output_of_serve(settings: Settings, tmp_path: Path) -> None:
    needles = Needles()
    run_init(settings)
    keys = add_keys(settings)
    log = tmp_path / "server.log"
    server = Server(settings, log, extra_args=("--retention-interval", "1"))
    server.start()
    try:
        def client(who: str) -> httpx.Client:
            return httpx.Client(base_url=server.url, timeout=10.0, headers={"Authorization": f"Bearer {keys[who]}"})

        with client("DE-recorder") as de, client("FR-recorder") as fr, client("FR-authority") as fr_auth, \
                client("*-auditor") as auditor:
            made = de.post("/v1/transfers", json=needles.transfer())
            assert made.status_code == 201, made.text
            tid = made.json()["id"]
            assert fr.post("/v1/authorization-requests", json=needles.request(made.json())).status_code == 201
            assert de.post("/v1/transfers", json=needles.transfer(legal_basis="nonsense")).status_code == 422
            assert fr.post("/v1/transfers", json=needles.transfer()).status_code == 403
            for path in (f"/v1/transfers/{tid}", f"/v1/audit/lineage/{tid}", "/v1/events",
                         "/v1/audit/authorizations"):
                assert auditor.get(path).status_code == 200, path
            erased = fr_auth.post(f"/v1/transfers/{tid}/erasure", json=needles.erasure())
            assert erased.status_code == 200, erased.text
            assert auditor.get(f"/v1/transfers/{tid}").json()["erasure"] is not None
            due = de.post("/v1/transfers", json=needles.transfer(retention_until="2026-01-31")).json()["id"]
            deadline = time.monotonic() + 20
            while auditor.get(f"/v1/transfers/{due}").json()["erasure"] is None:
                assert time.monotonic() < deadline, "the retention job did not run"
                time.sleep(0.2)
        server.assert_stopped_cleanly(server.stop())
    finally:
        server.kill()
    output = log.read_text("utf-8", errors="replace")
    # the output holds what was done (the access log, by route template), and none of the values it was
    # done with, nor the transfer's id
    assert " POST /v1/transfers 201 " in output and " POST /v1/transfers/{transfer_id}/erasure 200 " in output
    assert tid not in output
    assert_no_personal_value(output, needles)
