"""The server's chats: one per notebook session, under ``AgentspaceApp.chat_dir``.

jupyterlab-chat keeps a chat only while its ``.chat`` file exists under the server's root, and
the contents API refuses hidden folders, so the chats live in a visible folder (``agent-chats``
by default) mirroring the notebooks' paths: ``analysis/sales.ipynb`` → ``agent-chats/analysis/
sales.chat``. The file's metadata names the session. A chat is mirrored (``mirror``) while
jupyterlab-chat has its model open: from the labextension's "Open agent chat" (``open``), or
from anyone opening the file (the chat manager's ``opened`` event); a renamed notebook takes
its chat along (``renamed``).
"""

from __future__ import annotations

import json
import logging
import posixpath
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .mirror import Mirror
from .paths import chat_path, notebook_of

if TYPE_CHECKING:
    from agentspace.engine.engine import Engine
    from agentspace.server.kernelcalls import KernelCalls
    from agentspace.server.links import Links

log = logging.getLogger(__name__)


class ChatBridge:
    def __init__(
        self,
        engine: Engine,
        manager: Any,
        root: Path,
        chat_dir: str,
        links: Links | None = None,
        base_url: str = "/",
        kernels: KernelCalls | None = None,
        contents: Any = None,
    ) -> None:
        self.engine = engine
        self.contents = contents  # the server's contents manager (attached files)
        self.manager = manager  # jupyterlab_chat.chat_manager.ChatManager
        self.root = root
        self.chat_dir = chat_dir
        self.links = links
        self.base_url = base_url
        self.kernels = kernels
        self.mirrors: dict[str, Mirror] = {}  # chat id -> its mirror

    @property
    def real_time(self) -> bool:
        """Whether jupyterlab-chat runs on jupyter-collaboration's shared documents (YChat):
        the bridge mirrors its WebSocket mode only (identity cannot be stamped there)."""
        return bool(getattr(self.manager, "_rtc_enabled", False))

    async def open(self, notebook: str) -> tuple[str, str]:
        """The notebook's chat, made if it is not there, and mirrored: (chat path, session id)."""
        session = await self.engine.session(notebook)
        path = chat_path(self.chat_dir, session.notebook)
        _create(self.root / path, {"session": session.id, "notebook": session.notebook})
        model = await self.manager.create(path)
        if model is None:  # real-time collaboration: the room opens when a client joins
            return path, session.id
        await self.attach(model)
        return path, session.id

    async def attach(self, model: Any) -> Mirror | None:
        """Mirror a chat model of ours (idempotent)."""
        chat_id = model.get_id()
        mirror = self.mirrors.get(chat_id)
        if mirror is not None:
            return mirror
        meta = model.get_metadata().get("agentspace") or {}
        session = None
        if isinstance(meta, dict) and isinstance(meta.get("session"), str):
            from agentspace.errors import NotFoundError

            try:
                session = await self.engine.get(meta["session"])
            except NotFoundError:
                session = None  # the session was deleted: the notebook gets a new one
        if session is None:  # its file is lost or new: the notebook's session, if it has one
            from agentspace.errors import NotFoundError

            notebook = notebook_of(self.chat_dir, model.get_path())
            if notebook is None:
                return None
            try:  # never made here: a chat left at a renamed notebook's old path is no session
                session = await self.engine.session(notebook, create=False)
            except NotFoundError:
                return None
        if chat_id in self.mirrors:  # attached meanwhile
            return self.mirrors[chat_id]
        mirror = self.mirrors[chat_id] = Mirror(
            session, model, self.links, self.base_url, self.kernels, self.read
        )
        try:
            await mirror.start()
        except Exception:
            self.mirrors.pop(chat_id, None)
            await mirror.close()
            raise
        return mirror

    async def read(self, path: str) -> str | None:
        """A file attached to a prompt, as text (None: no such file, not text, or too big)."""
        from .attachments import FILE_LIMIT

        if self.contents is None:
            return None
        try:
            model = await _maybe_await(self.contents.get(path, content=False))
            if model.get("type") != "file" or (model.get("size") or 0) > 4 * FILE_LIMIT:
                return None
            model = await _maybe_await(self.contents.get(path, type="file", format="text"))
        except Exception:  # missing, hidden, binary (no text format): sent by its name only
            return None
        content = model.get("content")
        return content if isinstance(content, str) and len(content) <= FILE_LIMIT else None

    async def on_chat_event(self, data: dict[str, Any]) -> None:
        """jupyterlab-chat's lifecycle events: mirror our chats while they are open."""
        if self.real_time:
            return  # jupyter-collaboration's chats are not mirrored (POST chats says so)
        action, chat_id, path = data.get("action"), data.get("chat_id"), data.get("path") or ""
        if action == "opened" and notebook_of(self.chat_dir, path) is not None:
            model = self.manager.get(chat_id)
            if model is not None:
                await self.attach(model)
        elif action in ("closed", "deleted") and chat_id in self.mirrors:
            await self.mirrors.pop(chat_id).close()

    async def close(self) -> None:
        mirrors, self.mirrors = self.mirrors, {}
        for mirror in mirrors.values():
            await mirror.close()


def _create(full: Path, agentspace: dict[str, str]) -> None:
    """An empty chat file, if there is none (jupyterlab-chat frees a chat without its file)."""
    if full.exists():
        return
    full.parent.mkdir(parents=True, exist_ok=True)
    meta = {"id": uuid.uuid4().hex, "agentspace": agentspace}
    content = {"messages": [], "users": {}, "attachments": {}, "metadata": meta}
    full.write_text(json.dumps(content), encoding="utf-8")


async def renamed(contents: Any, chat_dir: str, old: str, new: str) -> None:
    """A notebook (or a folder) was renamed: move its chat (or chats) along."""
    for source, dest in (
        (chat_path(chat_dir, old), chat_path(chat_dir, new)),
        (posixpath.join(chat_dir, old), posixpath.join(chat_dir, new)),  # a folder
    ):
        if not await _exists(contents, source):
            continue
        if not await _exists(contents, dest):
            parent = posixpath.dirname(dest)
            if parent and not await _exists(contents, parent):
                await _make_dirs(contents, parent)
            await _maybe_await(contents.rename(source, dest))
            log.info("agentspace: the chat %s follows to %s", source, dest)
        elif source.endswith(".chat") and await _session_of(contents, source) == await _session_of(
            contents, dest
        ):  # the chat was opened at the new path first: both are the session's, rebuilt alike
            await _maybe_await(contents.delete(source))
            log.info("agentspace: %s is the session's chat now; %s removed", dest, source)
        return


async def _session_of(contents: Any, path: str) -> str | None:
    """The session a chat file names (None: none, or not readable as a chat)."""
    try:
        model = await _maybe_await(contents.get(path, type="file", format="text"))
        meta = json.loads(model.get("content") or "{}").get("metadata") or {}
    except Exception:
        return None
    session = (meta.get("agentspace") or {}).get("session")
    return session if isinstance(session, str) else None


async def _exists(contents: Any, path: str) -> bool:
    return bool(await _maybe_await(contents.exists(path)))


async def _make_dirs(contents: Any, path: str) -> None:
    parts = path.split("/")
    for i in range(1, len(parts) + 1):
        sub = "/".join(parts[:i])
        if not await _exists(contents, sub):
            await _maybe_await(contents.save({"type": "directory"}, sub))


async def _maybe_await(value: Any) -> Any:
    import inspect

    return await value if inspect.isawaitable(value) else value
