"""Stems: a bubblewrap command started ahead, up to the point where it needs its command.

A sandboxed command is a chain of execs: ``sh`` joins the session's cgroups, ``setpriv``
drops to the sandbox user (as root), ``nsenter`` enters the holder's user and network
namespaces, then ``bwrap`` builds the command's own namespaces and runs ``sh -c``. The
chain costs more than a bare ``bwrap`` spawn, and most of it is not CPU: writing
``cgroup.procs`` takes the kernel's global cgroup threadgroup lock for writing, which
waits for an RCU grace period whenever no migration happened in the last few ms (5-20 ms
measured on a 2-core VM, cgroup v1; the first command after a pause always paid it).

None of that depends on the command. A stem runs the whole chain ahead with
``bwrap ... --args FD``: bubblewrap reads more options, NUL-separated, from a pipe, and
blocks there until the server writes them (the command's environment, its workspace bind
and, in an environment variable, the command; see ``SCRIPT``) and closes the pipe. Then
it proceeds exactly as the one-shot chain would: same process, same namespaces, same
uid, same cgroups, joined before anything of the command runs.

Only the server holds the pipe's write end. Option values cannot smuggle options in:
NUL, the only separator, is refused, as ``execve`` refuses it in an argv.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence

from agentspace.sandbox import sandboxuser
from agentspace.sandbox.base import WORKSPACE_MOUNT
from agentspace.sandbox.hostproc import spawn
from agentspace.sandbox.namespaces import system_mounts

COMMAND = "AGENTSPACE_COMMAND"
# bwrap's own argv must end with the command, which is not known yet: a fixed ``sh`` takes
# it from the environment, removes it, and execs ``sh -c`` (the same process tree and
# semantics as ``bwrap ... -- /bin/sh -c command``). ``${X?}``: a stem whose pipe reached
# EOF without options (the server died) runs nothing.
SCRIPT = f'c="${{{COMMAND}?}}"; unset {COMMAND}; exec /bin/sh -c "$c"'
CLOSE_GRACE = 5.0  # seconds to wait for a discarded stem to exit


def bwrap_options() -> list[str]:
    """The command's namespaces and mounts: what every command of every sandbox shares."""
    argv = ["--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    argv += ["--unshare-cgroup-try", "--die-with-parent", "--hostname", "sandbox"]
    argv += ["--clearenv", *system_mounts(), "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    return argv


def prefix(
    wrapper: Sequence[str], uid: int | None, nsenter: str, holder: int | None, bwrap: str
) -> list[str]:
    """The chain up to bwrap's options: cgroups (``wrapper``), privilege drop, the holder's
    namespaces (none with ``holder`` None: host network)."""
    enter: list[str] = []
    if holder is not None:
        enter = [nsenter, "-t", str(holder), "--user", "--net", "--preserve-credentials", "--"]
    drop = sandboxuser.drop(uid) if uid is not None else []
    return [*wrapper, *drop, *enter, bwrap, *bwrap_options()]


def options(source: str, env: dict[str, str]) -> list[str]:
    """A command's own options: its environment and its workspace (``source``, bound at
    ``/workspace``, the working folder)."""
    argv: list[str] = []
    for key, value in env.items():
        argv += ["--setenv", key, value]
    return [*argv, "--bind", source, WORKSPACE_MOUNT, "--chdir", WORKSPACE_MOUNT]


def encode(args: Sequence[str]) -> bytes:
    """``--args`` data; ``ValueError`` for a NUL (it would split an option in two)."""
    data = [arg.encode("utf-8", "surrogateescape") for arg in args]
    if any(b"\0" in arg for arg in data):
        raise ValueError("embedded null byte")
    return b"".join(arg + b"\0" for arg in data)


class Stem:
    """One started chain, blocked in bwrap until ``launch`` gives it its command."""

    def __init__(self, process: asyncio.subprocess.Process, fd: int) -> None:
        self.process = process
        self._fd = fd  # the write end of the --args pipe; -1 once used

    @classmethod
    async def start(cls, chain: Sequence[str]) -> Stem:
        read_end, write_end = os.pipe()  # both non-inheritable; pass_fds gives the child one
        try:
            process = await spawn(
                [*chain, "--args", str(read_end), "--", "/bin/sh", "-c", SCRIPT],
                pass_fds=(read_end,),
            )
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        return cls(process, write_end)

    @property
    def alive(self) -> bool:
        return self._fd >= 0 and self.process.returncode is None

    async def launch(self, args: Sequence[str]) -> bool:
        """Give the stem its options (``encode``d) and let it run: whether they were all
        delivered (False: the stem had died; its process tells why)."""
        data = encode(args)
        fd, self._fd = self._fd, -1
        try:
            os.set_blocking(fd, False)
            try:
                sent = os.write(fd, data)
            except BlockingIOError:
                sent = 0
            if sent < len(data):  # a full pipe (a huge command): the rest from a thread
                os.set_blocking(fd, True)
                await asyncio.to_thread(_write_all, fd, data[sent:])
            return True
        except BrokenPipeError:
            return False
        finally:
            os.close(fd)

    async def close(self) -> None:
        """Discard an unused stem: kill it and reap it (bounded)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.process.communicate(), CLOSE_GRACE)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
