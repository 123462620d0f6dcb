"""docs/API.md against the code: its curl walkthrough, pasted into a shell against a real
server, answers as it says, and its "Bodies" tables list the fields of the schemas.

The ``sh`` blocks between ``<!-- walkthrough -->`` and ``<!-- /walkthrough -->``
run in one ``bash``, from a directory laid out as the repository is after
``make run`` (``.venv`` and ``./ledger-data``), against ``transfer-ledger
serve`` on a free port. Every ``# => HTTP nnn [rule]`` comment is an
expectation: the statuses the shell prints must be those, in that order, and
each named rule must be in the answer.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from api import schemas
from ledger.config import Settings
from tests.support.api import run_init
from tests.support.server import Server, clean_env

ROOT = Path(__file__).resolve().parents[2]
API_MD = ROOT / "docs" / "API.md"
EXPECT = re.compile(r"# => HTTP (\d{3})(?: ([a-z][a-z-]+[a-z]))?")
SCHEMA = re.compile(r"^<!-- schema: (\w+)(?:, also the fields of (\w+)(?: but ([\w, ]+))?)? -->\n((?:\|.*\n)+)", re.M)


def walkthrough() -> str:
    text = API_MD.read_text("utf-8")
    section = text.split("<!-- walkthrough -->", 1)[1].split("<!-- /walkthrough -->", 1)[0]
    return "\n".join(re.findall(r"```sh\n(.*?)```", section, flags=re.S))


def test_the_walkthrough_is_there_and_complete() -> None:
    script = walkthrough()
    for path in ("/v1/transfers", "/v1/authorization-requests", "/decision", "/revocation", "/lineage",
                 "/v1/authorizations/", "/v1/events", "/v1/checkpoint", "/v1/proofs/inclusion",
                 "/v1/proofs/consistency", "Idempotency-Key"):
        assert path in script, path
    rules = {m.group(2) for m in EXPECT.finditer(script) if m.group(2)}
    assert {"onward-transfer-not-authorized", "not-origin", "written-instrument-required",
            "authorization-refused", "authorization-revoked", "transfer-not-found"} <= rules


@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("bash") is None, reason="needs curl and bash")
def test_the_curl_walkthrough_answers_as_documented(settings: Settings, tmp_path: Path) -> None:
    assert settings.data_dir == tmp_path / "ledger-data"  # where `make run` puts it, seen from the repository
    run_init(settings)
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))  # the venv running the suite: `make run`'s .venv
    script = walkthrough()
    expected = [(m.group(1), m.group(2)) for m in EXPECT.finditer(script)]
    server = Server(settings, tmp_path / "server.log")
    try:
        server.start()
        env = clean_env()
        if settings.database_url:  # the doc's commands use the default data dir; the events are elsewhere
            env["TRANSFER_LEDGER_DATABASE_URL"] = settings.database_url
        script = script.replace("http://127.0.0.1:8000", server.url)
        done = subprocess.run(["bash", "-c", "set -e -o pipefail\n" + script], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=180)
    finally:
        server.kill()
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    statuses = re.findall(r"^=> HTTP (\d{3})$", done.stderr, flags=re.M)
    assert statuses == [status for status, _ in expected], done.stderr
    for _, rule in expected:
        if rule:
            assert f'"rule":"{rule}"' in done.stdout, rule
    assert "Traceback" not in done.stderr and "HTTP 500" not in done.stderr
    assert os.path.exists(tmp_path / "ledger-data" / "settings.json")


def test_the_bodies_section_names_every_field_of_its_schema() -> None:
    """Each table marked ``<!-- schema: Model -->`` lists exactly the model's fields, no more."""
    tables = SCHEMA.findall(API_MD.read_text("utf-8"))
    assert {name for name, _, _, _ in tables} >= {"TransferIn", "TransferOut", "AuthorizationRequestIn",
                                              "DecisionIn", "ConditionsIn", "RevocationIn", "AuthorizationOut"}
    for name, base, but, table in tables:
        first_cells = [row.split("|")[1] for row in table.splitlines()[2:]]
        documented = [field for cell in first_cells for field in re.findall(r"`(\w+)`", cell)]
        if base:
            left_out = {f.strip() for f in but.split(",")} if but else set()
            documented += [f for f in getattr(schemas, base).model_fields if f not in left_out]
        assert sorted(documented) == sorted(getattr(schemas, name).model_fields), name
