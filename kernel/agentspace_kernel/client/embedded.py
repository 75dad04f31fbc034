"""Embedded mode: the same engine the server runs, inside the kernel, on the agent loop.

Used where no Jupyter server started the kernel (nbclient, nbval, papermill,
VS Code, a console). The store is the same SQLite file the server would use
(the Jupyter data dir unless ``AgentMagics.state_dir`` says otherwise), so a
notebook opened later in JupyterLab finds the same session; the engine's claim
on a session keeps two processes from serving it at once. With no server to
proxy previews behind its login, a previewed port gets a listener on 127.0.0.1
that checks a per-port token (agentspace.sandbox.forward), closed with the
engine when the kernel exits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agentspace_kernel.client.discovery import Location

from ..errors import ClientError
from .base import AgentClient, Event, Settings

if TYPE_CHECKING:
    from agentspace.engine.engine import Engine
    from agentspace.engine.session import Session
    from agentspace.notebook.port import NotebookPort

T = TypeVar("T")

_engines: dict[tuple[str, str, str], Engine] = {}
_engine_lock: asyncio.Lock | None = None


async def shared_engine(settings: Settings) -> Engine:
    """One engine per kernel and settings, started on first use, closed at exit."""
    global _engine_lock
    from agentspace.engine.config import EngineConfig, default_model, default_state_dir
    from agentspace.engine.engine import Engine
    from agentspace_kernel.client.diagnostics import keep_out_of_cells

    from ..loop import on_shutdown

    key = (settings.state_dir, settings.sandbox, settings.model)
    if _engine_lock is None:
        _engine_lock = asyncio.Lock()
    async with _engine_lock:
        engine = _engines.get(key)
        if engine is None:
            state = Path(settings.state_dir) if settings.state_dir else default_state_dir()
            keep_out_of_cells(state)
            config = EngineConfig(
                state_dir=state,
                model=settings.model or default_model(),
                sandbox=settings.sandbox,
                preview_url=None,  # no server to proxy them: a token-checked loopback forwarder
            )
            engine = await Engine(config, notebooks=embedded_notebook).start()
            _engines[key] = engine
            on_shutdown(engine.close)
        return engine


UNTOLD = (
    "The agent may read this notebook file but not edit it: the kernel was not told it may "
    "(it may be open in an editor, which would not see the change). To let the agent edit it, "
    "set AGENTSPACE_NOTEBOOK to its path before %load_ext agentspace."
)


async def embedded_notebook(key: str) -> NotebookPort:
    """The notebook of an embedded session: its file where the kernel knows it, edited only
    when the user named it (``AGENTSPACE_NOTEBOOK``), else the cells this kernel ran."""
    return _notebook_port(key)


def _notebook_port(key: str) -> NotebookPort:
    import os

    from agentspace.notebook.files import FileNotebook, HistoryNotebook
    from agentspace_kernel.ran import RAN

    if not key.startswith("kernels/"):  # discovery's anonymous key: no file known
        path = Path("/" + key)
        if path.is_file():
            told = os.environ.get("AGENTSPACE_NOTEBOOK", "")
            allowed = bool(told) and Path(told).expanduser().absolute() == path
            return FileNotebook(path, label=path.name, read_only="" if allowed else UNTOLD)
    return HistoryNotebook("this kernel's history", RAN.cells)


class EmbeddedClient(AgentClient):
    mode = "embedded"

    def __init__(self, location: Location, settings: Settings) -> None:
        super().__init__(location)
        self.settings = settings
        self._session: Session | None = None

    async def _engine(self) -> Engine:
        return await shared_engine(self.settings)

    async def _current(self) -> Session:
        if self._session is None:
            raise ClientError("No session yet: run an %%agent cell first.", code="no_session")
        return self._session

    async def _guard(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work``, turning the engine's errors into ``ClientError`` (same codes as REST)."""
        from agentspace.errors import AgentspaceError

        try:
            return await work()
        except AgentspaceError as exc:
            raise ClientError(exc.message, exc.code, 0, **exc.data) from exc

    # -- the session ----------------------------------------------------------
    async def open(self, model: str | None = None) -> dict[str, Any]:
        async def work() -> dict[str, Any]:
            engine = await self._engine()
            session = await engine.open(self.notebook, model or None)
            self._session, self.session_id = session, session.id
            return await _info(session)

        return await self._guard(work)

    async def info(self) -> dict[str, Any]:
        return await _info(await self._current())

    async def send(self, text: str, context: dict[str, Any] | None = None) -> dict[str, Any]:
        from agentspace.engine.context import PromptContext

        session = await self._current()
        ref = PromptContext.model_validate(context) if context is not None else None

        async def work() -> dict[str, Any]:
            receipt = await session.send(text, sender="kernel", context=ref)
            return receipt.model_dump(mode="json")

        return await self._guard(work)

    async def events(self, after: int = 0) -> AsyncIterator[tuple[int, Event]]:
        import json

        session = await self._current()
        async for stored in session.subscribe(after):
            yield stored.seq, json.loads(stored.data)

    async def stop(self) -> dict[str, Any]:
        session = await self._current()
        await session.stop()
        return {"status": session.status}

    async def resume(self) -> dict[str, Any]:
        session = await self._current()
        status = await self._guard(session.resume)
        return {"status": status, "running": session.busy}

    async def decide(self, tool_call_id: str, decision: dict[str, Any]) -> dict[str, Any]:
        from agentspace.engine.validation import parse
        from agentspace.store.approvals import Decision

        session = await self._current()

        async def work() -> list[str]:
            parsed = parse(Decision, decision)
            return await session.decide(tool_call_id, parsed, by="this notebook (embedded)")

        remaining = await self._guard(work)
        return {"pending": remaining, "status": session.status}

    async def history(self, limit: int) -> list[dict[str, Any]]:
        session = await self._current()
        return await session.transcript(limit) if limit > 0 else []

    async def configure(
        self, *, model: str | None = None, policies: dict[str, str] | None = None
    ) -> dict[str, Any]:
        session = await self._current()

        async def work() -> dict[str, Any]:
            from agentspace.engine.requests import ConfigureSession
            from agentspace.engine.validation import parse

            body = parse(ConfigureSession, {"model": model, "policies": policies})
            info = await session.update(model=body.model, policies=body.policies)
            return info.model_dump(mode="json")

        return await self._guard(work)

    async def set_kernel_tools(
        self, tools: list[dict[str, Any]], run_cell: bool, list_variables: bool = False
    ) -> None:
        session = await self._current()

        async def work() -> None:
            from agentspace.engine.requests import SetTools
            from agentspace.engine.validation import parse

            raw = {"tools": tools, "run_cell": run_cell, "list_variables": list_variables}
            body = parse(SetTools, raw)
            await session.offer_kernel_tools(body.tools, body.run_cell, body.list_variables)

        await self._guard(work)

    async def reset(self) -> dict[str, Any]:
        engine = await self._engine()
        if self._session is None:
            return await self.open()
        old = await self._session.info()
        await self._guard(lambda: engine.delete(self.session_id, purge=True))
        self._session, self.session_id = None, ""
        await self.open(old.model)
        return await self.configure(policies=dict(old.policies))

    # -- the workspace --------------------------------------------------------
    async def files(self, path: str = ".") -> dict[str, Any]:
        session = await self._current()
        listing = await self._guard(lambda: session.files(path))
        return listing.model_dump(mode="json")

    async def processes(self) -> list[dict[str, Any]]:
        session = await self._current()
        records = await self._guard(session.processes)
        return [r.model_dump(mode="json") for r in records]

    async def output(self, name: str, tail: int = 100) -> str:
        session = await self._current()
        return (await self._guard(lambda: session.process_output(name, tail))).output

    async def preview_url(self, port: int) -> str:
        """A ``http://127.0.0.1:...`` URL with a token (see agentspace.sandbox.forward)."""
        session = await self._current()
        return await self._guard(lambda: session.preview(port, announce=False))


async def _info(session: Session) -> dict[str, Any]:
    return (await session.info()).model_dump(mode="json")
