"""The notebook port over the server's contents manager: the file, when no browser has it open.

Each edit reads the file, applies the checked edit (``notebook.document``) and saves it, under
a lock per path, so two edits of this server never interleave; a save is refused when the file
changed on disk between that read and the save (another writer: a save from a browser, a
``git checkout``). Cells without ids (nbformat < 4.5) get them once, on the first read, and
the file is saved with them so the ids the agent saw stay valid.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from typing import Any

from jupyter_core.utils import ensure_async
from tornado import web

from agentspace.errors import NotebookConflict, NotebookError
from agentspace.notebook import document
from agentspace.notebook.port import NotebookDoc

_LOCKS: weakref.WeakKeyDictionary[Any, dict[str, asyncio.Lock]] = weakref.WeakKeyDictionary()
CHANGED = "the file changed on disk meanwhile; read again"


def lock_for(contents_manager: Any, path: str) -> asyncio.Lock:
    """The one lock of ``path`` in ``contents_manager`` (every port of that file shares it)."""
    try:
        locks = _LOCKS.setdefault(contents_manager, {})
    except TypeError:  # not weak-referenceable: one registry on the object itself
        locks = contents_manager.__dict__.setdefault("_agentspace_locks", {})
    return locks.setdefault(path, asyncio.Lock())


class ContentsNotebook:
    """``NotebookPort`` on the notebook file at ``path`` (relative to the server's root)."""

    origin = "file"

    def __init__(self, contents_manager: Any, path: str) -> None:
        self.contents_manager = contents_manager
        self.path = path
        self.lock = lock_for(contents_manager, path)

    async def _load(self) -> tuple[dict[str, Any], Any]:
        """The notebook as plain JSON, and its ``last_modified``."""
        try:
            model = await ensure_async(
                self.contents_manager.get(self.path, content=True, type="notebook")
            )
        except web.HTTPError as exc:
            reason = exc.log_message or exc.reason or f"HTTP {exc.status_code}"
            raise NotebookError(
                f"The notebook {self.path!r} cannot be read: {reason}.", path=self.path
            ) from exc
        nb = json.loads(json.dumps(model["content"]))  # a NotebookNode → plain dicts
        return nb, model.get("last_modified")

    async def _save(self, nb: dict[str, Any], read_at: Any) -> None:
        """Save ``nb`` unless the file was modified since it was read at ``read_at``."""
        try:
            now = await ensure_async(self.contents_manager.get(self.path, content=False))
        except web.HTTPError as exc:
            raise NotebookConflict(
                f"{self.path!r}: the file is gone from disk meanwhile; read again.",
                path=self.path,
                reason="changed",
            ) from exc
        if now.get("last_modified") != read_at:
            raise NotebookConflict(
                f"{self.path!r}: {CHANGED}. Nothing was changed.", path=self.path, reason="changed"
            )
        model = {"type": "notebook", "format": "json", "content": nb}
        try:
            await ensure_async(self.contents_manager.save(model, self.path))
        except web.HTTPError as exc:
            reason = exc.log_message or exc.reason or f"HTTP {exc.status_code}"
            raise NotebookError(
                f"The notebook {self.path!r} cannot be saved: {reason}.", path=self.path
            ) from exc

    async def read(self) -> NotebookDoc:
        async with self.lock:
            nb, read_at = await self._load()
            added = document.ensure_ids(nb)
            if added:
                await self._save(nb, read_at)
        cells = [{**cell, "source": document.source_of(cell)} for cell in nb.get("cells", [])]
        note = f"{added} cell(s) had no id and were given one (saved)." if added else ""
        return NotebookDoc(path=self.path, origin="file", cells=cells, ids_added=added, note=note)

    async def _edit(self, change: Any) -> Any:
        async with self.lock:
            nb, read_at = await self._load()
            document.ensure_ids(nb)
            result = change(nb)  # NotebookConflict here: nothing is saved
            await self._save(nb, read_at)
            return result

    async def set_source(self, cell_id: str, expect: str, source: str) -> None:
        await self._edit(lambda nb: document.apply_set(nb, cell_id, expect, source))

    async def insert(self, after: str | None, cell: dict[str, Any]) -> int:
        cell = {**cell, "id": cell.get("id") or document.new_cell_id()}
        index: int = await self._edit(lambda nb: document.apply_insert(nb, after, cell))
        return index

    async def delete(self, cell_id: str, expect: str) -> None:
        await self._edit(lambda nb: document.apply_delete(nb, cell_id, expect))
