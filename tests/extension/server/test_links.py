"""The notebook link (docs/notebook-link.md) and the server's notebook ports, on a real server.

A Python websocket client plays the labextension: it links a notebook, answers the server's
requests from a notebook held as nbformat JSON (applying the same checked edits the browser
does), or never answers. The ports are reached as the engine reaches them, through
``ServerNotebooks``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.websocket import WebSocketClientConnection

from agentspace.errors import NotebookConflict, NotebookError
from agentspace.notebook import document
from agentspace.server.app import ServerState
from agentspace.server.contents import ContentsNotebook
from agentspace.server.notebooks import LinkedNotebook, ServerNotebooks

LINK = ("agentspace", "api", "notebooks", "link")
WsFetch = Callable[..., Awaitable[WebSocketClientConnection]]


def notebook(*sources: str, minor: int = 5, ids: bool = True) -> dict[str, Any]:
    cells = []
    for i, src in enumerate(sources):
        cell = document.new_cell(f"c{i}", "code", src)
        if not ids:
            del cell["id"]
        cells.append(cell)
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": minor}


class Browser:
    """A fake labextension: one linked notebook, answered from ``self.nb`` (or not at all)."""

    def __init__(self, ws: WebSocketClientConnection, nb: dict[str, Any], path: str) -> None:
        self.ws, self.nb, self.path = ws, nb, path
        self.silent = False
        self.dirty = True
        self.seen: list[dict[str, Any]] = []
        self.task = asyncio.ensure_future(self.serve())

    def send(self, message: dict[str, Any]) -> None:
        self.ws.write_message(json.dumps(message))

    async def serve(self) -> None:
        self.send({"op": "hello", "path": self.path, "client": "test"})
        while True:
            raw = await self.ws.read_message()
            if raw is None:
                return
            request = json.loads(raw)
            self.seen.append(request)
            if not self.silent:
                self.send({"id": request["id"], **self.answer(request)})

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request["op"]
        try:
            if op == "read":
                return {"ok": True, "notebook": self.nb, "dirty": self.dirty}
            if op == "set":
                document.apply_set(
                    self.nb, request["cell_id"], request["expect"], request["source"]
                )
                return {"ok": True}
            if op == "insert":
                index = document.apply_insert(self.nb, request["index_after"], request["cell"])
                return {"ok": True, "index": index}
            if op == "delete":
                document.apply_delete(self.nb, request["cell_id"], request["expect"])
                return {"ok": True}
        except NotebookConflict as exc:
            return {"ok": False, "error": exc.data["reason"], "message": exc.message}
        return {"ok": False, "error": "invalid", "message": f"unknown op {op}"}

    async def close(self) -> None:
        self.ws.close()
        await asyncio.wait_for(self.task, 5)


@pytest.fixture
def state(jp_serverapp: Any) -> ServerState:
    state: ServerState = jp_serverapp.web_app.settings["agentspace"]
    return state


@pytest.fixture
def notebooks(state: ServerState, jp_serverapp: Any) -> ServerNotebooks:
    return ServerNotebooks(state.links, jp_serverapp.contents_manager)


async def until(check: Callable[[], Any], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.01)


@pytest.fixture
def link(jp_ws_fetch: WsFetch, state: ServerState) -> Iterator[Callable[..., Awaitable[Browser]]]:
    browsers: list[Browser] = []

    async def connect(path: str, nb: dict[str, Any]) -> Browser:
        before = state.links.get(path)
        ws = await jp_ws_fetch(*LINK, params={"path": path})
        browser = Browser(ws, nb, path)
        browsers.append(browser)
        await until(lambda: state.links.get(path) not in (None, before))
        return browser

    yield connect
    for browser in browsers:  # sync: pytest-jupyter runs no async fixtures
        browser.ws.close()
        browser.task.cancel()


def write(root: Path, name: str, nb: dict[str, Any]) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb))
    return path


async def test_a_link_without_auth_is_refused(
    jp_ws_fetch: WsFetch, jp_http_port: int, jp_base_url: str
) -> None:
    with pytest.raises(HTTPClientError) as refused:
        await jp_ws_fetch(*LINK, params={"path": "a.ipynb"}, headers={"Authorization": ""})
    assert refused.value.code == 403
    url = f"http://localhost:{jp_http_port}{jp_base_url}agentspace/api/notebooks/links"
    with pytest.raises(HTTPClientError) as listing:
        await AsyncHTTPClient().fetch(url)
    assert listing.value.code == 403


async def test_a_link_with_the_token_in_the_url_is_let_in(
    jp_ws_fetch: WsFetch, jp_serverapp: Any, state: ServerState
) -> None:
    """As the labextension connects: token query parameter, no Authorization header."""
    token = jp_serverapp.identity_provider.token
    params = {"path": "./dir/q.ipynb", "token": token}
    ws = await jp_ws_fetch(*LINK, params=params, headers={"Authorization": ""})
    await until(lambda: state.links.get("dir/q.ipynb") is not None)
    ws.close()
    await until(lambda: state.links.get("dir/q.ipynb") is None)


async def test_a_bad_path_is_refused(jp_ws_fetch: WsFetch) -> None:
    with pytest.raises(HTTPClientError) as refused:
        await jp_ws_fetch(*LINK, params={"path": "../outside.ipynb"})
    assert refused.value.code == 400


async def test_reads_and_edits_go_to_the_linked_browser(
    link: Callable[..., Awaitable[Browser]],
    notebooks: ServerNotebooks,
    state: ServerState,
    jp_fetch: Any,
) -> None:
    browser = await link("work/nb.ipynb", notebook("x = 1", "print(x)"))
    port = await notebooks("work/./nb.ipynb")
    assert isinstance(port, LinkedNotebook)

    doc = await port.read()
    assert (doc.origin, doc.path, doc.dirty) == ("browser", "work/nb.ipynb", True)
    assert [c["source"] for c in doc.cells] == ["x = 1", "print(x)"]

    await port.set_source("c0", "x = 1", "x = 2")
    assert browser.nb["cells"][0]["source"] == "x = 2"
    index = await port.insert("c0", {"id": "new", "cell_type": "markdown", "source": "# hi"})
    assert index == 1 and browser.nb["cells"][1]["id"] == "new"
    assert await port.insert(None, {"id": "top", "cell_type": "code", "source": ""}) == 0
    await port.delete("c1", "print(x)")
    assert [c["id"] for c in browser.nb["cells"]] == ["top", "c0", "new"]
    assert [r["op"] for r in browser.seen] == ["read", "set", "insert", "insert", "delete"]
    assert len({r["id"] for r in browser.seen}) == 5  # each request its own id

    response = await jp_fetch("agentspace", "api", "notebooks", "links")
    listed = json.loads(response.body)["links"]
    assert [(entry["path"], entry["client"]) for entry in listed] == [("work/nb.ipynb", "test")]


async def test_the_engine_gets_the_server_notebooks(state: ServerState) -> None:
    engine = await state.engine()
    assert isinstance(engine.notebooks, ServerNotebooks)
    assert engine.notebooks.links is state.links


async def test_conflict_and_missing_replies_raise_notebook_conflict(
    link: Callable[..., Awaitable[Browser]], notebooks: ServerNotebooks
) -> None:
    browser = await link("c.ipynb", notebook("a"))
    port = await notebooks("c.ipynb")
    with pytest.raises(NotebookConflict) as conflict:
        await port.set_source("c0", "not what it is", "b")
    assert conflict.value.data["reason"] == "conflict" and "read_notebook" in conflict.value.message
    with pytest.raises(NotebookConflict) as missing:
        await port.delete("nope", "a")
    assert missing.value.data["reason"] == "missing"
    with pytest.raises(NotebookConflict):
        await port.insert("nope", {"id": "n", "cell_type": "code", "source": ""})
    assert browser.nb == notebook("a")  # nothing changed

    browser.answer = lambda request: {"ok": False, "error": "invalid", "message": "bad"}  # type: ignore[method-assign]
    with pytest.raises(NotebookError) as invalid:
        await port.set_source("c0", "a", "b")
    assert not isinstance(invalid.value, NotebookConflict) and "bad" in invalid.value.message


async def test_a_silent_link_times_out_and_a_read_falls_back_to_the_file(
    link: Callable[..., Awaitable[Browser]],
    notebooks: ServerNotebooks,
    state: ServerState,
    jp_root_dir: Path,
) -> None:
    state.links.timeout = 0.2
    write(jp_root_dir, "s.ipynb", notebook("on disk"))
    browser = await link("s.ipynb", notebook("in the browser"))
    browser.silent = True
    port = await notebooks("s.ipynb")
    assert isinstance(port, LinkedNotebook)
    started = time.monotonic()
    doc = await port.read()
    assert time.monotonic() - started < 2
    assert doc.origin == "file" and doc.cells[0]["source"] == "on disk"
    assert "did not answer" in doc.note
    with pytest.raises(NotebookError) as timeout:  # an edit never falls back
        await port.set_source("c0", "in the browser", "x")
    assert timeout.value.data["reason"] == "timeout" and not isinstance(
        timeout.value, NotebookConflict
    )
    assert json.loads((jp_root_dir / "s.ipynb").read_text())["cells"][0]["source"] == "on disk"


async def test_the_last_link_answers_and_a_closed_one_hands_back(
    link: Callable[..., Awaitable[Browser]], notebooks: ServerNotebooks, state: ServerState
) -> None:
    first = await link("two.ipynb", notebook("first"))
    second = await link("two.ipynb", notebook("second"))
    assert (await (await notebooks("two.ipynb")).read()).cells[0]["source"] == "second"
    await second.close()
    await until(lambda: len(state.links.all()) == 1)
    assert (await (await notebooks("two.ipynb")).read()).cells[0]["source"] == "first"

    first.send({"op": "path", "path": "moved/two.ipynb"})  # renamed in the browser
    await until(lambda: state.links.get("moved/two.ipynb") is not None)
    assert state.links.get("two.ipynb") is None
    doc = await (await notebooks("moved/two.ipynb")).read()
    assert doc.path == "moved/two.ipynb"


async def test_a_link_that_closes_fails_its_waiting_request_at_once(
    link: Callable[..., Awaitable[Browser]], notebooks: ServerNotebooks, state: ServerState
) -> None:
    state.links.timeout = 30
    browser = await link("gone.ipynb", notebook("a"))
    browser.silent = True
    port = await notebooks("gone.ipynb")
    waiting = asyncio.ensure_future(port.set_source("c0", "a", "b"))
    await until(lambda: browser.seen)
    await browser.close()
    with pytest.raises(NotebookError, match="closed"):
        await asyncio.wait_for(waiting, 5)


async def test_without_a_link_the_file_is_read_and_edited(
    notebooks: ServerNotebooks, jp_root_dir: Path
) -> None:
    path = write(jp_root_dir, "f/file.ipynb", notebook("a = 1", "b = 2"))
    port = await notebooks("f/file.ipynb")
    assert isinstance(port, ContentsNotebook)
    doc = await port.read()
    assert (doc.origin, doc.ids_added, doc.dirty) == ("file", 0, False)
    assert [c["id"] for c in doc.cells] == ["c0", "c1"]

    await port.set_source("c0", "a = 1", "a = 10")
    assert await port.insert("c1", {"id": "n", "cell_type": "markdown", "source": "note"}) == 2
    await port.delete("c1", "b = 2")
    on_disk = json.loads(path.read_text())
    assert [(c["id"], document.source_of(c)) for c in on_disk["cells"]] == [
        ("c0", "a = 10"),
        ("n", "note"),
    ]
    with pytest.raises(NotebookConflict):
        await port.set_source("c0", "a = 1", "stale")
    with pytest.raises(NotebookConflict):
        await port.delete("gone", "")
    assert json.loads(path.read_text()) == on_disk
    with pytest.raises(NotebookError, match="cannot be read"):
        await (await notebooks("nowhere.ipynb")).read()


class ChangesUnderfoot:
    """A contents manager whose file is rewritten by someone else right after each read."""

    def __init__(self, real: Any, file: Path) -> None:
        self.real, self.file = real, file

    async def get(self, path: str, **kw: Any) -> Any:
        model = await self.real.get(path, **kw)
        if kw.get("content", True):
            self.file.write_text(json.dumps(notebook("someone else's")))
            st = self.file.stat()
            os.utime(self.file, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
        return model

    async def save(self, model: dict[str, Any], path: str) -> Any:
        return await self.real.save(model, path)


async def test_the_file_is_not_saved_when_it_changed_on_disk_meanwhile(
    jp_serverapp: Any, jp_root_dir: Path
) -> None:
    file = write(jp_root_dir, "race.ipynb", notebook("mine"))
    port = ContentsNotebook(ChangesUnderfoot(jp_serverapp.contents_manager, file), "race.ipynb")
    with pytest.raises(NotebookConflict) as changed:
        await port.set_source("c0", "mine", "agent's")
    assert "the file changed on disk meanwhile; read again" in changed.value.message
    assert document.source_of(json.loads(file.read_text())["cells"][0]) == "someone else's"


async def test_cells_without_ids_get_them_once_and_the_file_keeps_them(
    notebooks: ServerNotebooks, jp_root_dir: Path
) -> None:
    nb = notebook("one", "two", minor=4, ids=False)
    nb["cells"][1]["source"] = ["tw", "o"]  # a list of lines, as on disk
    path = write(jp_root_dir, "old.ipynb", nb)
    first = await (await notebooks("old.ipynb")).read()
    assert first.ids_added == 2 and "given one" in first.note
    assert [c["source"] for c in first.cells] == ["one", "two"]
    on_disk = json.loads(path.read_text())
    assert on_disk["nbformat_minor"] == 5
    assert [c["id"] for c in on_disk["cells"]] == [c["id"] for c in first.cells]
    again = await (await notebooks("old.ipynb")).read()
    assert again.ids_added == 0 and [c["id"] for c in again.cells] == [c["id"] for c in first.cells]
    port = await notebooks("old.ipynb")
    await port.set_source(first.cells[1]["id"], "two", "2")  # the ids the agent saw hold
    assert document.source_of(json.loads(path.read_text())["cells"][1]) == "2"
