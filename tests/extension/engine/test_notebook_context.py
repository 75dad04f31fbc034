"""The engine beside a notebook: tools offered, context attached to prompts, run_cell by id."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agentspace.engine.config import EngineConfig
from agentspace.engine.context import KernelErrorRef, PromptContext
from agentspace.engine.engine import Engine
from agentspace.notebook.files import FileNotebook
from agentspace.notebook.port import NotebookPort
from agentspace.testing import collect_run, turn

from .test_kerneltools import RecordingModel, held


def cell(cid: str, source: str, outputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"id": cid, "cell_type": "code", "metadata": {}, "source": source,
            "outputs": outputs or [], "execution_count": 1}  # fmt: skip


ERROR = {"output_type": "error", "ename": "KeyError", "evalue": "'unit'",
         "traceback": ["\x1b[31mKeyError\x1b[0m: 'unit'"]}  # fmt: skip


@pytest.fixture
def nb_file(tmp_path: Path) -> Path:
    p = tmp_path / "root" / "sales.ipynb"
    p.parent.mkdir()
    cells = [
        cell("load", "import pandas as pd\nsales = pd.DataFrame({'units': [1, 2]})"),
        cell("total", "sales['unit'].sum()", [ERROR]),
        cell("ask", "%%agent\nwhy does it fail?"),
        cell("after", "print('later')"),
    ]
    p.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}))
    return p


@pytest.fixture
def model() -> RecordingModel:
    return RecordingModel()


@pytest.fixture
async def nengine(
    make_config: Callable[..., EngineConfig], model: RecordingModel, nb_file: Path
) -> AsyncIterator[Engine]:
    async def access(key: str) -> NotebookPort:
        return FileNotebook(nb_file.parent / key, label=key)

    async with Engine(make_config(), model=model, notebooks=access) as eng:
        yield eng


def give_outputs(path: Path, index: int, outputs: list[dict[str, Any]]) -> None:
    data = json.loads(path.read_text())
    data["cells"][index]["outputs"] = outputs
    path.write_text(json.dumps(data))


def user_wire(model: RecordingModel, call: int = 0) -> str:
    messages, _ = model.calls[call]
    return [m for m in messages if m["role"] == "user"][-1]["content"]


async def test_notebook_tools_are_offered_only_where_the_notebook_is_reachable(
    nengine: Engine, make_config: Callable[..., EngineConfig]
) -> None:
    assert {"read_notebook", "edit_cell", "insert_cell", "delete_cell"} <= set(nengine.tools.names)
    async with Engine(make_config()) as bare:
        assert "read_notebook" not in bare.tools.names


async def test_a_prompt_carries_its_cell_neighbours_and_the_last_error(
    nengine: Engine, model: RecordingModel, script: Callable[..., str]
) -> None:
    session = await nengine.session("sales.ipynb", model=script(turn("Looking.")))
    await session.send("why does it fail?", context=PromptContext(cell_id="ask"))
    events = await collect_run(session, 0)
    await session.wait()
    wire = user_wire(model)
    assert wire.startswith("<notebook-context>\nNotebook: sales.ipynb (4 cells).")
    assert "The prompt comes from cell 2 (id ask)" in wire
    assert "id total" in wire and "id after" in wire and "id load" not in wire
    assert "The last error in the notebook:" in wire and "KeyError" in wire
    assert "\x1b" not in wire and wire.endswith("</notebook-context>\n\nwhy does it fail?")
    (attached,) = [json.loads(e.data)["value"] for e in events if "agentspace.context" in e.data]
    assert attached["cell"] == "ask" and attached["cells"] == ["total", "after"]
    assert attached["error"] == "total" and attached["origin"] == "file"
    # the transcript keeps the words apart from the context, and the context for replays
    (user,) = [m for m in await session.transcript() if m["role"] == "user"]
    assert user["content"] == "why does it fail?" and user["context"].startswith("<notebook")


async def test_the_kernel_error_is_sent_and_finds_its_cell_without_an_id(
    nengine: Engine, model: RecordingModel, script: Callable[..., str]
) -> None:
    session = await nengine.session("sales.ipynb", model=script(turn("Looking.")))
    error = KernelErrorRef(source="sales['unit'].sum()", ename="KeyError", evalue="'unit'",
                           traceback="KeyError: 'unit'", execution_count=7)  # fmt: skip
    ref = PromptContext(cell_source="%%agent\nwhy does it fail?", error=error, doc_error=False)
    await session.send("why?", context=ref)
    await collect_run(session, 0)
    await session.wait()
    wire = user_wire(model)
    assert "The prompt comes from cell 2 (id ask)" in wire  # found by its source
    assert "The last error in the kernel, in a cell (In [7])" in wire


async def test_no_context_when_the_sender_or_the_server_says_so(
    nengine: Engine, model: RecordingModel, script: Callable[..., str]
) -> None:
    session = await nengine.session("sales.ipynb", model=script(turn("A."), turn("B.")))
    await session.send("one", context=PromptContext(attach=False, cell_id="ask"))
    await collect_run(session, 0)
    await session.wait()
    assert user_wire(model) == "one"
    nengine.config.attach_context = False
    after = session.log.last_seq
    await session.send("two", context=PromptContext(cell_id="ask"))
    await collect_run(session, after)
    await session.wait()
    assert user_wire(model, 1) == "two"


async def test_run_cell_by_id_holds_the_cells_code(
    nengine: Engine, script: Callable[..., str]
) -> None:
    session = await nengine.session(
        "sales.ipynb", model=script(turn("Running it.", ("run_cell", {"cell_id": "total"})))
    )
    session.set_kernel_tools([], run_cell=True)
    await session.send("run the total cell")
    finished = await held(session)
    (interrupt,) = finished["outcome"]["interrupts"]
    assert interrupt["metadata"]["arguments"] == {"code": "sales['unit'].sum()", "cell_id": "total"}


async def test_run_cell_by_a_wrong_id_tells_the_model(
    nengine: Engine, script: Callable[..., str]
) -> None:
    session = await nengine.session(
        "sales.ipynb",
        model=script(turn("Running.", ("run_cell", {"cell_id": "nope"})), turn("Sorry.")),
    )
    session.set_kernel_tools([], run_cell=True)
    await session.send("run it")
    await collect_run(session, 0)
    await session.wait()
    results = [m["content"] for m in await session.transcript() if m["role"] == "tool"]
    assert len(results) == 1 and "no cell 'nope'" in results[0]


async def test_a_model_that_takes_images_gets_the_notebooks_figures(
    nengine: Engine, model: RecordingModel, script: Callable[..., str], nb_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    data = {"image/png": "iVBORw0KGgo" + "A" * 100, "text/plain": "<Figure>"}
    figure = {"output_type": "display_data", "metadata": {}, "data": data}
    give_outputs(nb_file, 0, [figure])

    async def yes(model: str) -> bool:
        return True

    monkeypatch.setattr(nengine, "takes_images", yes)
    session = await nengine.session(
        "sales.ipynb",
        model=script(turn("Reading.", ("read_notebook", {"cell_id": "load"})), turn("A chart.")),
    )
    await session.send("what does the chart show?")
    await collect_run(session, 0)
    await session.wait()
    messages, _ = model.calls[1]
    tool = next(m for m in messages if m["role"] == "tool")
    assert "attached as image 1" in tool["content"]
    last = messages[-1]
    assert last["role"] == "user" and last["content"][1]["type"] == "image_url"
    listed = next(m for m in await session.transcript() if m.get("images"))
    assert listed["images"] == [{"mime": "image/png", "label": "cell 0 (id load)"}]  # no data
