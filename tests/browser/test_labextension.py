"""The labextension jupyter-agentspace in a real browser: installed, linking open notebooks
(JupyterLab and Notebook 7) to the server, and "Fix with agent" on a cell's error."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, expect

from .lab import LabServer, NotebookPage

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def links(server: LabServer) -> list[dict[str, Any]]:
    code, body = server.api("GET", "/agentspace/api/notebooks/links")
    assert code == 200, (code, server.tail())
    return list(body["links"])


def wait_linked(server: LabServer, path: str, client: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(link["path"] == path and link["client"] == client for link in links(server)):
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} was not linked by {client}: {links(server)}\n{server.tail()}")


def test_jupyter_labextension_list_shows_it_enabled(lab_server: LabServer) -> None:
    argv = [sys.executable, "-m", "jupyterlab.labextensions", "list"]
    out = subprocess.run(argv, env=lab_server.env, capture_output=True, text=True, timeout=60)
    text = ANSI.sub("", out.stdout + out.stderr)
    assert re.search(r"jupyter-agentspace v\S+ enabled OK", text), text


def test_a_notebook_open_in_jupyterlab_is_linked(
    notebook: Callable[..., NotebookPage], lab_server: LabServer
) -> None:
    nb = notebook("linked.ipynb")
    wait_linked(lab_server, "linked.ipynb", "jupyterlab")
    nb.page.goto(f"{lab_server.url}/lab/tree?reset")  # the panel closes with the page: unlinked
    deadline = time.monotonic() + 30
    while any(link["path"] == "linked.ipynb" for link in links(lab_server)):
        assert time.monotonic() < deadline, links(lab_server)
        time.sleep(0.1)


def test_a_notebook_open_in_notebook_7_is_linked(page: Page, lab_server: LabServer) -> None:
    lab_server.create_notebook("nb7.ipynb")
    page.goto(f"{lab_server.url}/notebooks/nb7.ipynb")
    wait_linked(lab_server, "nb7.ipynb", "notebook")


def test_fix_with_agent_inserts_and_runs_the_fix_below_an_error(
    notebook: Callable[..., NotebookPage],
) -> None:
    nb = notebook("fix.ipynb", sources=("1/0", "print('fine')"))
    expect(nb.run_cell("1/0", index=0)).to_contain_text("ZeroDivisionError")
    fine = nb.run_cell("print('fine')", index=1)
    expect(fine).to_have_text("fine")
    menu = nb.page.locator(".lm-Menu")

    fine.click(button="right")  # no error here: the item is there but disabled
    item = menu.locator(".lm-Menu-item", has_text="Fix with agent")
    expect(item).to_have_class(re.compile(r"lm-mod-disabled"))
    nb.page.keyboard.press("Escape")

    nb.cells.nth(0).locator(".jp-OutputArea").click(button="right")
    expect(item).not_to_have_class(re.compile(r"lm-mod-disabled"))
    item.click()
    fix = nb.cells.nth(1)
    expect(fix.locator(".jp-InputArea-editor .cm-content")).to_have_text("%agent fix cell-0")
    expect(fix.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]:"))  # it ran
    expect(nb.cells).to_have_count(4)  # Shift+Enter on the last cell appended an empty one
    expect(nb.cells.nth(2).locator(".jp-InputArea-editor .cm-content")).to_have_text(
        "print('fine')"
    )


def probe(server: LabServer, path: str, op: str, **args: Any) -> tuple[int, Any]:
    """A port call made in the server, as the engine's notebook tools make it (linkprobe.py)."""
    return server.api("POST", "/agentspace-test/notebook", {"path": path, "op": op, **args})


def test_the_server_reads_and_edits_the_open_notebook_live(
    notebook: Callable[..., NotebookPage], lab_server: LabServer
) -> None:
    nb = notebook("live.ipynb", sources=("a = 1", "b = 2"))
    wait_linked(lab_server, "live.ipynb", "jupyterlab")
    editor = nb.cells.nth(0).locator(".jp-InputArea-editor .cm-content")
    editor.click()
    nb.page.keyboard.type("  # typed")  # unsaved: the read sees it, the file does not
    code, read = probe(lab_server, "live.ipynb", "read")
    assert code == 200 and read["port"] == "LinkedNotebook", read
    doc = read["result"]
    assert doc["origin"] == "browser" and doc["dirty"] is True
    assert [(c["id"], c["source"]) for c in doc["cells"]] == [
        ("cell-0", "a = 1  # typed"),
        ("cell-1", "b = 2"),
    ]

    code, _ = probe(lab_server, "live.ipynb", "set_source", cell_id="cell-1", expect="b = 2",
                    source="b = 20")  # fmt: skip
    assert code == 200
    expect(nb.cells.nth(1).locator(".cm-content")).to_have_text("b = 20")
    cell = {"id": "agent-1", "cell_type": "markdown", "source": "# from the agent"}
    code, inserted = probe(lab_server, "live.ipynb", "insert", after="cell-0", cell=cell)
    assert code == 200 and inserted["result"] == 1
    expect(nb.cells).to_have_count(3)
    code, stale = probe(lab_server, "live.ipynb", "delete", cell_id="cell-0", expect="a = 1")
    assert (
        stale["error"] == "notebook_conflict" and stale["reason"] == "conflict"
    )  # the user's typing is not lost
    code, _ = probe(lab_server, "live.ipynb", "delete", cell_id="cell-0", expect="a = 1  # typed")
    assert code == 200
    expect(nb.cells).to_have_count(2)
    code, missing = probe(lab_server, "live.ipynb", "set_source", cell_id="nope", expect="",
                          source="x")  # fmt: skip
    assert missing["error"] == "notebook_conflict" and missing["reason"] == "missing"
    doc = probe(lab_server, "live.ipynb", "read")[1]["result"]
    assert [c["id"] for c in doc["cells"]] == ["agent-1", "cell-1"]


def test_a_link_comes_back_after_the_server_restarts(browser: Browser, tmp_path: Path) -> None:
    server = LabServer(tmp_path)
    server.start()
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        page.goto(f"{server.url}/api/status?token={server.token}")
        server.create_notebook("relink.ipynb", sources=("x = 1",))
        NotebookPage(page, server, "relink.ipynb").open()
        wait_linked(server, "relink.ipynb", "jupyterlab")
        server.stop()
        server.start()  # same port and token: the page's socket closed, it reconnects
        wait_linked(server, "relink.ipynb", "jupyterlab", timeout=60)
        code, read = probe(server, "relink.ipynb", "read")
        assert code == 200 and read["result"]["cells"][0]["source"] == "x = 1", read
    finally:
        context.close()
        server.stop()
