"""The sandbox port: what a workspace needs from bubblewrap, docker or plain processes.

A backend does three things and nothing else: start the session's sandbox,
``exec`` a shell command inside it (returning an ``Execution`` whose whole
process tree can be killed), and ``connect`` a byte stream to a TCP port
inside it (for previews). Output capture, time limits, logs, process names and
events are the same for every backend and live above this port
(``runner.py``, ``processes.py``), so each adapter stays small and the hostile
cases are handled once.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Network = Literal["none", "host"]
LimitHit = Literal["timeout", "memory", "pids", "output"]
SandboxKind = Literal["bubblewrap", "docker", "local"]

WORKSPACE_MOUNT = "/workspace"


class SandboxPolicy(BaseModel):
    """Limits and policy for one sandbox (per server, overridable per session)."""

    model_config = ConfigDict(extra="forbid")

    network: Network = Field("none", description="'none' (loopback only) or 'host' (opt-in).")
    memory_mb: int | None = Field(2048, ge=16, description="Memory for the whole sandbox.")
    cpus: float | None = Field(1.0, gt=0, description="CPU share (1.0 = one core).")
    pids: int | None = Field(512, ge=8, description="Processes and threads at once.")
    timeout: float = Field(120.0, gt=0, description="Default wall time per shell command (s).")
    max_timeout: float = Field(3600.0, gt=0, description="Largest timeout a call may ask for.")
    output_chars: int = Field(
        30_000, ge=1000, description="Output returned to the model per command (head + tail)."
    )
    log_bytes: int = Field(
        50_000_000, ge=10_000, description="Output kept in a command's log file; the rest dropped."
    )
    quota_mb: int | None = Field(10_240, ge=1, description="Workspace size checked before writes.")
    image: str = Field(
        "agentspace-sandbox:latest", description="Docker image for the docker backend."
    )


class Execution(ABC):
    """A command running in a sandbox: its output streams, its end, and a tree kill."""

    stdout: asyncio.StreamReader
    stderr: asyncio.StreamReader
    pid: int | None = None

    @abstractmethod
    async def wait(self) -> int:
        """The exit code (128 + N for a signal N, as a shell reports it)."""

    @abstractmethod
    def terminate(self) -> None:
        """Ask the command to stop (SIGTERM to its process group)."""

    @abstractmethod
    def kill(self) -> None:
        """Kill the command and every process it started, daemonized ones included."""


class Sandbox(ABC):
    """One session's sandbox. ``start`` is idempotent; ``close`` stops what runs in it."""

    kind: SandboxKind
    isolated: bool = True

    def __init__(self, session_id: str, workspace: Path, policy: SandboxPolicy) -> None:
        self.session_id = session_id
        self.workspace = workspace
        self.policy = policy

    @abstractmethod
    async def start(self) -> None:
        """Create (or re-attach to) the sandbox; cheap when already started."""

    @abstractmethod
    async def exec(self, command: str, *, env: dict[str, str] | None = None) -> Execution:
        """Start ``sh -c command`` in the workspace folder inside the sandbox."""

    @abstractmethod
    async def connect(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A byte stream to ``127.0.0.1:port`` inside the sandbox (for previews)."""

    async def limit_hit(self, before: dict[str, int]) -> LimitHit | None:
        """Which resource limit was hit since ``before = await counters()``, if any."""
        after = await self.counters()
        for name in ("memory", "pids"):
            if after.get(name, 0) > before.get(name, 0):
                return name
        return None

    async def counters(self) -> dict[str, int]:
        """Monotonic counts of limit events (``memory`` OOM kills, ``pids`` refusals)."""
        return {}

    @abstractmethod
    async def close(self) -> None:
        """Stop every process (the server is shutting down); keep the workspace."""

    async def destroy(self) -> None:
        """Remove the sandbox for good (the session is deleted)."""
        await self.close()

    def describe(self) -> str:
        """One line for status displays: backend and isolation."""
        if not self.isolated:
            return f"{self.kind} (NOT isolated: commands run as you, on the host)"
        return f"{self.kind} (network {self.policy.network})"
