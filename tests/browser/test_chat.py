"""The notebook's agent chat (jupyterlab-chat) in real Chromium, JupyterLab and Notebook 7.

The chat is the notebook's session: a prompt typed there streams its answer there, tool calls
are cards (our labextension's renderer) decided by click, and the kernel's %%agent turns show
there as they stream. Screenshots go to test-artifacts/browser/ (the page fixture's, and
chat_*.png of the moments worth seeing).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from .chat import ChatPanel, open_chat, script, turn
from .lab import LabServer, NotebookPage

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts" / "browser"
WORDS = [f"w{i:02d}" for i in range(40)]


def use_model(server: LabServer, notebook: str, model: str) -> str:
    code, body = server.api("POST", "/agentspace/api/sessions", {"notebook": notebook, "model": model})
    assert code == 200, (code, server.tail())
    return str(body["id"])


def texts_while(page: Page, chat: ChatPanel, until: str, timeout: float = 30) -> list[str]:
    """The distinct texts of the agent's message with the words, polled until it has ``until``."""
    seen: list[str] = []
    message = chat.messages.filter(has_text=WORDS[0]).first
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = message.inner_text() if message.count() else ""
        if not seen or text != seen[-1]:
            seen.append(text)
        if until in text:
            return seen
        page.wait_for_timeout(20)  # a polling interval, not a synchronisation
    raise AssertionError(f"the chat never showed {until!r}; last texts {seen[-3:]}")


@pytest.mark.parametrize("frontend", ["lab", "notebook7"])
def test_a_prompt_in_the_chat_streams_and_its_card_is_approved_by_click(
    frontend: str, page: Page, lab_server: LabServer
) -> None:
    name = f"chat-{frontend}.ipynb"
    lab_server.create_notebook(name)
    model = script(
        lab_server.root,
        f"chat-{frontend}",
        turn(" ".join(WORDS), ("write_file", {"path": "hello.txt", "content": "hi\n"}), delay_ms=40),
        turn("The file is written."),
    )
    use_model(lab_server, name, model)
    if frontend == "lab":
        NotebookPage(page, lab_server, name).open()
    else:
        page.goto(f"{lab_server.url}/notebooks/{name}")
        expect(page.locator(".jp-NotebookPanel")).to_be_visible(timeout=60_000)
    chat = open_chat(page)
    chat.send("write hello.txt")
    expect(chat.messages.filter(has_text="write hello.txt")).to_have_count(1)
    seen = texts_while(page, chat, WORDS[-1])
    partial = [t for t in seen if WORDS[0] in t and WORDS[-1] not in t]
    assert len(partial) >= 3, f"expected the words to stream in, saw {seen}"
    card = chat.cards("pending")
    expect(card).to_have_count(1)
    expect(card).to_contain_text("write_file")
    expect(card).to_contain_text("+hi")  # the diff of the file it would write
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"chat_{frontend}_pending.png"))
    card.locator(".jp-agentspace-card-approve").click()
    done = chat.cards("done")
    expect(done).to_have_count(1)
    expect(done.locator(".jp-agentspace-card-decision")).to_contain_text("approved by")
    expect(done.locator(".jp-agentspace-card-approve")).to_have_count(0)
    expect(chat.messages.filter(has_text="The file is written.")).to_have_count(1)
    code, body = lab_server.api("GET", "/api/contents/agent-chats")
    assert code == 200 and any(f["name"] == f"chat-{frontend}.chat" for f in body["content"])
