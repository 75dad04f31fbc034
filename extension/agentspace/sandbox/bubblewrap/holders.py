"""Namespace holders: the process that owns a session's user and network namespaces.

A holder is ``bwrap --unshare-user --unshare-net ... sleep infinity``; commands
``nsenter`` its namespaces. Holders do not depend on the workspace, so a pool
keeps one ready (with its cgroups made and warmed) and a new session's first
command does not wait for one. A spare also comes with its first command's stem
(stems.py): the chain into its cgroups and namespaces, run ahead.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import weakref
from dataclasses import dataclass

from agentspace.errors import SandboxError
from agentspace.sandbox import cgroups, sandboxuser
from agentspace.sandbox.bubblewrap import stems
from agentspace.sandbox.bubblewrap.stems import Stem
from agentspace.sandbox.cgroups import Limits
from agentspace.sandbox.hostproc import alive, signal_all
from agentspace.sandbox.namespaces import system_mounts

log = logging.getLogger(__name__)

# Seconds after a take before the next spare is made even if the taker's first command
# has not ended (a long-running one): see HolderPool.take.
REFILL_FALLBACK = 0.25


class HolderPool:
    """Spare namespace holders, so a new session's first command does not wait for one.

    A holder is workspace-independent (it only owns a user and a network
    namespace), so one can be made ahead of time; taking it schedules the next.
    Spares die with the server like every holder (``--die-with-parent``).
    """

    def __init__(self, spares: int = 1, uid: int | None = None) -> None:
        self.spares = spares
        self.uid = uid  # as root: the unprivileged user that owns the namespaces
        self._ready: list[Prepared] = []
        self._filling: asyncio.Task[None] | None = None
        self._due: tuple[str, str] | None = None  # (bwrap, nsenter) of a refill not begun
        self._timer: asyncio.TimerHandle | None = None

    async def take(self, bwrap: str, nsenter: str) -> Prepared:
        """A spare (or a new holder if none is ready); the next spare is made later.

        Not at once: making one spawns two processes, which on a small machine compete
        with the taker's first command, the very latency the spare exists to cut (with an
        eager refill bench/workspace.py's cold start was several times a bare spawn's).
        The taker calls ``refill`` when its first command ends; ``REFILL_FALLBACK`` covers
        one that runs on.
        """
        while self._ready:
            prepared = self._ready.pop()
            if prepared.holder.returncode is None and alive(prepared.pid):
                self._refill_later(bwrap, nsenter)
                if prepared.stem is not None and not prepared.stem.alive:
                    await prepared.stem.close()  # the sandbox starts its own
                    prepared.stem = None
                return prepared
            if prepared.stem is not None:
                await prepared.stem.close()
            prepared.limits.remove()
        prepared = await _prepare(bwrap, nsenter, warm=False, uid=self.uid)
        self._refill_later(bwrap, nsenter)
        return prepared

    @property
    def due(self) -> object:
        """A token of the refill the last take left due (see ``refill``)."""
        return self._due

    def _refill_later(self, bwrap: str, nsenter: str) -> None:
        self._due = (bwrap, nsenter)  # a new tuple per take: its identity is the token
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(REFILL_FALLBACK, self.refill)

    def refill(self, due: object = None) -> None:
        """Begin making the spare a take left due (nothing if none is, or one is on its way);
        with ``due`` (``self.due`` read at the take), only if no other take came since."""
        if due is not None and due is not self._due:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._due is None or (self._filling is not None and not self._filling.done()):
            return
        bwrap, nsenter = self._due
        self._due = None
        self._filling = asyncio.create_task(self._fill(bwrap, nsenter))

    async def ready(self) -> None:
        """Make the spare now if one is due, and wait until it is there."""
        self.refill()
        if self._filling is not None:
            await asyncio.wait([self._filling])

    async def _fill(self, bwrap: str, nsenter: str) -> None:
        with contextlib.suppress(SandboxError, OSError):
            while len(self._ready) < self.spares:
                self._ready.append(await _prepare(bwrap, nsenter, warm=True, uid=self.uid))

    async def drain(self) -> None:
        """Kill the spares (the engine closes)."""
        self._due = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._filling is not None and not self._filling.done():
            # Never cancel a spawn midway: on Python 3.11 a subprocess cancelled while its
            # pipes connect leaves its wait pending forever (CPython gh-125502). Let the
            # refill finish (it takes milliseconds), then kill what it made.
            self.spares = 0
            _, pending = await asyncio.wait([self._filling], timeout=10)
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        while self._ready:
            prepared = self._ready.pop()
            if prepared.stem is not None:
                await prepared.stem.close()
            await end(prepared.holder, prepared.pid)
            prepared.limits.remove()


@dataclass
class Prepared:
    """A holder (user + network namespace) and a session's cgroups, made ahead of use."""

    holder: asyncio.subprocess.Process
    pid: int
    limits: Limits
    stem: Stem | None = None  # the first command's chain, started (with cgroups only)


async def _prepare(bwrap: str, nsenter: str, *, warm: bool, uid: int | None = None) -> Prepared:
    """A holder and empty cgroups; ``warm`` runs one sandboxed ``true`` in them first, then
    starts the first command's stem.

    The first sandboxed process in fresh cgroups is slower than later ones (kernel
    set-up per group; bench/RESULTS.md, workspace section); a spare pays that before
    anyone waits. The stem needs the cgroups: without them its rlimits would be the pool's
    (none), not the session's, so the session starts its own.
    """
    limits = Limits(cgroups.pool_name(), None, None, None)
    limits.create()
    holder: asyncio.subprocess.Process | None = None
    stem: Stem | None = None
    pid = 0
    try:
        drop = sandboxuser.drop(uid) if uid is not None else []
        holder, pid = await _spawn_holder([*drop, bwrap])
        if warm:
            argv = [*limits.wrapper(), *drop, nsenter, "-t", str(pid), "--user", "--net"]
            argv += ["--preserve-credentials", "--", bwrap, "--unshare-user", "--unshare-pid"]
            argv += [*system_mounts(), "--proc", "/proc", "--dev", "/dev", "--", "true"]
            warmup = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
            )
            await warmup.wait()
            if limits.dirs:
                stem = await Stem.start(stems.prefix(limits.wrapper(), uid, nsenter, pid, bwrap))
    except BaseException:  # cancelled by drain(), or bwrap failed: leave nothing behind
        if holder is not None:
            kill(holder, pid)
        if stem is not None:
            await stem.close()
        signal_all(limits.pids_in(), 9)
        limits.remove()
        raise
    return Prepared(holder, pid, limits, stem)


def kill(holder: asyncio.subprocess.Process, pid: int) -> None:
    """Kill a holder and its ``sleep``: the child first, while bwrap still reserves its pid.

    Killing bwrap alone is not enough: killed within milliseconds of its start (a test or
    a drain right after a spawn), its ``sleep`` had not yet armed ``--die-with-parent`` and
    outlived it in 10 of 10 tries here, orphaned, holding the namespaces and the stderr
    pipe, so ``wait()`` never returned.
    """
    if holder.returncode is None:
        if pid > 0:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        holder.kill()


async def end(holder: asyncio.subprocess.Process, pid: int) -> None:
    """``kill`` and wait for the holder to exit (bounded: a stuck pipe must not hang a close)."""
    kill(holder, pid)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(holder.wait(), timeout=10)


async def _spawn_holder(bwrap: list[str]) -> tuple[asyncio.subprocess.Process, int]:
    """``bwrap`` is its argv prefix: the binary, after the privilege drop where there is one."""
    read_end, write_end = os.pipe()
    try:
        holder = await asyncio.create_subprocess_exec(
            *bwrap, "--unshare-user", "--unshare-net", "--die-with-parent",
            "--ro-bind", "/", "/", "--info-fd", str(write_end), "--", "sleep", "infinity",
            pass_fds=(write_end,), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
    finally:
        os.close(write_end)
    try:
        info = await asyncio.get_running_loop().run_in_executor(None, _read_info, read_end)
    except BaseException:
        holder.kill()
        raise
    if "child-pid" not in info:
        err = await holder.stderr.read() if holder.stderr is not None else b""
        raise SandboxError(
            f"bubblewrap could not create the sandbox: {err.decode().strip()}. "
            "Check that unprivileged user namespaces are enabled, or use docker."
        )
    return holder, int(info["child-pid"])


_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int | None, HolderPool]] = (
    weakref.WeakKeyDictionary()
)


def pool(uid: int | None = None) -> HolderPool:
    """This event loop's holder pool for sandboxes of ``uid`` (subprocesses belong to the loop
    that made them; a holder's namespaces belong to the user that made them)."""
    pools = _POOLS.setdefault(asyncio.get_running_loop(), {})
    found = pools.get(uid)
    if found is None:
        _remove_leftovers()
        found = pools[uid] = HolderPool(uid=uid)
    return found


@functools.cache
def _remove_leftovers() -> None:
    """Once per process, before its first spare: the empty groups of killed servers' spares."""
    removed = cgroups.remove_stale_pools()
    if removed:
        log.info("removed %d cgroups left by killed servers' spare holders", len(removed))


def pools() -> list[HolderPool]:
    """This event loop's pools (to drain them all when the engine closes)."""
    return list(_POOLS.get(asyncio.get_running_loop(), {}).values())


def _read_info(fd: int) -> dict[str, int]:
    """bwrap's --info-fd JSON (blocking: runs in a thread)."""
    data = b""
    with os.fdopen(fd, "rb") as pipe:
        while b"}" not in data:
            chunk = pipe.read1(4096)
            if not chunk:
                break
            data += chunk
    try:
        parsed: dict[str, int] = json.loads(data or b"{}")
        return parsed
    except ValueError:
        return {}
