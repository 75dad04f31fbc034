"""The file adapter: checked edits of a notebook file, ids given once, a changed file refused."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from agentspace.errors import NotebookConflict, NotebookError
from agentspace.notebook.files import FileNotebook, HistoryNotebook


def notebook(cells: list[dict[str, Any]], minor: int = 5) -> dict[str, Any]:
    return {"nbformat": 4, "nbformat_minor": minor, "metadata": {}, "cells": cells}


def code(cid: str | None, source: Any) -> dict[str, Any]:
    cell: dict[str, Any] = {
        "cell_type": "code",
        "metadata": {},
        "source": source,
        "outputs": [],
        "execution_count": None,
    }
    if cid is not None:
        cell["id"] = cid
    return cell


def text_of(p: Path) -> str:
    return p.read_text()


def saved_json(p: Path) -> Any:
    return json.loads(p.read_text())


@pytest.fixture
def path(tmp_path: Path) -> Path:
    p = tmp_path / "a.ipynb"
    p.write_text(json.dumps(notebook([code("c1", ["x = 1\n", "y = 2"]), code("c2", "print(x)")])))
    return p


async def test_read_joins_sources_and_keeps_ids(path: Path) -> None:
    doc = await FileNotebook(path).read()
    assert doc.origin == "file" and doc.ids_added == 0
    assert [(c["id"], c["source"]) for c in doc.cells] == [
        ("c1", "x = 1\ny = 2"),
        ("c2", "print(x)"),
    ]


async def test_edits_are_checked_and_saved_in_nbformat_layout(path: Path) -> None:
    nb = FileNotebook(path)
    await nb.set_source("c2", "print(x)", "print(x + y)")
    index = await nb.insert("c1", {"id": "new1", "cell_type": "markdown", "source": "# Title"})
    assert index == 1
    await nb.delete("c1", "x = 1\ny = 2")
    saved = saved_json(path)
    assert [c["id"] for c in saved["cells"]] == ["new1", "c2"]
    assert saved["cells"][1]["source"] == "print(x + y)"
    assert "outputs" not in saved["cells"][0]  # a markdown cell has none
    assert text_of(path).startswith('{\n "cells"')  # nbformat's indent=1, sorted keys


async def test_a_user_edit_meanwhile_is_not_overwritten(path: Path) -> None:
    nb = FileNotebook(path)
    with pytest.raises(NotebookConflict, match="changed since it was read"):
        await nb.set_source("c2", "print(old)", "print(new)")
    with pytest.raises(NotebookConflict, match="no cell 'gone'"):
        await nb.delete("gone", "")
    with pytest.raises(NotebookConflict):
        await nb.insert("gone", {"id": "n", "cell_type": "code", "source": ""})
    assert saved_json(path)["cells"][1]["source"] == "print(x)"


async def test_a_file_changed_on_disk_during_the_edit_is_refused(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nb = FileNotebook(path)
    load = nb._load

    def load_then_someone_saves() -> Any:
        result = load()
        text = text_of(path).replace("print(x)", "print(x)  # the user's")
        path.write_text(text)
        os.utime(path, ns=(1, 1))
        return result

    monkeypatch.setattr(nb, "_load", load_then_someone_saves)
    with pytest.raises(NotebookConflict, match="changed on disk"):
        await nb.set_source("c1", "x = 1\ny = 2", "x = 3")
    assert "the user's" in text_of(path) and "x = 3" not in text_of(path)


async def test_cells_without_ids_get_them_once(tmp_path: Path) -> None:
    p = tmp_path / "old.ipynb"
    p.write_text(json.dumps(notebook([code(None, "a"), code(None, "b")], minor=4)))
    first = await FileNotebook(p).read()
    assert first.ids_added == 2
    again = await FileNotebook(p).read()
    assert again.ids_added == 0
    assert [c["id"] for c in again.cells] == [c["id"] for c in first.cells]
    assert json.loads(p.read_text())["nbformat_minor"] == 5


async def test_a_missing_or_broken_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(NotebookError, match="AGENTSPACE_NOTEBOOK"):
        await FileNotebook(tmp_path / "nope.ipynb").read()
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json")
    with pytest.raises(NotebookError, match="cannot be read"):
        await FileNotebook(bad).read()


async def test_history_is_read_only_and_says_why() -> None:
    nb = HistoryNotebook("kernel", lambda: [code("k1", "1 + 1")])
    doc = await nb.read()
    assert doc.origin == "kernel" and "AGENTSPACE_NOTEBOOK" in doc.note
    with pytest.raises(NotebookError, match="cannot be edited"):
        await nb.set_source("k1", "1 + 1", "2")
