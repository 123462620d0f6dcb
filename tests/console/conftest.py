"""The console in a real browser: Debian's Chromium driven by Playwright, against a real
``transfer-ledger serve`` on loopback, its data seeded through the HTTP API.

Skipped when no Chromium is installed (``apt-get install -y chromium``), unless
``TRANSFER_LEDGER_REQUIRE_BROWSER=1`` (``.ci/run`` sets it: there a missing browser fails).
Playwright's own browser download is not used: the browser is the one ``chromium`` on PATH.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.console import CHROMIUM, REQUIRED, Console, served


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium, for one module's tests. Not longer: while Playwright's synchronous API runs, the
    main thread has a running event loop, and tests of other modules calling asyncio.run would fail."""
    if CHROMIUM is None:
        if REQUIRED:
            pytest.fail("TRANSFER_LEDGER_REQUIRE_BROWSER=1 but no chromium is on PATH")
        pytest.skip("no chromium on PATH (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Console]:
    yield from served(tmp_path_factory.mktemp("console"))


@pytest.fixture
def own_console(tmp_path: Path, browser: Any) -> Iterator[Console]:
    """A console of its own, for a test that alters the ledger."""
    yield from served(tmp_path)


