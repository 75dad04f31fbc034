"""A tool call as a chat card: the data our labextension renders, and a text for the rest.

A card is one chat message whose ``mime_model`` carries ``application/vnd.agentspace.toolcall+json``
(rendered by the labextension's safe renderer, ``labextension/src/card.ts``) beside a
``text/markdown`` fallback: jupyterlab-chat shows the best renderer it has, so a frontend without
our extension shows the markdown, which names the slash commands that decide the call there.

The message's ``metadata`` also carries the call in the shape jupyter-ai 3.x draws tool calls
from (``tool_calls``: see ``jupyter_ai_metadata``), so a JupyterLab with jupyter-ai's
``@jupyter-ai/acp-client`` labextension shows its one-line status row above our card too.
"""

from __future__ import annotations

import json
from typing import Any, Literal

MIME = "application/vnd.agentspace.toolcall+json"
VERSION = 1
RESULT_LIMIT = 20_000  # characters of a result a card keeps (the transcript keeps all)
FALLBACK_LIMIT = 1_500  # characters of a result the text fallback shows

CardStatus = Literal["calling", "pending", "running", "done", "failed", "rejected", "cancelled"]
LABELS: dict[str, str] = {
    "calling": "calling",
    "pending": "waiting for approval",
    "running": "running",
    "done": "done",
    "failed": "failed",
    "rejected": "rejected",
    "cancelled": "cancelled",
}
DIFF_TOOLS = {"write_file", "edit_file", "edit_cell", "insert_cell", "delete_cell"}


def new_card(session: str, tool_call_id: str, tool: str) -> dict[str, Any]:
    return {
        "version": VERSION,
        "session": session,
        "tool_call_id": tool_call_id,
        "tool": tool,
        "arguments": None,
        "arguments_text": "",
        "preview": None,
        "status": "calling",
        "result": None,
        "is_error": False,
        "decision": None,
        "links": [],
        "can_remember": True,
    }


def set_arguments(card: dict[str, Any], text: str) -> None:
    """The raw argument text, and its parsed object once it parses as one."""
    card["arguments_text"] = text
    try:
        parsed = json.loads(text) if text else {}
    except ValueError:
        return
    if isinstance(parsed, dict):
        card["arguments"] = parsed


def set_result(card: dict[str, Any], text: str) -> None:
    if len(text) > RESULT_LIMIT:
        cut = len(text) - RESULT_LIMIT
        text = f"{text[:RESULT_LIMIT]}\n… ({cut:,} more characters: the transcript has them all)"
    card["result"] = text


def bundle(card: dict[str, Any]) -> dict[str, Any]:
    """The message's ``mime_model``: the card, and its text for frontends without ours."""
    return {"data": {MIME: card, "text/markdown": fallback(card)}}


def fallback(card: dict[str, Any]) -> str:
    """Markdown that says what the card says, with the slash commands that decide it."""
    tool, call = card["tool"], card["tool_call_id"]
    lines = [f"🔧 **{_plain(tool)}** · {LABELS.get(card['status'], card['status'])}"]
    decision = decided(card)
    if decision:
        lines[0] += f" ({decision})"
    shown = _shown_arguments(card)
    if shown:
        lines += ["", fence(*shown)]
    if card["status"] == "pending":
        example = json.dumps(card.get("arguments") or {}, ensure_ascii=False)
        lines += [
            "",
            f"Approve with `/approve {call}`, reject with `/reject {call} <reason>`, "
            f"or edit the arguments with `/edit {call} {example}`.",
        ]
    result = card.get("result")
    if result:
        if len(result) > FALLBACK_LIMIT:
            result = result[:FALLBACK_LIMIT] + "\n…"
        lines += ["", fence(result, "")]
    for link in card.get("links") or []:
        lines.append(f"- {_plain(link['label'])}: `{link['path']}`")
    return "\n".join(lines)


def decided(card: dict[str, Any]) -> str:
    """Who decided the call and how, in a few words ('' while nobody has)."""
    d = card.get("decision")
    if not d:
        return ""
    if d.get("auto"):
        rule = d.get("rule")
        return f"allowed by policy ({rule})" if rule else "allowed by policy"
    kind = d.get("decision")
    by = d.get("by_name") or d.get("by")  # the name the chat shows, else the identity
    if kind == "result":  # a kernel call: the kernel ran it (once approved, if it asked)
        edited = " with edited arguments" if d.get("arguments") else ""
        return f"approved by {by}{edited}, run in the kernel" if by else "run in the kernel"
    verb = {"approve": "approved", "reject": "rejected", "edit": "edited"}
    text = verb.get(str(kind), str(kind))
    if by:
        text += f" by {by}"
    if kind == "reject" and d.get("reason"):
        text += f": {d['reason']}"
    return text


def _shown_arguments(card: dict[str, Any]) -> tuple[str, str] | None:
    args = card.get("arguments") or {}
    tool = card["tool"]
    if tool == "shell" and isinstance(args.get("command"), str):
        return args["command"], "bash"
    if tool == "run_cell":
        if isinstance(args.get("code"), str):
            return args["code"], "python"
        if args.get("cell_id"):
            return f"cell {args['cell_id']}", ""
    if tool in DIFF_TOOLS and card.get("preview"):
        return card["preview"], "diff"
    if card.get("arguments") is not None:
        return json.dumps(args, indent=2, ensure_ascii=False), "json"
    text = card.get("arguments_text") or ""
    return (text, "") if text else None


def fence(text: str, lang: str = "") -> str:
    """A fenced code block that no run of backticks inside ``text`` can close early."""
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{text}\n{ticks}"


def _plain(text: str) -> str:
    """Markdown's special characters escaped (a tool name or a label is plain text)."""
    return "".join("\\" + ch if ch in "\\`*_[]<>#|" else ch for ch in str(text))


# -- a run's own card: its status, and Stop while it runs -------------------------------------
RUN_MIME = "application/vnd.agentspace.run+json"
RUN_LABELS = {
    "running": "⏳ working",
    "paused": "‖ waiting for a decision",
    "finished": "✓ done",
    "stopped": "⏹ stopped",
    "failed": "⚠ failed",
}


def new_run(session: str, run_id: str) -> dict[str, Any]:
    return {
        "version": VERSION,
        "session": session,
        "run_id": run_id,
        "status": "running",
        "input_tokens": 0,
        "output_tokens": 0,
        "message": None,
    }


def run_bundle(run: dict[str, Any]) -> dict[str, Any]:
    """A run's ``mime_model``: its card (Stop while it runs, in our labextension) and a text."""
    return {"data": {RUN_MIME: run, "text/markdown": run_text(run)}}


def run_text(run: dict[str, Any]) -> str:
    text = RUN_LABELS.get(run["status"], run["status"])
    if run["status"] == "running":
        return text + " · `/stop` stops it, keeping what it wrote"
    if run["input_tokens"] or run["output_tokens"]:
        text += f" · {run['input_tokens']:,} tokens in, {run['output_tokens']:,} out"
    if run.get("message"):
        text += f" · {_plain(run['message'])}"
    return text
