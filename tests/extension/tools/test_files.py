"""The built-in file tools, and every way a path could try to leave the workspace."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from agentspace.errors import PathEscapeError, ToolArgumentsError, ToolError
from agentspace.sandbox import paths
from agentspace.tools import files
from agentspace.tools.base import Tool, ToolContext, ToolOutput
from agentspace.tools.files import (
    FILE_TOOLS,
    builtin_tools,
    edit_file,
    list_files,
    read_file,
    write_file,
)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    (out / "secret.txt").write_text("top secret\n")
    return out


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


@pytest.fixture
def ctx(ws: Path) -> ToolContext:
    return ToolContext(folder=ws, session_id="s1", notebook="nb.ipynb")


async def call(ctx: ToolContext, t: Tool, **arguments: Any) -> ToolOutput:
    """Call a tool the way the run loop does: raw arguments, parse, run."""
    return await t.run(ctx, t.parse_arguments(arguments))


def tree(root: Path) -> set[str]:
    """Every path under ``root`` (symlinks not followed), to prove nothing was created."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            found.add(os.path.relpath(os.path.join(dirpath, name), root))
    return found


# --- the tool set -----------------------------------------------------------------------


def test_builtin_tools_and_policies() -> None:
    assert [t.name for t in FILE_TOOLS] == ["read_file", "write_file", "edit_file", "list_files"]
    assert builtin_tools()[: len(FILE_TOOLS)] == list(FILE_TOOLS)
    assert {t.name: t.policy for t in builtin_tools()[len(FILE_TOOLS) :]} == {
        "shell": "ask",
        "start_process": "ask",
        "list_processes": "allow",
        "process_output": "allow",
        "stop_process": "ask",
        "restart_processes": "ask",
        "open_preview": "allow",
    }
    assert {t.name: t.policy for t in FILE_TOOLS} == {
        "read_file": "allow",
        "write_file": "ask",
        "edit_file": "ask",
        "list_files": "allow",
    }


def test_field_descriptions_reach_the_schema() -> None:
    props = read_file.openai_schema()["function"]["parameters"]["properties"]
    assert "relative to the workspace" in props["path"]["description"]
    assert "skip" in props["offset"]["description"]


async def test_unknown_argument_is_refused(ctx: ToolContext) -> None:
    with pytest.raises(ToolArgumentsError, match="file: Extra inputs are not permitted"):
        await call(ctx, read_file, path="a", file="b")


# --- read_file --------------------------------------------------------------------------


async def test_read_file(ctx: ToolContext, ws: Path) -> None:
    (ws / "a.txt").write_text("one\ntwo\nthree\n")
    assert (await call(ctx, read_file, path="a.txt")).text == "one\ntwo\nthree\n"
    assert (await call(ctx, read_file, path="./a.txt", offset=1, limit=1)).text.startswith("two\n")
    out = (await call(ctx, read_file, path="a.txt", limit=2)).text
    assert out.startswith("one\ntwo\n")
    assert "call read_file with offset=2" in out
    assert (
        await call(ctx, read_file, path="a.txt", offset=3)
    ).text == "[no lines after this offset]"
    assert "past the end" in (await call(ctx, read_file, path="a.txt", offset=9)).text


async def test_read_empty_and_unicode(ctx: ToolContext, ws: Path) -> None:
    (ws / "empty.txt").write_bytes(b"")
    (ws / "u.txt").write_text("héllo ✓", encoding="utf-8")
    assert (await call(ctx, read_file, path="empty.txt")).text == "[empty file]"
    assert (await call(ctx, read_file, path="u.txt")).text == "héllo ✓"


async def test_read_caps_lines(ctx: ToolContext, ws: Path) -> None:
    (ws / "big.txt").write_text("".join(f"{i}\n" for i in range(2500)))
    first = (await call(ctx, read_file, path="big.txt")).text
    assert first.count("\n") >= 2000 and first.startswith("0\n1\n")
    assert "1999\n" in first and "\n2000\n" not in first
    assert "offset=2000" in first
    rest = (await call(ctx, read_file, path="big.txt", offset=2000)).text
    assert rest.startswith("2000\n") and rest.endswith("2499\n")
    assert (await call(ctx, read_file, path="big.txt", limit=5000)).text == first


async def test_read_caps_bytes(ctx: ToolContext, ws: Path) -> None:
    line = "x" * 999 + "\n"
    (ws / "wide.txt").write_text(line * 300)  # 300 KB in 300 lines
    out = (await call(ctx, read_file, path="wide.txt")).text
    shown, _, note = out.rpartition("\n[")
    assert len(shown.encode()) <= files.MAX_READ_BYTES
    assert shown.endswith("x\n")  # stops at a line boundary
    n = shown.count("\n")
    assert n == files.MAX_READ_BYTES // len(line)
    assert f"offset={n}" in note
    rest = (await call(ctx, read_file, path="wide.txt", offset=n)).text
    assert rest.count("\n") == 300 - n


async def test_read_one_huge_line_is_cut(ctx: ToolContext, ws: Path) -> None:
    (ws / "line.txt").write_text("y" * (files.MAX_READ_BYTES + 10) + "\nnext\n")
    out = (await call(ctx, read_file, path="line.txt")).text
    assert "Line 1 is longer than" in out and "offset=1" in out
    assert (await call(ctx, read_file, path="line.txt", offset=1)).text == "next\n"


async def test_read_binary_is_refused(ctx: ToolContext, ws: Path) -> None:
    (ws / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(100))
    (ws / "latin1.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(ToolError, match=r"'img.png' is a binary file \(116 bytes\)"):
        await call(ctx, read_file, path="img.png")
    with pytest.raises(ToolError, match="binary file"):
        await call(ctx, read_file, path="latin1.txt")


async def test_read_missing_and_directory(ctx: ToolContext, ws: Path) -> None:
    (ws / "d").mkdir()
    with pytest.raises(ToolError, match=r"No such file or directory: 'nope.txt'"):
        await call(ctx, read_file, path="nope.txt")
    with pytest.raises(ToolError, match="'d' is a directory"):
        await call(ctx, read_file, path="d")
    with pytest.raises(ToolError, match="is a directory"):
        await call(ctx, read_file, path=".")


async def test_read_fifo_does_not_hang(ctx: ToolContext, ws: Path) -> None:
    os.mkfifo(ws / "pipe")
    with pytest.raises(ToolError, match="not a regular file"):
        await call(ctx, read_file, path="pipe")


# --- write_file -------------------------------------------------------------------------


async def test_write_creates_parents_and_overwrites(ctx: ToolContext, ws: Path) -> None:
    out = await call(ctx, write_file, path="a/b/c.txt", content="héllo")
    assert out == ToolOutput(text="Wrote 6 bytes to a/b/c.txt", changed_paths=["a/b/c.txt"])
    assert (ws / "a/b/c.txt").read_text() == "héllo"
    out = await call(ctx, write_file, path="./a//b/../b/c.txt", content="new")
    assert out.changed_paths == ["a/b/c.txt"]
    assert (ws / "a/b/c.txt").read_text() == "new"
    assert tree(ws) == {"a", "a/b", "a/b/c.txt"}  # no temp file left behind


async def test_write_keeps_permissions(ctx: ToolContext, ws: Path) -> None:
    script = ws / "run.sh"
    script.write_text("old")
    script.chmod(0o750)
    await call(ctx, write_file, path="run.sh", content="new")
    assert script.stat().st_mode & 0o777 == 0o750


async def test_write_over_a_directory_or_through_a_file(ctx: ToolContext, ws: Path) -> None:
    (ws / "d").mkdir()
    (ws / "f").write_text("x")
    with pytest.raises(ToolError, match="'d' is a directory"):
        await call(ctx, write_file, path="d", content="x")
    with pytest.raises(ToolError, match="is not a directory"):
        await call(ctx, write_file, path="f/g.txt", content="x")
    assert tree(ws) == {"d", "f"}


# --- edit_file --------------------------------------------------------------------------


async def test_edit_file(ctx: ToolContext, ws: Path) -> None:
    (ws / "code.py").write_text("a = 1\nb = 2\na = 1\n")
    out = await call(ctx, edit_file, path="code.py", old_string="b = 2", new_string="b = 3")
    assert out == ToolOutput(text="Replaced 1 occurrence in code.py", changed_paths=["code.py"])
    assert (ws / "code.py").read_text() == "a = 1\nb = 3\na = 1\n"
    out = await call(
        ctx, edit_file, path="code.py", old_string="a = 1", new_string="a = 0", replace_all=True
    )
    assert out.text == "Replaced 2 occurrences in code.py"
    assert (ws / "code.py").read_text() == "a = 0\nb = 3\na = 0\n"


async def test_edit_file_errors(ctx: ToolContext, ws: Path) -> None:
    (ws / "code.py").write_text("a = 1\na = 1\na = 1\n")
    with pytest.raises(ToolError, match=r"old_string was not found in 'code.py'"):
        await call(ctx, edit_file, path="code.py", old_string="z", new_string="y")
    with pytest.raises(ToolError, match=r"occurs 3 times.*set replace_all") as info:
        await call(ctx, edit_file, path="code.py", old_string="a = 1", new_string="a = 2")
    assert info.value.data["matches"] == 3
    with pytest.raises(ToolError, match="the same"):
        await call(ctx, edit_file, path="code.py", old_string="a", new_string="a")
    with pytest.raises(ToolArgumentsError, match="old_string"):
        await call(ctx, edit_file, path="code.py", old_string="", new_string="a")
    with pytest.raises(ToolError, match="No such file"):
        await call(ctx, edit_file, path="missing.py", old_string="a", new_string="b")
    (ws / "bin").write_bytes(b"a\0b")
    with pytest.raises(ToolError, match="binary"):
        await call(ctx, edit_file, path="bin", old_string="a", new_string="b")
    assert (ws / "code.py").read_text() == "a = 1\na = 1\na = 1\n"
    assert tree(ws) == {"code.py", "bin"}


# --- list_files -------------------------------------------------------------------------


async def test_list_files(ctx: ToolContext, ws: Path) -> None:
    (ws / "b.txt").write_text("hello")
    (ws / "one").write_text("1")
    (ws / "a").mkdir()
    (ws / "a" / "inner.txt").write_text("")
    (ws / "a" / "sub").mkdir()
    text = (await call(ctx, list_files)).text
    assert text.splitlines() == ["a/", "b.txt  (5 bytes)", "one  (1 byte)"]
    text = (await call(ctx, list_files, recursive=True)).text
    assert text.splitlines() == [
        "a/",
        "a/inner.txt  (0 bytes)",
        "a/sub/",
        "b.txt  (5 bytes)",
        "one  (1 byte)",
    ]
    assert (await call(ctx, list_files, path="a/sub")).text == "[empty directory]"
    assert (await call(ctx, list_files, path="a")).text.splitlines()[0] == "inner.txt  (0 bytes)"


async def test_list_files_errors(ctx: ToolContext, ws: Path) -> None:
    (ws / "f").write_text("x")
    with pytest.raises(ToolError, match="'f' is not a directory"):
        await call(ctx, list_files, path="f")
    with pytest.raises(ToolError, match="No such file"):
        await call(ctx, list_files, path="nope")


async def test_list_files_is_capped(
    ctx: ToolContext, ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "MAX_LIST_ENTRIES", 3)
    for i in range(5):
        (ws / f"f{i}").write_text("")
    lines = (await call(ctx, list_files, recursive=True)).text.splitlines()
    assert lines[:3] == ["f0  (0 bytes)", "f1  (0 bytes)", "f2  (0 bytes)"]
    assert "stopped at 3 entries" in lines[3]


async def test_list_shows_symlinks_without_following(
    ctx: ToolContext, ws: Path, outside: Path
) -> None:
    (ws / "in").mkdir()
    (ws / "in" / "x").write_text("x")
    os.symlink(outside, ws / "out")
    os.symlink("in", ws / "alias")
    text = (await call(ctx, list_files, recursive=True)).text
    assert text.splitlines() == ["alias -> in", "in/", "in/x  (1 byte)", f"out -> {outside}"]
    with pytest.raises(PathEscapeError):
        await call(ctx, list_files, path="out")
    assert (await call(ctx, list_files, path="alias")).text == "x  (1 byte)"


# --- escapes ----------------------------------------------------------------------------

ESCAPES = ["..", "../x", "a/../../x", "/etc/passwd", "a\0b", "./../ws/x"]


@pytest.mark.parametrize("path", ESCAPES)
async def test_lexical_escapes_are_refused(
    ctx: ToolContext, ws: Path, tmp_path: Path, path: str
) -> None:
    before = tree(tmp_path)
    for t, extra in [
        (read_file, {}),
        (list_files, {}),
        (write_file, {"content": "pwned"}),
        (edit_file, {"old_string": "a", "new_string": "b"}),
    ]:
        with pytest.raises(PathEscapeError, match="must be relative to the workspace"):
            await call(ctx, t, path=path, **extra)
    assert tree(tmp_path) == before


@pytest.fixture
def links(ws: Path, outside: Path) -> Path:
    """A workspace with symlinks planted in it, as a sandboxed process could."""
    os.symlink(outside / "secret.txt", ws / "secret_link")  # file link, absolute
    os.symlink("../outside", ws / "out_dir")  # directory link, relative
    os.symlink("out_dir", ws / "chain1")  # chain: chain1 -> out_dir -> ../outside
    os.symlink(outside / "new.txt", ws / "dangling_out")  # dangling, points out
    (ws / "sub").mkdir()
    os.symlink("../../outside/secret.txt", ws / "sub" / "up")  # '..' inside a target
    return ws


LINK_ESCAPES = [
    "secret_link",
    "out_dir/secret.txt",
    "out_dir/new.txt",
    "out_dir/newdir/new.txt",
    "chain1/secret.txt",
    "chain1/new.txt",
    "dangling_out",
    "sub/up",
]


@pytest.mark.parametrize("path", LINK_ESCAPES)
async def test_symlinks_out_are_refused(
    ctx: ToolContext, links: Path, outside: Path, tmp_path: Path, path: str
) -> None:
    before = tree(tmp_path)
    with pytest.raises(PathEscapeError, match=r"symlink.*must be relative to the workspace"):
        await call(ctx, write_file, path=path, content="pwned")
    with pytest.raises(PathEscapeError):
        await call(ctx, edit_file, path=path, old_string="top", new_string="pwned")
    with pytest.raises(PathEscapeError):
        await call(ctx, read_file, path=path)
    assert tree(tmp_path) == before
    assert (outside / "secret.txt").read_text() == "top secret\n"


async def test_symlinks_inside_the_workspace_are_followed(ctx: ToolContext, ws: Path) -> None:
    (ws / "real" / "deep").mkdir(parents=True)
    (ws / "real" / "deep" / "f.txt").write_text("inside\n")
    os.symlink("real/deep", ws / "d")
    os.symlink("d/f.txt", ws / "f_link")  # chain through a directory link
    os.symlink(ws / "real", ws / "abs")  # absolute, but inside
    os.symlink("../real/deep/f.txt", ws / "real" / "up")  # '..' that stays inside
    for path in ["d/f.txt", "f_link", "abs/deep/f.txt", "real/up", "d/../d/f.txt"]:
        assert (await call(ctx, read_file, path=path)).text == "inside\n"
    out = await call(ctx, write_file, path="d/new.txt", content="n")
    assert out.changed_paths == ["real/deep/new.txt"]
    out = await call(ctx, edit_file, path="f_link", old_string="inside", new_string="edited")
    assert out.changed_paths == ["real/deep/f.txt"]
    assert (ws / "f_link").is_symlink()  # the link survives; its target changed
    assert (ws / "real" / "deep" / "f.txt").read_text() == "edited\n"


async def test_symlink_loop_is_an_error(ctx: ToolContext, ws: Path) -> None:
    os.symlink("loop2", ws / "loop1")
    os.symlink("loop1", ws / "loop2")
    with pytest.raises(ToolError):
        await call(ctx, read_file, path="loop1")
    with pytest.raises(ToolError):
        await call(ctx, write_file, path="loop1/x", content="x")


# --- the fd walk holds even when the realpath check is raced ----------------------------


@pytest.mark.parametrize(
    "path", ["out_dir/pwned.txt", "chain1/newdir/pwned.txt", "dangling_out", "sub/up"]
)
def test_walk_refuses_links_swapped_in_after_the_check(
    links: Path, outside: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    # Simulate a symlink planted between the realpath check and the open.
    monkeypatch.setattr(paths, "resolve_in_workspace", lambda root, path: root / path)
    before = tree(tmp_path)
    with pytest.raises(PathEscapeError, match="a symlink leads outside"):
        paths.write_bytes(links, path, b"pwned")
    with pytest.raises(PathEscapeError, match="a symlink leads outside"):
        paths.open_read(links, path)
    assert tree(tmp_path) == before
    assert (outside / "secret.txt").read_text() == "top secret\n"


def test_resolve_in_workspace(ws: Path, outside: Path) -> None:
    (ws / "a").mkdir()
    os.symlink("a", ws / "link")
    os.symlink(outside, ws / "out")
    real = ws.resolve()
    assert paths.resolve_in_workspace(ws, ".") == real
    assert paths.resolve_in_workspace(ws, "link/x.txt") == real / "a" / "x.txt"
    assert paths.resolve_in_workspace(ws, "a/../b") == real / "b"
    for bad in ["out/x", "..", "/tmp", "x\0"]:
        with pytest.raises(PathEscapeError, match="must be relative to the workspace"):
            paths.resolve_in_workspace(ws, bad)


def test_write_and_read_helpers(ws: Path) -> None:
    assert paths.write_text(ws, "n/m.txt", "hi") == "n/m.txt"
    assert paths.read_text(ws, "n/m.txt") == "hi"
    with pytest.raises(FileNotFoundError):
        paths.write_text(ws, "x/y.txt", "hi", create_parents=False)
    assert not (ws / "x").exists()
    listing = paths.list_dir(ws, recursive=True)
    assert [(e.path, e.kind) for e in listing.entries] == [("n", "dir"), ("n/m.txt", "file")]
    assert not listing.truncated
