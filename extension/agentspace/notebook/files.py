"""Notebooks with no browser: a file read and written directly, and a kernel's own history.

``FileNotebook`` is what an embedded kernel (nbclient, papermill, VS Code, a console) edits
when it was told its notebook file (``AGENTSPACE_NOTEBOOK`` or an absolute session name): each
edit reads the file, applies one checked edit (``document``), and writes it back only if the
file did not change on disk meanwhile (its size and mtime in nanoseconds), atomically (a
temporary file renamed over it), in nbformat's own layout. ``HistoryNotebook`` is what a kernel
that cannot tell its file reads: the cells it ran, read-only, saying so.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentspace.errors import NotebookConflict, NotebookError
from agentspace.notebook import document
from agentspace.notebook.port import NotebookDoc

_LOCKS: dict[str, asyncio.Lock] = {}


def dumps(nb: dict[str, Any]) -> str:
    """nbformat's layout (``nbformat.write``): one-space indent, sorted keys, a final newline."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


class FileNotebook:
    """A notebook file, edited in place with a did-it-change check (see the module doc)."""

    def __init__(self, path: Path, label: str | None = None, read_only: str = "") -> None:
        self.path = path
        self.label = label or path.as_posix()
        self.read_only = read_only  # why edits are refused ('' when they are not)
        self._lock = _LOCKS.setdefault(str(path.resolve()), asyncio.Lock())

    def _load(self) -> tuple[dict[str, Any], tuple[int, int]]:
        try:
            stamp = _stamp(self.path)
            nb = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotebookError(
                f"The notebook file {self.label} does not exist (moved or deleted?). Tell the "
                "kernel where it is with %env AGENTSPACE_NOTEBOOK=/path/to/it.ipynb.",
                path=self.label,
            ) from None
        except (OSError, ValueError) as exc:
            raise NotebookError(
                f"The notebook file {self.label} cannot be read as a notebook ({exc}).",
                path=self.label,
            ) from None
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
            raise NotebookError(f"{self.label} is not an nbformat 4 notebook (no cells).")
        return nb, stamp

    def _save(self, nb: dict[str, Any], stamp: tuple[int, int]) -> None:
        if _stamp(self.path) != stamp:
            raise NotebookConflict(
                f"The notebook file {self.label} changed on disk while the edit was made (saved "
                "by someone else). Nothing was changed; call read_notebook and try again.",
                path=self.label,
                reason="file_changed",
            )
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(dumps(nb))
            os.chmod(tmp, self.path.stat().st_mode & 0o7777)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _read(self) -> NotebookDoc:
        nb, stamp = self._load()
        added = document.ensure_ids(nb)
        if added and not self.read_only:  # once: ids must stay the same from read to read
            self._save(nb, stamp)
        cells = [dict(c, source=document.source_of(c)) for c in nb["cells"]]
        return NotebookDoc(
            path=self.label,
            origin="file",
            cells=cells,
            ids_added=added,
            note=self.read_only,
            read_only=bool(self.read_only),
        )

    def _edit(self, change: Callable[[dict[str, Any]], Any]) -> Any:
        if self.read_only:
            raise NotebookError(self.read_only, reason="read_only")
        nb, stamp = self._load()
        document.ensure_ids(nb)
        result = change(nb)
        self._save(nb, stamp)
        return result

    async def read(self) -> NotebookDoc:
        async with self._lock:
            return await asyncio.to_thread(self._read)

    async def set_source(self, cell_id: str, expect: str, source: str) -> None:
        async with self._lock:
            await asyncio.to_thread(
                self._edit, lambda nb: document.apply_set(nb, cell_id, expect, source)
            )

    async def insert(self, after: str | None, cell: dict[str, Any]) -> int:
        async with self._lock:
            index: int = await asyncio.to_thread(
                self._edit, lambda nb: document.apply_insert(nb, after, cell)
            )
            return index

    async def delete(self, cell_id: str, expect: str) -> None:
        async with self._lock:
            await asyncio.to_thread(
                self._edit, lambda nb: document.apply_delete(nb, cell_id, expect)
            )


READ_ONLY = (
    "This kernel cannot tell which notebook file it runs (nbclient, nbval or papermill without "
    "AGENTSPACE_NOTEBOOK): these are the cells it ran, in order, with their outputs. Cells "
    "cannot be edited: to let the agent edit the file, set AGENTSPACE_NOTEBOOK=/path/to/it."
)


class HistoryNotebook:
    """What a kernel ran (its inputs and outputs) as read-only cells."""

    def __init__(self, label: str, cells: Callable[[], list[dict[str, Any]]]) -> None:
        self.label = label
        self._cells = cells

    async def read(self) -> NotebookDoc:
        return NotebookDoc(
            path=self.label, origin="kernel", cells=self._cells(), note=READ_ONLY, read_only=True
        )

    def _refuse(self) -> NotebookError:
        return NotebookError(READ_ONLY, reason="read_only")

    async def set_source(self, cell_id: str, expect: str, source: str) -> None:
        raise self._refuse()

    async def insert(self, after: str | None, cell: dict[str, Any]) -> int:
        raise self._refuse()

    async def delete(self, cell_id: str, expect: str) -> None:
        raise self._refuse()
