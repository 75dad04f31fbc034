"""The docker backend: one long-lived container per session, driven through the docker SDK.

One container per session, not per command, because processes must outlive a command and a
server restart: it runs a keep-alive process, each command is a ``docker exec`` in it, ``close``
leaves it running, ``start`` re-attaches by name and only ``destroy`` removes it.

Background processes are not read through an exec stream, which nobody reads while no
server is attached: the container writes their logs itself (``runs.py``).

Each exec carries ``AGENTSPACE_EXEC=<token>``, which its whole process tree inherits,
daemons included: ``kill`` signals every process that holds it (``kill.py``).

The container is one ``Container`` (``container.py``): the sandbox, its commands
(``exec.py``) and its background runs share it and use only its public methods. The
SDK blocks: its calls run in ``asyncio.to_thread``, and a thread per exec reads the
multiplexed output into two StreamReaders, paused by their own flow control when the consumer
falls behind (so read both streams, as with pipes).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from typing import Any

from agentspace.errors import SandboxError
from agentspace.sandbox.base import Sandbox, SandboxKind
from agentspace.sandbox.docker.container import (
    CREATOR,
    LABEL,
    Container,
    engine_client,
    sandbox_user,
)
from agentspace.sandbox.docker.exec import LIMIT, DockerExecution
from agentspace.sandbox.docker.kill import MARK
from agentspace.sandbox.docker.runs import DockerRun, adopt, spawn

__all__ = ["CREATOR", "LABEL", "DockerExecution", "DockerSandbox", "docker_available"]

# The cgroup files of counters(), read from inside when the engine runs on another host.
COUNTERS = """cd /sys/fs/cgroup; echo =memory; cat memory.events memory/memory.oom_control
echo =pids; cat pids.events pids/pids.events; true"""
EVENTS = {"memory": "oom_kill", "pids": "max"}  # the counted line in each cgroup file


async def docker_available(docker_host: str | None = None) -> bool:
    """Whether a docker engine answers a ping within two seconds (for backend auto-selection)."""

    def ping() -> bool:
        with contextlib.closing(engine_client(docker_host, timeout=2)) as client:
            return bool(client.ping())

    try:
        return await asyncio.wait_for(asyncio.to_thread(ping), 3)
    except Exception:  # no SDK, no socket, no answer: all mean "not available"
        return False


class DockerSandbox(Sandbox):
    """A session's container ``agentspace-<session_id>``, its workspace at /workspace."""

    kind: SandboxKind = "docker"
    detached = True

    def __init__(self, *args: Any, docker_host: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.docker_host = docker_host
        self.container = Container(self.session_id, self.folder, self.policy, docker_host)
        self.name = self.container.name
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._lock:
            if self.container.id is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                await self.container.call(self.container.attach)

    def user(self) -> str:
        """Who commands run as (``container.sandbox_user``)."""
        return sandbox_user(self.policy)

    async def spawn(self, command: str, *, log: str, limit: int) -> DockerRun:
        await self.start()
        return await spawn(self.container, command, log, limit)

    async def adopt(self, command: str, *, log: str, handle: str | None) -> DockerRun | None:
        await self.start()
        return await adopt(self.container, command, log, handle)

    async def exec(self, command: str, *, env: dict[str, str] | None = None) -> DockerExecution:
        await self.start()
        token = uuid.uuid4().hex[:16]
        environment = {**(env or {}), MARK: token}
        argv = ["sh", "-c", command]
        exec_id, sock = await self.container.call(self.container.open_exec, argv, environment)
        return DockerExecution(self.container, exec_id, token, sock)

    async def connect(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        await self.start()
        sock = await self.container.call(self.container.bridge, port)
        return await asyncio.open_connection(sock=sock, limit=LIMIT)

    async def counters(self) -> dict[str, int]:
        """OOM kills and refused forks from the container's cgroup, read on this host when it
        is the engine's (no exec, so it works even when the pids limit is exhausted)."""
        await self.start()
        try:
            texts = {name: file.read_text() for name, file in self.container.cgroup.items()}
        except OSError:  # the container went away
            return {}
        if not texts:
            try:
                _, output = await self.container.call(self.container.run, COUNTERS)
            except SandboxError:
                return {}  # e.g. the pids limit leaves no room for our exec right now
            parts = re.split(r"^=(\w+)\n", output, flags=re.M)
            texts = dict(zip(parts[1::2], parts[2::2], strict=True))
        found = {k: re.search(rf"^{EVENTS[k]} (\d+)$", t, re.M) for k, t in texts.items()}
        return {k: int(m[1]) for k, m in found.items() if m}

    async def close(self) -> None:
        """Keep the container and its processes running; finish pending kills, drop the client."""
        await self.container.close()

    async def destroy(self) -> None:
        await self.container.call(self.container.remove)
        await self.close()
