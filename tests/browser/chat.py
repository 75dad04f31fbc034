"""The agent chat in a page: open it from the notebook, type in it, read its messages and cards.

jupyterlab-chat's own DOM (0.25): the side panel's chat widget, its input (a textarea in
``.jp-chat-input-container``), each message's rendered body (``.jp-chat-rendered-message``);
our cards are ``.jp-agentspace-card`` with ``data-status``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page, expect


def script(root: Path, name: str, *turns: dict[str, Any]) -> str:
    """A scripted model in the server's root; its model string."""
    path = root / f"{name}.json"
    path.write_text(json.dumps({"turns": list(turns)}))
    return f"scripted/{path}"


def turn(text: str = "", *calls: tuple[str, dict[str, Any]], delay_ms: int = 5) -> dict[str, Any]:
    return {
        "text": text,
        "delay_ms": delay_ms,
        "tool_calls": [{"name": n, "arguments": a} for n, a in calls],
    }


class ChatPanel:
    """The notebook's agent chat, as open in the page's side panel (or main area)."""

    def __init__(self, page: Page) -> None:
        self.page = page

    @property
    def widget(self) -> Locator:
        return self.page.locator(".jp-chat-widget:visible").last

    @property
    def messages(self) -> Locator:
        return self.widget.locator(".jp-chat-rendered-message")

    def cards(self, status: str | None = None) -> Locator:
        found = self.widget.locator(".jp-agentspace-card")
        return found.and_(self.page.locator(f'[data-status="{status}"]')) if status else found

    def send(self, text: str) -> None:
        box = self.widget.locator(".jp-chat-input-container textarea").first
        box.click()
        box.fill(text)
        box.press("Enter")
        expect(box).to_have_value("")


def open_chat(page: Page) -> ChatPanel:
    """Click the notebook toolbar's "Open agent chat" button; the chat's input shows."""
    page.locator(".jp-NotebookPanel:visible .jp-agentspace-open-chat, "
                 ".jp-agentspace-open-chat:visible").first.click()  # fmt: skip
    chat = ChatPanel(page)
    expect(chat.widget.locator(".jp-chat-input-container")).to_be_visible(timeout=30_000)
    return chat
