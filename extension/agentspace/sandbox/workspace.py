"""One session's workspace: its folder, its sandbox, its processes and previews.

The tools talk to this facade, never to a backend. Backends are chosen by the
``sandbox`` setting; ``auto`` takes bubblewrap where it works, else docker where
an engine answers, else refuses with the three ways out. It never falls back to
``local`` silently: running an agent's commands on the host unsandboxed has to
be somebody's explicit choice.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentspace.errors import SandboxUnavailableError, ToolError
from agentspace.sandbox.base import Sandbox, SandboxChoice, SandboxKind, SandboxPolicy
from agentspace.sandbox.disks import FULL_BYTES, DiskState, full_message
from agentspace.sandbox.previews import make_previews
from agentspace.sandbox.processes import ProcessManager
from agentspace.sandbox.runner import CommandResult, run_command

LOG_DIR = ".agentspace/logs"
SIZE_TTL = 2.0  # seconds a measured workspace size is trusted


async def resolve_backend(choice: SandboxChoice, docker_host: str | None = None) -> SandboxKind:
    """The backend ``choice`` means on this machine, or a clear error."""
    if choice != "auto":
        return choice
    from agentspace.sandbox.namespaces import usable

    if await usable():
        return "bubblewrap"
    from agentspace.sandbox.docker.sandbox import docker_available

    if await docker_available(docker_host):
        return "docker"
    raise SandboxUnavailableError(
        "No sandbox is available for agent commands. Either install bubblewrap "
        "(apt-get install bubblewrap), or start a Docker engine (scripts/dockerd.sh start) and "
        "set sandbox='docker', or accept running commands unsandboxed on this machine with "
        "sandbox='local'."
    )


def make_sandbox(
    kind: SandboxKind,
    session_id: str,
    folder: Path,
    policy: SandboxPolicy,
    docker_host: str | None = None,
) -> Sandbox:
    if kind == "bubblewrap":
        from agentspace.sandbox.bubblewrap.sandbox import BubblewrapSandbox

        return BubblewrapSandbox(session_id, folder, policy)
    if kind == "docker":
        from agentspace.sandbox.docker.sandbox import DockerSandbox

        return DockerSandbox(session_id, folder, policy, docker_host=docker_host)
    from agentspace.sandbox.local import LocalSandbox

    return LocalSandbox(session_id, folder, policy)


class Workspace:
    """Folder + sandbox + processes for one session."""

    def __init__(
        self,
        sandbox: Sandbox,
        state: Path,
        emit: Callable[[str, dict[str, Any]], None],
        preview_url: str | None,
    ) -> None:
        self.sandbox = sandbox
        self.folder = sandbox.folder
        self.policy = sandbox.policy
        self.emit = emit
        self.previews = make_previews(preview_url, sandbox)  # None: loopback forwarders
        self.opened: dict[int, str] = {}  # the previews announced: port → URL
        self.processes = ProcessManager(
            sandbox, self.folder, state / "processes.json", lambda v: emit("process", v)
        )
        self._size: tuple[float, int] | None = None
        self._commands = 0
        self.disk: DiskState | None = None  # set by the engine: how the quota holds here

    @property
    def session_id(self) -> str:
        return self.sandbox.session_id

    def describe(self) -> str:
        return self.sandbox.describe()

    @property
    def _own_fs(self) -> bool:
        return self.disk is not None and self.disk.mode == "filesystem"

    async def shell(self, command: str, timeout: float | None = None) -> CommandResult:
        limit = min(timeout or self.policy.timeout, self.policy.max_timeout)
        self._commands += 1
        name = f"{LOG_DIR}/shell-{int(time.time() * 1000)}-{self._commands}.log"
        result = await run_command(
            self.sandbox,
            command,
            timeout=limit,
            log_path=self.folder / name,
            log_name=name,
        )
        self._size = None
        if self._own_fs and self.disk is not None:
            st = os.statvfs(self.folder)
            if st.f_bavail * st.f_frsize < FULL_BYTES or "No space left" in result.stderr:
                result.full = full_message(self.disk.quota_mb)
        return result

    async def preview(self, port: int, *, announce: bool = True) -> str:
        """The URL of the web server on ``port`` (checked: something must answer), announced
        to the session's clients unless ``announce`` is false."""
        try:
            _, writer = await asyncio.wait_for(self.sandbox.connect(port), 5)
        except (OSError, asyncio.TimeoutError) as exc:
            raise ToolError(
                f"Nothing is listening on port {port} in the sandbox ({exc}). Start the server "
                "with start_process, bound to 127.0.0.1 or 0.0.0.0, then try again."
            ) from exc
        writer.close()
        url = await self.previews.url(port)
        if announce:  # in one step: whoever lists ``opened`` has heard of its events
            self.opened[port] = url
            self.emit("preview", {"port": port, "url": url})
        return url

    def check_quota(self, extra: int) -> None:
        """Refuse a write that would take the workspace over its size quota."""
        quota = self.policy.quota_mb
        if quota is None:
            return
        if self._own_fs and self.disk is not None:  # the filesystem knows, and counts all
            st = os.statvfs(self.folder)
            if extra > st.f_bavail * st.f_frsize:
                raise ToolError(f"Refused: {full_message(self.disk.quota_mb)}")
            return
        used = self.size()
        if used + extra > quota << 20:
            raise ToolError(
                f"The workspace would grow to {(used + extra) >> 20} MB, over its {quota} MB "
                "quota. Delete files (large logs are in .agentspace/logs) or raise quota_mb."
            )

    def size(self) -> int:
        now = time.monotonic()
        if self._size is not None and now - self._size[0] < SIZE_TTL:
            return self._size[1]
        total = 0
        for dirpath, _, files in os.walk(self.folder):
            for name in files:
                try:
                    total += os.lstat(os.path.join(dirpath, name)).st_size
                except OSError:
                    pass
        self._size = (now, total)
        return total

    async def attach(self) -> None:
        """Follow again the processes an earlier server left running (docker)."""
        await self.processes.attach()

    async def close(self) -> None:
        await self.processes.close()
        await self.sandbox.close()
        await self.previews.close()

    async def destroy(self, purge: bool) -> None:
        await self.processes.close(detach=False)
        await self.sandbox.destroy()
        await self.previews.close()
        if purge:
            shutil.rmtree(self.folder, ignore_errors=True)
