"""The local backend: plain processes in the workspace folder, no isolation.

Only when configured explicitly (never an automatic fallback), and every
session using it says so in its status. Commands still get the limits that
can be had without a sandbox (cgroups or rlimits), an environment without the
server's secrets, and a tree kill that also reaches processes that left the
process group (through the session's cgroup where there is one).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

from agentspace.sandbox.base import Execution, Sandbox, SandboxPolicy
from agentspace.sandbox.cgroups import Limits
from agentspace.sandbox.hostproc import HostExecution, signal_all, spawn
from agentspace.sandbox.namespaces import ENV

TAG = "AGENTSPACE_COMMAND"


class LocalSandbox(Sandbox):
    kind = "local"
    isolated = False

    def __init__(self, session_id: str, folder: Path, policy: SandboxPolicy) -> None:
        super().__init__(session_id, folder, policy)
        self.limits = Limits(f"local-{session_id[:18]}", policy.memory_mb, policy.cpus, policy.pids)
        self._started = False
        self._running: set[HostExecution] = set()

    async def start(self) -> None:
        if not self._started:
            self.limits.create()
            self._started = True

    async def exec(self, command: str, *, env: dict[str, str] | None = None) -> Execution:
        await self.start()
        environment = {**ENV, "HOME": str(self.folder), **(env or {})}
        environment["PATH"] = os.environ.get("PATH", environment["PATH"])
        environment[TAG] = tag = uuid.uuid4().hex  # inherited: tells this command's strays
        argv = [*self.limits.wrapper(), "/bin/sh", "-c", command]
        process = await spawn(argv, cwd=self.folder, env=environment)
        execution = HostExecution(process, extra_pids=lambda: self._strays(execution, tag))
        self._running.add(execution)
        asyncio.ensure_future(process.wait()).add_done_callback(
            lambda _: self._running.discard(execution)
        )
        return execution

    def _strays(self, execution: HostExecution, tag: str) -> list[int]:
        """Processes of this sandbox that left their tree (only known with cgroups).

        Alone, everything in the groups is this command's. While other commands or
        processes run, only those that still carry its tag in their environment are.
        """
        pids = self.limits.pids_in()
        if not any(other is not execution for other in self._running):
            return pids
        wanted = f"{TAG}={tag}".encode()
        return [pid for pid in pids if _has_tag(pid, wanted)]

    async def connect(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)

    async def counters(self) -> dict[str, int]:
        return self.limits.counters()

    async def close(self) -> None:
        for execution in list(self._running):
            execution.kill()
        signal_all(self.limits.pids_in(), 9)
        self.limits.remove()
        self._started = False


def _has_tag(pid: int, tag: bytes) -> bool:
    try:
        return tag in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
