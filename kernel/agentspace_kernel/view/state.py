"""What a cell shows of a run, folded from AG-UI events: a pure state machine.

Kept apart from any rendering so the widget, the plain-text output and the
tests read the same state: text blocks, tool calls with their status and
result, approvals waiting, previews, usage, and how the run ended.
``apply`` returns the blocks that changed, so a renderer redraws only those.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

EDIT_NOTE = "Note: the user edited the arguments of this call"

ToolStatus = Literal[
    "streaming", "called", "awaiting_approval", "waiting_kernel", "done", "rejected", "error"
]
RunState = Literal["waiting", "running", "paused", "finished", "stopped", "failed", "moved"]


@dataclass
class TextBlock:
    id: str
    text: str = ""


@dataclass
class ToolBlock:
    id: str
    name: str
    arguments: str = ""
    status: ToolStatus = "streaming"
    result: str | None = None
    interrupt: dict[str, Any] | None = None  # the AG-UI Interrupt while it waits
    decision: dict[str, Any] | None = None
    decided_here: bool = False  # by this view (its buttons, or a cell of this notebook)

    @property
    def parsed_arguments(self) -> Any:
        try:
            return json.loads(self.arguments) if self.arguments else {}
        except ValueError:
            return self.arguments

    @property
    def kernel_tool(self) -> bool:
        return bool(self.interrupt and self.interrupt.get("reason") == "kernel_tool")

    @property
    def preview(self) -> str | None:
        """What the call would change (its interrupt's ``metadata.preview``), while it waits.

        Gone once it is decided with edited arguments: the diff was of the original ones.
        """
        if self.status not in ("awaiting_approval", "waiting_kernel"):
            return None
        if (self.decision or {}).get("decision") == "edit":
            return None
        value = ((self.interrupt or {}).get("metadata") or {}).get("preview")
        return value if isinstance(value, str) and value.strip() else None


Block = TextBlock | ToolBlock


@dataclass
class RunView:
    """The visible state of the runs one cell follows."""

    blocks: list[Block] = field(default_factory=list)
    state: RunState = "waiting"
    error: str | None = None
    queued: int | None = None  # position while the message waits behind other runs
    usage: dict[str, int] = field(default_factory=dict)
    spend: dict[str, Any] | None = None  # the session's usage totals, read when a run ends
    warnings: list[str] = field(default_factory=list)  # agentspace.warning messages, in order
    attached: str = ""  # what notebook context went with the prompt (agentspace.context)
    model: str = ""  # the session's model, read when a run ends (the footer names a demo one)
    previews: dict[int, str] = field(default_factory=dict)
    processes: dict[str, str] = field(default_factory=dict)  # name -> status
    last_seq: int = 0
    endings: int = 0  # runs seen to end or pause (a renderer prints one footer for each)
    kernel_here: bool = False  # a cell follows: it runs allowed kernel calls itself
    cells: bool = True  # a pause gets a cell inserted below (not when a click resumed the run)
    _index: dict[str, int] = field(default_factory=dict)

    # -- queries --------------------------------------------------------------
    def tool(self, tool_call_id: str) -> ToolBlock | None:
        i = self._index.get(tool_call_id)
        block = self.blocks[i] if i is not None else None
        return block if isinstance(block, ToolBlock) else None

    @property
    def pending(self) -> list[ToolBlock]:
        """Calls waiting for a person or the kernel, in order."""
        waiting = ("awaiting_approval", "waiting_kernel")
        return [b for b in self.blocks if isinstance(b, ToolBlock) and b.status in waiting]

    def answers(self, block: ToolBlock) -> bool:
        """Whether this view's cell runs ``block`` itself (an allowed @agent_tool call)."""
        meta = (block.interrupt or {}).get("metadata") or {}
        waiting = block.status == "waiting_kernel" and not meta.get("needs_approval")
        return self.kernel_here and waiting

    def cell_below(self, block: ToolBlock) -> bool:
        """Whether ``block`` gets its own cell below the one that ran: only the first call
        of a pause, only when a cell (not a click) resumed the run."""
        pending = self.pending
        return self.cells and bool(pending) and pending[0].id == block.id

    @property
    def needs_user(self) -> bool:
        """Whether something pending waits for a person (not for this cell)."""
        return any(not self.answers(b) for b in self.pending)

    @property
    def text(self) -> str:
        return "\n\n".join(b.text for b in self.blocks if isinstance(b, TextBlock) and b.text)

    @property
    def ended(self) -> bool:
        return self.state in ("paused", "finished", "stopped", "failed", "moved")

    def seed(self, tool_call_id: str, name: str, arguments: str) -> None:
        """Show a call made in an earlier run (a cell that decides it)."""
        self._add(ToolBlock(tool_call_id, name, arguments, status="called"))

    def seed_pending(self, calls: list[dict[str, Any]]) -> None:
        """Show calls a session lists as pending (``pending_calls``), paused on them."""
        for p in calls:
            block = ToolBlock(p["tool_call_id"], p["tool"], json.dumps(p.get("arguments", {})))
            meta = {"tool": p["tool"], "needs_approval": p.get("needs_approval", True)}
            if p.get("preview"):
                meta["preview"] = p["preview"]
            block.interrupt = {"id": block.id, "reason": p.get("reason"), "metadata": meta}
            kernel = p.get("reason") == "kernel_tool"
            block.status = "waiting_kernel" if kernel else "awaiting_approval"
            self._add(block)
        if calls:
            self.state = "paused"

    def moved(self) -> list[int]:
        """Every call here was decided elsewhere: the run continues in that view."""
        self.state = "moved"
        self.endings += 1
        return [-1]

    def stopped(self) -> list[int]:
        """The run was stopped from here (the kernel's interrupt) before its end arrived."""
        self.state = "stopped"
        self.endings += 1
        return [-1]

    # -- folding --------------------------------------------------------------
    def _add(self, block: Block) -> int:
        self._index[block.id] = len(self.blocks)
        self.blocks.append(block)
        return len(self.blocks) - 1

    def apply(self, event: dict[str, Any], seq: int = 0) -> list[int]:
        """Fold one event in; the indexes of blocks that changed (-1: the header/footer)."""
        self.last_seq = max(self.last_seq, seq)
        kind = event.get("type")
        handler = _HANDLERS.get(kind or "")
        return handler(self, event) if handler else []

    def _run_started(self, e: dict[str, Any]) -> list[int]:
        self.state, self.error, self.queued = "running", None, None
        return [-1]

    def _text_start(self, e: dict[str, Any]) -> list[int]:
        if e.get("role", "assistant") != "assistant":
            return []
        return [self._add(TextBlock(e["messageId"]))]

    def _text_content(self, e: dict[str, Any]) -> list[int]:
        i = self._index.get(e.get("messageId", ""))
        if i is None:
            return []
        block = self.blocks[i]
        assert isinstance(block, TextBlock)
        block.text += e.get("delta", "")
        return [i]

    def _tool_start(self, e: dict[str, Any]) -> list[int]:
        return [self._add(ToolBlock(e["toolCallId"], e.get("toolCallName", "?")))]

    def _tool_args(self, e: dict[str, Any]) -> list[int]:
        block = self.tool(e.get("toolCallId", ""))
        if block is None:
            return []
        block.arguments += e.get("delta", "")
        return [self._index[block.id]]

    def _tool_end(self, e: dict[str, Any]) -> list[int]:
        block = self.tool(e.get("toolCallId", ""))
        if block is None:
            return []
        block.status = "called"
        return [self._index[block.id]]

    def _tool_result(self, e: dict[str, Any]) -> list[int]:
        block = self.tool(e.get("toolCallId", ""))
        if block is None:
            return []
        result = str(e.get("content", ""))
        if result.startswith(EDIT_NOTE):  # the model is told; the card shows the new arguments
            result = result.split("\n", 1)[1] if "\n" in result else ""
        block.result = result
        rejected = block.decision is not None and block.decision.get("decision") == "reject"
        failed = block.result.startswith("Error:")
        block.status = "rejected" if rejected else "error" if failed else "done"
        block.interrupt = None
        return [self._index[block.id]]

    def _run_finished(self, e: dict[str, Any]) -> list[int]:
        outcome = e.get("outcome") or {"type": "success"}
        changed = [-1]
        self.endings += 1
        if outcome.get("type") == "interrupt":
            self.state = "paused"
            for interrupt in outcome.get("interrupts", []):
                block = self.tool(interrupt.get("toolCallId") or interrupt.get("id", ""))
                if block is None:  # the call was made in an earlier run: show it here too
                    meta = interrupt.get("metadata") or {}
                    call_id = interrupt.get("toolCallId") or interrupt.get("id", "")
                    args = json.dumps(meta.get("arguments", {}))
                    block = ToolBlock(call_id, str(meta.get("tool", "?")), args)
                    self._add(block)
                block.interrupt = interrupt
                kernel = interrupt.get("reason") == "kernel_tool"
                block.status = "waiting_kernel" if kernel else "awaiting_approval"
                changed.append(self._index[block.id])
        elif outcome.get("type") == "cancelled":
            self.state = "stopped"
        else:
            self.state = "finished"
        for usage in e.get("usage") or []:
            for key in ("inputTokens", "outputTokens"):
                self.usage[key] = self.usage.get(key, 0) + int(usage.get(key) or 0)
        return changed

    def _run_error(self, e: dict[str, Any]) -> list[int]:
        self.endings += 1
        self.state = "failed"
        self.error = str(e.get("message", "the run failed"))
        return [-1]

    def _custom(self, e: dict[str, Any]) -> list[int]:
        name, value = e.get("name"), e.get("value") or {}
        if name == "agentspace.decision":
            block = self.tool(value.get("tool_call_id", ""))
            if block is None:
                return []
            block.decision = value
            if value.get("decision") == "edit" and "arguments" in value:
                block.arguments = json.dumps(value["arguments"], ensure_ascii=False)
            if value.get("decision") == "reject":
                block.status = "rejected"
            elif block.status in ("awaiting_approval", "waiting_kernel"):
                block.status = "called"
            return [self._index[block.id]]
        if name == "agentspace.process" and "name" in value:
            self.processes[str(value["name"])] = str(value.get("status", ""))
            return [-1]
        if name == "agentspace.preview" and "port" in value:
            self.previews[int(value["port"])] = str(value.get("url", ""))
            return [-1]
        if name == "agentspace.warning" and value.get("message"):
            if value["message"] not in self.warnings:
                self.warnings.append(str(value["message"]))
            return [-1]
        if name == "agentspace.context":
            self.attached = attached_text(value)
            return [-1]
        if name == "agentspace.queued":
            self.queued = int(value.get("position", 0))
            return [-1]
        return []


def attached_text(summary: dict[str, Any]) -> str:
    """One line saying what notebook context went to the model with the prompt."""
    parts = []
    if summary.get("cell"):
        parts.append(f"cell {summary['cell']}")
    neighbours = len(summary.get("cells") or [])
    if neighbours:
        parts.append(f"{neighbours} neighbouring cell{'s' if neighbours > 1 else ''}")
    if summary.get("error"):
        error = summary["error"]
        parts.append("the last error" + (f" (cell {error})" if error != "kernel" else ""))
    if summary.get("redacted"):
        parts.append(f"{summary['redacted']} secret-looking values redacted")
    what = ", ".join(parts) or "the notebook's name"
    return f"notebook context attached: {what}"  # its size varies with paths in tracebacks


_HANDLERS = {
    "RUN_STARTED": RunView._run_started,
    "TEXT_MESSAGE_START": RunView._text_start,
    "TEXT_MESSAGE_CONTENT": RunView._text_content,
    "TOOL_CALL_START": RunView._tool_start,
    "TOOL_CALL_ARGS": RunView._tool_args,
    "TOOL_CALL_END": RunView._tool_end,
    "TOOL_CALL_RESULT": RunView._tool_result,
    "RUN_FINISHED": RunView._run_finished,
    "RUN_ERROR": RunView._run_error,
    "CUSTOM": RunView._custom,
}
