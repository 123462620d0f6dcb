"""API principals and keys: stored only as hashes, authenticated, revoked; the CLI."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ledger.config import Settings, eventsourcing_env
from ledger.service.application import TransferLedger
from ledger.storage.principals import ROLES, Principal, PrincipalError, PrincipalStore
from ledger.storage.sql import SqlAccess
from tests.support.backends import Backend
from tests.support.cli import one_line_error, run

KEY = re.compile(r"tl_[A-Za-z0-9_-]{43}\Z")


@pytest.fixture
def store(ledger: TransferLedger) -> PrincipalStore:
    return PrincipalStore(SqlAccess(ledger.recorder))


@contextmanager
def opened_store(settings: Settings) -> Iterator[PrincipalStore]:
    ledger = TransferLedger(eventsourcing_env(settings))
    try:
        yield PrincipalStore(SqlAccess(ledger.recorder))
    finally:
        ledger.close()


# -- the store -----------------------------------------------------------------------


def test_keys_are_stored_only_as_hashes(store: PrincipalStore, backend: Backend) -> None:
    principal, key = store.add("DE", "recorder,authority", name="BKA desk")
    assert KEY.match(key)
    assert len(base64.urlsafe_b64decode(key[3:] + "=")) == 32
    rows = backend.execute("SELECT * FROM api_principals")
    assert len(rows) == 1
    cells = [str(cell) for cell in rows[0]]
    assert not any(key in cell or key[10:] in cell for cell in cells)  # only the display prefix is kept
    assert hashlib.sha256(key.encode()).hexdigest() in cells
    (stored,) = backend.execute("SELECT key_prefix, roles FROM api_principals WHERE id = ?", (principal.id,))
    assert stored == (key[:10], "authority,recorder")


def test_add_then_authenticate(store: PrincipalStore) -> None:
    de, de_key = store.add("DE", ["recorder", "authority"], name="BKA desk")
    auditor, auditor_key = store.add("*", "auditor")
    assert re.fullmatch(r"p_[a-z2-7]{10}", de.id) and de.id != auditor.id and de_key != auditor_key
    assert de == Principal(de.id, "DE", frozenset({"recorder", "authority"}), "BKA desk",
                           de.created_at, None, de_key[:10])
    assert store.authenticate(de_key) == de
    assert store.authenticate(auditor_key) == auditor
    assert de.has_role("recorder") and not de.has_role("auditor") and not de.is_global
    assert auditor.is_global and auditor.has_role("auditor") and auditor.name is None
    assert store.get(de.id) == de and store.get("p_aaaaaaaaaa") is None
    assert store.list() == [de, auditor]
    with pytest.raises(ValueError, match="unknown role 'auditer'"):
        de.has_role("auditer")


def test_a_caching_store_refuses_a_key_revoked_elsewhere_within_its_cache_time(ledger: TransferLedger) -> None:
    """The API server's store keeps authenticated keys briefly; another process's revocation
    (here: another store on the same database) takes effect when that time is up, its own at once."""
    import time

    server = PrincipalStore(SqlAccess(ledger.recorder), cache_seconds=0.5)
    elsewhere = PrincipalStore(SqlAccess(ledger.recorder))
    de, de_key = server.add("DE", "recorder")
    fr, fr_key = server.add("FR", "recorder")
    assert server.authenticate(de_key) == de and server.authenticate(fr_key) == fr
    elsewhere.revoke(de.id)
    assert elsewhere.authenticate(de_key) is None  # no cache: refused at once
    assert server.authenticate(de_key) == de  # still within the server's cache time
    deadline = time.monotonic() + 5
    while server.authenticate(de_key) is not None:
        assert time.monotonic() < deadline, "the revoked key was still accepted after its cache time"
        time.sleep(0.05)
    server.revoke(fr.id)
    assert server.authenticate(fr_key) is None  # revoked through this store: at once


@pytest.mark.parametrize("key", [
    "", "tl_", "tl_" + "A" * 42, "tl_" + "A" * 44, "xx_" + "A" * 43, "tl_" + "A" * 42 + "=",
    "tl_" + "A" * 42 + "\n",
])
def test_malformed_or_unknown_keys_authenticate_nothing(store: PrincipalStore, key: str) -> None:
    _, real = store.add("FR", "verifier")
    assert store.authenticate(key) is None
    assert store.authenticate(real[:-1] + ("B" if real[-1] != "B" else "C")) is None
    assert store.authenticate(None) is None  # type: ignore[arg-type]


def test_a_revoked_key_authenticates_nothing(store: PrincipalStore) -> None:
    principal, key = store.add("INTERPOL", "recorder")
    other, other_key = store.add("INTERPOL", "recorder")
    revoked = store.revoke(principal.id)
    assert revoked.revoked_at is not None and revoked.is_revoked and revoked.id == principal.id
    assert store.authenticate(key) is None
    assert store.authenticate(other_key) == other
    assert store.get(principal.id) == revoked
    assert store.list() == [revoked, other]
    with pytest.raises(PrincipalError, match=rf"^principal {principal.id} was already revoked at "):
        store.revoke(principal.id)
    with pytest.raises(PrincipalError, match=r"^no principal 'p_nosuchone0'$"):
        store.revoke("p_nosuchone0")
    assert store.get(principal.id) == revoked


@pytest.mark.parametrize(("party", "roles", "name", "message"), [
    ("de", "recorder", None, "party: unknown Party 'de': .*did you mean 'DE'\\?"),
    ("XX", "recorder", None, "party: unknown Party 'XX'"),
    ("", "recorder", None, "party: a Party is required"),
    ("**", "auditor", None, "party: unknown Party '\\*\\*'"),
    ("DE", "recorder,auditer", None, "roles: unknown role 'auditer'; expected one or more of "
                                     "recorder, authority, auditor, verifier, admin"),
    ("DE", "Admin,x", None, "roles: unknown roles 'Admin', 'x'"),
    ("DE", "", None, "roles: at least one is required"),
    ("DE", [], None, "roles: at least one is required"),
    ("*", "auditor,recorder", None, "roles: role recorder acts for one Party; party '\\*'"),
    ("*", "authority,recorder", None, "roles: roles authority, recorder act for one Party"),
    ("DE", "recorder", "a\x00b", "name: contains control characters"),
    ("DE", "recorder", "n" * 201, "name: 201 characters long; the limit is 200"),
    ("DE", "recorder", 7, "name: must be a string, got int"),
])
def test_bad_input_is_refused_precisely_and_stores_nothing(
    store: PrincipalStore, party: str, roles: str, name: str | None, message: str
) -> None:
    with pytest.raises(PrincipalError, match=f"^{message}"):
        store.add(party, roles, name)
    assert store.list() == []


def test_every_role_can_be_held(store: PrincipalStore) -> None:
    principal, key = store.add("BR", " verifier , auditor,admin,")
    assert principal.roles == {"verifier", "auditor", "admin"}
    everything, _ = store.add("BR", ",".join(ROLES))
    assert all(everything.has_role(role) for role in ROLES)
    assert store.authenticate(key) == principal


def test_the_table_is_created_once_whoever_comes_first(ledger: TransferLedger) -> None:
    """Several API processes start at once: each creates the table if it is missing."""
    failures: list[BaseException] = []
    go = threading.Barrier(6)

    def start() -> None:
        try:
            go.wait()
            PrincipalStore(SqlAccess(ledger.recorder))
        except BaseException as e:  # reported below
            failures.append(e)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    store = PrincipalStore(SqlAccess(ledger.recorder))
    principal, key = store.add("DE", "auditor")
    assert PrincipalStore(SqlAccess(ledger.recorder)).authenticate(key) == principal


def test_one_of_several_simultaneous_revocations_wins(ledger: TransferLedger) -> None:
    store = PrincipalStore(SqlAccess(ledger.recorder))
    principal, _ = store.add("DE", "recorder")
    outcomes: list[Principal | PrincipalError] = []
    go = threading.Barrier(6)

    def revoke() -> None:
        go.wait()
        try:
            outcomes.append(store.revoke(principal.id))
        except PrincipalError as e:
            outcomes.append(e)

    threads = [threading.Thread(target=revoke) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    revoked = [o for o in outcomes if isinstance(o, Principal)]
    assert len(outcomes) == 6 and len(revoked) == 1
    assert all("already revoked" in str(o) for o in outcomes if isinstance(o, PrincipalError))
    assert store.get(principal.id) == revoked[0]


# -- the command line, as real processes -----------------------------------------------


def test_init_prints_an_admin_key_once(settings: Settings) -> None:
    first = run("init", settings=settings)
    vkey, admin_key = first.stdout.splitlines()
    assert KEY.match(admin_key) and vkey.startswith("transfer-ledger.example/ledger+")
    assert "shown this once" in first.stderr
    again = run("init", settings=settings)
    assert again.stdout.splitlines() == [vkey]
    with opened_store(settings) as store:
        admin = store.authenticate(admin_key)
        assert admin is not None
        assert admin.party == "*" and admin.is_global and admin.roles == {"admin"}
        assert admin.name == "initial admin"
        assert store.list() == [admin]


def test_principals_add_list_revoke(settings: Settings) -> None:
    run("init", settings=settings)
    added = run("principals", "add", "--party", "DE", "--roles", "recorder,authority", "--name", "BKA desk",
                settings=settings)
    key = added.stdout.splitlines()[-1]
    assert added.stdout == key + "\n" and KEY.match(key)
    summary = added.stderr.strip()
    assert summary.count("\n") == 0 and "party DE, roles authority,recorder" in summary
    with opened_store(settings) as store:
        principal = store.authenticate(key)
    assert principal is not None and principal.id in summary and principal.name == "BKA desk"

    listed = json.loads(run("principals", "list", "--json", settings=settings).stdout)
    assert [p["roles"] for p in listed] == [["admin"], ["authority", "recorder"]]
    assert listed[1] == principal.as_dict() and listed[1]["party"] == "DE"
    table = run("principals", "list", settings=settings).stdout.splitlines()
    assert table[0].split() == ["ID", "PARTY", "ROLES", "NAME", "KEY", "CREATED", "REVOKED"]
    assert table[2].startswith(principal.id) and f"{key[:10]}..." in table[2] and table[2].endswith("-")
    assert key[10:] not in "".join(table)

    revoked = run("principals", "revoke", principal.id, settings=settings)
    assert revoked.stdout.startswith(f"revoked principal {principal.id} ")
    with opened_store(settings) as store:
        assert store.authenticate(key) is None
    listed = json.loads(run("principals", "list", "--json", settings=settings).stdout)
    assert listed[1]["revoked_at"] is not None
    assert run("principals", "list", settings=settings).stdout.splitlines()[2].endswith(listed[1]["revoked_at"])

    again = run("principals", "revoke", principal.id, settings=settings, check=2)
    assert "already revoked" in one_line_error(again)
    unknown = run("principals", "revoke", "p_nosuchone0", settings=settings, check=2)
    assert "no principal 'p_nosuchone0'" in one_line_error(unknown)


def test_principals_add_refuses_bad_input_and_adds_nothing(settings: Settings) -> None:
    run("init", settings=settings)
    done = run("principals", "add", "--party", "de", "--roles", "recorder", settings=settings, check=2)
    assert "did you mean 'DE'?" in one_line_error(done) and done.stdout == ""
    done = run("principals", "add", "--party", "DE", "--roles", "recorder,auditer", settings=settings, check=2)
    assert "unknown role 'auditer'" in one_line_error(done) and done.stdout == ""
    done = run("principals", "add", "--party", "*", "--roles", "recorder", settings=settings, check=2)
    assert "acts for one Party" in one_line_error(done)
    run("principals", "add", "--party", "DE", settings=settings, check=2)  # --roles is required
    listed = json.loads(run("principals", "list", "--json", settings=settings).stdout)
    assert [p["name"] for p in listed] == ["initial admin"]


def test_principals_on_an_uninitialized_dir_exit_2(tmp_path: Path) -> None:
    settings = Settings(tmp_path / "nothing-here")
    for args in (("add", "--party", "DE", "--roles", "recorder"), ("list",), ("revoke", "p_aaaaaaaaaa")):
        done = run("principals", *args, settings=settings, check=2)
        assert "not an initialized ledger data dir" in one_line_error(done)
    assert not settings.data_dir.exists()
