"""The tool port: a typed callable the run loop can describe to a model and run safely.

Why a small class and not bare functions: the run loop needs four things from a
tool and must never learn how a tool is written. It needs the JSON schema to send
to the model, a parser that turns the model's (often wrong) JSON into a validated
pydantic object with an error message the model can act on, a default approval
policy, and a ``run`` that cannot crash the loop: a bug inside a tool becomes a
``ToolError`` whose message goes back to the model like any other tool failure.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_type_hints

from pydantic import BaseModel, ValidationError

from agentspace.errors import ToolArgumentsError, ToolError

ToolFunction = Callable[..., Any]
"""``(ctx: ToolContext, args: SomeArgsModel) -> str | ToolOutput``, sync or async."""

PreviewFunction = Callable[..., Any]
"""``(ctx: ToolContext, args: SomeArgsModel) -> str | None``, sync or async: what a call
would do (a unified diff, or other short text), shown while the call waits for approval."""

PREVIEW_SECONDS = 10.0  # a preview that takes longer is given up (the call is held without one)

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI-style providers accept


if TYPE_CHECKING:
    from agentspace.notebook.port import NotebookAccess
    from agentspace.sandbox.workspace import Workspace

Policy = Literal["allow", "ask", "deny"]
"""A tool's approval policy: run it, ask a person first, or refuse it."""


@dataclass
class ToolContext:
    """What a tool may know about the call: where it may touch files, and for whom."""

    folder: Path  # the workspace's folder: file tools may touch nothing outside it
    session_id: str
    notebook: str
    workspace: Workspace | None = None  # its sandbox, processes and previews (None: files only)
    workspace_error: str | None = None  # why there is no workspace runtime, for the model
    notebooks: NotebookAccess | None = None  # the notebook beside the session (notebook tools)
    scratch: dict[str, Any] = field(default_factory=dict)  # the session's, kept in memory
    images: bool = False  # the session's model takes images: a tool may attach some

    def check_quota(self, extra: int) -> None:
        """Refuse a write of ``extra`` bytes that would take the workspace over its quota."""
        if self.workspace is not None:
            self.workspace.check_quota(extra)


@dataclass
class ToolOutput:
    """A tool's result: ``text`` for the model, ``changed_paths`` for a "files changed" event.

    (Process and preview events come from the workspace itself, not from tool results.)
    """

    text: str
    changed_paths: list[str] = field(default_factory=list)
    images: list[dict[str, str]] = field(default_factory=list)  # {"mime", "data", "label"}


def openai_function(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """A function description in the OpenAI ``tools`` format (what litellm expects).

    The schema is copied, so callers may edit what they get.
    """
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": json.loads(json.dumps(parameters)),
        },
    }


class Tool:
    """A named, documented, typed callable with a default approval policy."""

    def __init__(
        self,
        fn: ToolFunction,
        *,
        name: str,
        description: str,
        args_model: type[BaseModel],
        policy: Policy = "ask",
        preview: PreviewFunction | None = None,
    ) -> None:
        if not _NAME_RE.match(name):
            raise ValueError(f"tool name {name!r} must match {_NAME_RE.pattern}")
        self.fn = fn
        self.name = name
        self.description = description
        self.args_model = args_model
        self.policy: Policy = policy
        self.preview = preview
        self._is_async = inspect.iscoroutinefunction(fn)
        # Built once: this also fails fast, at import time, on a model pydantic cannot describe.
        self._parameters = clean_schema(args_model.model_json_schema())

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r}, policy={self.policy!r})"

    def openai_schema(self) -> dict[str, Any]:
        """The function description in the OpenAI ``tools`` format (what litellm expects)."""
        return openai_function(self.name, self.description, self._parameters)

    def parse_arguments(self, raw: str | dict[str, Any] | None) -> BaseModel:
        """Validate the model's arguments; every problem is listed so the model can fix them all."""
        data: Any
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            data = {}
        elif isinstance(raw, str):
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ToolArgumentsError(
                    f"Arguments for tool {self.name!r} are not valid JSON ({exc.msg} at "
                    f"position {exc.pos}). {_MATCH_SCHEMA}",
                    tool=self.name,
                ) from None
        else:
            data = raw
        if not isinstance(data, dict):
            raise ToolArgumentsError(
                f"Arguments for tool {self.name!r} must be a JSON object, got "
                f"{type(data).__name__}. {_MATCH_SCHEMA}",
                tool=self.name,
            )
        try:
            return self.args_model.model_validate(data)
        except ValidationError as exc:
            problems = [_describe(err) for err in exc.errors()]
            raise ToolArgumentsError(
                f"Invalid arguments for tool {self.name!r}:\n"
                + "\n".join(f"- {field}: {message}" for field, message in problems)
                + f"\n{_MATCH_SCHEMA}",
                tool=self.name,
                errors=[{"field": f, "message": m} for f, m in problems],
            ) from None

    async def preview_text(
        self, ctx: ToolContext, args: BaseModel, timeout: float = PREVIEW_SECONDS
    ) -> str | None:
        """What the call would do, bounded (``diffs.cap_text``); None when there is none.

        Never raises (but lets cancellation through): a preview that fails, returns
        something else than text, or takes longer than ``timeout`` seconds gives no
        preview, and the call is held as it would be without one. A sync preview runs
        in a worker thread, like ``run``.
        """
        if self.preview is None:
            return None
        from agentspace.tools.diffs import cap_text

        try:
            if not isinstance(args, self.args_model):
                args = self.parse_arguments(args.model_dump())
            if inspect.iscoroutinefunction(self.preview):
                pending = self.preview(ctx, args)
            else:
                pending = asyncio.to_thread(self.preview, ctx, args)
            result = await asyncio.wait_for(pending, timeout)
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, timeout)
        except Exception as exc:  # asyncio.TimeoutError too (an Exception on 3.10)
            log.debug("no preview for %s: %s: %s", self.name, type(exc).__name__, exc)
            return None
        if not isinstance(result, str) or not result.strip():
            return None
        return cap_text(result)

    async def run(self, ctx: ToolContext, args: BaseModel) -> ToolOutput:
        """Run the tool; any failure is a ``ToolError``, cancellation is left alone.

        A sync function runs in a worker thread so file I/O never blocks the event
        loop; cancelling the await does not stop that thread, only stops waiting.
        """
        if not isinstance(args, self.args_model):
            args = self.parse_arguments(args.model_dump())
        try:
            if self._is_async:
                result = await self.fn(ctx, args)
            else:
                result = await asyncio.to_thread(self.fn, ctx, args)
            if inspect.isawaitable(result):
                result = await result
        except ToolError:
            raise
        except Exception as exc:  # a tool bug must not take the run loop down
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            failure = f"Tool {self.name!r} failed: {detail}"
            raise ToolError(failure, tool=self.name, exception=type(exc).__name__) from exc
        if isinstance(result, str):
            return ToolOutput(text=result)
        if isinstance(result, ToolOutput):
            return result
        raise ToolError(
            f"Tool {self.name!r} returned {type(result).__name__}; a tool must return "
            "str or ToolOutput.",
            tool=self.name,
        )


_MATCH_SCHEMA = "The arguments must be a JSON object matching the tool's parameter schema."


def _describe(err: Any) -> tuple[str, str]:
    """One pydantic error as (dotted field, message), with the offending value if short."""
    field_name = ".".join(str(p) for p in err.get("loc", ())) or "(arguments)"
    message = str(err.get("msg", "invalid"))
    if err.get("type") not in {"missing", "extra_forbidden"} and "input" in err:
        shown = repr(err["input"])
        message += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
    return field_name, message


def tool(
    *,
    name: str | None = None,
    policy: Policy = "ask",
    description: str | None = None,
    preview: PreviewFunction | None = None,
) -> Callable[[ToolFunction], Tool]:
    """Make a ``Tool`` from ``def f(ctx: ToolContext, args: ArgsModel) -> str | ToolOutput``.

    The function name is the tool name and its docstring the description the model
    reads, so a tool is documented exactly once. ``args_model`` is the annotation of
    the ``args`` parameter (the second parameter if none is called ``args``).
    ``preview``: ``(ctx, args) -> str | None``, what a call would change (see
    ``Tool.preview_text``), shown to the person asked to approve it.
    """

    def decorate(fn: ToolFunction) -> Tool:
        doc = description if description is not None else inspect.getdoc(fn)
        if not doc:
            raise TypeError(f"tool {fn.__name__!r} needs a docstring: it is the model's manual")
        args_model = _args_model(fn)
        return Tool(
            fn,
            name=name or fn.__name__,
            description=doc,
            args_model=args_model,
            policy=policy,
            preview=preview,
        )

    return decorate


def _args_model(fn: ToolFunction) -> type[BaseModel]:
    params = list(inspect.signature(fn).parameters.values())
    param = next((p for p in params if p.name == "args"), params[1] if len(params) > 1 else None)
    if param is None:
        raise TypeError(f"tool {fn.__name__!r} must take (ctx, args)")
    try:
        annotation = get_type_hints(fn).get(param.name, param.annotation)
    except Exception:  # unresolvable forward reference: fall back to the raw annotation
        annotation = param.annotation
    if not (inspect.isclass(annotation) and issubclass(annotation, BaseModel)):
        raise TypeError(
            f"tool {fn.__name__!r}: parameter {param.name!r} must be annotated with a "
            f"pydantic model class, got {annotation!r}"
        )
    return annotation


# --- JSON schema clean-up: inline $defs, drop pydantic's generated titles ----------------

_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")
_SCHEMA_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains")


class _RecursiveSchema(Exception):
    pass


def clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Inline ``$defs`` (kept only for recursive models) and strip ``title`` keys.

    Titles are noise the model pays tokens for; inlined definitions are easier for
    weaker models and some providers than ``$ref`` pointers.
    """
    defs = schema.get("$defs")
    if defs:
        body = {k: v for k, v in schema.items() if k != "$defs"}
        try:
            schema = _inline(body, defs, frozenset())
        except _RecursiveSchema:
            pass
    return _strip_titles(schema)


def _inline(node: Any, defs: dict[str, Any], seen: frozenset[str]) -> Any:
    if isinstance(node, list):
        return [_inline(v, defs, seen) for v in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        key = ref.removeprefix("#/$defs/")
        if key in seen or key not in defs:
            raise _RecursiveSchema(key)
        target = _inline(defs[key], defs, seen | {key})
        rest = {k: _inline(v, defs, seen) for k, v in node.items() if k != "$ref"}
        return {**target, **rest}
    return {k: _inline(v, defs, seen) for k, v in node.items()}


def _strip_titles(node: Any) -> Any:
    """Drop ``title`` where it is a schema keyword, never where it is a property name."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title":
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            value = {name: _strip_titles(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            value = [_strip_titles(sub) for sub in value]
        elif key in _SCHEMA_ONE:
            value = _strip_titles(value)
        out[key] = value
    return out


class ToolRegistry:
    """The tools one session may call, by name, in a stable order."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.add(t)

    def add(self, tool: Tool) -> None:
        """Register one more tool; a second tool with the same name is a programming error."""
        if tool.name in self._tools:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        self._tools[tool.name] = tool

    def with_tools(self, *tools: Tool) -> ToolRegistry:
        """A new registry with these tools added; a same-named tool replaces the old one."""
        merged = dict(self._tools)
        merged.update((t.name, t) for t in tools)
        return ToolRegistry(merged.values())

    def get(self, name: str) -> Tool:
        """The tool called ``name``; the error lists what exists so the model can retry."""
        try:
            return self._tools[name]
        except KeyError:
            available = ", ".join(self._tools) or "(none)"
            raise ToolError(
                f"Unknown tool {name!r}. Available tools: {available}.",
                tool=name,
                available=list(self._tools),
            ) from None

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def schemas(self) -> list[dict[str, Any]]:
        """Every tool's OpenAI-format schema, for the model call."""
        return [t.openai_schema() for t in self._tools.values()]

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(list(self._tools.values()))

    def __len__(self) -> int:
        return len(self._tools)

    def __repr__(self) -> str:
        return f"ToolRegistry({self.names!r})"
