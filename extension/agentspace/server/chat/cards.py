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
    if kind == "result":  # a kernel call: the kernel ran it (once approved, if it asked)
        edited = " with edited arguments" if d.get("arguments") else ""
        return (
            f"approved by {d['by']}{edited}, run in the kernel"
            if d.get("by")
            else "run in the kernel"
        )
    verb = {"approve": "approved", "reject": "rejected", "edit": "edited"}
    text = verb.get(str(kind), str(kind))
    if d.get("by"):
        text += f" by {d['by']}"
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


# -- jupyter-ai's tool-call rows ------------------------------------------------------------
# What jupyter-ai 3.x reads (jupyter-ai-acp-client 0.3.3, the labextension jupyter-ai 3.2 ships:
# ``tool_call_renderer.ToolCallState``, ``src/tool-calls.tsx``): ``message.metadata.tool_calls``,
# a list of ``{tool_call_id, title, kind?, status?, raw_input?, raw_output?, locations?,
# permission_options?, permission_status?, selected_option_id?, session_id?, diffs?}``, drawn
# by a message-preamble component for any message that has it, whoever sent it. Its "Allow?"
# buttons appear only with ``permission_options``, ``permission_status == "pending"`` and a
# ``session_id``, and POST ``ai/acp/permissions``, which answers only ACP agents' sessions and
# passes on no identity: so we never write a ``session_id`` nor pending options, and calls are
# decided here only (our card, the slash commands). No ``diffs`` either: theirs are whole
# old/new texts whose header opens the path from the server root, ours are workspace-relative.

JAI_STATUS: dict[str, str] = {  # ACP's statuses: pending, in_progress, completed, failed
    "calling": "pending",  # the arguments still stream in
    "pending": "pending",  # waiting for approval (and permission_status says so)
    "running": "in_progress",
    "done": "completed",
    "failed": "failed",
    "rejected": "failed",  # did not run; the resolved permission says who rejected it
    "cancelled": "failed",  # as jupyter-ai marks the calls a stopped turn leaves unfinished
}
JAI_KINDS: dict[str, str] = {  # ACP's tool kinds (any other tool is "other")
    "read_file": "read",
    "list_files": "read",
    "read_notebook": "read",
    "list_processes": "read",
    "process_output": "read",
    "list_variables": "read",
    "write_file": "edit",
    "edit_file": "edit",
    "edit_cell": "edit",
    "insert_cell": "edit",
    "delete_cell": "delete",
    "shell": "execute",
    "start_process": "execute",
    "restart_processes": "execute",
    "run_cell": "execute",
}
PATH_TOOLS = {"read_file", "list_files", "write_file", "edit_file"}
SUBJECTS = ("command", "code", "path", "cell_id", "after_cell_id", "name", "port")
TITLE_LIMIT = 80  # characters of an argument a title shows
META_LIMIT = FALLBACK_LIMIT  # characters of each text (an argument, the result) the row keeps


def jupyter_ai_metadata(card: dict[str, Any]) -> dict[str, Any]:
    """The message metadata jupyter-ai's tool-call row reads: ``{"tool_calls": [call]}``."""
    return {"tool_calls": [jupyter_ai_tool_call(card)]}


def jupyter_ai_tool_call(card: dict[str, Any]) -> dict[str, Any]:
    """The card as one of jupyter-ai's ``ToolCallState`` (its ``model_dump(exclude_none=True)``)."""
    tool = str(card["tool"])
    args = card.get("arguments")
    call: dict[str, Any] = {
        "tool_call_id": card["tool_call_id"],
        "title": _title(tool, args),
        "kind": JAI_KINDS.get(tool, "other"),
        "status": JAI_STATUS.get(card["status"], "in_progress"),
    }
    if args is not None:
        call["raw_input"] = _clip(args)
    elif card.get("arguments_text"):
        call["raw_input"] = _clip(card["arguments_text"])
    if card.get("result"):
        call["raw_output"] = _clip(card["result"])
    path = args.get("path") if isinstance(args, dict) else None
    if tool in PATH_TOOLS and isinstance(path, str) and path:
        call["locations"] = [path]
    call.update(_permission(card))
    return call


def _title(tool: str, args: Any) -> str:
    """``tool: its main argument`` (first line, cut), or the tool alone."""
    if isinstance(args, dict):
        for key in SUBJECTS:
            value = args.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
                line = str(value).strip().splitlines()[0]
                if len(line) > TITLE_LIMIT:
                    line = line[:TITLE_LIMIT] + "…"
                return f"{tool}: {line}"
    return tool


def _permission(card: dict[str, Any]) -> dict[str, Any]:
    """The ask, as jupyter-ai's fields: pending (no options, no buttons), or who answered."""
    if card["status"] == "pending":
        return {"permission_status": "pending"}
    d = card.get("decision") or {}
    kind = d.get("decision")
    if not kind or d.get("auto") or (kind == "result" and not d.get("by")):
        return {}  # nobody was asked: it ran by policy, or a kernel call that needs no approval
    if kind == "reject":
        option = "reject_once"
    else:
        option = "allow_always" if d.get("remember") else "allow_once"
    chosen = {"option_id": str(kind), "name": decided(card), "kind": option}
    return {
        "permission_status": "resolved",
        "permission_options": [chosen],
        "selected_option_id": chosen["option_id"],
    }


def _clip(value: Any, limit: int = META_LIMIT) -> Any:
    """``value`` with each string in it cut to ``limit`` characters."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "\n…"
    if isinstance(value, dict):
        return {k: _clip(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_clip(v, limit) for v in value]
    return value
