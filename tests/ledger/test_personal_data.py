"""Event format 2: personal data kept out of the leaves, readable while kept, destroyed on erasure
while every leaf, checkpoint and proof stays valid (Order 949 §15; docs/FORMAT.md, "Personal data")."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import rfc8785

from domain.errors import RuleViolation
from ledger.audit.verify import verify_ledger
from ledger.config import eventsourcing_env
from ledger.service.application import TransferLedger
from ledger.service.checkpoints import sign_current_checkpoint
from ledger.tlog.merkle import verify_consistency, verify_inclusion
from ledger.tlog.note import Signer, open_checkpoint
from tests.support.backends import BACKEND, Backend
from tests.support.builders import actor, request, transfer

SUBJECT = "Ivan Petrovich Sidorov"
JUSTIFICATION = "suspected of laundering via account 40817810099910004312"
OFFICER = "Insp. Katharina Weber-Lindqvist"
KEY = Signer.generate("transfer-ledger.example/ledger")


def erasure(party: str = "FR", ground: str = "purpose-achieved") -> dict[str, Any]:
    return {"erased_by": actor(party), "ground": ground, "reasons": "proceeding closed by judgment"}


def hold(party: str = "FR") -> dict[str, Any]:
    return {"by": actor(party), "reasons": "evidence in an appeal"}


def personal_transfer(ledger: TransferLedger, **overrides: Any) -> dict[str, Any]:
    return ledger.record_transfer(transfer(
        "DE", "FR", subjects=[SUBJECT], justification=JUSTIFICATION, sender=actor("DE", OFFICER),
        retention_until="2031-03-31", **overrides))


def stored_states(ledger: TransferLedger) -> list[bytes]:
    return [bytes(row.state) for row in ledger.store.read_events(0, 10_000)]


def test_a_new_ledger_keeps_no_personal_value_in_its_leaves(ledger: TransferLedger) -> None:
    assert ledger.event_format == 2
    t = personal_transfer(ledger)
    for state in stored_states(ledger):
        for value in (SUBJECT, JUSTIFICATION, OFFICER, "ransomware"):
            assert value.encode() not in state
    state = json.loads(stored_states(ledger)[0])
    assert state["subjects"].startswith("commitment:") and state["sender"]["officer"].startswith("commitment:")
    block = state["personal_data"]
    assert block["fields"] == {"subjects": "subject-data", "justification": "subject-data",
                               "purpose.description": "subject-data", "sender.officer": "actor-log"}
    # both dates are in the hashed event: the transfer's retention, and the log's (3 years, LED art. 25)
    assert block["subject-data"]["until"] == "2031-03-31"
    recorded_on = t["recorded_at"][:10]
    assert block["actor-log"]["until"] == str(int(recorded_on[:4]) + 3) + recorded_on[4:]
    # and a reader gets the values back
    got = ledger.get_transfer(t["id"])
    assert (got["subjects"], got["justification"], got["sender"]["officer"]) == ([SUBJECT], JUSTIFICATION, OFFICER)


def test_a_commitment_is_hmac_sha256_over_the_documented_message(ledger: TransferLedger) -> None:
    """Recomputed here from FORMAT.md's definition, with hmac and rfc8785 only."""
    t = personal_transfer(ledger)
    state = json.loads(stored_states(ledger)[0])
    opened = ledger.opener.opened([t["id"]]) if ledger.opener else None
    assert opened is not None
    field = next(f for f in opened.fields.values() if f.path == "subjects")
    salt_and_value = _salt_of(ledger, t["id"], "subjects")
    message = rfc8785.dumps(["transfer-ledger/commitment/v1", t["id"], 1, "subjects", [SUBJECT]])
    digest = hmac.new(salt_and_value, message, hashlib.sha256).hexdigest()
    assert state["subjects"] == "commitment:" + digest == field.commitment
    # the same value with another salt (another event) commits differently: nothing to guess from
    other = personal_transfer(ledger)
    assert json.loads(stored_states(ledger)[1])["subjects"] != state["subjects"], other


def _salt_of(ledger: TransferLedger, transfer_id: str, path: str) -> bytes:
    from ledger.tlog.commitment import opening_aad, unseal_openings

    assert ledger.sealer is not None
    [row] = [r for r in ledger.personal.openings([transfer_id]) if r.retention_class == "subject-data"]
    assert row.key is not None
    key = ledger.sealer.unwrap(row.key)
    assert key is not None
    openings = unseal_openings(key, opening_aad(transfer_id, 1, "subject-data", row.key_id), row.sealed)
    return openings[path].salt


def test_erasure_destroys_the_subject_data_and_every_proof_still_holds(ledger: TransferLedger) -> None:
    t = personal_transfer(ledger)
    req = ledger.request_authorization(request("FR", "INTERPOL", t, justification=JUSTIFICATION + " (INTERPOL)"))
    before = sign_current_checkpoint(ledger.store, KEY)
    commitments = json.loads(stored_states(ledger)[0])
    erased = ledger.erase_personal_data(t["id"], erasure())
    # the subject data read as erased, under which leaf, with their commitment; who acted stays
    marker = erased["subjects"]
    assert marker["commitment"] == commitments["subjects"]
    assert marker["erased"]["leaf_index"] == erased["erasure"]["leaf_index"] == ledger.store.head().size - 1
    assert erased["justification"]["erased"]["retention_class"] == "subject-data"
    assert erased["sender"]["officer"] == OFFICER
    assert erased["erasure"]["ground"] == "purpose-achieved"
    assert erased["erasure"]["erased_by"]["officer"] == "Insp. K. Weber"
    assert ledger.get_transfer(t["id"])["subjects"] == marker
    # the authorization request's free texts were about the same data: erased with them
    auth = ledger.get_authorization(req["id"])
    assert auth["justification"]["erased"]["erasure"]["originator_id"] == t["id"]
    assert auth["requested_by"]["officer"] == "Insp. K. Weber"
    # the erasure event names the destroyed key and the commitments, in its own leaf
    event = json.loads(stored_states(ledger)[-1])
    assert event["key_ids"] == erased["erasure"]["key_ids"] and len(event["key_ids"]) == 1
    assert {c for e in event["erased"] for c in e["commitments"].values()} >= {commitments["subjects"]}
    # nothing was altered: verify, consistency with the earlier checkpoint, inclusion of the transfer
    report = verify_ledger(ledger.store, KEY.verifier(), KEY.name, open_state=ledger.open_event_state)
    assert report.ok, report.problems
    after = open_checkpoint(sign_current_checkpoint(ledger.store, KEY).note, KEY.verifier())
    first = open_checkpoint(before.note, KEY.verifier())
    from ledger.service.node_cache import NodeCache

    nodes = NodeCache(ledger.store)
    verify_consistency(first.size, after.size, nodes.consistency_proof(first.size, after.size),
                       first.root_hash, after.root_hash)
    leaf = ledger.store.leaf_of_event(UUID(t["id"]), 1)
    assert leaf is not None
    verify_inclusion(leaf.leaf_hash, leaf.leaf_index, after.size, nodes.inclusion_proof(leaf.leaf_index, after.size),
                     after.root_hash)
    # no key, no opening, for what was erased
    assert all(r.retention_class != "subject-data" for r in ledger.personal.openings([t["id"], req["id"]]))


def test_no_byte_of_an_erased_value_stays_in_the_sqlite_files(ledger: TransferLedger, backend: Backend) -> None:
    if BACKEND != "sqlite":
        pytest.skip("the SQLite files; PostgreSQL has its own test")
    t = personal_transfer(ledger)
    # a refusal stored for a retry quotes a personal value: scrubbed with the erasure
    from ledger.storage.idempotency import IdempotencyClaim

    claim = IdempotencyClaim("p", "k", "h", 201)
    ledger.remember_refusal(claim, 409, {"detail": f"refused for {SUBJECT}"})
    kept = ledger.get_transfer(t["id"])
    assert kept["subjects"] == [SUBJECT]
    from ledger.service.read_models import runner_of

    runner = runner_of(ledger)
    runner.catch_up()  # the read models, in the same database, before and after the erasure
    ledger.erase_personal_data(t["id"], erasure())
    runner.catch_up()
    assert runner.db.query("SELECT COUNT(*) AS n FROM {proj_erasures}")[0]["n"] == 1
    files = [p for p in backend.settings.data_dir.rglob("*") if p.is_file()]
    assert backend.settings.database_file in files
    needles = [SUBJECT.encode(), JUSTIFICATION.encode(), json.dumps(SUBJECT)[1:-1].encode()]
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, (path.name, needle)
    assert ledger.replay(claim) == (409, {"detail": "refused for [erased]"})
    # the log of who acted is kept (its own period)
    assert OFFICER.encode() not in b"".join(p.read_bytes() for p in files)  # sealed, not in clear
    assert ledger.get_transfer(t["id"])["sender"]["officer"] == OFFICER


def test_erasure_is_refused_on_a_format_1_ledger(backend: Backend) -> None:
    env = {k: v for k, v in eventsourcing_env(backend.settings).items() if k != "DATA_KEYS_DIR"}
    old = TransferLedger(env)
    try:
        assert old.event_format == 1
        t = old.record_transfer(transfer("DE", "FR", subjects=[SUBJECT]))
        assert SUBJECT.encode() in stored_states(old)[0]  # format 1: in the leaf, as always
        with pytest.raises(RuleViolation) as refused:
            old.erase_personal_data(t["id"], erasure())
        assert refused.value.rule == "erasure-not-possible"
        assert "event format 1" in refused.value.detail and "docs/FORMAT.md" in refused.value.detail
    finally:
        old.close()
    # opened later with the data keys, the ledger stays in format 1 (its leaves say so)
    again = TransferLedger(eventsourcing_env(backend.settings))
    try:
        assert again.event_format == 1
        assert again.get_transfer(t["id"])["subjects"] == [SUBJECT]
    finally:
        again.close()


def test_a_hold_stops_erasure_until_it_is_lifted(ledger: TransferLedger) -> None:
    t = personal_transfer(ledger)
    held = ledger.restrict_processing(t["id"], hold())
    assert held["restriction"]["reasons"] == "evidence in an appeal"
    with pytest.raises(RuleViolation) as refused:
        ledger.erase_personal_data(t["id"], erasure())
    assert refused.value.rule == "processing-restricted"
    assert ledger.get_transfer(t["id"])["subjects"] == [SUBJECT]
    with pytest.raises(RuleViolation) as twice:
        ledger.restrict_processing(t["id"], hold())
    assert twice.value.rule == "processing-restricted"
    lifted = ledger.restrict_processing(t["id"], hold(), lift=True)
    assert lifted["restriction"] is None
    ledger.erase_personal_data(t["id"], erasure())
    with pytest.raises(RuleViolation) as again:
        ledger.erase_personal_data(t["id"], erasure())
    assert again.value.rule == "personal-data-erased"
    with pytest.raises(RuleViolation) as late_hold:
        ledger.restrict_processing(t["id"], hold())
    assert late_hold.value.rule == "personal-data-erased"


def test_only_the_sender_or_recipient_erases(ledger: TransferLedger) -> None:
    t = personal_transfer(ledger)
    with pytest.raises(RuleViolation) as refused:
        ledger.erase_personal_data(t["id"], erasure("INTERPOL"))
    assert refused.value.rule == "not-a-party-to-transfer"
    ledger.erase_personal_data(t["id"], erasure("DE"))


@pytest.fixture
def copied(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "backup"


def test_a_database_restored_from_before_an_erasure_has_it_reapplied(backend: Backend, copied: Path) -> None:
    if BACKEND != "sqlite":
        pytest.skip("a SQLite file copied and restored")
    settings = backend.settings
    first = TransferLedger(eventsourcing_env(settings))
    t = personal_transfer(first)
    first.store.clear_old_pages()
    first.close()
    copied.mkdir()
    shutil.copy2(settings.database_file, copied / "ledger.sqlite3")
    second = TransferLedger(eventsourcing_env(settings))
    second.erase_personal_data(t["id"], erasure())
    second.close()
    # the database comes back from the backup; the data dir's journal remembers the erasure
    for stale in settings.data_dir.glob(settings.database_file.name + "-*"):
        stale.unlink()
    shutil.copy2(copied / "ledger.sqlite3", settings.database_file)
    third = TransferLedger(eventsourcing_env(settings))
    try:
        assert third.erasures_reapplied == 1  # when it opened, before serving anything
        view = third.get_transfer(t["id"])
        assert view["subjects"]["erased"]["retention_class"] == "subject-data"
        assert view["sender"]["officer"] == OFFICER
        for path in [p for p in settings.data_dir.rglob("*") if p.is_file()]:
            assert SUBJECT.encode() not in path.read_bytes(), path
        assert third.reapply_erasures() == 0  # once is enough
    finally:
        third.close()


def test_erased_data_are_not_passed_on_nor_asked_for(ledger: TransferLedger) -> None:
    from tests.support.builders import granted_chain, onward

    root, auth = granted_chain(ledger)
    ledger.erase_personal_data(root["id"], erasure())
    with pytest.raises(RuleViolation) as onward_refused:
        ledger.record_transfer(onward("FR", "INTERPOL", root, auth))
    assert (onward_refused.value.rule, onward_refused.value.field) == ("personal-data-erased", "parent_transfer_id")
    with pytest.raises(RuleViolation) as request_refused:
        ledger.request_authorization(request("FR", "BR", root))
    assert request_refused.value.rule == "personal-data-erased"


def test_an_erasure_racing_onward_transfers_and_reads_takes_one_order(ledger: TransferLedger) -> None:
    """Group commit writes commands one after another: each onward transfer either committed before
    the erasure (and keeps its own data) or is refused after it; no read sees half an erasure."""
    import threading

    from tests.support.builders import granted_chain, onward

    ledger.start_group_commit()
    root, auth = granted_chain(ledger, max_transfers=50)
    results: list[str] = []
    reads: list[Any] = []

    def send() -> None:
        try:
            ledger.record_transfer(onward("FR", "INTERPOL", root, auth))
            results.append("recorded")
        except RuleViolation as e:
            results.append(e.rule)

    def read() -> None:
        for _ in range(20):
            view = ledger.get_transfer(root["id"])
            reads.append((view["subjects"], view["justification"], view["erasure"]))

    threads = [threading.Thread(target=send) for _ in range(8)] + [threading.Thread(target=read) for _ in range(2)]
    for thread in threads[:4] + threads[8:]:
        thread.start()
    ledger.erase_personal_data(root["id"], erasure())
    for thread in threads[4:8]:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(results) <= {"recorded", "personal-data-erased"} and len(results) == 8
    assert results.count("personal-data-erased") >= 4  # those started after the erasure returned
    for subjects, justification, erased in reads:  # whole before, or whole after
        if erased is None:
            assert isinstance(subjects, list) and not isinstance(justification, dict)
        else:
            assert "erased" in subjects
    recorded = results.count("recorded")
    assert len(ledger.get_authorization(auth["id"])["uses"]) == recorded


def test_an_erasure_notifies_the_parties_that_received_the_data_onward(ledger: TransferLedger) -> None:
    from tests.support.builders import granted_chain, onward

    root, auth = granted_chain(ledger)  # DE -> FR, FR asked DE to pass on to INTERPOL
    hop = ledger.record_transfer(onward("FR", "INTERPOL", root, auth))
    erased = ledger.erase_personal_data(root["id"], erasure("FR"))
    assert [n["party"] for n in erased["erasure"]["notices"]] == ["INTERPOL"]  # downstream; not FR itself
    notices, cursor = ledger.list_notices(party="INTERPOL")
    assert cursor is None and [n["transfer_id"] for n in notices] == [root["id"]]
    notice = notices[0]
    assert notice["acknowledgement"] is None and notice["erasure_leaf_index"] == erased["erasure"]["leaf_index"]
    assert ledger.list_notices(party="BR") == ([], None)
    # the hop's own erasure tells the origin, whose data they were
    erased_hop = ledger.erase_personal_data(hop["id"], erasure("INTERPOL"))
    assert [n["party"] for n in erased_hop["erasure"]["notices"]] == ["DE"]
    with pytest.raises(RuleViolation) as stranger:
        ledger.acknowledge_notice(notice["id"], {"acknowledged_by": actor("BR")})
    assert stranger.value.rule == "not-addressee"
    acknowledged = ledger.acknowledge_notice(notice["id"], {"acknowledged_by": actor("INTERPOL")})
    assert acknowledged["acknowledgement"]["acknowledged_by"]["party"] == "INTERPOL"
    assert acknowledged["acknowledgement"]["leaf_index"] == ledger.store.head().size - 1
    with pytest.raises(RuleViolation) as twice:
        ledger.acknowledge_notice(notice["id"], {"acknowledged_by": actor("INTERPOL")})
    assert twice.value.rule == "notice-already-acknowledged"
    from domain.errors import NotFound

    with pytest.raises(NotFound):
        ledger.acknowledge_notice("00000000-0000-4000-8000-000000000000", {"acknowledged_by": actor("INTERPOL")})


def test_an_export_carries_commitments_and_says_so(ledger: TransferLedger, backend: Backend, tmp_path: Path) -> None:
    from ledger.audit.bundles import export_bundle, verify_bundle

    t = personal_transfer(ledger)
    ledger.erase_personal_data(t["id"], erasure())
    later = personal_transfer(ledger)  # kept: its values are in the ledger, but not in a bundle
    out = tmp_path / "bundle"
    export_bundle(ledger, KEY, out, [t["id"], later["id"]])
    manifest = json.loads((out / "bundle.json").read_text())
    assert manifest["personal_data"] == "commitments"
    for path in out.rglob("*"):
        if path.is_file():
            for value in (SUBJECT, JUSTIFICATION, OFFICER):
                assert value.encode() not in path.read_bytes(), path
    assert verify_bundle(out, KEY.verifier()).ok


def test_no_clear_value_reaches_the_postgresql_data_directory(ledger: TransferLedger) -> None:
    """Dead tuples and WAL keep old rows on PostgreSQL: what they keep must be sealed. After a
    checkpoint, the server's whole data directory is searched for the values in clear."""
    import os

    from tests.support.backends import PG_URL

    if not PG_URL:
        pytest.skip("needs TRANSFER_LEDGER_TEST_DATABASE_URL")
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(PG_URL.split("?", 1)[0])
    try:  # the data directory is the server owner's to name: try its superuser on this host
        admin = psycopg.connect(make_conninfo(**{**params, "user": "postgres", "password": ""}), autocommit=True,
                                connect_timeout=5)
    except psycopg.OperationalError:
        pytest.skip("no superuser connection to the test server")
    import secrets

    # values of this run only: the server's WAL holds every other test's (format 1 ones in clear)
    subject, justification, officer = (f"{v} {secrets.token_hex(8)}" for v in (SUBJECT, JUSTIFICATION, OFFICER))
    t = ledger.record_transfer(transfer("DE", "FR", subjects=[subject], justification=justification,
                                        sender=actor("DE", officer), retention_until="2031-03-31"))
    ledger.request_authorization(request("FR", "INTERPOL", t, justification=justification + " again"))
    ledger.erase_personal_data(t["id"], erasure())
    with admin:
        admin.execute("CHECKPOINT")
        data_directory = admin.execute("SHOW data_directory").fetchone()[0]  # type: ignore[index]
    if not os.access(data_directory, os.R_OK):
        pytest.skip(f"cannot read {data_directory}")
    needles = [v.encode() for v in (subject, justification, officer)]
    searched = 0
    for folder, _, names in os.walk(data_directory):
        for name in names:
            try:
                data = Path(folder, name).read_bytes()
            except OSError:
                continue
            searched += len(data)
            for needle in needles:
                assert needle not in data, (folder, name, needle)
    assert searched > 1_000_000


def test_the_log_of_who_acted_goes_when_its_period_ends_unless_held(ledger: TransferLedger) -> None:
    from datetime import date, timedelta

    kept = personal_transfer(ledger)
    gone = personal_transfer(ledger)
    ledger.restrict_processing(kept["id"], hold())
    until = date.fromisoformat(json.loads(stored_states(ledger)[0])["personal_data"]["actor-log"]["until"])
    assert ledger.run_retention(until)["actor_logs"] == []  # the last day is still inside the period
    report = ledger.run_retention(until + timedelta(days=1))
    [log] = report["actor_logs"]
    assert log["until"] == until.isoformat() and log["kept"] >= 1 and log["erased"] >= 1
    after = ledger.get_transfer(gone["id"])
    assert after["sender"]["officer"]["erased"]["retention_class"] == "actor-log"
    assert after["subjects"] == [SUBJECT]  # the subject data have their own period (2031)
    held = ledger.get_transfer(kept["id"])
    assert held["sender"]["officer"] == OFFICER  # sealed again under the hold's own key
    assert held["restriction"]["restricted_by"]["officer"] == "Insp. K. Weber"
    assert ledger.run_retention(until + timedelta(days=2))["actor_logs"] == []  # once
    # once its month has passed, the month's key-encryption key goes too: no live key needs it
    bucket = until.strftime("%Y-%m")
    assert report["keks_destroyed"] == [] and bucket in ledger.keyring.buckets()  # type: ignore[union-attr]
    next_month = (until.replace(day=1) + timedelta(days=32)).replace(day=1)
    assert ledger.run_retention(next_month)["keks_destroyed"] == [bucket]
    assert bucket not in ledger.keyring.buckets()  # type: ignore[union-attr]
    assert ledger.get_transfer(kept["id"])["sender"]["officer"] == OFFICER  # the held log has its own key
    assert ledger.get_transfer(gone["id"])["subjects"] == [SUBJECT]  # the subject data's month is 2031-03
    assert verify_ledger(ledger.store, KEY.verifier(), KEY.name).ok
