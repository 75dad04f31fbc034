"""The notebook port: what the notebook tools need from wherever the notebook lives.

Why a port: the same four operations have three homes. In a browser, the open document
(unsaved edits count, edits land live; ``server/links``). With no browser, the file, through
the server's contents API or, in an embedded kernel, directly (``notebook/files``), with a
check that it did not change meanwhile. With no file at all (nbclient without
``AGENTSPACE_NOTEBOOK``), only what the kernel itself ran, read-only. The tools never learn
which; ``NotebookDoc.origin`` tells the model and the views.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

Origin = Literal["browser", "file", "kernel"]


class NotebookDoc(BaseModel):
    """A notebook as read: nbformat v4 cells (``source`` a string), and where it came from."""

    path: str = Field(description="The notebook's path as the session knows it.")
    origin: Origin
    cells: list[dict[str, Any]]
    dirty: bool = Field(False, description="The browser's document has unsaved edits.")
    ids_added: int = Field(0, description="Cells that had no id and were given one now.")
    note: str = Field("", description="What the reader should know (e.g. why read-only).")
    read_only: bool = Field(False, description="Edits are refused; ``note`` says why.")


class NotebookPort(Protocol):
    """One notebook, readable and (unless read-only) editable by cell id.

    Every edit is checked where it is applied, in one step: ``set_source`` and ``delete``
    need the cell's source to be ``expect`` still, ``insert`` needs its anchor cell. A failed
    check raises ``NotebookConflict`` and changes nothing.
    """

    async def read(self) -> NotebookDoc: ...

    async def set_source(self, cell_id: str, expect: str, source: str) -> None: ...

    async def insert(self, after: str | None, cell: dict[str, Any]) -> int: ...

    async def delete(self, cell_id: str, expect: str) -> None: ...


NotebookAccess = Callable[[str], Awaitable[NotebookPort]]
"""The session's notebook key → its port (the server's or the embedded kernel's)."""
