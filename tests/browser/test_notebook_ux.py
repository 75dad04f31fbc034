"""The notebook as a new user finds it, in a real browser: JupyterLab's Run All on the shipped
approvals tutorial, and Notebook 7 on the same server.

A user who runs approvals.ipynb with Run All, saves, and runs it again with Restart & Run All
must see the `rm data.csv` it rejects rejected both times: the `%reject call_2_0` cell in the
notebook holds that call, so the kernel inserts no `%%approve call_2_0` cell above it.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from .lab import LabServer, NotebookPage

NOTEBOOKS = Path(__file__).parents[2] / "notebooks"
WORDS = [f"word{i}" for i in range(40)]


def menu(page: Page, top: str, item: str) -> None:
    """Click a JupyterLab menu bar entry, then one of its items."""
    page.locator(".lm-MenuBar-itemLabel", has_text=top).first.click()
    page.locator(".lm-Menu-itemLabel", has_text=item).first.click()


def saved_cells(server: LabServer, name: str) -> list[dict[str, Any]]:
    return list(json.loads((server.root / name).read_text())["cells"])


def wait_saved(server: LabServer, name: str, text: str, timeout: float = 60) -> None:
    """Poll the file on disk until its last code cell's output contains ``text``."""
    deadline = time.monotonic() + timeout
    while True:
        code = [c for c in saved_cells(server, name) if c["cell_type"] == "code"]
        outputs = json.dumps(code[-1].get("outputs", []), ensure_ascii=False)
        if text in outputs:
            return
        assert time.monotonic() < deadline, f"{name} was not saved with {text!r}"
        time.sleep(0.1)  # a polling interval on the file, not a synchronisation


def workspace_files(server: LabServer, notebook: str) -> list[str]:
    code, body = server.api("GET", "/agentspace/api/sessions")
    assert code == 200, body
    (session,) = [s for s in body["sessions"] if s["notebook"] == notebook]
    code, listing = server.api("GET", f"/agentspace/api/sessions/{session['id']}/files")
    assert code == 200, listing
    return [e["path"] for e in listing["entries"]]


def test_approvals_run_all_save_then_restart_and_run_all_never_runs_the_rm(
    page: Page, lab_server: LabServer
) -> None:
    for name in ("approvals.ipynb", "approvals.json"):
        shutil.copy(NOTEBOOKS / name, lab_server.root / name)
    nb = NotebookPage(page, lab_server, "approvals.ipynb").open()
    last = nb.panel.locator(".jp-Notebook .jp-CodeCell").last.locator(".jp-OutputArea")

    menu(page, "Run", "Run All Cells")
    expect(last).to_contain_text("already decided", timeout=90_000)
    nb.cells.first.click()
    page.keyboard.press("Control+s")
    wait_saved(lab_server, "approvals.ipynb", "already decided")
    sources = ["".join(c["source"]) for c in saved_cells(lab_server, "approvals.ipynb")]
    assert not [s for s in sources if s.startswith("%%approve call_2_0")], "a second cell"
    assert nb.cells.filter(has_text="%%approve call_2_0").count() == 0, "a second cell"
    assert "data.csv" in workspace_files(lab_server, "approvals.ipynb")

    menu(page, "Edit", "Clear Outputs of All Cells")  # what shows next is the new run's
    expect(last).to_have_text("")
    menu(page, "Kernel", "Restart Kernel and Run All Cells")
    page.locator(".jp-Dialog .jp-mod-accept").click()
    expect(last).to_contain_text("already decided", timeout=90_000)
    reject = nb.cells.filter(has_text="%reject call_2_0 keep the file").locator(".jp-OutputArea")
    expect(reject).to_contain_text("rejected: keep the file, please")
    assert "data.csv" in workspace_files(lab_server, "approvals.ipynb"), "the rm ran"
    assert nb.cells.filter(has_text="%%approve call_2_0").count() == 0


def test_notebook_7_serves_tree_and_runs_an_agent_cell_with_an_approval(
    page: Page, lab_server: LabServer, notebook: Callable[..., NotebookPage]
) -> None:
    page.goto(f"{lab_server.url}/tree")  # README promises it: a 404 without `notebook`
    expect(page.locator("#main-panel, .jp-FileBrowser").first).to_be_visible(timeout=60_000)
    script = lab_server.root / "nb7_script.json"
    script.write_text(json.dumps({"turns": [
        {"text": " ".join(WORDS), "delay_ms": 60, "tool_calls": [
            {"name": "write_file", "arguments": {"path": "seven.txt", "content": "7"}}]},
        {"text": "Written from Notebook 7."},
    ]}))  # fmt: skip
    lab_server.create_notebook("seven.ipynb", "python3", ("%load_ext agentspace", ""))
    page.goto(f"{lab_server.url}/notebooks/seven.ipynb")
    cells = page.locator(".jp-Notebook .jp-Cell")

    def run(index: int, source: str) -> Any:
        editor = cells.nth(index).locator(".jp-InputArea-editor .cm-content")
        editor.click()
        editor.fill(source)
        page.keyboard.press("Shift+Enter")
        return cells.nth(index).locator(".jp-OutputArea")

    first = cells.nth(0)
    expect(first.locator(".cm-content")).to_have_text("%load_ext agentspace", timeout=60_000)
    # Notebook 7's toolbar: the kernel's execution indicator, idle once the kernel is up
    idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    expect(idle).to_be_visible(timeout=60_000)
    run(0, "%load_ext agentspace")
    expect(first.locator(".jp-InputPrompt")).to_have_text("[1]:", timeout=60_000)
    out = run(1, f"%%agent --new --model scripted//{script}\nwrite the file")
    view = out.locator(".agentspace-view")
    expect(view).to_be_visible(timeout=60_000)
    seen: list[int] = []  # how many words were shown, each time it changed
    deadline = time.monotonic() + 30
    while (not seen or seen[-1] < len(WORDS)) and time.monotonic() < deadline:
        count = sum(1 for w in WORDS if w in view.inner_text())
        if not seen or count != seen[-1]:
            seen.append(count)
        page.wait_for_timeout(20)  # a polling interval, not a synchronisation
    assert seen[-1] == len(WORDS), seen
    assert len([c for c in seen if 0 < c < len(WORDS)]) >= 2, f"no streaming seen: {seen}"
    approve = view.get_by_role("button", name="Approve", exact=True)
    expect(approve).to_be_visible(timeout=60_000)
    approve.click()
    expect(view).to_contain_text("Wrote 1 bytes to seven.txt", timeout=60_000)
    expect(view).to_contain_text("Written from Notebook 7.")


def test_a_pending_approval_after_a_server_restart_shows_instructions_not_an_error(
    page: Page, tmp_path: Path
) -> None:
    server = LabServer(tmp_path)
    server.start()
    try:
        script = server.root / "restart_script.json"
        script.write_text(json.dumps({"turns": [
            {"text": "Writing.", "tool_calls": [
                {"name": "write_file", "arguments": {"path": "kept.txt", "content": "kept"}}]},
            {"text": "Written after the restart."},
        ]}))  # fmt: skip
        server.create_notebook("restart.ipynb", "python3", ("%load_ext agentspace", ""))
        page.goto(f"{server.url}/api/status?token={server.token}")
        nb = NotebookPage(page, server, "restart.ipynb").open()
        nb.run_cell("%load_ext agentspace", 0)
        nb.wait_idle()
        out = nb.run_cell(f"%%agent --new --model scripted//{script}\nwrite it", 1)
        expect(out.get_by_role("button", name="Approve", exact=True)).to_be_visible()
        fallback = out.locator(".agentspace-fallback")
        expect(fallback).to_be_hidden()  # the live widget shows the instructions itself
        nb.wait_idle()
        page.keyboard.press("Escape")
        page.keyboard.press("Control+s")
        deadline = time.monotonic() + 60
        while "agentspace-fallback" not in (server.root / "restart.ipynb").read_text():
            assert time.monotonic() < deadline, "the notebook was not saved"
            time.sleep(0.1)  # a polling interval on the file, not a synchronisation
        server.stop()
        server.start()  # same port, token and state: the session and its pending call remain
        nb.open()
        out = nb.cells.nth(1).locator(".jp-OutputArea")
        expect(out.locator(".agentspace-fallback")).to_be_visible()
        expect(out).to_contain_text("%load_ext agentspace")
        expect(out).to_contain_text("%%approve call_0_0")
        expect(out.get_by_text("Error displaying widget")).to_be_hidden()
        # the instructions work: load the extension, run the approval cell
        nb.run_cell("%load_ext agentspace", 0)
        nb.wait_idle()
        approved = nb.run_cell("%%approve call_0_0", 2)
        expect(approved).to_contain_text("Written after the restart.", timeout=60_000)
    finally:
        server.stop()
