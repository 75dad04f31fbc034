"""``%agent SUBCOMMAND``: one small function per subcommand, each returning text to print.

They are synchronous (line magics must be): each call goes to the agent loop
and waits. A wrong subcommand or argument raises ``UsageError`` with the one
usage line, which the magic prints as is.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable, Coroutine
from typing import Any

from agentspace_kernel import loop
from agentspace_kernel.client.base import AgentClient
from agentspace_kernel.errors import UsageError
from agentspace_kernel.view.render import spend_text

USAGE = (
    "usage: %agent status | stop | resume | fix [CELL_ID] | history [N] | files [PATH] | ps"
    " | logs NAME"
    " | preview PORT | model [NAME] | policy TOOL allow|ask|deny | usage | reset"
)
POLICIES = ("allow", "ask", "deny")


def _wait(coro: Coroutine[Any, Any, Any]) -> Any:
    return loop.call(coro, timeout=120)


def _int(value: str, what: str, low: int, high: int) -> int:
    if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
        raise UsageError(f"{what} must be a whole number from {low} to {high}. {USAGE}")
    return int(value)


def status(client: AgentClient, args: list[str]) -> str:
    info = _wait(client.info())
    pending = ", ".join(info.get("pending_approvals") or []) or "none"
    lines = [
        f"mode:     {client.mode} ({client.why})",
        f"notebook: {client.notebook}",
        f"session:  {info['id']}",
        f"status:   {info['status']}" + (f" ({info['reason']})" if info.get("reason") else ""),
        f"model:    {model_name(info)}",
        f"queued:   {info.get('queued', 0)} · pending approvals: {pending}",
        f"sandbox:  {info.get('sandbox_backend') or 'not started'}",
    ]
    return "\n".join(lines)


def stop(client: AgentClient, args: list[str]) -> str:
    return f"status: {_wait(client.stop())['status']}"


def resume(client: AgentClient, args: list[str]) -> str:
    result = _wait(client.resume())
    return "resumed" if result.get("running") else f"nothing to resume (status: {result['status']})"


def _content(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # multi-part content: keep the text parts
        content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def history(client: AgentClient, args: list[str]) -> str:
    limit = _int(args[0], "N", 1, 10_000) if args else 10
    lines = []
    for m in _wait(client.history(limit)):
        role = m.get("role", "?")
        if role == "tool":
            auto = f" [{m['approval']}]" if m.get("approval") else ""  # e.g. auto-approved (…)
            lines.append(f"tool ({m.get('tool_call_id', '')}){auto}: {_content(m)[:300]}")
            continue
        text = _content(m)
        if text:
            lines.append(f"{role}: {text}")
        for call in m.get("tool_calls") or []:
            fn = call.get("function", {})
            lines.append(f"{role} → {fn.get('name')} {str(fn.get('arguments', ''))[:300]}")
    return "\n".join(lines) or "(no messages yet)"


def files(client: AgentClient, args: list[str]) -> str:
    path = args[0] if args else "."
    listing = _wait(client.files(path))
    lines = []
    for e in listing["entries"]:
        suffix = "/" if e["kind"] == "dir" else f" -> {e['target']}" if e.get("target") else ""
        size = "" if e["kind"] == "dir" else f"{e.get('size') or 0:>10}  "
        lines.append(f"{size:>12}{e['path']}{suffix}")
    if listing.get("truncated"):
        lines.append("… (listing truncated)")
    return "\n".join(lines) or f"(empty: {path})"


def ps(client: AgentClient, args: list[str]) -> str:
    rows = _wait(client.processes())
    if not rows:
        return "(no background processes)"
    lines = []
    for r in rows:
        code = f" exit {r['exit_code']}" if r.get("exit_code") is not None else ""
        since = time.strftime("%H:%M:%S", time.localtime(r.get("started", 0)))
        lines.append(f"{r['name']:<16} {r['status']}{code:<8} since {since}  {r['command']}")
    return "\n".join(lines)


def logs(client: AgentClient, args: list[str]) -> str:
    if len(args) != 1:
        raise UsageError(f"%agent logs needs a process name (see %agent ps). {USAGE}")
    return str(_wait(client.output(args[0], 100))) or f"({args[0]} has printed nothing)"


def preview(client: AgentClient, args: list[str]) -> str:
    if len(args) != 1:
        raise UsageError(f"%agent preview needs a port. {USAGE}")
    port = _int(args[0], "PORT", 1, 65535)
    return str(_wait(client.preview_url(port)))


def model(client: AgentClient, args: list[str]) -> str:
    if len(args) > 1:
        raise UsageError(f"%agent model takes one model name. {USAGE}")
    if args:
        from agentspace_kernel.magics.arguments import resolve_model

        _wait(client.configure(model=resolve_model(args[0])))
    return f"model: {model_name(_wait(client.info()))}"


def model_name(info: dict[str, Any]) -> str:
    """The session's model as status and ``%agent model`` both name it: a script beside
    the notebook by its path from there (as typed), not the absolute path it is run by."""
    name = str(info.get("effective_model") or info.get("model") or "")
    prefix = "scripted/"
    if name.startswith(prefix + "/"):
        path = name[len(prefix) :]
        here = os.getcwd()
        if os.path.commonpath([here, path]) == here:
            return prefix + os.path.relpath(path, here)
    return name


def policy(client: AgentClient, args: list[str]) -> str:
    if len(args) != 2 or args[1] not in POLICIES:
        raise UsageError(f"%agent policy TOOL allow|ask|deny. {USAGE}")
    _wait(client.configure(policies={args[0]: args[1]}))
    return f"{args[0]}: {args[1]}"


def usage(client: AgentClient, args: list[str]) -> str:
    u = _wait(client.info()).get("usage") or {}
    return (
        f"model calls: {u.get('model_calls', 0)} · tokens: {u.get('input_tokens', 0)} in,"
        f" {u.get('output_tokens', 0)} out · cost: {spend_text(u)}"
    )


def reset(client: AgentClient, args: list[str]) -> str:
    old = client.session_id
    info = _wait(client.reset())
    return f"new session {info['id']} (deleted {old or 'nothing'}: transcript and workspace)"


COMMANDS: dict[str, Callable[[AgentClient, list[str]], str]] = {
    "status": status,
    "stop": stop,
    "resume": resume,
    "history": history,
    "files": files,
    "ps": ps,
    "logs": logs,
    "preview": preview,
    "model": model,
    "policy": policy,
    "usage": usage,
    "reset": reset,
}


def parse(line: str) -> tuple[str, list[str]]:
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"{exc}. {USAGE}") from exc
    if not words or words[0] not in COMMANDS:
        what = f"unknown subcommand {words[0]!r}. " if words else ""
        raise UsageError(what + USAGE)
    return words[0], words[1:]
