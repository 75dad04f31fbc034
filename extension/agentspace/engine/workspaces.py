"""The engine's workspaces: one sandbox runtime per session, made on first use.

Choosing a backend probes the machine (``bwrap true``, a docker ping), so it is
done once per engine and only when a session first needs to run something:
a session that only chats never starts a sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from agentspace.engine.config import EngineConfig
from agentspace.errors import SandboxError
from agentspace.events import custom
from agentspace.sandbox.base import SandboxKind, SandboxPolicy
from agentspace.sandbox.disks import Disks
from agentspace.sandbox.workspace import Workspace, make_sandbox, resolve_backend
from agentspace.store.records import PreviewInfo

if TYPE_CHECKING:
    from agentspace.engine.session import Session

log = logging.getLogger(__name__)


class Workspaces:
    """Runtimes by session id; ``close`` stops them all (processes, holders, relays), except
    what a detached backend keeps running (docker: the next server re-attaches to it)."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._kind: SandboxKind | None = None
        self._runtimes: dict[str, Workspace] = {}
        self._lock = asyncio.Lock()
        self.disks = Disks(config.state_dir)
        self._filling: asyncio.Task[None] | None = None
        self._prepare = False  # keep a formatted spare ready (servers: many sessions)

    async def start(self, *, prepare: bool) -> None:
        """Probe for quota filesystems and clean leftovers; ``prepare`` a spare now (servers)."""
        await asyncio.to_thread(self.disks.start)
        self._prepare = prepare
        self._refill()

    def policy(self, session: Session) -> SandboxPolicy:
        """The session's effective sandbox policy (server settings + its overrides)."""
        return SandboxPolicy.model_validate(
            {**self.config.sandbox_policy.model_dump(), **session.record.sandbox}
        )

    async def open_disk(self, session: Session, *, new: bool = False) -> None:
        """Mount the workspace's quota filesystem (before anything reads or runs in it)."""
        quota = self.policy(session).quota_mb
        folder = session.folder
        await asyncio.to_thread(self.disks.open, session.id, folder, quota, new=new)
        self._refill()

    async def purge_disk(self, session: Session) -> None:
        """Unmount and delete the workspace's image (the session is purged)."""
        await asyncio.to_thread(self.disks.purge, session.id, session.folder)

    def _refill(self) -> None:
        if not self._prepare or self.disks.unavailable is not None:
            return
        if self._filling is None or self._filling.done():
            quota = self.config.sandbox_policy.quota_mb
            self._filling = asyncio.create_task(asyncio.to_thread(self.disks.fill, quota))

    async def backend(self) -> SandboxKind:
        if self._kind is None:
            self._kind = await resolve_backend(self.config.sandbox, self.config.docker_host)
        return self._kind

    def describe(self, session_id: str) -> str:
        runtime = self._runtimes.get(session_id)
        if runtime is not None:
            line = runtime.describe()
        elif self._kind is not None:
            line = self._kind
        else:
            line = self.config.sandbox
        disk = self.disks.describe(session_id)
        return f"{line}; {disk}" if disk else line

    def previews(self, session_id: str) -> list[PreviewInfo] | None:
        """The previews the session's workspace announced since this engine made it (by
        port); None when it has none here (no command ran since the engine started)."""
        runtime = self._runtimes.get(session_id)
        if runtime is None:
            return None
        return [PreviewInfo(port=p, url=u) for p, u in sorted(runtime.opened.items())]

    async def get(self, session: Session) -> Workspace:
        runtime = self._runtimes.get(session.id)
        if runtime is not None:
            return runtime
        async with self._lock:
            if session.id in self._runtimes:
                return self._runtimes[session.id]
            kind = await self.backend()
            policy = self.policy(session)
            if self.disks.states.get(session.id) is None:
                await self.open_disk(session)  # mounted before the sandbox binds the folder
            sandbox = make_sandbox(
                kind, session.id, session.folder, policy, self.config.docker_host
            )

            def emit(kind: str, value: dict[str, Any]) -> None:
                session.log.append(custom(f"agentspace.{kind}", value))

            state = self.config.state_dir / "sandboxes" / session.id
            runtime = Workspace(sandbox, state, emit, self.config.preview_url)
            runtime.disk = self.disks.states.get(session.id)
            self._runtimes[session.id] = runtime
        try:  # what an earlier server left running (docker), outside the lock: it may wait
            await runtime.attach()  # for an engine, and other sessions must not
        except SandboxError as exc:  # the engine is away: tried again by the next start/stop
            log.warning("session %s: processes not re-attached: %s", session.id, exc)
        return runtime

    async def forget(self, session_id: str, *, destroy: bool, purge: bool = False) -> None:
        runtime = self._runtimes.pop(session_id, None)
        if runtime is not None:
            if destroy:  # a quota filesystem is purged by unmounting it, not file by file
                disk = self.disks.states.get(session_id)
                await runtime.destroy(purge and (disk is None or disk.mode != "filesystem"))
            else:
                await runtime.close()

    async def close(self) -> None:
        runtimes, self._runtimes = list(self._runtimes.values()), {}
        for runtime in runtimes:
            with contextlib.suppress(Exception):
                await runtime.close()
        if self._filling is not None:  # never cancel a mkfs midway: it leaves a half image
            with contextlib.suppress(Exception):
                await self._filling
        await asyncio.to_thread(self.disks.close)
        if self._kind == "bubblewrap":
            from agentspace.sandbox.bubblewrap.holders import pools

            for spares in pools():
                await spares.drain()
