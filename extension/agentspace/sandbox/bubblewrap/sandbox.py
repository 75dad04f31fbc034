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
from agentspace.sandbox.base import WORKSPACE_MOUNT, Execution, Sandbox, SandboxPolicy
from agentspace.sandbox.bubblewrap import holders
from agentspace.sandbox.bubblewrap.holders import pool
from agentspace.sandbox.cgroups import Limits
from agentspace.sandbox.hostproc import HostExecution, alive, signal_all, spawn
from agentspace.sandbox.namespaces import ENV, runtime_dir, system_mounts, tools, usable
from agentspace.sandbox.relay import open_via_relay


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
        # as root: the unprivileged host user commands run as, and their way to the workspace
        self.uid = policy.uid if sandboxuser.dropping() else None
        self._door: Path | None = None

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
                prepared = await pool(self.uid).take(self.bwrap, self.nsenter)
                self._holder, self._holder_pid = prepared.holder, prepared.pid
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

    def _argv(self, command: str, env: dict[str, str]) -> list[str]:
        prefix: list[str] = []
        if self._holder_pid is not None:
            prefix = [self.nsenter, "-t", str(self._holder_pid), "--user", "--net"]
            prefix += ["--preserve-credentials", "--"]
        argv = [self.bwrap, "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        argv += ["--unshare-cgroup-try", "--die-with-parent", "--hostname", "sandbox"]
        argv += ["--clearenv"]
        for key, value in {**ENV, **env}.items():
            argv += ["--setenv", key, value]
        argv += [*system_mounts(), "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        source = self._door or self.folder
        argv += ["--bind", str(source), WORKSPACE_MOUNT, "--chdir", WORKSPACE_MOUNT]
        drop = sandboxuser.drop(self.uid) if self.uid is not None else []
        return [*self.limits.wrapper(), *drop, *prefix, *argv, "--", "/bin/sh", "-c", command]

    async def exec(self, command: str, *, env: dict[str, str] | None = None) -> Execution:
        await self.start()
        if self._holder is not None and self._holder.returncode is not None:
            raise SandboxError("The sandbox's namespace holder died; the session must restart it.")
        process = await spawn(self._argv(command, env or {}))
        execution = HostExecution(process, wrappers=2)
        self._running.add(execution)
        process_done = asyncio.ensure_future(process.wait())
        process_done.add_done_callback(lambda _: self._running.discard(execution))
        if self._holder is not None and not self._refilled:  # our first command: see take()
            self._refilled, spares = True, pool(self.uid)
            process_done.add_done_callback(lambda _: spares.refill())
        return execution

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
