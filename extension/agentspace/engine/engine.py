"""The engine: the store, the model, the tools and the sessions loaded from them.

One engine per process (the Jupyter server, the ``agentspace`` command, an
embedded kernel). Sessions are loaded from the store on first use and stay as
small objects with no task while idle. Closing the engine stops every run
(cancelled outcome, partial text kept) and commits everything before the
database closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import posixpath
import shutil
import time
import uuid
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from agentspace.engine.config import EngineConfig
from agentspace.engine.history import DEFAULT_WINDOW
from agentspace.engine.session import Session
from agentspace.engine.workspaces import Workspaces
from agentspace.errors import InputError, NotFoundError, SandboxError, StoreDamaged
from agentspace.models.base import Model
from agentspace.notebook.port import NotebookAccess
from agentspace.store import labels, records
from agentspace.store.database import Store
from agentspace.store.records import SessionInfo, SessionLimits, SessionRecord
from agentspace.tools.base import Policy, Tool, ToolRegistry
from agentspace.tools.kernel import STORED

log = logging.getLogger(__name__)
STOP_POLL_SECONDS = 0.05


async def warn_orphans(store: Store, state: Path) -> None:
    """Log a WARNING when workspace folders have no session (a deleted or emptied database)."""
    from agentspace.store.health import orphan_warning, workspace_ids

    folders = await asyncio.to_thread(workspace_ids, state)
    if not folders:
        return
    known = {sid for (sid,) in await store.query("SELECT id FROM sessions")}
    orphans = folders - known
    if orphans:
        log.warning("%s", orphan_warning(state, len(orphans), fresh=store.fresh))


def normalise_notebook(path: str) -> str:
    """A notebook key: relative, normalised, forward slashes (``a/./b.ipynb`` → ``a/b.ipynb``)."""
    text = path.replace("\\", "/").strip()
    if not text:
        raise InputError("The notebook path is empty; give the notebook's path, e.g. 'demo.ipynb'.")
    if "\x00" in text:
        raise InputError("The notebook path contains a NUL character; give a real path.")
    if text.startswith("/"):
        raise InputError(f"The notebook path {path!r} is absolute; give it relative to the root.")
    norm = posixpath.normpath(text)
    if norm == "." or norm == ".." or norm.startswith("../"):
        raise InputError(f"The notebook path {path!r} leaves the root; give a path inside it.")
    return norm


@cache
def _takes_images(model: str) -> bool:
    from agentspace.models.litellm_model import supports_images

    return supports_images(model)


@cache
def _context_window(model: str) -> int | None:
    from agentspace.models.litellm_model import context_window

    return context_window(model)


class Engine:
    """Loads, creates and serves sessions. Use ``async with Engine(config) as engine``."""

    def __init__(
        self,
        config: EngineConfig | None = None,
        *,
        model: Model | None = None,
        tools: Iterable[Tool] | None = None,
        notebooks: NotebookAccess | None = None,
    ) -> None:
        self.config = config or EngineConfig()
        self.notebooks = notebooks  # a notebook key → its port (server: browser or file)
        self._model = model
        if tools is None:
            from agentspace.tools.files import builtin_tools

            tools = builtin_tools(notebook=notebooks is not None)
        self.tools = ToolRegistry(tools)
        self._store: Store | None = None
        self._sessions: dict[str, Session] = {}
        self._by_notebook: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None
        self.workspaces = Workspaces(self.config)
        self._preload: asyncio.Task[None] | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the engine is not started; use 'async with Engine(...)'")
        return self._store

    @property
    def damaged(self) -> StoreDamaged | None:
        """The store's damage once SQLite found the file corrupt (nothing is written after)."""
        return None if self._store is None else self._store.damaged

    @property
    def model(self) -> Model:
        if self._model is None:
            from agentspace.models.litellm_model import LiteLLMModel

            limits = self.config.limits
            self._model = LiteLLMModel(
                retries=limits.model_retries,
                backoff=limits.retry_backoff,
                max_retry_after=limits.max_retry_after,
                first_byte_timeout=limits.first_byte_timeout,
                chunk_timeout=limits.chunk_timeout,
                # embedded mode (no server: previews through a loopback forwarder) reads
                # provider keys from the kernel's environment
                keys_in="kernel" if self.config.preview_url is None else "server",
            )
        return self._model

    async def context_window(self, model: str) -> int | None:
        """The model's context window (litellm's model map, read off the loop the first time)."""
        if model.startswith("scripted/"):
            return _context_window(model)
        return await asyncio.to_thread(_context_window, model)

    async def history_window(self, model: str) -> int:
        """The tokens a prompt for ``model`` is trimmed to: ``limits.context_window``, else
        the model's window (litellm's map), else ``DEFAULT_WINDOW``."""
        override = self.config.limits.context_window
        return override or await self.context_window(model) or DEFAULT_WINDOW

    async def limits_for(self, model: str) -> SessionLimits:
        """The limits that apply to a session on ``model`` (never imports litellm to tell its
        window: that takes seconds; the window is null until something else has)."""
        from agentspace.models.litellm_model import loaded

        limits = self.config.limits
        known = limits.context_window or model.startswith("scripted/") or loaded()
        return SessionLimits(
            token_budget=limits.token_budget,
            cost_ceiling=limits.cost_ceiling,
            max_model_calls=limits.max_model_calls,
            context_window=await self.history_window(model) if known else None,
        )

    async def takes_images(self, model: str) -> bool:
        """Whether ``model`` takes images (litellm's model map, read off the loop once)."""
        if model.startswith("scripted/"):
            return False
        return await asyncio.to_thread(_takes_images, model)

    def default_policy(self, tool: str) -> Policy:
        return self.tools.get(tool).policy if tool in self.tools else "ask"

    # -- lifecycle -----------------------------------------------------------
    async def start(self, *, preload_model: bool = False) -> Engine:
        """Open the store; ``preload_model`` imports litellm in a thread now (servers)."""
        state = self.config.state_dir
        (state / "workspaces").mkdir(parents=True, exist_ok=True)
        self._store = await Store.open(state / "agentspace.db")
        await self._check_store()
        await warn_orphans(self._store, state)
        await self.workspaces.start(prepare=preload_model)
        if preload_model and self._model is None:
            from agentspace.models.litellm_model import preload_litellm

            self._preload = asyncio.create_task(preload_litellm(self.config.model))
        return self

    async def _check_store(self) -> None:
        """A bounded quick_check before anything is served: a damaged file is refused here
        (StoreDamaged, with what to do), not found later by whichever call reads a bad page."""
        from agentspace.store.status import check_integrity

        store = self.store
        await check_integrity(self, cached=False)
        if store.damaged is not None:
            self._store = None
            await store.close()
            raise store.damaged

    async def health(self) -> dict[str, Any]:
        """The store's health for ``GET api/status`` (store/status.py; cached, bounded)."""
        from agentspace.store.status import store_status

        return await store_status(self)

    async def close(self) -> None:
        """Stop every run, commit, close the store."""
        if self._store is None:
            return
        running = [s for s in self._sessions.values() if s.busy]
        await asyncio.gather(*(s.stop() for s in running), return_exceptions=True)
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self.workspaces.close()
        await self._store.close()
        self._store = None

    async def __aenter__(self) -> Engine:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- sessions ------------------------------------------------------------
    async def session(
        self, notebook: str, *, create: bool = True, model: str | None = None
    ) -> Session:
        """The session of ``notebook``, loaded or (with ``create``) made on first use."""
        key = normalise_notebook(notebook)
        sid = self._by_notebook.get(key)
        if sid is not None:
            return self._sessions[sid]
        async with self._lock:
            loaded = await self._load(key, by="notebook")
            if loaded is None:
                if not create:
                    raise NotFoundError(
                        f"No session for notebook {key!r}; send it a message first."
                    )
                loaded = await self._create(key, model)
            return loaded

    async def open(self, notebook: str, model: str | None = None) -> Session:
        """The notebook's session (made on first use), switched to ``model`` if one is given."""
        session = await self.session(notebook, model=model)
        if model and session.record.model != model:
            await session.update(model=model)
        return session

    async def get(self, session_id: str) -> Session:
        """The session with this id (loaded from the store if needed)."""
        if session_id in self._sessions:
            return self._sessions[session_id]
        async with self._lock:
            loaded = await self._load(session_id, by="id")
        if loaded is None:
            raise NotFoundError(f"No session with id {session_id!r}; list sessions to find it.")
        return loaded

    async def find(self, key: str) -> Session:
        """A session by notebook key or by id (for the command line)."""
        try:
            return await self.session(key, create=False)
        except (NotFoundError, InputError):
            return await self.get(key)

    async def delete(self, session_id: str, *, purge: bool = False) -> None:
        """Stop a session and its processes, remove it from the store (and its files)."""
        session = await self.get(session_id)
        await session.stop()
        # A session not opened since the server started has no runtime loaded: load it, so
        # that its sandbox goes too (a docker container) and the folder is purged.
        with contextlib.suppress(SandboxError):
            await self.workspaces.get(session)
        await self.workspaces.forget(session.id, destroy=True, purge=purge)
        if purge:  # what no sandbox could remove (the backend is gone)
            await self.workspaces.purge_disk(session)
            await asyncio.to_thread(shutil.rmtree, session.folder, ignore_errors=True)
        await self.store.transaction(lambda c: records.delete_session(c, session.id))
        labels.remove_label(self.config.state_dir, session.id)
        self._sessions.pop(session.id, None)
        self._by_notebook.pop(session.notebook, None)

    async def prune(self, idle_days: float, *, dry_run: bool = False) -> list[SessionInfo]:
        """Delete, with their workspaces, anonymous kernels' sessions idle for ``idle_days``.

        A kernel that cannot name its notebook (nbclient, papermill, a console) gets a
        session of its own, ``kernels/<kernel id>.ipynb``, that nothing reaches once the
        kernel is gone: without this they pile up, one per notebook run.
        """
        before = time.time() - idle_days * 86_400
        stale = await self.store.read(lambda c: records.idle_anonymous(c, before))
        pruned = [await (await self.get(sid)).info() for sid, _, _ in stale]
        if not dry_run:
            for info in pruned:
                await self.delete(info.id, purge=True)
        return pruned

    async def rename_notebooks(self, old: str, new: str) -> int:
        """Move session keys from notebook (or folder) ``old`` to ``new``; returns how many."""
        old_key, new_key = normalise_notebook(old), normalise_notebook(new)
        moved = await self.store.transaction(
            lambda c: records.rename_notebooks(c, old_key, new_key)
        )
        for sid, notebook in moved:
            session = self._sessions.get(sid)
            if session is not None:
                self._by_notebook.pop(session.notebook, None)
                session.record.notebook = notebook
                self._by_notebook[notebook] = sid
                session.save()
            labels.write_label(self.config.state_dir, sid, notebook)
        await self.store.flush()
        return len(moved)

    async def list(self) -> list[SessionInfo]:
        await self.store.flush()
        rows = await self.store.query("SELECT id FROM sessions ORDER BY created")
        return [await (await self.get(sid)).info() for (sid,) in rows]

    async def _load(self, key: str, *, by: str) -> Session | None:
        if by == "id" and key in self._sessions:
            return self._sessions[key]
        found: Any = await self.store.read(lambda c: records.load_session(c, key=key, by=by))
        if found is None:
            return None
        data, owner, last_seq, queued = found
        record = SessionRecord.model_validate_json(data, context={STORED: True})
        session = self._register(Session(self, record, last_seq, queued))
        labels.ensure_label(self.config.state_dir, session.id, session.notebook)
        await self.workspaces.open_disk(session)
        await session.recover(owner)
        return session

    async def _create(self, notebook: str, model: str | None) -> Session:
        sid = uuid.uuid4().hex
        workspace = self.config.state_dir / "workspaces" / sid
        workspace.mkdir(parents=True, exist_ok=True)
        record = SessionRecord(id=sid, notebook=notebook, model=model, workspace=str(workspace))
        self.store.write(
            records.INSERT_SESSION, (sid, notebook, record.created, record.model_dump_json())
        )
        await self.store.flush()
        labels.write_label(self.config.state_dir, sid, notebook)  # for doctor --adopt
        session = self._register(Session(self, record, 0, 0))
        await self.workspaces.open_disk(session, new=True)
        return session

    def _register(self, session: Session) -> Session:
        self._sessions[session.id] = session
        self._by_notebook[session.notebook] = session.id
        return session

    # -- cross-process stop ----------------------------------------------------
    def serving_changed(self) -> None:
        """Watch for stop requests from other processes while anything is served here."""
        if self._watcher is None and any(s.busy for s in self._sessions.values()):
            self._watcher = asyncio.create_task(self._watch_stops(), name="agentspace-stops")

    async def _watch_stops(self) -> None:
        try:
            while any(s.busy for s in self._sessions.values()):
                rows = await self.store.query("SELECT id FROM sessions WHERE stop_requested = 1")
                for (sid,) in rows:
                    session = self._sessions.get(sid)
                    if session is not None and session.busy:
                        self.store.write(
                            "UPDATE sessions SET stop_requested = 0 WHERE id = ?", (sid,)
                        )
                        await session.stop()
                await asyncio.sleep(STOP_POLL_SECONDS)
        finally:
            self._watcher = None
