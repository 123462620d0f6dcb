"""Settings (ledger/config.py, decision 10): an explicit value, then the environment, then the default;
a bad value is one precise line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ledger.cli import app as cli
from ledger.config import (
    DEFAULT_COMMIT_BATCH,
    DEFAULT_COMMIT_QUEUE,
    DEFAULT_DATA_DIR,
    ConfigError,
    Settings,
)

PG = "postgresql://ledger:pw@db.example:5433/ledger"
ENV = ("TRANSFER_LEDGER_DATA_DIR", "TRANSFER_LEDGER_DATABASE_URL", "TRANSFER_LEDGER_COMMIT_BATCH",
       "TRANSFER_LEDGER_COMMIT_QUEUE")


@pytest.fixture(autouse=True)
def no_settings_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def test_the_defaults() -> None:
    settings = Settings.from_env()
    assert settings == Settings(DEFAULT_DATA_DIR)
    assert (settings.data_dir, settings.database_url, settings.commit_batch, settings.commit_queue) == (
        Path("ledger-data"), None, DEFAULT_COMMIT_BATCH, DEFAULT_COMMIT_QUEUE)
    assert settings.backend == "sqlite" and settings.describe_database() == "SQLite ledger-data/ledger.sqlite3"


def test_an_explicit_value_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSFER_LEDGER_DATA_DIR", "from-env")
    monkeypatch.setenv("TRANSFER_LEDGER_DATABASE_URL", PG)
    assert Settings.from_env().data_dir == Path("from-env")
    assert Settings.from_env().database_url == PG
    explicit = Settings.from_env(Path("from-option"), "postgresql://other:pw@h/db")
    assert explicit.data_dir == Path("from-option")
    assert explicit.database_url == "postgresql://other:pw@h/db"
    # No option (None, or an empty one) leaves the choice to the environment.
    assert Settings.from_env(None, "").database_url == PG
    assert Settings.from_env("", None).data_dir == Path("from-env")


def test_an_empty_variable_is_no_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.setenv(name, "")
    assert Settings.from_env() == Settings(DEFAULT_DATA_DIR)


def test_settings_made_directly_read_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSFER_LEDGER_DATABASE_URL", PG)
    monkeypatch.setenv("TRANSFER_LEDGER_COMMIT_BATCH", "abc")
    settings = Settings(Path("here"))
    assert (settings.database_url, settings.commit_batch) == (None, DEFAULT_COMMIT_BATCH)
    assert Settings("here", PG, commit_batch=8) == Settings(data_dir=Path("here"), database_url=PG, commit_batch=8)


def test_settings_are_frozen_and_hashable() -> None:
    settings = Settings(Path("here"))
    with pytest.raises(ValueError, match="frozen"):
        settings.commit_batch = 1  # type: ignore[misc]
    assert {settings, Settings("here")} == {settings}


def test_commit_counts_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSFER_LEDGER_COMMIT_BATCH", "1")
    monkeypatch.setenv("TRANSFER_LEDGER_COMMIT_QUEUE", "100000")
    assert (Settings.from_env().commit_batch, Settings.from_env().commit_queue) == (1, 100_000)


@pytest.mark.parametrize("value", ["abc", "0", "-3", "100001", "5.0", " ", "1e3"])
@pytest.mark.parametrize("name", ["TRANSFER_LEDGER_COMMIT_BATCH", "TRANSFER_LEDGER_COMMIT_QUEUE"])
def test_a_bad_count_names_the_variable_and_its_value(monkeypatch: pytest.MonkeyPatch, name: str,
                                                       value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        Settings.from_env("somewhere")
    assert str(raised.value) == f"{name} must be a whole number from 1 to 100000, not {value!r}"


def test_a_bad_count_given_directly() -> None:
    with pytest.raises(ConfigError, match="^commit_queue must be a whole number from 1 to 100000, not 0$"):
        Settings("here", commit_queue=0)


@pytest.mark.parametrize("command", [["verify"], ["checkpoint"], ["principals", "list"], ["replay"]])
def test_the_command_line_says_a_bad_value_in_one_line(tmp_path: Path, command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--data-dir", str(tmp_path)],
                                env={"TRANSFER_LEDGER_COMMIT_BATCH": "abc"})
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        "transfer-ledger: error: TRANSFER_LEDGER_COMMIT_BATCH must be a whole number from 1 to 100000, not 'abc'\n")


def test_read_only_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``serve --read-only`` (docs/decisions/0019-read-only-replicas.md): nothing created at open,
    SQLite opened read-only, the application told."""
    from ledger.config import eventsourcing_env

    assert Settings.from_env().read_only is False
    assert "CREATE_TABLE" not in eventsourcing_env(Settings(tmp_path))
    monkeypatch.setenv("TRANSFER_LEDGER_READ_ONLY", "1")
    monkeypatch.setenv("TRANSFER_LEDGER_CONSULTATION_LOG_FILE", str(tmp_path / "reads.jsonl"))
    settings = Settings.from_env(tmp_path)
    assert settings.read_only is True and settings.consultation_log_file == tmp_path / "reads.jsonl"
    env = eventsourcing_env(settings)
    assert env["CREATE_TABLE"] == "n" and env["READ_ONLY"] == "y"
    assert env["SQLITE_DBNAME"] == f"file:{(tmp_path / 'ledger.sqlite3').absolute()}?mode=ro"
    assert eventsourcing_env(Settings(tmp_path, PG, read_only=True))["CREATE_TABLE"] == "n"
    monkeypatch.setenv("TRANSFER_LEDGER_READ_ONLY", "maybe")
    with pytest.raises(ConfigError, match="TRANSFER_LEDGER_READ_ONLY"):
        Settings.from_env()
