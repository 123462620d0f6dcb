"""Fixtures for the read models: a runner on the suite's backend, a rich ledger,
table dumps to compare, and events written around the application."""

from __future__ import annotations

import pytest

from ledger.service.application import TransferLedger
from projections.runner import ProjectionRunner
from tests.support.api import api  # noqa: F401 - a fixture of these tests
from tests.support.world import make_runner


@pytest.fixture
def runner(ledger: TransferLedger) -> ProjectionRunner:
    return make_runner(ledger)








