"""Built-in file tools: read, write, edit and list files in the session's workspace.

Every access goes through ``workspace.paths``, so a path from the model can never
reach outside ``ctx.folder``. Results are bounded (lines, bytes, entries) and say
how to get the rest, because an unbounded result would flood the model's context.
Reading and listing are harmless and allowed by default; changing files asks first.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from pydantic import BaseModel, ConfigDict, Field

from agentspace.errors import ToolError
from agentspace.sandbox import paths
from agentspace.tools.base import Tool, ToolContext, ToolOutput, tool
from agentspace.tools.diffs import unified
from agentspace.tools.edits import replace_exact

MAX_READ_LINES = 2_000
MAX_READ_BYTES = 256 * 1024
MAX_EDIT_BYTES = 10 * 1024 * 1024
MAX_LIST_ENTRIES = 1_000
_SNIFF_BYTES = 8192

_PATH = "File path relative to the workspace folder, e.g. 'notes/todo.md'."


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReadFileArgs(_Args):
    path: str = Field(min_length=1, description=_PATH)
    offset: int = Field(
        0, ge=0, description="Number of lines to skip before reading (0 = start of file)."
    )
    limit: int | None = Field(
        None, ge=1, description=f"Most lines to return (default and maximum {MAX_READ_LINES})."
    )


class WriteFileArgs(_Args):
    path: str = Field(min_length=1, description=_PATH)
    content: str = Field(description="The complete new content of the file (UTF-8 text).")


class EditFileArgs(_Args):
    path: str = Field(min_length=1, description=_PATH)
    old_string: str = Field(
        min_length=1, description="Exact text to replace, including whitespace and indentation."
    )
    new_string: str = Field(description="Text to put in its place.")
    replace_all: bool = Field(
        False, description="Replace every occurrence instead of requiring exactly one."
    )


class ListFilesArgs(_Args):
    path: str = Field(".", description="Directory relative to the workspace folder.")
    recursive: bool = Field(False, description="Also list the contents of subdirectories.")


@contextmanager
def _fs_errors(path: str) -> Iterator[None]:
    """Turn OS errors into ToolErrors the model can act on (``PathEscapeError`` passes)."""
    try:
        yield
    except FileNotFoundError:
        raise ToolError(
            f"No such file or directory: {path!r}. Paths are relative to the workspace "
            "folder; use list_files to see what exists.",
            path=path,
        ) from None
    except IsADirectoryError:
        raise ToolError(
            f"{path!r} is a directory, not a file; use list_files to see what it contains.",
            path=path,
        ) from None
    except NotADirectoryError:
        raise ToolError(
            f"{path!r} is not a directory (it, or a folder on the way to it, is a file).",
            path=path,
        ) from None
    except PermissionError:
        raise ToolError(f"Permission denied: {path!r}.", path=path) from None
    except OSError as exc:
        raise ToolError(f"Could not access {path!r}: {exc.strerror or exc}.", path=path) from None


def _is_binary(head: bytes, complete: bool) -> bool:
    if b"\0" in head:
        return True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
    except UnicodeDecodeError:
        return True
    return False


def _binary_error(path: str, size: int) -> ToolError:
    return ToolError(
        f"{path!r} is a binary file ({size:,} bytes); read_file and edit_file only handle "
        "UTF-8 text.",
        path=path,
    )


def _skip_line(f: BinaryIO) -> bool:
    """Skip one line without holding it in memory; False at end of file."""
    chunk = f.readline(65536)
    while chunk and not chunk.endswith(b"\n"):
        more = f.readline(65536)
        if not more:
            break
        chunk = more
    return bool(chunk)


@tool(policy="allow")
def read_file(ctx: ToolContext, args: ReadFileArgs) -> str:
    """Read a UTF-8 text file from the workspace.

    Returns at most 2,000 lines or 256 KB per call; when the file is longer, the result
    ends with a note giving the offset to pass to read the next part.
    """
    limit = min(args.limit or MAX_READ_LINES, MAX_READ_LINES)
    with _fs_errors(args.path), paths.open_read(ctx.folder, args.path) as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(_SNIFF_BYTES)
        if _is_binary(head, complete=len(head) < _SNIFF_BYTES):
            raise _binary_error(args.path, size)
        f.seek(0)
        skipped = 0
        while skipped < args.offset and _skip_line(f):
            skipped += 1
        if skipped < args.offset:
            return f"[offset {args.offset} is past the end: {args.path!r} has {skipped} lines.]"
        lines: list[bytes] = []
        used, more, cut = 0, False, False
        while len(lines) < limit:
            room = MAX_READ_BYTES - used
            line = f.readline(room) if room else b""
            if not line:
                more = room == 0 and bool(f.read(1))
                break
            if len(line) == room and not line.endswith(b"\n") and f.read(1):
                if lines:  # the byte budget ends inside this line: leave it for the next call
                    f.seek(-len(line) - 1, os.SEEK_CUR)
                    more = True
                    break
                cut = True  # one line longer than the whole budget
            lines.append(line)
            used += len(line)
        else:
            more = bool(f.read(1))
    text = b"".join(lines).decode("utf-8", errors="replace")
    first, last = args.offset + 1, args.offset + len(lines)
    notes = []
    if cut:
        notes.append(f"Line {first} is longer than {MAX_READ_BYTES:,} bytes and was cut.")
    if more or cut:
        notes.append(
            f"Showing lines {first}-{last} of a {size:,}-byte file. To read more, call "
            f"read_file with offset={last}."
        )
    if not text and not notes:
        return "[empty file]" if args.offset == 0 else "[no lines after this offset]"
    if notes:
        text += ("" if text.endswith("\n") or not text else "\n") + f"\n[{' '.join(notes)}]"
    return text


def _label(path: str) -> str:
    """The path as a diff names it: workspace-relative, ``.``/``..`` resolved."""
    return "/".join(paths.normalize(path)) or "."


def _read_for_edit(ctx: ToolContext, path: str) -> str:
    """A workspace text file's content, refused (ToolError) if too large or binary."""
    with _fs_errors(path), paths.open_read(ctx.folder, path) as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_EDIT_BYTES:
            raise ToolError(
                f"{path!r} is too large to edit ({size:,} bytes; the limit is "
                f"{MAX_EDIT_BYTES:,}). Use write_file to replace it whole.",
                path=path,
            )
        raw = f.read()
    if b"\0" in raw[:_SNIFF_BYTES]:
        raise _binary_error(path, size)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _binary_error(path, size) from None


def preview_write_file(ctx: ToolContext, args: WriteFileArgs) -> str | None:
    """The diff from the file as it is (all added, for a new file) to the new content."""
    label = _label(args.path)
    try:
        with paths.open_read(ctx.folder, args.path) as f:
            size = os.fstat(f.fileno()).st_size
            raw = f.read(MAX_EDIT_BYTES + 1)
    except FileNotFoundError:
        return unified(label, None, args.content)
    if size > MAX_EDIT_BYTES:
        return f"replaces {label} ({size:,} bytes, too large to compare) with new content"
    try:
        old = raw.decode("utf-8") if b"\0" not in raw[:_SNIFF_BYTES] else None
    except UnicodeDecodeError:
        old = None
    if old is None:
        return f"replaces the binary file {label} ({size:,} bytes) with text"
    return unified(label, old, args.content) or f"no change: {label} already has this content"


@tool(policy="ask", preview=preview_write_file)
def write_file(ctx: ToolContext, args: WriteFileArgs) -> ToolOutput:
    """Create a file in the workspace, or replace its whole content; parent folders are created.

    To change part of an existing file, prefer edit_file.
    """
    data = args.content.encode("utf-8")
    ctx.check_quota(len(data))
    with _fs_errors(args.path):
        written = paths.write_bytes(ctx.folder, args.path, data)
    return ToolOutput(text=f"Wrote {len(data):,} bytes to {written}", changed_paths=[written])


def _replaced(ctx: ToolContext, args: EditFileArgs) -> tuple[str, str, int]:
    """``(old text, new text, occurrences)`` of an edit, or the ToolError it would fail with."""
    if args.old_string == args.new_string:
        raise ToolError("old_string and new_string are the same; there is nothing to change.")
    text = _read_for_edit(ctx, args.path)
    new, count = replace_exact(
        text,
        args.old_string,
        args.new_string,
        replace_all=args.replace_all,
        where=repr(args.path),
        reread="read the file to copy the text.",
        path=args.path,
    )
    return text, new, count


def preview_edit_file(ctx: ToolContext, args: EditFileArgs) -> str | None:
    """The diff of the replacement; None if the edit would fail (its run says why)."""
    try:
        old, new, _count = _replaced(ctx, args)
    except ToolError:
        return None
    return unified(_label(args.path), old, new) or None


@tool(policy="ask", preview=preview_edit_file)
def edit_file(ctx: ToolContext, args: EditFileArgs) -> ToolOutput:
    """Replace exact text in a workspace file.

    old_string must match the file exactly (whitespace and indentation included) and
    occur once, unless replace_all is true. Read the file first to copy the text.
    """
    text, new, count = _replaced(ctx, args)
    ctx.check_quota(max(0, len(new) - len(text)))
    with _fs_errors(args.path):
        written = paths.write_bytes(ctx.folder, args.path, new.encode("utf-8"))
    noun = "occurrence" if count == 1 else "occurrences"
    return ToolOutput(text=f"Replaced {count} {noun} in {written}", changed_paths=[written])


@tool(policy="allow")
def list_files(ctx: ToolContext, args: ListFilesArgs) -> str:
    """List a workspace directory: sorted, folders end with '/', files show their size.

    With recursive=true, subfolders are listed too (up to 1,000 entries). Symlinks are
    shown as 'name -> target' and never followed.
    """
    with _fs_errors(args.path):
        listing = paths.list_dir(
            ctx.folder, args.path, recursive=args.recursive, limit=MAX_LIST_ENTRIES
        )
    lines = []
    for entry in listing.entries:
        if entry.kind == "dir":
            lines.append(f"{entry.path}/")
        elif entry.kind == "file":
            size = entry.size or 0
            lines.append(f"{entry.path}  ({size:,} byte{'' if size == 1 else 's'})")
        elif entry.kind == "symlink":
            lines.append(f"{entry.path} -> {entry.target}")
        else:
            lines.append(f"{entry.path}  (special file)")
    if not lines:
        return "[empty directory]"
    if listing.truncated:
        lines.append(
            f"[Listing stopped at {MAX_LIST_ENTRIES:,} entries; list a subdirectory to see more.]"
        )
    return "\n".join(lines)


FILE_TOOLS: tuple[Tool, ...] = (read_file, write_file, edit_file, list_files)


def builtin_tools(*, notebook: bool = False) -> list[Tool]:
    """The tools every session gets unless configured otherwise (with ``notebook``: where the
    process can reach the session's notebook, the notebook tools too)."""
    from .processes import PROCESS_TOOLS

    if not notebook:
        return [*FILE_TOOLS, *PROCESS_TOOLS]
    from .notebook import NOTEBOOK_TOOLS

    return [*FILE_TOOLS, *PROCESS_TOOLS, *NOTEBOOK_TOOLS]
