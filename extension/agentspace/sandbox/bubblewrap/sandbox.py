"""The bubblewrap backend: a fresh, isolated process tree per command, one network per session.

Layout of one session's sandbox:

* a *holder*: ``bwrap --unshare-user --unshare-net ... sleep infinity``. It owns
  the session's network namespace (loopback only), so a server started by one
  command is reachable from the next, and from the preview relay, but from
  nothing on the host. It dies with the server (``--die-with-parent``).
* each command: ``nsenter`` into the holder's user and network namespaces, then
  ``bwrap`` with its own pid, ipc, uts and mount namespaces: system folders
  read-only, a small ``/etc`` (no shadow, no host secrets), a private ``/tmp``,
  the workspace at ``/workspace``, an empty environment. Killing the command's
  bwrap kills its pid namespace, so a process that daemonizes dies too.
* limits: the session's cgroups (joined before exec) or rlimits.
* the chain up to bwrap (cgroups, privilege drop, nsenter) runs ahead of the command: a
  *stem* (stems.py) waits for it, two per sandbox, made again shortly after a command
  ends; a new sandbox takes the one its spare holder came with.

With ``network = host`` there is no holder and commands share the host network.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path

from agentspace.errors import SandboxError
from agentspace.owners import owner_alive, owner_token
from agentspace.sandbox import sandboxuser
from agentspace.sandbox.base import Execution, Sandbox, SandboxPolicy
from agentspace.sandbox.bubblewrap import holders, stems
from agentspace.sandbox.bubblewrap.holders import pool
from agentspace.sandbox.bubblewrap.stems import Stem
from agentspace.sandbox.cgroups import Limits
from agentspace.sandbox.hostproc import HostExecution, alive, signal_all
from agentspace.sandbox.namespaces import ENV, runtime_dir, system_mounts, tools, usable
from agentspace.sandbox.relay import open_via_relay

STOCK = 2  # stems a sandbox keeps started (see _restock)
# Seconds after a command's end before the next stem and spare holder are spawned. Spawning
# blocks the event loop for 2-12 ms here (Popen waits for the child's exec), and the
# command's result still waits on that loop for its pipes to close: spawned at once, the
# cold start measured 3.1x a bare spawn, 1.0x so (a command that comes sooner takes the
# second stem in stock, or starts its own as before).
AFTER = 0.02


class BubblewrapSandbox(Sandbox):
    kind = "bubblewrap"

    def __init__(self, session_id: str, folder: Path, policy: SandboxPolicy) -> None:
        super().__init__(session_id, folder, policy)
        found = tools()
        if found is None:
            raise SandboxError(
                "bubblewrap is not installed: apt-get install bubblewrap (and util-linux for "
                "nsenter), or choose the docker or local sandbox."
            )
        self.bwrap, self.nsenter = found
        self.limits = Limits(session_id[:24], policy.memory_mb, policy.cpus, policy.pids)
        self._holder: asyncio.subprocess.Process | None = None
        self._holder_pid: int | None = None
        self._relay: asyncio.subprocess.Process | None = None
        self._relay_path = str(runtime_dir() / f"{session_id}-{os.getpid()}.sock")
        self._info_path = runtime_dir() / f"{session_id}.json"
        self._attached = False
        self._running: set[HostExecution] = set()
        self._lock = asyncio.Lock()
        self._started = False
        self._refilled = False  # the pool was told to make its next spare
        self._due: object = None  # the pool's refill our take left due
        # as root: the unprivileged host user commands run as, and their way to the workspace
        self.uid = policy.uid if sandboxuser.dropping() else None
        self._door: Path | None = None
        self._stems: list[Stem] = []  # the next commands' chains, started ahead
        self._stemming: set[asyncio.Task[None]] = set()
        self._generation = 0  # bumped by close: a stem made for an earlier start is dropped

    async def start(self) -> None:
        if self._started:
            return
        async with self._lock:
            if self._started:
                return
            if self.uid is not None:
                await asyncio.to_thread(self._open_door)
            if self.policy.network == "host":
                self.limits.create()
            elif not self._attach():
                spares = pool(self.uid)
                prepared = await spares.take(self.bwrap, self.nsenter)
                self._due = spares.due
                self._holder, self._holder_pid = prepared.holder, prepared.pid
                if prepared.stem is not None:
                    self._stems.append(prepared.stem)
                    prepared.stem = None
                prepared.limits.memory_mb = self.policy.memory_mb
                prepared.limits.cpus, prepared.limits.pids = self.policy.cpus, self.policy.pids
                prepared.limits.apply()
                self.limits = prepared.limits
                self._publish()
            self._started = True

    def _open_door(self) -> None:
        assert self.uid is not None
        sandboxuser.grant(self.folder, self.uid)
        self._door = sandboxuser.open_door(runtime_dir(), self.session_id, self.folder)

    def _publish(self) -> None:
        """Say where this session's namespaces are, for other processes (previews, CLI)."""
        info = {
            "owner": owner_token(),
            "holder": self._holder_pid,
            "cgroups": [str(d) for d in self.limits.dirs],
        }
        tmp = self._info_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(info))
        tmp.replace(self._info_path)

    def _attach(self) -> bool:
        """Join the sandbox another live process of ours already runs for this session."""
        try:
            info = json.loads(self._info_path.read_text())
        except (OSError, ValueError):
            return False
        if info.get("owner") == owner_token() or not owner_alive(info.get("owner")):
            return False
        if not alive(int(info["holder"])):
            return False
        self._holder_pid = int(info["holder"])
        self.limits.dirs = [Path(d) for d in info.get("cgroups", [])]
        self._attached = True
        return True

    def _chain(self) -> list[str]:
        """The argv of a command up to its own options: what a stem runs ahead."""
        wrapper = self.limits.wrapper()
        return stems.prefix(wrapper, self.uid, self.nsenter, self._holder_pid, self.bwrap)

    def _options(self, env: dict[str, str]) -> list[str]:
        return stems.options(str(self._door or self.folder), {**ENV, **env})

    def _argv(self, command: str, env: dict[str, str]) -> list[str]:
        """The one-shot argv of a command: what a stem plus its options amount to."""
        return [*self._chain(), *self._options(env), "--", "/bin/sh", "-c", command]

    async def exec(self, command: str, *, env: dict[str, str] | None = None) -> Execution:
        await self.start()
        if self._holder is not None and self._holder.returncode is not None:
            raise SandboxError("The sandbox's namespace holder died; the session must restart it.")
        args = [*self._options(env or {}), "--setenv", stems.COMMAND, command]
        stems.encode(args)  # a NUL is refused before anything starts
        stem = await self._take_stem()
        if stem is None or not await stem.launch(args):
            if stem is not None:  # it died meanwhile (killed, or its holder went): a new one
                await stem.close()
            stem = await Stem.start(self._chain())
            await stem.launch(args)  # if that fails, the exit status and stderr say why
        process = stem.process
        execution = HostExecution(process, wrappers=2)
        self._running.add(execution)
        process_done = asyncio.ensure_future(process.wait())
        process_done.add_done_callback(lambda _: self._running.discard(execution))
        loop = asyncio.get_running_loop()
        if self._holder is not None and not self._refilled:  # our first command: see take()
            self._refilled, spares = True, pool(self.uid)
            due = self._due  # deferred: a later take's refill is that take's to trigger
            process_done.add_done_callback(lambda _: loop.call_later(AFTER, spares.refill, due))
        process_done.add_done_callback(lambda _: loop.call_later(AFTER, self._restock))
        return execution

    async def _take_stem(self) -> Stem | None:
        """A started stem: a ready one, else the first of those on their way (sooner than
        a new one), else None."""
        while True:
            while self._stems:
                stem = self._stems.pop(0)
                if stem.alive:
                    return stem
                await stem.close()  # died waiting: killed, or its holder went
            if not self._stemming:
                return None
            await asyncio.wait(self._stemming, return_when=asyncio.FIRST_COMPLETED)

    def _restock(self) -> None:
        """Start stems until ``STOCK`` are there or on their way.

        Two, not one: a stem's cgroup join waits for an RCU grace period when no migration
        happened just before (see stems.py), 10-25 ms under load; with one in stock, a
        command right after one that came after a pause waited for most of that.
        """
        while self._started and len(self._stems) + len(self._stemming) < STOCK:
            task = asyncio.ensure_future(self._make_stem(self._generation))
            self._stemming.add(task)
            task.add_done_callback(self._stemming.discard)

    async def _make_stem(self, generation: int) -> None:
        try:
            stem = await Stem.start(self._chain())
        except (OSError, SandboxError):
            return  # the next command starts its own, and reports what fails
        if generation != self._generation:
            await stem.close()
        else:
            self._stems.append(stem)

    async def connect(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.policy.network == "host":
            return await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        await self.start()
        if self._relay is None or self._relay.returncode is not None:
            await self._start_relay()
        return await open_via_relay(self._relay_path, port)

    async def _start_relay(self) -> None:
        assert self._holder_pid is not None
        self._relay = await asyncio.create_subprocess_exec(
            self.nsenter, "-t", str(self._holder_pid), "--user", "--net",
            "--preserve-credentials", "--", sys.executable, "-m", "agentspace.sandbox.relay",
            self._relay_path, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self._relay.stdout is not None
        if await self._relay.stdout.readline() != b"ready\n":
            raise SandboxError("The preview relay did not start; see the server log.")

    async def counters(self) -> dict[str, int]:
        return self.limits.counters()

    async def close(self) -> None:
        self._generation += 1
        if self._stemming:  # never cancel a spawn midway (see HolderPool.drain)
            await asyncio.wait(self._stemming, timeout=10)
        while self._stems:
            await self._stems.pop().close()
        for execution in list(self._running):
            execution.kill()
        if self._relay is not None and self._relay.returncode is None:
            self._relay.kill()
            await self._relay.wait()
        if self._holder is not None and self._holder_pid is not None:
            await holders.end(self._holder, self._holder_pid)
        if not self._attached:  # the owner ends the sandbox; a visitor only leaves
            signal_all(self.limits.pids_in(), 9)
            self.limits.remove()
            with contextlib.suppress(FileNotFoundError):
                self._info_path.unlink()
        if self._door is not None:
            sandboxuser.close_door(self._door)
            self._door = None
        self._holder = self._relay = None
        self._holder_pid = None
        self._started = self._attached = self._refilled = False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._relay_path)


__all__ = ["ENV", "BubblewrapSandbox", "system_mounts", "tools", "usable"]
