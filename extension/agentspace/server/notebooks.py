"""The server's notebook ports: the browser's open document when linked, else the file.

``ServerNotebooks`` is the engine's ``notebooks`` (``agentspace.notebook.port.NotebookAccess``):
a session's notebook key → a port. A live link (``server/links``) gives ``LinkedNotebook``,
whose reads include unsaved edits and whose edits land in the open document; with none, the
file through the contents manager (``server/contents``). A link that does not answer a read in
time falls back to the file for that read.
"""

from __future__ import annotations

import logging
from typing import Any

from agentspace.engine.engine import normalise_notebook
from agentspace.errors import NotebookConflict, NotebookError
from agentspace.notebook import document
from agentspace.notebook.port import NotebookDoc, NotebookPort

from .contents import ContentsNotebook
from .links import Link, Links

log = logging.getLogger(__name__)


class LinkedNotebook:
    """``NotebookPort`` on the document a browser has open (docs/notebook-link.md).

    Works from any coroutine on the server's loop. ``fallback`` (the file) answers a read the
    browser did not answer in time; edits never fall back: one that timed out may still land.
    """

    origin = "browser"

    def __init__(self, link: Link, fallback: NotebookPort | None = None) -> None:
        self.link = link
        self.fallback = fallback

    async def read(self) -> NotebookDoc:
        try:
            reply = await self.link.request("read")
        except NotebookConflict:
            raise
        except NotebookError as exc:
            if self.fallback is None or exc.data.get("reason") != "timeout":
                raise
            log.warning("agentspace: %s: %s; reading the file instead", self.link.path, exc)
            doc = await self.fallback.read()
            note = "The browser that has it open did not answer; this is the file on disk."
            return doc.model_copy(update={"note": " ".join(filter(None, [doc.note, note]))})
        notebook = reply.get("notebook")
        if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
            raise NotebookError(
                f"The browser sent no notebook for {self.link.path!r}.", path=self.link.path
            )
        cells = [{**cell, "source": document.source_of(cell)} for cell in notebook["cells"]]
        dirty = bool(reply.get("dirty", False))
        return NotebookDoc(path=self.link.path, origin="browser", cells=cells, dirty=dirty)

    async def set_source(self, cell_id: str, expect: str, source: str) -> None:
        await self.link.request("set", cell_id=cell_id, expect=expect, source=source)

    async def insert(self, after: str | None, cell: dict[str, Any]) -> int:
        new = {
            "id": str(cell.get("id") or document.new_cell_id()),
            "cell_type": str(cell.get("cell_type", "code")),
            "source": document.source_of(cell),
        }
        reply = await self.link.request("insert", index_after=after, cell=new)
        index = reply.get("index")
        if not isinstance(index, int):
            raise NotebookError(
                f"The browser did not say where it inserted the cell in {self.link.path!r}.",
                path=self.link.path,
            )
        return index

    async def delete(self, cell_id: str, expect: str) -> None:
        await self.link.request("delete", cell_id=cell_id, expect=expect)


class ServerNotebooks:
    """The engine's ``notebooks``: ``await notebooks(key)`` → the port of that notebook now."""

    def __init__(self, links: Links, contents_manager: Any) -> None:
        self.links = links
        self.contents_manager = contents_manager

    def contents(self, notebook_key: str) -> ContentsNotebook:
        return ContentsNotebook(self.contents_manager, normalise_notebook(notebook_key))

    async def access(self, notebook_key: str) -> NotebookPort:
        key = normalise_notebook(notebook_key)
        link = self.links.get(key)
        if link is None:
            return self.contents(key)
        return LinkedNotebook(link, fallback=self.contents(key))

    __call__ = access
