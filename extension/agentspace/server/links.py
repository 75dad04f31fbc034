"""The notebook link: browsers that have a notebook open, and the WebSocket each came by.

The wire is docs/notebook-link.md. The labextension opens one socket per open notebook panel;
the server registers it under the notebook's path (normalised, as session keys are) and sends it
requests (``read``, ``set``, ``insert``, ``delete``) whose replies carry the request's ``id``.
Several browsers may link one notebook: the one that linked last answers. Light on purpose
(loaded with the server; no pydantic): the ports over a link are in ``server/notebooks``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from agentspace.errors import InputError, NotebookError
from agentspace.notebook import document

from .base import AgentspaceHandler

log = logging.getLogger(__name__)
CHECK_FAILURES = ("conflict", "missing")


def notebook_key(path: str) -> str:
    """The registry's key for a notebook path: the session key (``engine.normalise_notebook``)."""
    from agentspace.engine.engine import normalise_notebook

    return normalise_notebook(path)


class Link:
    """One browser's open notebook: requests out with ids, replies matched back to them."""

    def __init__(self, send: Any, path: str, client: str = "", timeout: float = 2.0) -> None:
        self._send = send  # str -> None (write_message); raises once the socket is closed
        self.path = path
        self.client = client
        self.timeout = timeout
        self.since = time.time()
        self.closed = False
        self.active_cell: str | None = None  # the cell the user is in (the chat's context)
        self.user = ""  # who has it open (the server's identity of the socket)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}

    async def request(
        self, op: str, *, timeout: float | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Send request ``op`` and return the browser's reply (its fields but id and ok).

        A failed check (``conflict``, ``missing``) raises ``NotebookConflict``; any other failed
        reply, a closed link or no reply within the timeout raises ``NotebookError``. Call it
        from any coroutine on the server's loop.
        """
        if self.closed:
            raise NotebookError(self._gone(), path=self.path)
        rid = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            self._send(json.dumps({"id": rid, "op": op, **fields}))
            wait = self.timeout if timeout is None else timeout
            reply = await asyncio.wait_for(future, wait)
        except asyncio.TimeoutError as exc:
            after = "" if op == "read" else "; the edit may still land: read the notebook again"
            raise NotebookError(
                f"The browser that has {self.path!r} open did not answer {op!r} within "
                f"{wait:g} s{after}.",
                path=self.path,
                reason="timeout",
            ) from exc
        except (WebSocketClosedError, OSError) as exc:  # after TimeoutError, an OSError
            self.close()
            raise NotebookError(self._gone(), path=self.path) from exc
        finally:
            self._pending.pop(rid, None)
        if reply.get("ok") is True:
            return {k: v for k, v in reply.items() if k not in ("id", "ok")}
        kind, message = str(reply.get("error") or "invalid"), str(reply.get("message") or "")
        cell_id = fields.get("cell_id", fields.get("index_after"))
        if kind in CHECK_FAILURES:
            raise document.check_failed(kind, cell_id)
        raise NotebookError(
            f"The browser refused {op!r} on {self.path!r}: {message or kind}.",
            path=self.path,
            reason=kind,
        )

    def resolve(self, message: dict[str, Any]) -> None:
        """A reply came: wake its request (a late reply, after its timeout, is dropped)."""
        future = self._pending.get(message.get("id"))  # type: ignore[arg-type]
        if future is not None and not future.done():
            future.set_result(message)

    def close(self) -> None:
        """The socket closed: every waiting request fails now, not at its timeout."""
        self.closed = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(NotebookError(self._gone(), path=self.path))
        self._pending.clear()

    def _gone(self) -> str:
        return f"The browser that had {self.path!r} open closed it (or lost the connection)."

    def describe(self) -> dict[str, Any]:
        return {"path": self.path, "client": self.client, "since": self.since}


class Links:
    """Notebook path (normalised) → its live links, oldest first; the last one answers."""

    def __init__(self, timeout: float = 2.0) -> None:
        self.timeout = timeout
        self._links: dict[str, list[Link]] = {}

    def add(self, link: Link) -> None:
        link.timeout = self.timeout
        self._links.setdefault(link.path, []).append(link)

    def remove(self, link: Link) -> None:
        links = self._links.get(link.path, [])
        if link in links:
            links.remove(link)
        if not links:
            self._links.pop(link.path, None)

    def move(self, link: Link, path: str) -> None:
        """The notebook was renamed or moved: the link answers for its new path."""
        self.remove(link)
        link.path = path
        self._links.setdefault(path, []).append(link)

    def get(self, path: str) -> Link | None:
        """The link that answers for ``path`` now (the last linked), or None."""
        live = [link for link in self._links.get(notebook_key(path), []) if not link.closed]
        return live[-1] if live else None

    def active_cell(self, path: str, user: str = "") -> str | None:
        """The cell ``user`` is in, in the last browser of theirs that linked ``path`` (or of
        anyone's, if ``user`` has none); None: unknown."""
        live = [link for link in self._links.get(notebook_key(path), []) if not link.closed]
        theirs = [link for link in live if link.user == user] or live
        return theirs[-1].active_cell if theirs else None

    def all(self) -> list[Link]:
        return [link for links in self._links.values() for link in links if not link.closed]

    async def request(self, path: str, op: str, **fields: Any) -> dict[str, Any]:
        """``Link.request`` on the link of ``path``; ``NotebookError`` when it has none."""
        link = self.get(path)
        if link is None:
            raise NotebookError(f"No browser has {path!r} open.", path=path, reason="unlinked")
        return await link.request(op, **fields)


class LinkHandler(WebSocketMixin, WebSocketHandler, JupyterHandler):
    """``GET agentspace/api/notebooks/link?path=...``: one open notebook panel's socket.

    Authenticated and authorized as jupyter_server's kernel sockets are (token or cookie; an
    unauthenticated upgrade gets 403); linking a notebook means answering for its contents,
    so the user must be allowed to write them.
    """

    auth_resource = "agentspace:notebooks"
    link: Link | None = None

    def set_default_headers(self) -> None:
        """Not JupyterHandler's (CSP and the like make no sense on a socket), as the kernels'."""

    @property
    def links(self) -> Links:
        links: Links = self.settings["agentspace"].links
        return links

    @property
    def max_message_size(self) -> int:  # a read carries the whole notebook, outputs included
        return int(self.settings["agentspace"].app.max_request_bytes)

    async def pre_get(self) -> None:
        await self.settings["agentspace"].imported()  # normalise_notebook's engine, off the loop
        user = self.current_user
        for action, resource in (("write", self.auth_resource), ("write", "contents")):
            allowed = await ensure_async(
                self.authorizer.is_authorized(self, user, action, resource)
            )
            if not allowed:
                raise web.HTTPError(403)
        try:
            self.notebook = notebook_key(self.get_argument("path", ""))
        except InputError as exc:
            raise web.HTTPError(400, exc.message) from exc

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await self.pre_get()
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)  # WebSocketMixin's: the ping loop
        self.link = Link(self.write_message, self.notebook, timeout=self.links.timeout)
        self.link.user = str(getattr(self.current_user, "username", "") or "")
        self.links.add(self.link)
        log.info("agentspace: %s is linked (a browser has it open)", self.notebook)

    def on_message(self, message: str | bytes) -> None:
        link = self.link
        if link is None:
            return
        try:
            data = json.loads(message)
        except ValueError:
            log.warning("agentspace: a notebook link sent a message that is not JSON")
            return
        if not isinstance(data, dict):
            return
        if "id" in data:
            link.resolve(data)
        elif data.get("op") == "hello":
            link.client = str(data.get("client") or "")[:100]
            self._follow(data.get("path"))
        elif data.get("op") == "path":
            self._follow(data.get("path"))
        elif data.get("op") == "active":
            cell = data.get("cell_id")
            link.active_cell = cell[:200] if isinstance(cell, str) and cell else None

    def _follow(self, path: Any) -> None:
        if self.link is None or not isinstance(path, str) or not path:
            return
        try:
            key = notebook_key(path)
        except InputError:
            log.warning("agentspace: a notebook link named a bad path %r", path[:200])
            return
        if key != self.link.path:
            self.links.move(self.link, key)
            log.info("agentspace: the link follows the notebook to %s", key)

    def on_close(self) -> None:
        if self.link is not None:
            self.link.close()
            self.links.remove(self.link)
            log.info("agentspace: %s is unlinked", self.link.path)


class LinksHandler(AgentspaceHandler):
    """``GET agentspace/api/notebooks/links``: the notebooks a browser has linked, and by whom."""

    auth_resource = "agentspace:notebooks"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        links: Links = self.state.links
        self.reply({"links": [link.describe() for link in links.all()]})
