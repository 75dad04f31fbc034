"""The sandbox port: what a workspace needs from bubblewrap, docker or plain processes.

A backend does three things and nothing else: start the session's sandbox,
``exec`` a shell command inside it (returning an ``Execution`` whose whole
process tree can be killed), and ``connect`` a byte stream to a TCP port
inside it (for previews). Output capture, time limits, logs, process names and
events are the same for every backend and live above this port
(``runner.py``, ``processes.py``), so each adapter stays small and the hostile
cases are handled once.

One exception, for backends whose background processes outlive the server
(``detached``: docker): there the server cannot be the one reading a background
process's output, since nobody would read it while no server runs. Such a
backend ``spawn``s the process with its output appended to its log file by the
sandbox itself (capped there), and ``adopt``s after a restart what an earlier
server spawned, from the ``handle`` it gave.
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
SANDBOX_UID = 65532  # unassigned on Debian; distroless images call the same id "nonroot"

SandboxChoice = Literal["auto", "bubblewrap", "docker", "local"]
"""Where commands run; ``auto`` is bubblewrap, else docker, never local unless chosen."""


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
    uid: int = Field(
        SANDBOX_UID,
        ge=1,
        description="Host user and group id sandboxed commands run as when the server is root "
        "(an id with no account or files of its own on the host).",
    )
    image: str = Field(
        "agentspace-sandbox:latest", description="Docker image for the docker backend."
    )


class Vanished(Exception):
    """A detached process ended without leaving its exit status (its sandbox was restarted).

    A control signal between a backend and the process table, not an error anyone sees;
    ``code`` is what the backend knows of how it ended, if anything (137: killed).
    """

    def __init__(self, code: int | None) -> None:
        super().__init__(code)
        self.code = code


class Execution(ABC):
    """A command running in a sandbox: its output streams, its end, and a tree kill."""

    stdout: asyncio.StreamReader
    stderr: asyncio.StreamReader
    pid: int | None = None
    handle: str | None = None  # a spawned process: what ``Sandbox.adopt`` finds it again by

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
    detached: bool = False  # background processes outlive the server: ``spawn`` and ``adopt``

    def __init__(self, session_id: str, folder: Path, policy: SandboxPolicy) -> None:
        self.session_id = session_id
        self.folder = folder
        self.policy = policy

    @abstractmethod
    async def start(self) -> None:
        """Create (or re-attach to) the sandbox; cheap when already started."""

    @abstractmethod
    async def exec(self, command: str, *, env: dict[str, str] | None = None) -> Execution:
        """Start ``sh -c command`` in the workspace folder inside the sandbox."""

    async def spawn(self, command: str, *, log: str, limit: int) -> Execution:
        """Start a background process whose stdout and stderr the sandbox itself appends to
        ``log`` (workspace-relative), ``limit`` bytes at most (the rest is read and dropped).

        It keeps running and logging while no server is attached; its ``wait`` raises
        ``Vanished`` if it ended without a status. Only where ``detached`` is true.
        """
        raise NotImplementedError(f"the {self.kind} backend keeps no process past the server")

    async def adopt(self, command: str, *, log: str, handle: str | None) -> Execution | None:
        """Follow again a process an earlier server ``spawn``ed (by its ``handle``), or None
        when there is nothing to follow (``handle`` None: started before ``spawn`` existed)."""
        raise NotImplementedError(f"the {self.kind} backend keeps no process past the server")

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
        """Stop every process (the server is shutting down); keep the workspace. A detached
        backend lets its processes run on instead."""

    async def destroy(self) -> None:
        """Remove the sandbox for good (the session is deleted)."""
        await self.close()

    def describe(self) -> str:
        """One line for status displays: backend and isolation."""
        if not self.isolated:
            return f"{self.kind} (NOT isolated: commands run as you, on the host)"
        return f"{self.kind} (network {self.policy.network})"
