"""Notebook tools: Python functions in the user's kernel that the agent may call.

``@agent_tool`` turns a typed function with a docstring into a tool spec (its
JSON Schema from the type hints, via pydantic) and registers it; the next
``%%agent`` cell offers every registered tool to the session, beside the
built-ins ``run_cell`` and ``list_variables`` (``agentspace_kernel.variables``).
The engine holds each call until the kernel answers (``reason == "kernel_tool"``);
the cell that is running then calls the function here, in the user's namespace,
and sends its return value back.
"""

from __future__ import annotations

import inspect
import json
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

F = TypeVar("F", bound=Callable[..., Any])
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_RESULT = 20_000
LIST_VARIABLES = "list_variables"  # built in: answered by agentspace_kernel.variables


@dataclass
class KernelTool:
    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    policy: str = "allow"

    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
            "policy": self.policy,
        }


REGISTRY: dict[str, KernelTool] = {}


def _schema(fn: Callable[..., Any]) -> dict[str, Any]:
    """The JSON Schema of ``fn``'s arguments, from its signature and type hints."""
    from pydantic import create_model

    fields: dict[str, Any] = {}
    hints = inspect.get_annotations(fn, eval_str=True)
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"@agent_tool {fn.__name__}: *args and **kwargs cannot be described")
        kind = hints.get(name, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[name] = (kind, default)
    model = create_model(f"{fn.__name__}_arguments", **fields)
    schema = model.model_json_schema()
    schema.pop("title", None)
    return schema


@overload
def agent_tool(fn: F) -> F: ...
@overload
def agent_tool(*, name: str | None = None, ask: bool = False) -> Callable[[F], F]: ...


def agent_tool(fn: Any = None, *, name: str | None = None, ask: bool = False) -> Any:
    """Offer this function to the notebook's agent as a tool.

    The docstring is the description the model reads; the type hints are the
    argument schema. ``ask=True`` holds each call for your approval first.
    """

    def register(f: F) -> F:
        tool_name = name or f.__name__
        if not NAME.match(tool_name):
            raise ValueError(f"@agent_tool: {tool_name!r} is not a valid tool name")
        if tool_name in ("run_cell", LIST_VARIABLES):
            raise ValueError(f"@agent_tool: {tool_name!r} is built in; choose another name")
        description = inspect.getdoc(f) or ""
        if not description:
            raise ValueError(
                f"@agent_tool {tool_name}: write a docstring; it is what the model reads"
            )
        policy = "ask" if ask else "allow"
        REGISTRY[tool_name] = KernelTool(tool_name, description, _schema(f), f, policy)
        return f

    return register(fn) if fn is not None else register


def specs() -> list[dict[str, Any]]:
    return [t.spec() for t in REGISTRY.values()]


def call(name: str, arguments: Any) -> tuple[str, bool]:
    """Run a registered tool; (result text, is_error). Errors go back to the model."""
    tool = REGISTRY.get(name)
    if tool is None and name == LIST_VARIABLES:
        from agentspace_kernel import variables

        return variables.call(arguments)
    if tool is None:
        return (
            f"The function {name!r} is not defined in the notebook's kernel any more"
            " (was the kernel restarted?). Ask the user to run the cell that defines it.",
            True,
        )
    if not isinstance(arguments, dict):
        return f"The arguments of {name} must be a JSON object.", True
    try:
        value = tool.fn(**arguments)
    except Exception as exc:
        return failure(name, exc)[:MAX_RESULT], True
    return render(value)[:MAX_RESULT], False


# (session id, tool call id) -> its result, once run here; call ids are unique only per session
ANSWERED: dict[tuple[str, str], tuple[str, bool]] = {}
ANSWERED_KEPT = 1_000  # the newest results kept (a call is answered within moments)


def call_once(session: str, tool_call_id: str, name: str, arguments: Any) -> tuple[str, bool]:
    """``call``, at most once per tool call: a call the server already had this kernel run (a
    chat's turn, server/kernelcalls.py) gives the same result again instead of running twice,
    whichever of the server and a ``%%agent`` cell asks first (the kernel runs one at a time)."""
    key = (session, tool_call_id)
    if key in ANSWERED:
        return ANSWERED[key]
    result = call(name, arguments)
    ANSWERED[key] = result
    while len(ANSWERED) > ANSWERED_KEPT:
        del ANSWERED[next(iter(ANSWERED))]
    return result


def failure(name: str, exc: BaseException) -> str:
    """What the model reads when a tool raised: the exception and the line that raised it.

    No file names: a notebook cell's is a temporary path that changes each run.
    """
    text = f"{name} raised {type(exc).__name__}: {exc}"
    frames = traceback.extract_tb(exc.__traceback__)
    if len(frames) > 1:  # the last frame is the user's code (the first is ours)
        last = frames[-1]
        text += f" (in {last.name}, line {last.lineno}: {(last.line or '').strip()})"
    return text


def render(value: Any) -> str:
    """A return value as text for the model: strings as they are, JSON where it fits."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)
