"""The notebook tools on a real file: read, edit by id, and never overwrite what was not seen."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentspace.errors import NotebookConflict, NotebookError, ToolArgumentsError, ToolError
from agentspace.notebook.files import FileNotebook
from agentspace.notebook.port import NotebookPort
from agentspace.tools.base import ToolContext
from agentspace.tools.notebook import delete_cell, edit_cell, insert_cell, read_notebook


def cell(cid: str, source: str, outputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "id": cid,
        "cell_type": "code",
        "metadata": {},
        "source": source,
        "outputs": outputs or [],
        "execution_count": 1,
    }


ERROR = {
    "output_type": "error",
    "ename": "NameError",
    "evalue": "name 'y' is not defined",
    "traceback": ["\x1b[31mNameError\x1b[0m: name 'y' is not defined"],
}


@pytest.fixture
def nb_path(tmp_path: Path) -> Path:
    p = tmp_path / "work.ipynb"
    cells = [cell("a1", "x = 1"), cell("b2", "print(y)", [ERROR]), cell("c3", "x + 1")]
    p.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}))
    return p


@pytest.fixture
def ctx(tmp_path: Path, nb_path: Path) -> ToolContext:
    async def access(key: str) -> NotebookPort:
        assert key == "work.ipynb"
        return FileNotebook(nb_path, label=key)

    return ToolContext(folder=tmp_path, session_id="s", notebook="work.ipynb", notebooks=access)


async def run(tool: Any, ctx: ToolContext, **args: Any) -> str:
    return (await tool.run(ctx, tool.parse_arguments(args))).text


def user_edits(path: Path, index: int, source: str) -> None:
    data = json.loads(path.read_text())
    data["cells"][index]["source"] = source
    path.write_text(json.dumps(data))


def sources(path: Path) -> list[str]:
    return [c["source"] for c in json.loads(path.read_text())["cells"]]


async def test_read_shows_cells_ids_and_the_error(ctx: ToolContext) -> None:
    text = await run(read_notebook, ctx)
    assert "3 cells, read from the saved notebook file" in text
    assert "id b2" in text and "error: NameError: name 'y' is not defined" in text
    one = await run(read_notebook, ctx, cell_id="c3")
    assert "id c3" in one and "id a1" not in one
    ranged = await run(read_notebook, ctx, start=1, end=1)
    assert "id b2" in ranged and "id c3" not in ranged


async def test_exact_replacement_applies_to_the_file(ctx: ToolContext, nb_path: Path) -> None:
    text = await run(edit_cell, ctx, cell_id="b2", old_string="y", new_string="x")
    assert "Edited cell b2 in the notebook file" in text
    assert sources(nb_path)[1] == "print(x)"


async def test_a_whole_source_edit_needs_the_cell_read_and_unchanged(
    ctx: ToolContext, nb_path: Path
) -> None:
    with pytest.raises(NotebookConflict, match="read it first"):
        await run(edit_cell, ctx, cell_id="a1", source="x = 2")
    await run(read_notebook, ctx)
    # the user edits the cell after the agent read it
    user_edits(nb_path, 0, "x = 100  # mine")
    with pytest.raises(NotebookConflict, match="changed since you last read it"):
        await run(edit_cell, ctx, cell_id="a1", source="x = 2")
    assert sources(nb_path)[0] == "x = 100  # mine"
    await run(read_notebook, ctx, cell_id="a1")
    await run(edit_cell, ctx, cell_id="a1", source="x = 2")
    assert sources(nb_path)[0] == "x = 2"


async def test_insert_and_delete(ctx: ToolContext, nb_path: Path) -> None:
    text = await run(insert_cell, ctx, after_cell_id="a1", source="# note", cell_type="markdown")
    assert "at position 1" in text
    with pytest.raises(NotebookConflict):
        await run(delete_cell, ctx, cell_id="c3")  # not read yet
    await run(read_notebook, ctx)
    await run(delete_cell, ctx, cell_id="c3")
    assert sources(nb_path) == ["x = 1", "# note", "print(y)"]


async def test_bad_edits_say_what_to_do(ctx: ToolContext) -> None:
    with pytest.raises(ToolError, match="not found in cell"):
        await run(edit_cell, ctx, cell_id="a1", old_string="zzz", new_string="")
    with pytest.raises(ToolArgumentsError, match="either old_string and new_string, or source"):
        edit_cell.parse_arguments({"cell_id": "a1", "source": "s", "old_string": "x"})
    with pytest.raises(NotebookConflict, match="no cell 'nope'"):
        await run(edit_cell, ctx, cell_id="nope", old_string="x", new_string="y")


async def test_without_a_notebook_the_tools_say_so(tmp_path: Path) -> None:
    bare = ToolContext(folder=tmp_path, session_id="s", notebook="n.ipynb")
    with pytest.raises(NotebookError, match="no notebook"):
        await run(read_notebook, bare)


async def test_each_edit_previews_a_diff_of_the_cell(ctx: ToolContext) -> None:
    args = edit_cell.parse_arguments({"cell_id": "b2", "old_string": "y", "new_string": "x"})
    diff = await edit_cell.preview_text(ctx, args)
    assert diff is not None and "--- a/cell b2" in diff
    assert "-print(y)" in diff and "+print(x)" in diff
    added = await insert_cell.preview_text(
        ctx, insert_cell.parse_arguments({"after_cell_id": "a1", "source": "z = 3"})
    )
    assert added is not None and "+z = 3" in added and "after cell a1" in added
    gone = await delete_cell.preview_text(ctx, delete_cell.parse_arguments({"cell_id": "c3"}))
    assert gone is not None and "-x + 1" in gone
    missing = edit_cell.parse_arguments({"cell_id": "b2", "old_string": "zz", "new_string": ""})
    assert await edit_cell.preview_text(ctx, missing) is None  # the run says why
