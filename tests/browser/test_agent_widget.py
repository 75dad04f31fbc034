"""The %%agent widget in JupyterLab: text streams in token by token, Approve runs the call.

The kernel is started by the Jupyter server, so the magic runs in remote mode
and draws its ipywidgets view. Screenshots are kept in test-artifacts/browser/:
agent_widget_approval.png (the paused widget with its controls) and, from the page
fixture, the test's own (the finished run, shown as static HTML).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import expect

from .lab import NotebookPage

WORDS = [f"word{i}" for i in range(40)]
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts" / "browser"


def test_streaming_text_then_approve_in_the_widget(notebook: Callable[..., NotebookPage]) -> None:
    nb = notebook("widget.ipynb")
    script = nb.server.root / "widget_script.json"
    script.write_text(json.dumps({"turns": [
        {"text": " ".join(WORDS), "delay_ms": 60, "tool_calls": [
            {"name": "write_file", "arguments": {"path": "note.txt", "content": "approved!"}}]},
        {"text": "The note is written.", "delay_ms": 5},
    ]}))  # fmt: skip
    expect(nb.run_cell("%load_ext agentspace")).to_have_text("")
    nb.wait_idle()

    out = nb.run_cell(f"%%agent --new --model scripted//{script}\nwrite a note")
    view = out.locator(".agentspace-view")
    expect(view).to_be_visible()

    # token by token: the widget shows growing prefixes of the text before it is complete
    seen: list[int] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = view.inner_text()
        count = sum(1 for w in WORDS if w in text)
        if not seen or count != seen[-1]:
            seen.append(count)
        if count == len(WORDS):
            break
        nb.page.wait_for_timeout(20)  # a polling interval, not a synchronisation
    assert seen[-1] == len(WORDS), seen
    partial = [c for c in seen if 0 < c < len(WORDS)]
    assert len(partial) >= 3, f"expected several partial renderings, saw {seen}"

    card = view.locator(".agentspace-tool")
    approve = card.get_by_role("button", name="Approve", exact=True)
    expect(approve).to_be_visible()
    expect(card.get_by_role("button", name="Reject")).to_be_visible()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    nb.page.screenshot(path=str(ARTIFACTS / "agent_widget_approval.png"), full_page=True)
    approve.click()

    expect(card).to_contain_text("✓ Wrote 9 bytes to note.txt", timeout=30_000)
    expect(view).to_contain_text("The note is written.")
    expect(view).to_contain_text("[done]")


def test_a_prompt_cell_in_the_agent_kernel(notebook: Callable[..., NotebookPage]) -> None:
    """The Agent (Python) kernel: a plain cell is a prompt, answered in the widget."""
    nb = notebook("prompt.ipynb", kernel="agentspace")
    out = nb.run_cell("Hello from a prompt cell")
    expect(out.locator(".agentspace-view")).to_contain_text(
        "You said: Hello from a prompt cell", timeout=60_000
    )
    expect(out.locator(".agentspace-view")).to_contain_text("[done]")
