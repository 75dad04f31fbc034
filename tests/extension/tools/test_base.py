"""The tool port: schemas, argument validation, running sync/async tools, the registry."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from agentspace.errors import ToolArgumentsError, ToolError
from agentspace.tools.base import Tool, ToolContext, ToolOutput, ToolRegistry, tool


class Point(BaseModel):
    x: int = Field(description="Horizontal.")
    y: int = 0


class ShapeArgs(BaseModel):
    """Arguments for a shape."""

    name: str = Field(description="What to call it.")
    count: int = Field(1, ge=1, description="How many.")
    origin: Point | None = None
    title: str = Field("", description="A field literally called title.")


class Node(BaseModel):
    value: int
    children: list[Node] = []


class TreeArgs(BaseModel):
    root: Node


class EchoArgs(BaseModel):
    text: str


@tool(policy="allow")
def echo(ctx: ToolContext, args: EchoArgs) -> str:
    """Echo the text back."""
    return f"{ctx.notebook}: {args.text}"


@tool(name="shape", policy="ask")
def make_shape(ctx: ToolContext, args: ShapeArgs) -> ToolOutput:
    """Make a shape.

    Indented second paragraph.
    """
    return ToolOutput(text=f"{args.count} x {args.name}", changed_paths=["shape.txt"])


@tool()
async def async_echo(ctx: ToolContext, args: EchoArgs) -> str:
    """Echo asynchronously."""
    await asyncio.sleep(0)
    return args.text.upper()


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    return ToolContext(folder=tmp_path, session_id="s1", notebook="nb.ipynb")


def _walk_keys(node: object) -> list[str]:
    if isinstance(node, dict):
        return [k for k in node] + [k for v in node.values() for k in _walk_keys(v)]
    if isinstance(node, list):
        return [k for v in node for k in _walk_keys(v)]
    return []


# --- decorator and schema ---------------------------------------------------------------


def test_decorator_takes_name_docstring_model_and_policy() -> None:
    assert isinstance(echo, Tool)
    assert (echo.name, echo.description, echo.args_model, echo.policy) == (
        "echo",
        "Echo the text back.",
        EchoArgs,
        "allow",
    )
    assert make_shape.name == "shape"
    assert make_shape.description == "Make a shape.\n\nIndented second paragraph."
    assert async_echo.policy == "ask"


def test_openai_schema_is_inline_and_has_no_titles() -> None:
    schema = make_shape.openai_schema()
    assert schema["type"] == "function"
    fn = schema["function"]
    assert fn["name"] == "shape"
    assert fn["description"].startswith("Make a shape.")
    params = fn["parameters"]
    assert params["type"] == "object"
    assert params["required"] == ["name"]
    props = params["properties"]
    assert props["name"] == {"description": "What to call it.", "type": "string"}
    assert props["count"]["minimum"] == 1
    # the nested model is inlined, not a $ref
    keys = _walk_keys(params)
    assert "$defs" not in keys and "$ref" not in keys
    point = next(s for s in props["origin"]["anyOf"] if s.get("type") == "object")
    assert point["properties"]["x"] == {"description": "Horizontal.", "type": "integer"}
    # "title" as a schema keyword is gone; a property named "title" survives
    assert "title" in props
    assert all("title" not in s for s in props.values())
    assert "title" not in params and "title" not in point
    json.dumps(schema)  # serialisable


def test_schema_is_a_copy() -> None:
    make_shape.openai_schema()["function"]["parameters"]["properties"].clear()
    assert make_shape.openai_schema()["function"]["parameters"]["properties"]


def test_recursive_model_keeps_defs() -> None:
    @tool()
    def tree(ctx: ToolContext, args: TreeArgs) -> str:
        """Walk a tree."""
        return ""

    params = tree.openai_schema()["function"]["parameters"]
    assert "$defs" in params
    assert "title" not in params["$defs"]["Node"]


def test_decorator_rejects_missing_docstring_and_bad_annotation() -> None:
    with pytest.raises(TypeError, match="docstring"):

        @tool()
        def nodoc(ctx: ToolContext, args: EchoArgs) -> str:
            return ""

    with pytest.raises(TypeError, match="pydantic model"):

        @tool()
        def untyped(ctx: ToolContext, args: dict[str, int]) -> str:
            """Untyped."""
            return ""


def test_invalid_tool_name_is_refused() -> None:
    with pytest.raises(ValueError, match="tool name"):
        Tool(lambda c, a: "", name="bad name!", description="d", args_model=EchoArgs)


# --- argument parsing -------------------------------------------------------------------


def test_parse_arguments_from_dict_json_and_nothing() -> None:
    assert make_shape.parse_arguments({"name": "sq"}) == ShapeArgs(name="sq")
    assert make_shape.parse_arguments('{"name": "sq", "count": 3}') == ShapeArgs(name="sq", count=3)

    @tool()
    def noargs(ctx: ToolContext, args: Point) -> str:
        """No required args... except x."""
        return ""

    with pytest.raises(ToolArgumentsError, match="x: Field required"):
        noargs.parse_arguments(None)
    with pytest.raises(ToolArgumentsError, match="x: Field required"):
        noargs.parse_arguments("  ")


def test_validation_error_lists_every_problem() -> None:
    with pytest.raises(ToolArgumentsError) as info:
        make_shape.parse_arguments({"count": 0, "origin": {"x": "left"}})
    err = info.value
    message = str(err)
    assert "Invalid arguments for tool 'shape'" in message
    assert "- name: Field required" in message
    assert "- count: Input should be greater than or equal to 1 (got 0)" in message
    assert "- origin.x: Input should be a valid integer" in message
    assert "must be a JSON object matching the tool's parameter schema" in message
    assert {e["field"] for e in err.data["errors"]} == {"name", "count", "origin.x"}
    assert isinstance(err, ToolError)


def test_invalid_json_text_is_an_arguments_error() -> None:
    with pytest.raises(ToolArgumentsError, match="not valid JSON") as info:
        echo.parse_arguments('{"text": ')
    assert "matching the tool's parameter schema" in str(info.value)


def test_json_that_is_not_an_object_is_an_arguments_error() -> None:
    with pytest.raises(ToolArgumentsError, match="must be a JSON object, got list"):
        echo.parse_arguments("[1, 2]")


# --- running ----------------------------------------------------------------------------


async def test_sync_tool_runs_in_a_thread_and_str_becomes_output(ctx: ToolContext) -> None:
    seen: list[bool] = []

    @tool()
    def where(ctx: ToolContext, args: EchoArgs) -> str:
        """Record the thread."""
        seen.append(threading.current_thread() is threading.main_thread())
        return args.text

    out = await where.run(ctx, EchoArgs(text="hi"))
    assert out == ToolOutput(text="hi")
    assert seen == [False]
    assert await echo.run(ctx, EchoArgs(text="x")) == ToolOutput(text="nb.ipynb: x")


async def test_async_tool_and_tool_output(ctx: ToolContext) -> None:
    assert await async_echo.run(ctx, EchoArgs(text="hi")) == ToolOutput(text="HI")
    out = await make_shape.run(ctx, ShapeArgs(name="sq", count=2))
    assert out == ToolOutput(text="2 x sq", changed_paths=["shape.txt"])


@pytest.mark.parametrize("is_async", [False, True])
async def test_unexpected_exception_becomes_tool_error(ctx: ToolContext, is_async: bool) -> None:
    def boom(ctx: ToolContext, args: EchoArgs) -> str:
        """Fail."""
        raise KeyError("missing thing")

    async def aboom(ctx: ToolContext, args: EchoArgs) -> str:
        """Fail."""
        raise ValueError("bad value")

    t = Tool(aboom if is_async else boom, name="boom", description="d", args_model=EchoArgs)
    with pytest.raises(ToolError) as info:
        await t.run(ctx, EchoArgs(text=""))
    assert type(info.value) is ToolError
    expected = "ValueError: bad value" if is_async else "KeyError: 'missing thing'"
    assert str(info.value) == f"Tool 'boom' failed: {expected}"
    assert info.value.data["exception"] == ("ValueError" if is_async else "KeyError")


async def test_tool_error_subclasses_pass_through(ctx: ToolContext) -> None:
    def strict(ctx: ToolContext, args: EchoArgs) -> str:
        raise ToolArgumentsError("fix your arguments")

    t = Tool(strict, name="strict", description="d", args_model=EchoArgs)
    with pytest.raises(ToolArgumentsError, match=r"^fix your arguments$"):
        await t.run(ctx, EchoArgs(text=""))


async def test_bad_return_type_is_a_tool_error(ctx: ToolContext) -> None:
    t = Tool(lambda c, a: 42, name="num", description="d", args_model=EchoArgs)
    with pytest.raises(ToolError, match="returned int"):
        await t.run(ctx, EchoArgs(text=""))


async def test_cancelled_error_propagates(ctx: ToolContext) -> None:
    async def cancels(ctx: ToolContext, args: EchoArgs) -> str:
        raise asyncio.CancelledError

    t = Tool(cancels, name="cancels", description="d", args_model=EchoArgs)
    with pytest.raises(asyncio.CancelledError):
        await t.run(ctx, EchoArgs(text=""))


async def test_cancelling_a_running_tool_propagates(ctx: ToolContext) -> None:
    started = asyncio.Event()

    async def waits(ctx: ToolContext, args: EchoArgs) -> str:
        started.set()
        await asyncio.Event().wait()
        return ""

    t = Tool(waits, name="waits", description="d", args_model=EchoArgs)
    task = asyncio.create_task(t.run(ctx, EchoArgs(text="")))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_run_revalidates_a_foreign_model(ctx: ToolContext) -> None:
    class Other(BaseModel):
        text: str

    assert await echo.run(ctx, Other(text="y")) == ToolOutput(text="nb.ipynb: y")


# --- registry ---------------------------------------------------------------------------


def test_registry_lookup_and_schemas() -> None:
    reg = ToolRegistry([echo, make_shape])
    assert reg.names == ["echo", "shape"]
    assert reg.get("shape") is make_shape
    assert "echo" in reg and "nope" not in reg
    assert list(reg) == [echo, make_shape]
    assert len(reg) == 2
    assert [s["function"]["name"] for s in reg.schemas()] == ["echo", "shape"]


def test_registry_unknown_tool_says_what_exists() -> None:
    reg = ToolRegistry([echo, make_shape])
    with pytest.raises(ToolError, match=r"Unknown tool 'nope'\. Available tools: echo, shape\."):
        reg.get("nope")
    with pytest.raises(ToolError, match=r"Available tools: \(none\)"):
        ToolRegistry().get("x")


def test_registry_add_and_with_tools() -> None:
    reg = ToolRegistry([echo])
    reg.add(make_shape)
    assert reg.names == ["echo", "shape"]
    with pytest.raises(ValueError, match="already registered"):
        reg.add(echo)
    replacement = Tool(lambda c, a: "", name="echo", description="new", args_model=EchoArgs)
    extended = reg.with_tools(async_echo, replacement)
    assert extended.names == ["echo", "shape", "async_echo"]
    assert extended.get("echo") is replacement
    assert reg.get("echo") is echo  # the original is untouched
