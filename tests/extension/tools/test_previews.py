"""Previews: what a held call would change, as a bounded unified diff (tools/diffs.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from pydantic import BaseModel

from agentspace.tools import diffs
from agentspace.tools.base import Tool, ToolContext, tool
from agentspace.tools.diffs import cap, cap_text, unified
from agentspace.tools.files import edit_file, write_file


class Args(BaseModel):
    text: str = ""


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    return ToolContext(folder=tmp_path, session_id="s1", notebook="nb.ipynb")


# -- the diff helper --------------------------------------------------------------------


def test_a_change_is_a_git_style_unified_diff() -> None:
    old = "".join(f"line {i}\n" for i in range(1, 11))
    new = old.replace("line 5\n", "line five\n")
    assert unified("src/a.txt", old, new) == (
        "--- a/src/a.txt\n+++ b/src/a.txt\n@@ -2,7 +2,7 @@\n line 2\n line 3\n line 4\n"
        "-line 5\n+line five\n line 6\n line 7\n line 8"
    )
    assert unified("a.txt", old, new, context=0).splitlines()[2:] == [
        "@@ -5 +5 @@",
        "-line 5",
        "+line five",
    ]


def test_a_new_file_is_all_added_and_equal_texts_have_no_diff() -> None:
    assert unified("n.txt", None, "one\ntwo\n") == (
        "--- /dev/null\n+++ b/n.txt\n@@ -0,0 +1,2 @@\n+one\n+two"
    )
    assert unified("n.txt", None, "one\n").splitlines()[2] == "@@ -0,0 +1 @@"
    assert unified("n.txt", None, "") == "--- /dev/null\n+++ b/n.txt\n(a new, empty file)"
    assert unified("n.txt", "same\n", "same\n") == ""


def test_a_missing_final_newline_is_marked() -> None:
    assert unified("a", "x\ny", "x\ny\n").splitlines()[3:] == [
        " x",
        "-y",
        diffs.NO_NEWLINE,
        "+y",
    ]
    assert unified("n", None, "last").splitlines()[-1] == diffs.NO_NEWLINE


def test_lines_split_on_newline_only() -> None:
    # a form feed or a lone \r stays in its line, as git keeps it
    diff = unified("a", "p\x0cq\n", "p\x0cr\n")
    assert diff.split("\n")[-2:] == ["-p\x0cq", "+p\x0cr"]


def test_a_long_diff_is_cut_with_a_marker_saying_how_much() -> None:
    new = "".join(f"{i}\n" for i in range(1000))
    diff = unified("big.txt", None, new, max_lines=10)
    lines = diff.split("\n")
    assert len(lines) == 11 and lines[:3] == [
        "--- /dev/null",
        "+++ b/big.txt",
        "@@ -0,0 +1,1000 @@",
    ]
    assert lines[-1] == "… 993 more lines not shown (1,003 in all)"
    by_bytes = unified("big.txt", None, new, max_bytes=100)
    assert len(by_bytes.encode()) < 100 + 60 and "more lines not shown" in by_bytes


def test_the_default_caps_hold() -> None:
    new = "".join(f"{i:04}\n" for i in range(5000))
    assert len(unified("a", None, new).split("\n")) == diffs.MAX_LINES + 1
    wide = "".join("x" * 300 + "\n" for _ in range(300))
    shown = unified("a", None, wide)
    assert len(shown.encode()) <= diffs.MAX_BYTES + 100 and "more lines not shown" in shown


def test_one_enormous_line_is_cut() -> None:
    diff = unified("min.js", "a\n", "b" * 50_000 + "\n")
    (added,) = [ln for ln in diff.split("\n") if ln.startswith("+b")]
    assert added.endswith("… (50,001 characters)") and len(added) < diffs.LINE_CHARS + 40


def test_texts_too_large_to_compare_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diffs, "MAX_DIFF_INPUT", 10)
    assert "too large to compare" in unified("a", "x" * 20, "y")


def test_cap_and_cap_text() -> None:
    assert cap(["a", "b", "c"], max_lines=2) == "a\nb\n… 1 more line not shown (3 in all)"
    assert cap(["a"]) == "a"
    assert cap_text("x\n" * 3, max_lines=10) == "x\nx\nx\n"


# -- Tool(preview=...) ----------------------------------------------------------------------


def test_the_decorator_and_the_class_take_a_preview() -> None:
    def show(ctx: ToolContext, args: Args) -> str:
        return f"would say {args.text}"

    @tool(preview=show)
    def say(ctx: ToolContext, args: Args) -> str:
        """Say it."""
        return args.text

    assert say.preview is show
    assert Tool(lambda c, a: "", name="t", description="d", args_model=Args).preview is None


async def test_a_sync_preview_runs_in_a_thread_and_an_async_one_is_awaited(
    ctx: ToolContext,
) -> None:
    threads: list[str] = []

    def sync_preview(c: ToolContext, args: Args) -> str:
        threads.append(threading.current_thread().name)
        return f"sync {args.text}"

    async def async_preview(c: ToolContext, args: Args) -> str:
        return f"async {args.text}"

    for fn, expected in ((sync_preview, "sync hi"), (async_preview, "async hi")):
        t = Tool(lambda c, a: "", name="t", description="d", args_model=Args, preview=fn)
        assert await t.preview_text(ctx, Args(text="hi")) == expected
    assert threads and threads[0] != threading.current_thread().name


@pytest.mark.parametrize("result", [RuntimeError("bug"), None, "", "  \n", 42, b"bytes"], ids=repr)
async def test_a_failing_or_empty_preview_gives_none(ctx: ToolContext, result: object) -> None:
    def preview(c: ToolContext, args: Args) -> object:
        if isinstance(result, Exception):
            raise result
        return result

    t = Tool(lambda c, a: "", name="t", description="d", args_model=Args, preview=preview)
    assert await t.preview_text(ctx, Args()) is None


async def test_a_slow_preview_is_given_up(ctx: ToolContext) -> None:
    async def slow(c: ToolContext, args: Args) -> str:
        await asyncio.sleep(10)
        return "late"

    t = Tool(lambda c, a: "", name="t", description="d", args_model=Args, preview=slow)
    started = time.monotonic()
    assert await t.preview_text(ctx, Args(), timeout=0.05) is None
    assert time.monotonic() - started < 2


async def test_a_long_preview_text_is_capped(ctx: ToolContext) -> None:
    t = Tool(
        lambda c, a: "",
        name="t",
        description="d",
        args_model=Args,
        preview=lambda c, a: "line\n" * 10_000,
    )
    shown = await t.preview_text(ctx, Args())
    assert shown is not None and shown.endswith("more lines not shown (10,001 in all)")


# -- the file tools' previews ---------------------------------------------------------------


async def preview(ctx: ToolContext, t: Tool, **arguments: object) -> str | None:
    return await t.preview_text(ctx, t.parse_arguments(arguments))


async def test_write_file_previews_a_new_file_as_all_added(ctx: ToolContext) -> None:
    shown = await preview(ctx, write_file, path="./notes/../todo.md", content="- a\n- b\n")
    assert shown == "--- /dev/null\n+++ b/todo.md\n@@ -0,0 +1,2 @@\n+- a\n+- b"
    assert not (ctx.folder / "todo.md").exists()  # a preview changes nothing


async def test_write_file_previews_the_change_to_an_existing_file(ctx: ToolContext) -> None:
    (ctx.folder / "a.txt").write_text("one\ntwo\n")
    shown = await preview(ctx, write_file, path="a.txt", content="one\n2\n")
    assert shown == "--- a/a.txt\n+++ b/a.txt\n@@ -1,2 +1,2 @@\n one\n-two\n+2"
    assert (ctx.folder / "a.txt").read_text() == "one\ntwo\n"
    same = await preview(ctx, write_file, path="a.txt", content="one\ntwo\n")
    assert same == "no change: a.txt already has this content"


async def test_write_file_over_a_binary_file_says_so(ctx: ToolContext) -> None:
    (ctx.folder / "b.bin").write_bytes(b"\x00\x01\xff")
    shown = await preview(ctx, write_file, path="b.bin", content="text")
    assert shown == "replaces the binary file b.bin (3 bytes) with text"


async def test_edit_file_previews_the_replacement(ctx: ToolContext) -> None:
    (ctx.folder / "m.py").write_text("def f():\n    return 1\n\n\nprint(f())\n")
    shown = await preview(ctx, edit_file, path="m.py", old_string="return 1", new_string="return 2")
    assert shown == (
        "--- a/m.py\n+++ b/m.py\n@@ -1,5 +1,5 @@\n def f():\n-    return 1\n+    return 2\n"
        " \n \n print(f())"
    )
    assert "return 1" in (ctx.folder / "m.py").read_text()


async def test_edit_file_replace_all_previews_every_occurrence(ctx: ToolContext) -> None:
    (ctx.folder / "x.txt").write_text("a\nb\na\n")
    shown = await preview(
        ctx, edit_file, path="x.txt", old_string="a", new_string="c", replace_all=True
    )
    assert shown is not None and shown.count("-a") == 2 and shown.count("+c") == 2


@pytest.mark.parametrize(
    "arguments",
    [
        {"path": "x.txt", "old_string": "zzz", "new_string": "y"},  # not found
        {"path": "x.txt", "old_string": "a", "new_string": "y"},  # twice, not replace_all
        {"path": "x.txt", "old_string": "a", "new_string": "a"},  # no change
        {"path": "nope.txt", "old_string": "a", "new_string": "y"},  # no such file
        {"path": "../outside.txt", "old_string": "a", "new_string": "y"},  # out of the folder
    ],
)
async def test_an_edit_that_would_fail_has_no_preview(
    ctx: ToolContext, arguments: dict[str, object]
) -> None:
    (ctx.folder / "x.txt").write_text("a\nb\na\n")
    assert await preview(ctx, edit_file, **arguments) is None


async def test_a_write_outside_the_folder_has_no_preview(ctx: ToolContext) -> None:
    assert await preview(ctx, write_file, path="../escape.txt", content="x") is None
