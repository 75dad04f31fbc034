"""jupyter-ai's tool-call rows for our calls: the message metadata its frontend draws.

What jupyter-ai 3.x reads (jupyter-ai-acp-client 0.3.3, the labextension jupyter-ai 3.2 ships:
``tool_call_renderer.ToolCallState``, ``src/tool-calls.tsx``): ``message.metadata.tool_calls``,
a list of ``{tool_call_id, title, kind?, status?, raw_input?, raw_output?, locations?,
permission_options?, permission_status?, selected_option_id?, session_id?, diffs?}``, drawn
by a message-preamble component for any message that has it, whoever sent it. Its "Allow?"
buttons appear only with ``permission_options``, ``permission_status == "pending"`` and a
``session_id``, and POST ``ai/acp/permissions``, which answers only ACP agents' sessions and
passes on no identity: so we never write a ``session_id`` nor pending options, and calls are
decided here only (our card, the slash commands). No ``diffs`` either: theirs are whole
old/new texts whose header opens the path from the server root, ours are workspace-relative.
"""

from __future__ import annotations

from typing import Any

from .cards import FALLBACK_LIMIT, decided

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
