"""Run one command to completion, whatever it does: capture, cap, time out, log.

Backends only start processes; this is where hostile commands are handled,
once for all of them. Output is drained from both pipes concurrently into a
log file in the workspace (capped: endless output cannot fill the disk) while
a head and a tail are kept for the model. The wall-time limit kills the whole
tree. The result says which limit, if any, the command hit.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from agentspace.errors import ToolError
from agentspace.sandbox.base import Execution, LimitHit, Sandbox

DRAIN_GRACE = 2.0  # seconds to finish reading pipes after the command ended
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LOG_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass
class CommandResult:
    """What the model sees of a command, plus where the full output is."""

    exit_code: int
    stdout: str
    stderr: str
    duration: float
    log: str  # workspace-relative path of the full log
    output_bytes: int
    dropped_bytes: int = 0
    limit: LimitHit | None = None
    full: str | None = None  # the workspace's filesystem is full: what the limit is

    def render(self) -> str:
        """The tool result text: exit code, limit, outputs (head and tail)."""
        lines = [f"exit code: {self.exit_code}"]
        if self.limit == "timeout":
            lines.append(
                f"KILLED: the command hit the wall-time limit after {self.duration:.1f}s "
                "(the whole process tree was stopped). Pass a larger timeout, or run it "
                "with start_process."
            )
        elif self.limit == "memory":
            lines.append("KILLED: the sandbox ran out of memory (memory limit).")
        elif self.limit == "pids":
            lines.append("LIMIT: the process limit was reached; some forks were refused.")
        if self.full:
            lines.append(f"DISK FULL: {self.full}")
        if self.dropped_bytes:
            lines.append(
                f"Output limit: {self.dropped_bytes} bytes beyond the log cap were discarded."
            )
        if self.stdout:
            lines.append(f"stdout:\n{self.stdout}")
        if self.stderr:
            lines.append(f"stderr:\n{self.stderr}")
        if not self.stdout and not self.stderr:
            lines.append("(no output)")
        return "\n".join(lines)


class Capture:
    """Head and tail of one stream for the model; everything (up to a cap) to the log."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.keep // 2 - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > self.keep // 2:
                del self.tail[: len(self.tail) - self.keep // 2]

    def text(self, log: str) -> str:
        head = self.head.decode("utf-8", "replace")
        if self.total <= len(self.head) + len(self.tail):
            return head + self.tail.decode("utf-8", "replace")
        cut = self.total - len(self.head) - len(self.tail)
        tail = self.tail.decode("utf-8", "replace")
        return f"{head}\n[... {cut} bytes cut; the full output is in {log} ...]\n{tail}"


class LogWriter:
    """Appends to a log file up to ``limit`` bytes, then counts what it drops.

    With ``root`` (the workspace), ``path`` is opened below it without following any
    symlink: the sandboxed command can replace the log folder or a log file by a link to
    any host path, and the server must not write there. ``OSError`` if it is not plain.
    """

    def __init__(self, path: Path, limit: int, *, root: Path | None = None) -> None:
        if root is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.file: BinaryIO = path.open("ab", buffering=0)
        else:
            self.file = _open_below(root, path)
        self.limit = limit
        self.written = 0
        self.dropped = 0

    def write(self, data: bytes) -> None:
        room = self.limit - self.written
        if room > 0:
            try:
                self.file.write(data[:room])
            except OSError as exc:  # the workspace is full: keep draining, drop the rest
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                self.limit = self.written
                room = 0
            else:
                self.written += min(room, len(data))
        self.dropped += max(0, len(data) - max(room, 0))

    def close(self) -> None:
        self.file.close()


def _open_below(root: Path, path: Path) -> BinaryIO:
    *folders, name = path.relative_to(root).parts
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for folder in folders:  # made and entered one at a time, never through a link
            with contextlib.suppress(FileExistsError):
                os.mkdir(folder, 0o777, dir_fd=fd)
            parent, fd = fd, -1
            try:
                fd = os.open(folder, _DIR_FLAGS, dir_fd=parent)
            finally:
                os.close(parent)
        log = os.open(name, _LOG_FLAGS, 0o666, dir_fd=fd)  # O_NONBLOCK: a FIFO cannot hang us
    finally:
        if fd >= 0:
            os.close(fd)
    info = os.fstat(log)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:  # a FIFO, or a planted hard link
        os.close(log)
        raise OSError(errno.EPERM, "not a plain file", str(path))
    os.set_blocking(log, True)
    return os.fdopen(log, "ab", buffering=0)


def open_log(root: Path, path: Path, limit: int) -> LogWriter:
    """A ``LogWriter`` for ``path`` in the workspace ``root``, or a ``ToolError`` saying why not."""
    inside = path.is_relative_to(root)
    try:
        return LogWriter(path, limit, root=root if inside else None)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):  # full: run anyway (rm must work)
            return LogWriter(Path(os.devnull), 0)
        raise ToolError(
            f"Cannot write the log {path.relative_to(root) if inside else path}: "
            f"{exc.strerror or exc}. The log and its folders must be plain files and folders "
            "of the workspace, not links; remove them to let them be made again."
        ) from exc


async def drain(
    stream: asyncio.StreamReader, capture: Capture | None, log: LogWriter, prefix: bytes = b""
) -> None:
    while data := await stream.read(1 << 16):
        if capture is not None:
            capture.add(data)
        log.write(prefix + data if prefix else data)


async def finish_draining(tasks: list[asyncio.Task[None]]) -> None:
    """Wait for the pipes to close; a stray holding them open is given up on."""
    _, pending = await asyncio.wait(tasks, timeout=DRAIN_GRACE)
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def run_command(
    sandbox: Sandbox,
    command: str,
    *,
    timeout: float,
    log_path: Path,
    log_name: str,
) -> CommandResult:
    """Run ``command`` in ``sandbox`` to its end (or its limit) and describe it."""
    policy = sandbox.policy
    log = open_log(sandbox.folder, log_path, policy.log_bytes)  # before anything runs
    try:
        before = await sandbox.counters()
        started = time.monotonic()
        execution: Execution = await sandbox.exec(command)
    except BaseException:
        log.close()
        raise
    out, err = Capture(policy.output_chars), Capture(policy.output_chars // 3)
    tasks = [
        asyncio.create_task(drain(execution.stdout, out, log)),
        asyncio.create_task(drain(execution.stderr, err, log)),
    ]
    limit: LimitHit | None = None
    try:
        try:
            code = await asyncio.wait_for(execution.wait(), timeout)
        except asyncio.TimeoutError:
            limit = "timeout"
            execution.kill()
            try:  # wait() also waits for the pipes, which an escaped process may hold
                code = await asyncio.wait_for(execution.wait(), DRAIN_GRACE)
            except asyncio.TimeoutError:
                code = 128 + signal.SIGKILL
        await finish_draining(tasks)
    except BaseException:  # cancelled (stop): leave nothing running
        execution.kill()
        for task in tasks:
            task.cancel()
        raise
    finally:
        log.close()
    if limit is None:
        limit = await sandbox.limit_hit(before)
    return CommandResult(
        exit_code=code,
        stdout=out.text(log_name),
        stderr=err.text(log_name),
        duration=time.monotonic() - started,
        log=log_name,
        output_bytes=out.total + err.total,
        dropped_bytes=log.dropped,
        limit=limit,
    )
