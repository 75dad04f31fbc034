"""Commands that are host processes (bubblewrap and local backends).

Both backends start a host process whose descendants are the command's tree.
Killing a tree is the hard part: a command can ``setsid`` and daemonize, which
a process-group kill misses. We collect every descendant through
``/proc/<pid>/task/*/children`` and kill them all; bubblewrap adds its own
guarantee (killing the pid namespace's init kills everything in it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path

from agentspace.sandbox.base import Execution


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (children first seen first)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            with contextlib.suppress(OSError):
                for child in Path(f"/proc/{current}/task/{task}/children").read_text().split():
                    out.append(int(child))
                    todo.append(int(child))
    return out


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (one of another user counts: it is alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_all(pids: Sequence[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def exit_code(returncode: int) -> int:
    """asyncio's negative signal codes as a shell reports them (128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


class HostExecution(Execution):
    """An ``asyncio`` subprocess whose whole tree ``kill`` ends."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        *,
        extra_pids: Callable[[], list[int]] | None = None,
        wrappers: int = 0,
    ) -> None:
        assert process.stdout is not None and process.stderr is not None
        self.process = process
        self.stdout = process.stdout
        self.stderr = process.stderr
        self.pid = process.pid
        self._extra_pids = extra_pids
        self._term_skip = wrappers  # wrapper processes above the command itself

    async def wait(self) -> int:
        return exit_code(await self.process.wait())

    def terminate(self) -> None:
        if self.process.returncode is not None:
            return  # reaped: its pid (and /proc entry) may be another process's by now
        tree = descendants(self.process.pid)
        if self._term_skip:  # the wrappers (bwrap and its pid-1) would not pass SIGTERM on
            signal_all(tree[self._term_skip - 1 :], signal.SIGTERM)
        else:
            signal_all([self.process.pid, *tree], signal.SIGTERM)

    def kill(self) -> None:
        if self.process.returncode is None:  # once reaped, its pid may be another's by now
            tree = descendants(self.process.pid)
            signal_all([self.process.pid, *tree], signal.SIGKILL)
        if self._extra_pids is not None:  # the command's cgroups: their members are its own
            signal_all(self._extra_pids(), signal.SIGKILL)


async def spawn(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    preexec: Callable[[], None] | None = None,
    pass_fds: Sequence[int] = (),
) -> asyncio.subprocess.Process:
    """Start ``argv`` with piped output and no stdin, in its own session."""
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=env,
        preexec_fn=preexec,
        start_new_session=True,
        pass_fds=tuple(pass_fds),
        limit=1 << 20,
    )
