"""Confine file access to a workspace folder, even against symlinks planted inside it.

Paths come from a model, and the workspace may be shared with a sandboxed process
that can create symlinks at any moment. Checking ``realpath`` first gives clear
errors and guarantees a refused operation touches nothing; then every access walks
the path one component at a time from a directory fd (``openat`` style, with
``O_NOFOLLOW``), so a symlink swapped in after the check is never followed blindly.
A symlink met on the way is read, its target spliced into the walk and re-checked:
links that stay inside the workspace work, links that lead out are refused.

``..`` in the given path is resolved lexically (like ``os.path.normpath``); ``..``
inside a symlink's target is resolved against the real directory. Writes replace
the file atomically (temp file + rename in the same directory), so a hard link
planted in the workspace is never written through. POSIX only (needs ``dir_fd``).
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from agentspace.errors import PathEscapeError, ToolError

MAX_SYMLINKS = 40  # like the kernel's limit; a loop is an error, not a hang
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _escape(path: str, reason: str) -> PathEscapeError:
    return PathEscapeError(
        f"Refused path {path!r}: {reason}. Paths must be relative to the workspace folder.",
        path=path,
    )


def normalize(path: str) -> list[str]:
    """Validate a workspace-relative path and resolve ``.``/``..`` lexically; [] is the root."""
    if "\0" in path:
        raise _escape(path, "it contains a NUL byte")
    if os.path.isabs(path):
        raise _escape(path, "absolute paths are not allowed")
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            if not parts:
                raise _escape(path, "'..' leads outside the workspace")
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return parts


def resolve_in_workspace(root: Path, path: str) -> Path:
    """The real absolute path for ``path``, or ``PathEscapeError`` if it leads out.

    Symlinks inside the workspace are followed. Use the helpers below for I/O: a
    returned path can be swapped for a symlink before it is opened.
    """
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, *normalize(path)))
    if real != real_root and os.path.commonpath([real_root, real]) != real_root:
        raise _escape(path, "it leads outside the workspace through a symlink")
    return Path(real)


@dataclass(frozen=True)
class Entry:
    """One directory entry; ``path`` is relative to the listed directory, ``/``-separated."""

    path: str
    kind: Literal["file", "dir", "symlink", "other"]
    size: int | None = None  # files only
    target: str | None = None  # symlinks only (shown, never followed)


@dataclass
class Listing:
    entries: list[Entry]
    truncated: bool  # more entries exist beyond the limit


class _Root:
    """An open workspace root and the absolute spellings of it a symlink target may use."""

    def __init__(self, root: Path) -> None:
        self.fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        spellings = {os.path.abspath(root), os.path.realpath(root)}
        self.prefixes = [[p for p in s.split("/") if p] for s in spellings]

    def relative(self, target: str) -> list[str] | None:
        """Components of an absolute symlink target below the root, or None if elsewhere."""
        parts = [p for p in target.split("/") if p not in ("", ".")]
        for prefix in self.prefixes:
            if parts[: len(prefix)] == prefix:
                return parts[len(prefix) :]
        return None


@contextmanager
def _workspace(root: Path, path: str) -> Iterator[tuple[_Root, list[str]]]:
    """Check ``path`` (realpath first: a refusal touches nothing), open the root, tag errors."""
    resolve_in_workspace(root, path)
    parts = normalize(path)
    ws = _Root(root)
    try:
        yield ws, parts
    except OSError as exc:
        if exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, path) from exc  # name the path the caller gave
    finally:
        os.close(ws.fd)


def _readlink(name: str, dir_fd: int) -> str | None:
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError:  # missing, or not a symlink (EINVAL)
        return None


def _walk(
    ws: _Root, parts: list[str], path: str, *, create: bool, want_dir: bool
) -> tuple[int, str, list[str]]:
    """Walk ``parts`` from the root without following a symlink unchecked.

    Returns an owned fd, a name and the real workspace-relative components. With
    ``want_dir`` the fd is the directory itself and the name is "."; otherwise the fd
    is the parent directory and the name the final component (followed if a symlink,
    possibly missing). ``create`` makes missing directories of the given path only,
    never ones named by a symlink's target.
    """
    stack = [ws.fd]
    names: list[str] = []
    queue = deque((p, False) for p in parts)
    links = 0
    try:
        while queue:
            name, from_link = queue.popleft()
            if name in ("", "."):
                continue
            if name == "..":  # only from a symlink target: move up for real
                if len(stack) == 1:
                    raise _escape(path, "a symlink leads outside the workspace")
                os.close(stack.pop())
                names.pop()
                continue
            cur = stack[-1]
            if not queue and not want_dir:
                target = _readlink(name, cur)
                if target is None:
                    return os.dup(cur), name, [*names, name]
            else:
                try:
                    stack.append(os.open(name, _DIR_FLAGS, dir_fd=cur))
                    names.append(name)
                    continue
                except FileNotFoundError:
                    if not create or from_link or links > MAX_SYMLINKS:
                        raise
                    with suppress(FileExistsError):  # lost a race: open what is there now
                        os.mkdir(name, 0o777, dir_fd=cur)
                    queue.appendleft((name, from_link))
                    links += 1
                    continue
                except OSError:  # ELOOP (or EMLINK, ENOTDIR): a symlink or a file
                    target = _readlink(name, cur)
                    if target is None:
                        raise
            links += 1
            if links > MAX_SYMLINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
            if os.path.isabs(target):
                below = ws.relative(target)
                if below is None:
                    raise _escape(path, "a symlink leads outside the workspace")
                while len(stack) > 1:
                    os.close(stack.pop())
                names.clear()
                target = "/".join(below)
            queue.extendleft(reversed([(p, True) for p in target.split("/")]))
        if want_dir:
            return os.dup(stack[-1]), ".", names
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    finally:
        for fd in stack[1:]:
            os.close(fd)


def open_read(root: Path, path: str) -> BinaryIO:
    """Open a regular file inside the workspace for binary reading."""
    with _workspace(root, path) as (ws, parts):
        parent, name, _ = _walk(ws, parts, path, create=False, want_dir=False)
        try:
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # no FIFO hang
            fd = os.open(name, flags, dir_fd=parent)
        finally:
            os.close(parent)
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            if stat.S_ISDIR(mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
            raise ToolError(f"{path!r} is not a regular file.", path=path)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")


def read_bytes(root: Path, path: str) -> bytes:
    with open_read(root, path) as f:
        return f.read()


def read_text(root: Path, path: str, encoding: str = "utf-8") -> str:
    return read_bytes(root, path).decode(encoding)


def write_bytes(root: Path, path: str, data: bytes, *, create_parents: bool = True) -> str:
    """Atomically create or replace a file; returns its real workspace-relative path.

    A symlink at ``path`` that stays inside the workspace is written through (its
    target is replaced); the file's permission bits are kept.
    """
    with _workspace(root, path) as (ws, parts):
        parent, name, real = _walk(ws, parts, path, create=create_parents, want_dir=False)
        try:
            try:
                old: os.stat_result | None = os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                old = None
            if old is not None and stat.S_ISDIR(old.st_mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
            if old is not None and not stat.S_ISREG(old.st_mode):
                raise ToolError(f"{path!r} is not a regular file.", path=path)
            tmp = f".agentspace-{secrets.token_hex(6)}.tmp"
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(tmp, flags, 0o666, dir_fd=parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    if old is not None:
                        os.fchmod(f.fileno(), stat.S_IMODE(old.st_mode))
                    f.write(data)
                os.replace(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
            except BaseException:
                with suppress(OSError):
                    os.unlink(tmp, dir_fd=parent)
                raise
        finally:
            os.close(parent)
    return "/".join(real)


def write_text(root: Path, path: str, text: str, *, create_parents: bool = True) -> str:
    return write_bytes(root, path, text.encode("utf-8"), create_parents=create_parents)


def list_dir(root: Path, path: str = ".", *, recursive: bool = False, limit: int = 1000) -> Listing:
    """Entries sorted by name, depth first; symlinks are reported, never followed."""
    entries: list[Entry] = []
    with _workspace(root, path) as (ws, parts):
        top, _, _ = _walk(ws, parts, path, create=False, want_dir=True)
        stack: list[tuple[int, str, Iterator[os.DirEntry[str]]]] = [(top, "", _sorted(top))]
        try:
            while stack:
                fd, prefix, items = stack[-1]
                item = next(items, None)
                if item is None:
                    os.close(stack.pop()[0])
                    continue
                if len(entries) >= limit:
                    return Listing(entries, truncated=True)
                try:
                    st = item.stat(follow_symlinks=False)
                    rel = prefix + item.name
                    if stat.S_ISLNK(st.st_mode):
                        entries.append(
                            Entry(rel, "symlink", target=os.readlink(item.name, dir_fd=fd))
                        )
                    elif stat.S_ISREG(st.st_mode):
                        entries.append(Entry(rel, "file", size=st.st_size))
                    elif stat.S_ISDIR(st.st_mode):
                        entries.append(Entry(rel, "dir"))
                        if recursive:
                            sub = os.open(item.name, _DIR_FLAGS, dir_fd=fd)
                            stack.append((sub, rel + "/", _sorted(sub)))
                    else:
                        entries.append(Entry(rel, "other"))
                except OSError:  # changed under us (removed, swapped for a symlink): skip
                    continue
        finally:
            for fd, _, _ in stack:
                os.close(fd)
    return Listing(entries, truncated=False)


def _sorted(fd: int) -> Iterator[os.DirEntry[str]]:
    with os.scandir(fd) as it:
        return iter(sorted(it, key=lambda e: e.name))
