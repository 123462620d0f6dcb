"""eventsourcing's own contract for application recorders, run on the ledger's recorder.

``ApplicationRecorderTestCase`` is the test case eventsourcing runs on its own
SQLite and PostgreSQL recorders; here it runs on the ledger's recorder of the
suite's backend (the one that appends a leaf, its nodes and the head with
every event, in the same transaction), through the infrastructure factory the
ledger configures, so that the ledger's recorder is still a recorder
eventsourcing's applications can rely on.
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from pathlib import Path

from eventsourcing.persistence import ApplicationRecorder, InfrastructureFactory
from eventsourcing.tests.persistence import ApplicationRecorderTestCase

from ledger.config import eventsourcing_env
from tests.support.backends import BACKEND, fresh_backend


class TestLedgerRecorder(ApplicationRecorderTestCase[ApplicationRecorder]):
    def setUp(self) -> None:
        super().setUp()
        self._stack = ExitStack()
        self._factories: list[InfrastructureFactory] = []

    def tearDown(self) -> None:
        # The factories are not closed: eventsourcing's concurrency tests may leave a reader
        # thread running on a connection, and closing it under that thread crashes sqlite3.
        # Their connections go with the test's process.
        self._stack.close()
        super().tearDown()

    def create_recorder(self) -> ApplicationRecorder:
        root = Path(self._stack.enter_context(tempfile.TemporaryDirectory()))
        backend = self._stack.enter_context(fresh_backend(root / "data"))
        factory = InfrastructureFactory.construct(eventsourcing_env(backend.settings) | {"CREATE_TABLE": "y"})
        self._factories.append(factory)
        recorder = factory.application_recorder()
        assert type(recorder).__name__ == {"sqlite": "SQLiteLedgerRecorder",
                                           "postgresql": "PostgresLedgerRecorder"}[BACKEND]
        return recorder
