"""The live view as ipywidgets: streamed markdown, tool-call cards with approval controls, Stop.

Plain ipywidgets (no front-end code of ours), so it works wherever widgets do:
JupyterLab, Notebook 7, VS Code. Buttons call back into the kernel; ipykernel
(7.4+) dispatches widget messages while an async cell runs, which is why
``%%agent`` cells run as coroutines: Stop works mid-run. Model text is
rendered to HTML by markdown-it with raw HTML off (``render.markdown_html``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from agentspace_kernel.view.render import (
    STATUS_STYLE,
    always_label,
    escape,
    footer_html,
    head_arguments,
    markdown_html,
    preview_html,
    settled,
    status_line,
)
from agentspace_kernel.view.state import RunView, TextBlock, ToolBlock

Decide = Callable[[str, dict[str, Any]], None]

CSS_CARD = w.Layout(border="1px solid #d0d7de", padding="4px 8px", margin="4px 0")


class ToolCard(w.VBox):
    """One tool call: name and arguments, what it would change (a diff, while it waits and
    its tool has a preview), status or result, and controls while it waits."""

    def __init__(self, block: ToolBlock, decide: Decide, below: bool = True) -> None:
        self.call_id = block.id
        self.decide = decide
        self.head = w.HTML()
        self.diff = w.HTML()
        self.status = w.HTML()
        self.reason = w.Text(
            placeholder="reason (shown to the agent)", layout=w.Layout(width="40%")
        )
        self.editor = w.Textarea(layout=w.Layout(width="100%", height="8em", display="none"))
        self.error = w.HTML()
        buttons = [
            self._button("Approve", "success", self._approve),
            self._button("Reject", "danger", self._reject),
            self._button("Edit", "", self._edit),
            self._button("Always allow", "", self._always),
        ]
        self.buttons = buttons
        self.controls = w.VBox([w.HBox([*buttons, self.reason]), self.editor, self.error])
        super().__init__(list(self._parts()), layout=CSS_CARD)
        self.add_class("agentspace-tool")
        self.refresh(block, below)

    def _button(self, label: str, style: str, handler: Callable[[], None]) -> w.Button:
        button = w.Button(description=label, button_style=style, layout=w.Layout(width="auto"))
        button.on_click(lambda _b: handler())
        return button

    def refresh(self, block: ToolBlock, below: bool = True) -> None:
        arguments = escape(head_arguments(block))
        self.head.value = f"<b>{escape(block.name)}</b> <code>{arguments}</code>"
        self.diff.value = preview_html(block)
        line = escape(status_line(block, below))
        self.status.value = f"<pre style='{STATUS_STYLE}'>{line}</pre>"
        waiting = block.status == "awaiting_approval" or (
            block.status == "waiting_kernel" and block.name == "run_cell"
        )
        shown: tuple[w.Widget, ...] = tuple(self.children)  # type: ignore[has-type]
        if waiting and self.controls not in shown:
            self.editor.value = json.dumps(block.parsed_arguments, indent=2, ensure_ascii=False)
            self.children = self._parts(self.controls)
            kernel = block.kernel_tool
            self.buttons[0].description = "Run" if kernel else "Approve"
            self.buttons[3].description = always_label(block)
            for b in self.buttons[2:]:
                b.layout.display = "none" if kernel else None
        elif not waiting and self.controls in shown:
            self.children = self._parts()

    def _parts(self, *extra: w.Widget) -> tuple[w.Widget, ...]:
        return (self.head, self.diff, self.status, *extra)

    # -- controls -------------------------------------------------------------
    def _submit(self, decision: dict[str, Any]) -> None:
        for b in self.buttons:
            b.disabled = True
        self.decide(self.call_id, decision)

    def failed(self, message: str, settled: bool = False) -> None:
        """A decision was refused: say so; re-enable unless another decision already won."""
        self.error.value = f"<span style='color:#b00'>{escape(message)}</span>"
        for b in self.buttons:
            b.disabled = settled

    def _approve(self) -> None:
        if self.editor.layout.display != "none":
            self._edited()
            return
        self._submit({"decision": "approve"})

    def _edited(self) -> None:
        try:
            arguments = json.loads(self.editor.value)
        except ValueError as exc:
            self.failed(f"The edited arguments are not JSON: {exc}")
            return
        self._submit({"decision": "edit", "arguments": arguments})

    def _reject(self) -> None:
        self._submit({"decision": "reject", "reason": self.reason.value.strip() or None})

    def _edit(self) -> None:
        self.editor.layout.display = None
        self.buttons[0].description = "Approve edited"

    def _always(self) -> None:
        self._submit({"decision": "approve", "remember": True})


class TextPart(w.VBox):
    """Streamed markdown as two HTML widgets: the settled paragraphs, drawn once each time
    a paragraph completes, and the open one, redrawn per update. A long answer then costs
    a redraw of its last paragraph per token, not of the whole text."""

    def __init__(self) -> None:
        # (not "open"/"close": ipywidgets' Widget has methods by those names)
        self.settled_html, self.tail_html, self.cut = w.HTML(), w.HTML(), 0
        super().__init__([self.settled_html, self.tail_html])

    def show(self, text: str) -> None:
        cut = settled(text)
        if cut != self.cut:
            self.cut = cut
            self.settled_html.value = markdown_html(text[:cut])
        self.tail_html.value = markdown_html(text[cut:])


class RunWidget(w.VBox):
    """The whole view: blocks in order, then a footer with usage, previews and Stop."""

    def __init__(self, decide: Decide, stop: Callable[[], None]) -> None:
        self.decide = decide
        self.body = w.VBox()
        self.footer = w.HTML()
        self.stop_button = w.Button(description="Stop", icon="stop", layout=w.Layout(width="auto"))
        self.stop_button.on_click(lambda _b: stop())
        self.parts: dict[str, w.Widget] = {}
        super().__init__([self.body, w.HBox([self.stop_button, self.footer])])
        self.add_class("agentspace-view")

    def update(self, view: RunView, changed: list[int]) -> None:
        added = False
        for i in sorted(set(changed)):
            if i < 0:
                continue
            block = view.blocks[i]
            part = self.parts.get(block.id)
            if isinstance(block, TextBlock):
                if part is None:
                    part = self.parts[block.id] = TextPart()
                    added = True
                assert isinstance(part, TextPart)
                part.show(block.text)
            else:
                below = view.cell_below(block)
                if part is None:
                    part = self.parts[block.id] = ToolCard(block, self.decide, below)
                    added = True
                else:
                    assert isinstance(part, ToolCard)
                    part.refresh(block, below)
        if added:
            self.body.children = tuple(self.parts[b.id] for b in view.blocks if b.id in self.parts)
        links = " ".join(
            f"<a href='{escape(url)}' target='_blank' rel='noopener'>preview :{port}</a>"
            for port, url in sorted(view.previews.items())
            if url
        )
        processes = " ".join(
            f"<code>{escape(name)}</code> {escape(status)}"
            for name, status in sorted(view.processes.items())
        )
        self.footer.value = f"{footer_html(view)} {processes} {links}"
        self.stop_button.layout.display = "none" if view.ended else None

    def card(self, call_id: str) -> ToolCard | None:
        part = self.parts.get(call_id)
        return part if isinstance(part, ToolCard) else None
