"""Notebook tools: the agent reads the notebook beside it and edits its cells by id.

The notebook is the one the user sees (``notebook.port``: the open document in the browser,
else the file, else what the kernel ran). Reading is harmless and allowed by default; each
edit asks first. An edit never overwrites what the agent has not seen: replacing a whole
cell or deleting one needs the cell read in this session and unchanged since, and every edit
is checked again where it is applied (``NotebookConflict``: the agent reads again).
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentspace.errors import NotebookConflict, NotebookError, ToolError
from agentspace.notebook import document
from agentspace.notebook.port import NotebookDoc, NotebookPort
from agentspace.notebook.render import render_cells
from agentspace.notebook.secrets import redacted_text
from agentspace.tools.base import Tool, ToolContext, ToolOutput, tool
from agentspace.tools.diffs import unified
from agentspace.tools.edits import replace_exact

SEEN = "notebook_seen"
"""``ToolContext.scratch`` key: cell id → digest of the source the agent last saw."""

WHERE = {
    "browser": "the notebook open in the browser",
    "file": "the saved notebook file",
    "kernel": "the kernel's own history (no notebook file known)",
}


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReadNotebookArgs(_Args):
    cell_id: str | None = Field(None, description="Read only this cell (its id).")
    start: int | None = Field(None, ge=0, description="First cell position to read (0-based).")
    end: int | None = Field(None, ge=0, description="Last cell position to read (inclusive).")
    outputs: bool = Field(True, description="Include the cells' outputs in brief.")


class EditCellArgs(_Args):
    cell_id: str = Field(min_length=1, description="The cell's id, as read_notebook shows it.")
    old_string: str | None = Field(
        None, description="Exact text in the cell to replace (with new_string)."
    )
    new_string: str | None = Field(None, description="Text to put in place of old_string.")
    source: str | None = Field(
        None, description="The cell's whole new source (instead of old_string/new_string)."
    )
    replace_all: bool = Field(False, description="Replace every occurrence of old_string.")

    @model_validator(mode="after")
    def _one_way(self) -> EditCellArgs:
        pair = self.old_string is not None or self.new_string is not None
        if pair == (self.source is not None):
            raise ValueError("give either old_string and new_string, or source (not both)")
        if pair and (self.old_string is None or self.new_string is None or not self.old_string):
            raise ValueError("old_string (non-empty) and new_string go together")
        return self


class InsertCellArgs(_Args):
    after_cell_id: str | None = Field(
        None, description="Insert after this cell (its id); null inserts at the top."
    )
    cell_type: Literal["code", "markdown", "raw"] = "code"
    source: str = Field(description="The new cell's source.")


class DeleteCellArgs(_Args):
    cell_id: str = Field(min_length=1, description="The cell's id, as read_notebook shows it.")


def digest(source: str) -> str:
    return hashlib.blake2b(source.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


def seen(ctx: ToolContext) -> dict[str, str]:
    """What the agent has seen of the notebook in this session (cell id → source digest)."""
    value: dict[str, str] = ctx.scratch.setdefault(SEEN, {})
    return value


def saw(ctx: ToolContext, cells: list[dict[str, Any]], ids: list[str]) -> None:
    known = seen(ctx)
    by_id = {c.get("id"): c for c in cells}
    for cid in ids:
        if cid in by_id:
            known[cid] = digest(document.source_of(by_id[cid]))


async def port_of(ctx: ToolContext) -> NotebookPort:
    if ctx.notebooks is None:
        raise NotebookError(
            "This session has no notebook to read (it runs outside Jupyter, e.g. from the "
            "agentspace command): the notebook tools are unavailable here."
        )
    return await ctx.notebooks(ctx.notebook)


def heading(doc: NotebookDoc) -> str:
    where = WHERE[doc.origin] + (" (with unsaved edits)" if doc.dirty else "")
    text = f"# Notebook {doc.path}: {len(doc.cells)} cells, read from {where}"
    if doc.ids_added:
        text += (
            f"\n(The notebook's format had no cell ids: {doc.ids_added} cells were given ids "
            "now, as nbformat 4.5 does, and the file was saved with them.)"
        )
    if doc.note:
        text += f"\n{doc.note}"
    return text


async def _read_notebook(ctx: ToolContext, args: ReadNotebookArgs) -> str | ToolOutput:
    """Read the notebook beside you: its cells in order, each with its position, type, id,
    execution count, source and outputs in brief (errors with their traceback). It is the
    notebook as the user sees it (unsaved edits included when it is open in a browser).
    Read one cell with cell_id, or a range with start/end; long notebooks are cut and say how
    to read the rest. Use the ids it shows with edit_cell, insert_cell and delete_cell."""
    doc = await (await port_of(ctx)).read()
    cells = doc.cells
    if args.cell_id is not None:
        indices = [document.index_of(cells, args.cell_id)]
    else:
        last = len(cells) - 1 if args.end is None else min(args.end, len(cells) - 1)
        indices = list(range(args.start or 0, last + 1))
    if not cells:
        return heading(doc) + "\n(The notebook has no cells.)"
    if not indices:
        raise ToolError(f"No cells in that range: the notebook has {len(cells)} (0-{last}).")
    rendering = render_cells(
        cells, indices, heading=heading(doc), outputs=args.outputs, images=ctx.images
    )
    saw(ctx, cells, rendering.shown)
    text, _ = redacted_text(rendering.text)  # outputs print keys, cells assign tokens
    return ToolOutput(text=text, images=rendering.images)


def _where_done(doc: NotebookDoc) -> str:
    if doc.origin == "browser":
        return "in the notebook open in the browser (live; the user saves it)"
    return "in the notebook file (saved)"


def _unseen(cell_id: str, what: str) -> NotebookConflict:
    return NotebookConflict(
        f"To {what} cell {cell_id!r}, read it first (read_notebook with cell_id={cell_id!r}): "
        "it changed since you last read it, or you have not read it in this session. Nothing "
        "was changed.",
        cell_id=cell_id,
        reason="unseen",
    )


def new_source(current: str, args: EditCellArgs) -> str:
    """The cell's source after the edit; a ToolError the model can act on if it cannot apply."""
    if args.source is not None:
        return args.source
    source, _ = replace_exact(
        current,
        args.old_string or "",
        args.new_string or "",
        replace_all=args.replace_all,
        where=f"cell {args.cell_id!r}",
        reread="read the cell again (read_notebook with cell_id) to copy the text.",
        cell_id=args.cell_id,
    )
    return source


async def _editable(ctx: ToolContext) -> tuple[NotebookPort, NotebookDoc]:
    """The port and the notebook as read now; ``NotebookError`` where edits are refused."""
    port = await port_of(ctx)
    doc = await port.read()
    if doc.read_only:
        raise NotebookError(doc.note or "This notebook cannot be edited here.", reason="read_only")
    return port, doc


async def _cell(ctx: ToolContext, cell_id: str) -> tuple[NotebookPort, NotebookDoc, str]:
    port, doc = await _editable(ctx)
    cell = doc.cells[document.index_of(doc.cells, cell_id)]
    return port, doc, document.source_of(cell)


async def _edit_cell(ctx: ToolContext, args: EditCellArgs) -> str:
    """Change one cell of the notebook, by id: replace old_string with new_string (exact text,
    like edit_file), or give the whole new source. The user approves a diff of the cell first.
    A whole-source edit needs the cell read (read_notebook) and unchanged since; if the user
    changed the cell meanwhile the edit fails and you read it again. Outputs are kept."""
    port, doc, current = await _cell(ctx, args.cell_id)
    if args.source is not None and seen(ctx).get(args.cell_id) != digest(current):
        raise _unseen(args.cell_id, "replace the whole of")
    source = new_source(current, args)
    await port.set_source(args.cell_id, current, source)
    seen(ctx)[args.cell_id] = digest(source)
    return f"Edited cell {args.cell_id} {_where_done(doc)}."


async def _insert_cell(ctx: ToolContext, args: InsertCellArgs) -> str:
    """Insert a new cell into the notebook after the cell with id after_cell_id (null: at the
    top). It is not run; the user approves it first. Returns the new cell's id."""
    port, doc = await _editable(ctx)
    cell_id = document.new_cell_id()
    cell = {"id": cell_id, "cell_type": args.cell_type, "source": args.source}
    index = await port.insert(args.after_cell_id, cell)
    seen(ctx)[cell_id] = digest(args.source)
    return f"Inserted {args.cell_type} cell {cell_id} at position {index} {_where_done(doc)}."


async def _delete_cell(ctx: ToolContext, args: DeleteCellArgs) -> str:
    """Delete one cell of the notebook, by id. The user approves it first; the cell must have
    been read (read_notebook) and be unchanged since."""
    port, doc, current = await _cell(ctx, args.cell_id)
    if seen(ctx).get(args.cell_id) != digest(current):
        raise _unseen(args.cell_id, "delete")
    await port.delete(args.cell_id, current)
    seen(ctx).pop(args.cell_id, None)
    return f"Deleted cell {args.cell_id} {_where_done(doc)}."


# -- previews: the diff of the cell the user approves --------------------------------
async def preview_edit_cell(ctx: ToolContext, args: EditCellArgs) -> str | None:
    _, _, current = await _cell(ctx, args.cell_id)
    return unified(f"cell {args.cell_id}", current, new_source(current, args))


async def preview_insert_cell(ctx: ToolContext, args: InsertCellArgs) -> str | None:
    where = f"after cell {args.after_cell_id}" if args.after_cell_id else "at the top"
    return unified(f"new {args.cell_type} cell ({where})", None, args.source)


async def preview_delete_cell(ctx: ToolContext, args: DeleteCellArgs) -> str | None:
    _, _, current = await _cell(ctx, args.cell_id)
    return unified(f"cell {args.cell_id} (deleted)", current, "")


read_notebook = tool(name="read_notebook", policy="allow")(_read_notebook)
edit_cell = tool(name="edit_cell", policy="ask", preview=preview_edit_cell)(_edit_cell)
insert_cell = tool(name="insert_cell", policy="ask", preview=preview_insert_cell)(_insert_cell)
delete_cell = tool(name="delete_cell", policy="ask", preview=preview_delete_cell)(_delete_cell)

NOTEBOOK_TOOLS: list[Tool] = [read_notebook, edit_cell, insert_cell, delete_cell]
