"""Parsing what the user wrote in an agent magic's line or cell, with one usage line each.

Kept apart from the flows so every rule (options, the JSON of an ``%%approve``
cell, which call is meant, where a scripted model's file is) is a small pure
function with its own clear error.
"""

from __future__ import annotations

import json
import os
import shlex
from typing import TYPE_CHECKING, Any

from agentspace_kernel.errors import UsageError

if TYPE_CHECKING:
    from agentspace_kernel.client.base import AgentClient

CELL_MAGICS = ("agent", "approve")
AGENT_USAGE = (
    "usage: %%agent [--model MODEL] [--new] [--quiet] [--no-context], then your message in the"
    " cell (--no-context: attach nothing of the notebook to this one)"
)
APPROVE_USAGE = (
    "usage: %%approve [TOOL_CALL_ID] [--always], then the arguments as JSON (optional);"
    " --always allows the tool for the rest of the session"
)
REJECT_USAGE = "usage: %reject TOOL_CALL_ID [REASON...]"
AGENT_RUN_USAGE = "usage: %%agent_run TOOL_CALL_ID, then the code to run for the agent"


def code_of(cell: str) -> str:
    """The cell's code without the comment lines the inserted cell starts with."""
    lines = cell.splitlines()
    while lines and lines[0].startswith("# "):
        lines.pop(0)
    return "\n".join(lines)


def resolve_model(name: str) -> str:
    """``scripted/<file>`` relative to the notebook's folder, made absolute.

    The kernel runs in the notebook's folder, the server does not: a script
    beside the notebook must be found by whichever process plays it.
    """
    prefix = "scripted/"
    rest = name[len(prefix) :] if name.startswith(prefix) else ""
    if not rest or rest == "echo" or rest.startswith("/"):
        return name
    candidate = os.path.abspath(rest)
    return prefix + candidate if os.path.exists(candidate) else name


def agent_options(line: str) -> dict[str, Any]:
    options: dict[str, Any] = {"model": None, "new": False, "quiet": False, "context": True}
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"{exc}. {AGENT_USAGE}") from exc
    while words:
        word = words.pop(0)
        if word in ("--new", "--quiet"):
            options[word[2:]] = True
        elif word == "--no-context":
            options["context"] = False
        elif word == "--model" and words:
            options["model"] = words.pop(0)
        elif word.startswith("--model="):
            options["model"] = word.split("=", 1)[1]
        else:
            raise UsageError(f"unknown option {word!r}. {AGENT_USAGE}")
    return options


def approve_arguments(cell: str) -> Any:
    """The JSON object in an ``%%approve`` cell (comment lines dropped); None if there is none."""
    body = "\n".join(ln for ln in cell.splitlines() if not ln.lstrip().startswith("#")).strip()
    if not body:
        return None
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise UsageError(f"The arguments are not valid JSON ({exc}). {APPROVE_USAGE}") from exc
    if not isinstance(value, dict):
        raise UsageError(f"The arguments must be a JSON object. {APPROVE_USAGE}")
    return value


async def pending_call_id(client: AgentClient, given: str, usage: str) -> str:
    """The call to decide: the one named, or the only one pending."""
    from agentspace_kernel import loop

    if given:
        if len(given.split()) != 1:
            raise UsageError(usage)
        return given
    pending = (await loop.bridge(client.info())).get("pending_approvals") or []
    if len(pending) == 1:
        return str(pending[0])
    if not pending:
        raise UsageError("Nothing is waiting for approval in this session.")
    raise UsageError(f"Several calls are waiting ({', '.join(pending)}): name one. {usage}")


async def original_arguments(client: AgentClient, call_id: str) -> Any:
    from agentspace_kernel.magics.cellrun import find_call

    call = await find_call(client, call_id)
    try:
        return json.loads(call[1] or "{}") if call is not None else None
    except ValueError:
        return None
