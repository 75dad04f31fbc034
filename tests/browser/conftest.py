"""Fixtures for real-browser tests: JupyterLab in a subprocess, headless Debian chromium.

The API a test uses:

- `notebook(name="t.ipynb", kernel="python3", sources=("",))` → a `NotebookPage` whose
  notebook was written through the contents API and is open in JupyterLab with its kernel
  Idle (`kernel="agentspace"` for the "Agent (Python)" kernel); `.run_cell(src)` returns the
  cell's output area, `.page` is the Playwright `Page`.
- `page`: a Playwright page logged in to the server (token cookie set); a screenshot of it is
  kept in `test-artifacts/browser/<test>.png` after every test, passed or failed.
- `lab_server`: the `LabServer` (one per test session: `.url`, `.token`, `.root`, `.api()`).

Playwright's sync API runs its own event loop, which makes pytest-asyncio's fail for the
async tests after it: this folder runs in a pytest call of its own, with `-p no:asyncio`
(`make browser`, part of `make test`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from .lab import CHROMIUM, CHROMIUM_ARGS, LabServer, NotebookPage

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts" / "browser"
# A kernel answers in well under a second here; the default 5 s is tight on a loaded CI machine.
expect.set_options(timeout=20_000)


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.has_plugin("asyncio"):
        raise pytest.UsageError(
            "The browser tests use Playwright's own event loop, which trips pytest-asyncio's: "
            "run them with `pytest -p no:asyncio tests/browser` (make browser does)."
        )


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    server = LabServer(tmp_path_factory.mktemp("lab"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        raise pytest.UsageError(f"{CHROMIUM} is missing: scripts/setup.sh installs it (as root).")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, lab_server: LabServer, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(30_000)
    # The token in a URL logs the browser in: the server answers with its login cookie.
    page.goto(f"{lab_server.url}/api/status?token={lab_server.token}")
    try:
        yield page
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.name)
        try:
            page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
        finally:
            context.close()


@pytest.fixture
def notebook(page: Page, lab_server: LabServer) -> Callable[..., NotebookPage]:
    def open_notebook(
        name: str = "t.ipynb", kernel: str = "python3", sources: tuple[str, ...] = ("",)
    ) -> NotebookPage:
        lab_server.create_notebook(name, kernel, sources)
        return NotebookPage(page, lab_server, name).open()

    return open_notebook
