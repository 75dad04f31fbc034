"""The notebook document as data: cells, their ids, and the three checked edits.

The file adapters (the server's contents API, the embedded kernel's file) apply edits here,
on nbformat JSON; the labextension applies the same three in the browser
(docs/notebook-link.md). Each checks before it changes anything, so a user's concurrent
edit is never overwritten: the edit fails with ``NotebookConflict`` and the agent re-reads.
"""

from __future__ import annotations

import uuid
from typing import Any

from agentspace.errors import NotebookConflict

CELL_TYPES = ("code", "markdown", "raw")
IDS_MINOR = 5
"""nbformat 4.5 brought cell ids."""


def source_of(cell: dict[str, Any]) -> str:
    """A cell's source as one string (nbformat allows a list of lines on disk)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def new_cell_id() -> str:
    """A cell id the way nbformat makes them (``nbformat.v4.random_cell_id``)."""
    return uuid.uuid4().hex[:8]


def ensure_ids(nb: dict[str, Any]) -> int:
    """Give every cell without an id one (and the notebook format 4.5); how many were given.

    As ``nbformat.validator.normalize`` does, so the ids are the ones Jupyter would keep.
    """
    added = 0
    seen: set[str] = set()
    for cell in nb.get("cells", []):
        cid = cell.get("id")
        if not isinstance(cid, str) or not cid or cid in seen:
            cid = new_cell_id()
            while cid in seen:
                cid = new_cell_id()
            cell["id"] = cid
            added += 1
        seen.add(cid)
    if added and nb.get("nbformat", 4) == 4 and nb.get("nbformat_minor", 0) < IDS_MINOR:
        nb["nbformat_minor"] = IDS_MINOR
    return added


def check_failed(reason: str, cell_id: Any) -> NotebookConflict:
    """The error of a failed check, wherever it was made (here or in the browser):
    ``missing`` (no such cell) or ``conflict`` (its source is not what was read)."""
    if reason == "missing":
        text = (
            f"The notebook has no cell {cell_id!r} (now): it was deleted, or the id is wrong. "
            "Nothing was changed; call read_notebook to see the cells and their ids."
        )
    else:
        text = (
            f"Cell {cell_id!r} changed since it was read (the user edited it). Nothing was "
            "changed; call read_notebook for its current source and propose the edit again."
        )
    return NotebookConflict(text, cell_id=cell_id, reason=reason)


def index_of(cells: list[dict[str, Any]], cell_id: str) -> int:
    """The position of the cell ``cell_id``; ``NotebookConflict`` if there is none."""
    for i, cell in enumerate(cells):
        if cell.get("id") == cell_id:
            return i
    raise check_failed("missing", cell_id)


def _check(cell: dict[str, Any], cell_id: str, expect: str) -> None:
    if source_of(cell) != expect:
        raise check_failed("conflict", cell_id)


def apply_set(nb: dict[str, Any], cell_id: str, expect: str, source: str) -> None:
    """Set cell ``cell_id``'s source to ``source`` if it is still ``expect``."""
    cells = nb.setdefault("cells", [])
    cell = cells[index_of(cells, cell_id)]
    _check(cell, cell_id, expect)
    cell["source"] = source


def apply_delete(nb: dict[str, Any], cell_id: str, expect: str) -> None:
    """Delete cell ``cell_id`` if its source is still ``expect``."""
    cells = nb.setdefault("cells", [])
    i = index_of(cells, cell_id)
    _check(cells[i], cell_id, expect)
    del cells[i]


def new_cell(cell_id: str, cell_type: str, source: str) -> dict[str, Any]:
    """An nbformat v4 cell: a code cell has no outputs yet and no execution count."""
    cell: dict[str, Any] = {"id": cell_id, "cell_type": cell_type, "metadata": {}, "source": source}
    if cell_type == "code":
        cell.update(outputs=[], execution_count=None)
    return cell


def apply_insert(nb: dict[str, Any], after: str | None, cell: dict[str, Any]) -> int:
    """Insert ``cell`` right after cell ``after`` (at the top for None); its index."""
    cells = nb.setdefault("cells", [])
    index = 0 if after is None else index_of(cells, after) + 1
    cells.insert(index, new_cell(str(cell["id"]), str(cell["cell_type"]), source_of(cell)))
    return index
