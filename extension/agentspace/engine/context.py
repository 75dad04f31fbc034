"""The notebook context attached to a prompt: where it came from, its neighbours, the last error.

Why at send time: the user's words refer to the notebook as it is when they press run ("fix
this", "plot df"), not as it is when a queued message is finally served. The text is built
once, bounded, stored with the message (inbox ``context``) and then kept in the transcript
beside the user's words (``history.to_wire`` puts it in front of them for the model), so a
replayed or resumed run sends the model exactly what it saw. Every view learns what was
attached from one CUSTOM event (``Custom.CONTEXT``).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from agentspace.errors import AgentspaceError
from agentspace.notebook import document
from agentspace.notebook.port import NotebookDoc
from agentspace.notebook.render import head_tail, last_error, render_cell, strip_ansi
from agentspace.notebook.secrets import redacted_text

if TYPE_CHECKING:
    from agentspace.engine.session import Session

log = logging.getLogger(__name__)

OPEN, CLOSE = "<notebook-context>", "</notebook-context>"
"""Around the context in front of the user's words (the scripted echo model skips it)."""
NEIGHBOUR_CHARS = 1_500
ERROR_CHARS = 2_500
CONTEXT_CHARS = 8_000


class KernelErrorRef(BaseModel):
    """The last cell that raised in the kernel, as the kernel recorded it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    cell_id: str | None = Field(None, max_length=200)
    source: str = Field("", max_length=200_000)
    ename: str = Field("", max_length=500)
    evalue: str = Field("", max_length=20_000)
    traceback: str = Field("", max_length=200_000)
    execution_count: int | None = None


class PromptContext(BaseModel):
    """What the sender knows about the prompt: the cell it came from, the kernel's last error."""

    model_config = ConfigDict(extra="forbid", strict=True)

    attach: bool = Field(True, description="False: attach nothing (the user turned it off).")
    cell_id: str | None = Field(None, max_length=200, description="The prompt's cell id.")
    cell_source: str | None = Field(
        None, max_length=200_000, description="The prompt cell's source (finds it without an id)."
    )
    error: KernelErrorRef | None = None
    doc_error: bool = Field(
        True,
        description="Without an error here, attach the notebook's last error output (a kernel "
        "sends False: it sends each error it saw once, itself).",
    )


class Attached(BaseModel):
    """The context text stored with the message and the summary every view shows."""

    text: str
    summary: dict[str, Any]

    def dumps(self) -> str:
        return json.dumps(self.model_dump(), ensure_ascii=False)


def _find(doc: NotebookDoc, ref: PromptContext) -> int | None:
    cells = doc.cells
    if ref.cell_id:
        for i, cell in enumerate(cells):
            if cell.get("id") == ref.cell_id:
                return i
    if ref.cell_source and ref.cell_source.strip():
        wanted = ref.cell_source.strip()
        for i in range(len(cells) - 1, -1, -1):
            if document.source_of(cells[i]).strip() == wanted:
                return i
    return None


def _error_text(ref: KernelErrorRef) -> str:
    where = f"cell {ref.cell_id}" if ref.cell_id else "a cell"
    if ref.execution_count is not None:
        where += f" (In [{ref.execution_count}])"
    source = head_tail(ref.source, NEIGHBOUR_CHARS)
    trace = head_tail(strip_ansi(ref.traceback), ERROR_CHARS)
    return (
        f"The last error in the kernel, in {where}:\n```python\n{source}\n```\n"
        f"{ref.ename}: {strip_ansi(ref.evalue)}\n{trace}"
    ).rstrip()


def build(doc: NotebookDoc | None, ref: PromptContext, notebook: str) -> Attached | None:
    """The context for a prompt (None when there is nothing worth attaching)."""
    parts: list[str] = []
    summary: dict[str, Any] = {"notebook": notebook, "cells": [], "error": None}
    if doc is not None and doc.origin == "kernel":
        doc = None  # the cells it ran, in order: the prompts and code the model was sent
    if doc is not None:
        summary["origin"] = doc.origin
        parts.append(f"Notebook: {doc.path} ({len(doc.cells)} cells).")
        at = _find(doc, ref)
        if at is not None:
            summary["cell"] = doc.cells[at].get("id")
            parts.append(f"The prompt comes from cell {at} (id {doc.cells[at].get('id')}).")
            for i in (at - 1, at + 1):
                if 0 <= i < len(doc.cells):
                    text = head_tail(render_cell(i, doc.cells[i]), NEIGHBOUR_CHARS)
                    parts.append(("Cell before it:\n" if i < at else "Cell after it:\n") + text)
                    summary["cells"].append(doc.cells[i].get("id"))
    else:
        parts.append(f"Notebook: {notebook}.")
    if ref.error is not None and (ref.error.ename or ref.error.traceback):
        parts.append(_error_text(ref.error))
        summary["error"] = ref.error.cell_id or "kernel"  # counts differ between runners
    elif ref.doc_error and doc is not None and (failed := last_error(doc.cells)) is not None:
        shown = head_tail(render_cell(failed, doc.cells[failed]), ERROR_CHARS)
        parts.append("The last error in the notebook:\n" + shown)
        summary["error"] = doc.cells[failed].get("id")
    if doc is None and summary["error"] is None:
        return None  # nothing but the notebook's name, which the model has no use for
    text, hidden = redacted_text(head_tail("\n\n".join(parts), CONTEXT_CHARS))
    if hidden:
        summary["redacted"] = hidden
    summary["chars"] = len(text)
    return Attached(text=f"{OPEN}\n{text}\n{CLOSE}", summary=summary)


async def attach(session: Session, ref: PromptContext | None) -> Attached | None:
    """The context for a prompt sent to ``session`` now, or None (off, or nothing known).

    A notebook that cannot be read costs the prompt nothing but its context: the failure is
    logged and the kernel's own error (if any) is still attached.
    """
    if ref is None or not ref.attach or not session.engine.config.attach_context:
        return None
    doc: NotebookDoc | None = None
    notebooks = session.engine.notebooks
    if notebooks is not None:
        try:
            doc = await (await notebooks(session.notebook)).read()
        except AgentspaceError as exc:
            log.info("no notebook context for %s: %s", session.notebook, exc.message)
    return build(doc, ref, session.notebook)
