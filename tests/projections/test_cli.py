"""`transfer-ledger projections status | rebuild | run` and `replay --at-index N`."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from ledger.cli import app as cli
from ledger.config import Settings, eventsourcing_env
from ledger.service.application import TransferLedger
from ledger.tlog.merkle import verify_inclusion
from ledger.tlog.note import Verifier, open_checkpoint
from tests.support.api import ORIGIN_LINE, run_init
from tests.support.world import around, build_world


def invoke(settings: Settings, *args: str) -> Any:
    argv = [*args, "--data-dir", str(settings.data_dir)]
    if settings.database_url:
        argv += ["--database-url", settings.database_url]
    return CliRunner().invoke(cli, argv, env={"TRANSFER_LEDGER_DATA_DIR": None,
                                              "TRANSFER_LEDGER_DATABASE_URL": None})


def populated(settings: Settings) -> tuple[dict[str, Any], str]:
    init = run_init(settings)
    ledger = TransferLedger(eventsourcing_env(settings))
    try:
        world = build_world(ledger)
        world["forged"] = around(ledger, "FR", "INTERPOL", world["root"])
    finally:
        ledger.close()
    return world, init.vkey


def test_status_run_and_rebuild(settings: Settings) -> None:
    world, _ = populated(settings)
    result = invoke(settings, "projections", "status", "--json")
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    size = status["tree_size"]
    assert not status["up_to_date"] and {m["behind"] for m in status["models"]} == {size}
    result = invoke(settings, "projections", "run")
    assert result.exit_code == 0 and f"applied {size} leaves" in result.stdout
    result = invoke(settings, "projections", "status")
    assert result.exit_code == 0 and "up to date" in result.stdout
    result = invoke(settings, "projections", "rebuild", "--json")
    assert result.exit_code == 0, result.output
    rebuilt = json.loads(result.stdout)
    assert rebuilt["ok"] and rebuilt["applied"] == size and rebuilt["up_to_date"]
    result = invoke(settings, "projections", "rebuild")
    assert result.exit_code == 0 and f"rebuilt 7 read models from {size} leaves" in result.stdout


def test_replay_at_an_index_with_its_checkpoint(settings: Settings) -> None:
    world, vkey = populated(settings)
    n = world["t1"]["leaf_index"]
    result = invoke(settings, "replay", "--at-index", str(n), "--json", "--transfer", world["root"]["id"])
    assert result.exit_code == 0, result.output
    state = json.loads(result.stdout)
    assert state["at_index"] == n and state["tree_size"] == n + 1
    assert state["lineage"]["of_transfer"]["descendants"][0]["id"] == world["t1"]["id"]
    assert state["authorizations"]["counts"]["granted"] == 1
    assert state["findings"]["total"] == 0  # the forged transfer came later
    # The checkpoint covers leaf N, is signed by the ledger, and the leaf is provably in it.
    checkpoint = state["checkpoint"]
    assert checkpoint["tree_size"] > n
    signed = open_checkpoint(checkpoint["note"], Verifier.from_vkey(vkey), ORIGIN_LINE)
    assert signed.size == checkpoint["tree_size"]
    import base64

    verify_inclusion(base64.b64decode(checkpoint["leaf_hash"]), n, signed.size,
                     [base64.b64decode(p) for p in checkpoint["inclusion_proof"]], signed.root_hash)
    # The same answer again (the checkpoint is reused, not signed anew).
    again = invoke(settings, "replay", "--at-index", str(n), "--json", "--transfer", world["root"]["id"])
    assert json.loads(again.stdout) == state


def test_replay_at_head_and_as_text(settings: Settings) -> None:
    world, _ = populated(settings)
    result = invoke(settings, "replay", "--json")
    state = json.loads(result.stdout)
    assert {"onward-transfer-not-authorized", "flow-after-revocation", "retention-period-expired"} <= set(
        state["findings"]["counts"])
    text = invoke(settings, "replay", "--at-index", str(state["at_index"]), "--transfer", world["root"]["id"])
    assert text.exit_code == 0, text.output
    assert f"as of leaf {state['at_index']}" in text.stdout
    assert "[onward-transfer-not-authorized] art. 36 §3" in text.stdout
    assert "lineage of " + world["root"]["id"] in text.stdout
    mine = json.loads(invoke(settings, "replay", "--json", "--party", "NL").stdout)
    assert mine["party"] == "NL" and mine["lineage"]["transfers"] == 1


def test_replay_errors(settings: Settings) -> None:
    populated(settings)
    result = invoke(settings, "replay", "--at-index", "999999")
    assert result.exit_code == 2 and "not a leaf of the ledger" in result.stderr
    result = invoke(settings, "replay", "--at-time", "soon", "--json")
    assert result.exit_code == 2 and json.loads(result.stdout)["ok"] is False
    early = json.loads(invoke(settings, "replay", "--at-time", "2000-01-01T00:00:00Z", "--json").stdout)
    assert early["at_index"] is None and early["tree_size"] == 0 and early["checkpoint"] is None
