"""With jupyter-collaboration installed (real-time mode: the document lives in the server's
shared model), the agent's edit goes through the open document and every collaborator's view
shows it without a reload. jupyter-collaboration is not a dependency: scripts/setup.sh installs
it into a folder of its own, which only this server has on its path."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from .lab import LabServer, NotebookPage
from .test_labextension import probe

COLLAB = Path(sys.prefix) / "opt/jupyter-collaboration"  # the venv's (scripts/setup.sh)


@pytest.fixture(scope="module")
def rtc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    if not (COLLAB / ".installed").exists():
        raise pytest.UsageError(f"{COLLAB} is missing: scripts/setup.sh installs it.")
    server = LabServer(tmp_path_factory.mktemp("rtc"), prefixes=(COLLAB,))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_an_edit_in_real_time_mode_reaches_every_collaborator(
    browser: Browser, rtc_server: LabServer
) -> None:
    rtc_server.create_notebook("shared.ipynb", sources=("a = 1", "b = 2"))
    pages = []
    for _ in range(2):
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(f"{rtc_server.url}/api/status?token={rtc_server.token}")
        pages.append(NotebookPage(page, rtc_server, "shared.ipynb").open())
    try:
        expect(
            pages[0].page.locator("#jp-collaboration-panel, .jp-collaboration")
        ).not_to_have_count(0)
        deadline = time.monotonic() + 30
        while len(rtc_server.api("GET", "/agentspace/api/notebooks/links")[1]["links"]) < 2:
            assert time.monotonic() < deadline, rtc_server.tail()
            time.sleep(0.1)
        code, read = probe(rtc_server, "shared.ipynb", "read")
        assert code == 200 and read["result"]["origin"] == "browser", read
        code, _ = probe(rtc_server, "shared.ipynb", "set_source", cell_id="cell-1",
                        expect="b = 2", source="b = 20")  # fmt: skip
        assert code == 200
        for nb in pages:  # the linked one applied it; the shared model carried it to the other
            expect(nb.cells.nth(1).locator(".cm-content")).to_have_text("b = 20")
        code, stale = probe(rtc_server, "shared.ipynb", "set_source", cell_id="cell-1",
                            expect="b = 2", source="b = 3")  # fmt: skip
        assert stale["reason"] == "conflict"
    finally:
        for nb in pages:
            nb.page.context.close()


def test_the_agent_chat_says_it_needs_the_websocket_mode(rtc_server: LabServer) -> None:
    """Under jupyter-collaboration jupyterlab-chat keeps chats as shared documents (YChat),
    which the bridge does not mirror: opening the chat says so instead of a silent chat."""
    rtc_server.create_notebook("rtc-chat.ipynb")
    code, _ = rtc_server.api("POST", "/agentspace/api/chats", {"notebook": "rtc-chat.ipynb"})
    assert code == 501
