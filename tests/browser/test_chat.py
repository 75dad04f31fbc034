"""The notebook's agent chat (jupyterlab-chat) in real Chromium, JupyterLab and Notebook 7.

The chat is the notebook's session: a prompt typed there streams its answer there, tool calls
are cards (our labextension's renderer) decided by click, and the kernel's %%agent turns show
there as they stream. Screenshots go to test-artifacts/browser/ (the page fixture's, and
chat_*.png of the moments worth seeing).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from .chat import ChatPanel, open_chat, script, turn
from .lab import LabServer, NotebookPage

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts" / "browser"
WORDS = [f"w{i:02d}" for i in range(40)]


def use_model(server: LabServer, notebook: str, model: str) -> str:
    body = {"notebook": notebook, "model": model}
    code, body = server.api("POST", "/agentspace/api/sessions", body)
    assert code == 200, (code, server.tail())
    return str(body["id"])


def texts_while(page: Page, chat: ChatPanel, until: str, timeout: float = 30) -> list[str]:
    """The distinct texts of the agent's message with the words, polled until it has ``until``."""
    seen: list[str] = []
    message = chat.messages.filter(has_text=WORDS[0]).first
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = message.inner_text() if message.count() else ""
        if not seen or text != seen[-1]:
            seen.append(text)
        if until in text:
            return seen
        page.wait_for_timeout(20)  # a polling interval, not a synchronisation
    raise AssertionError(f"the chat never showed {until!r}; last texts {seen[-3:]}")


@pytest.mark.parametrize("frontend", ["lab", "notebook7"])
def test_a_prompt_in_the_chat_streams_and_its_card_is_approved_by_click(
    frontend: str, page: Page, lab_server: LabServer
) -> None:
    name = f"chat-{frontend}.ipynb"
    lab_server.create_notebook(name)
    model = script(
        lab_server.root,
        f"chat-{frontend}",
        turn(" ".join(WORDS), ("write_file", {"path": "hi.txt", "content": "hi\n"}), delay_ms=40),
        turn("The file is written."),
    )
    use_model(lab_server, name, model)
    if frontend == "lab":
        NotebookPage(page, lab_server, name).open()
    else:
        page.goto(f"{lab_server.url}/notebooks/{name}")
        expect(page.locator(".jp-NotebookPanel")).to_be_visible(timeout=60_000)
    chat = open_chat(page)
    chat.send("write hi.txt")
    expect(chat.messages.filter(has_text="write hi.txt")).to_have_count(1)
    seen = texts_while(page, chat, WORDS[-1])
    partial = [t for t in seen if WORDS[0] in t and WORDS[-1] not in t]
    assert len(partial) >= 3, f"expected the words to stream in, saw {seen}"
    card = chat.cards("pending")
    expect(card).to_have_count(1)
    expect(card).to_contain_text("write_file")
    expect(card).to_contain_text("+hi")  # the diff of the file it would write
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"chat_{frontend}_pending.png"))
    card.locator(".jp-agentspace-card-approve").click()
    done = chat.cards("done")
    expect(done).to_have_count(1)
    expect(done.locator(".jp-agentspace-card-decision")).to_contain_text("approved by")
    expect(done.locator(".jp-agentspace-card-approve")).to_have_count(0)
    expect(chat.messages.filter(has_text="The file is written.")).to_have_count(1)
    code, body = lab_server.api("GET", "/api/contents/agent-chats")
    assert code == 200 and any(f["name"] == f"chat-{frontend}.chat" for f in body["content"])


def test_a_decision_in_the_widget_reaches_the_chat_and_one_in_the_chat_the_widget(
    notebook: Callable[..., NotebookPage], page: Page, lab_server: LabServer
) -> None:
    nb = notebook("both.ipynb")
    model = script(
        lab_server.root,
        "both",
        turn("first", ("write_file", {"path": "a.txt", "content": "a"})),
        turn("second", ("write_file", {"path": "b.txt", "content": "b"})),
        turn("Both are written."),
    )
    use_model(lab_server, "both.ipynb", model)
    expect(nb.run_cell("%load_ext agentspace")).to_have_text("")
    nb.wait_idle()
    view = nb.run_cell("%%agent\nwrite a and b").locator(".agentspace-view")
    in_cell_a = view.locator(".agentspace-tool", has_text="a.txt")
    expect(in_cell_a.get_by_role("button", name="Approve", exact=True)).to_be_visible()
    chat = open_chat(page)
    # the cell's turn is in the chat as the kernel's, its call a card there too
    expect(chat.widget).to_contain_text("Notebook kernel")
    expect(chat.messages.filter(has_text="write a and b")).to_have_count(1)
    expect(chat.cards("pending")).to_contain_text("a.txt")
    # a click in the widget: the chat's card shows the call decided, by whom, and done
    in_cell_a.get_by_role("button", name="Approve", exact=True).click()
    card_a = chat.cards("done").filter(has_text="a.txt")
    expect(card_a.locator(".jp-agentspace-card-decision")).to_contain_text("approved by")
    # the next call: decided in the chat, the widget says so and by whom
    in_cell_b = view.locator(".agentspace-tool", has_text="b.txt")
    expect(in_cell_b.get_by_role("button", name="Approve", exact=True)).to_be_visible()
    chat.cards("pending").filter(has_text="b.txt").locator(".jp-agentspace-card-approve").click()
    expect(in_cell_b).to_contain_text("approved by")
    expect(view).to_contain_text("decided elsewhere")
    expect(chat.messages.filter(has_text="Both are written.")).to_have_count(1)
    page.screenshot(path=str(ARTIFACTS / "chat_and_widget.png"))


def test_reject_with_a_reason_and_edit_with_invalid_then_valid_json(
    notebook: Callable[..., NotebookPage], page: Page, lab_server: LabServer
) -> None:
    notebook("decide.ipynb")
    model = script(
        lab_server.root,
        "decide",
        turn("", ("write_file", {"path": "x.txt", "content": "x"})),
        turn("", ("write_file", {"path": "y.txt", "content": "y"})),
        turn("Done deciding."),
    )
    sid = use_model(lab_server, "decide.ipynb", model)
    chat = open_chat(page)
    chat.send("write x and y")
    card = chat.cards("pending").filter(has_text="x.txt")
    card.locator(".jp-agentspace-card-reject").click()
    card.locator(".jp-agentspace-card-reason").fill("not x, please")
    card.locator(".jp-agentspace-card-reject-confirm").click()
    rejected = chat.cards("rejected")
    expect(rejected.locator(".jp-agentspace-card-decision")).to_contain_text(": not x, please")
    card = chat.cards("pending").filter(has_text="y.txt")
    card.locator(".jp-agentspace-card-edit").click()
    card.locator(".jp-agentspace-card-edit-text").fill('{"path": "z.txt", "content": ')
    card.locator(".jp-agentspace-card-edit-submit").click()
    expect(card.locator(".jp-agentspace-card-edit-error")).to_be_visible()
    assert chat.cards("pending").count() == 1  # nothing was sent
    card.locator(".jp-agentspace-card-edit-text").fill('{"path": "z.txt", "content": "zz"}')
    card.locator(".jp-agentspace-card-edit-submit").click()
    edited = chat.cards("done")
    expect(edited.locator(".jp-agentspace-card-decision")).to_contain_text("edited by")
    expect(chat.messages.filter(has_text="Done deciding.")).to_have_count(1)
    code, listing = lab_server.api("GET", f"/agentspace/api/sessions/{sid}/files?path=.")
    assert code == 200, listing
    names = {entry["path"] for entry in listing["entries"]}
    assert "z.txt" in names and "x.txt" not in names and "y.txt" not in names, names


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[LabServer]:
    """A server of this test's own (it is restarted)."""
    server = LabServer(tmp_path / "own")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_reload_keeps_a_pending_card_and_a_restart_keeps_the_chat(
    browser: Browser, own_server: LabServer
) -> None:
    server = own_server
    server.create_notebook("keep.ipynb")
    model = script(
        server.root,
        "keep",
        turn("about to write", ("write_file", {"path": "k.txt", "content": "k"})),
        turn("Kept and written."),
    )
    use_model(server, "keep.ipynb", model)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        page.goto(f"{server.url}/api/status?token={server.token}")
        NotebookPage(page, server, "keep.ipynb").open()
        chat = open_chat(page)
        chat.send("write k")
        expect(chat.cards("pending")).to_have_count(1)
        page.reload()
        NotebookPage(page, server, "keep.ipynb").wait_idle()
        chat = open_chat(page)
        expect(chat.cards("pending")).to_have_count(1)
        chat.cards("pending").locator(".jp-agentspace-card-approve").click()
        expect(chat.messages.filter(has_text="Kept and written.")).to_have_count(1)
        before = chat.messages.all_inner_texts()
        server.stop()
        server.start()
        NotebookPage(page, server, "keep.ipynb").open()
        chat = open_chat(page)
        expect(chat.messages.filter(has_text="Kept and written.")).to_have_count(1)
        assert chat.messages.all_inner_texts() == before
        expect(chat.cards("done")).to_have_count(1)
        page.screenshot(path=str(ARTIFACTS / "chat_after_restart.png"))
    finally:
        context.close()


def test_two_users_on_one_chat_see_each_other_and_who_decided(
    browser: Browser, lab_server: LabServer
) -> None:
    lab_server.create_notebook("two.ipynb")
    model = script(
        lab_server.root,
        "two",
        turn("", ("write_file", {"path": "t.txt", "content": "t"})),
        turn("Written for both of you."),
    )
    use_model(lab_server, "two.ipynb", model)
    pages, names = [], []
    contexts = [browser.new_context(viewport={"width": 1280, "height": 800}) for _ in range(2)]
    try:
        for context in contexts:
            page = context.new_page()
            page.goto(f"{lab_server.url}/api/status?token={lab_server.token}")
            NotebookPage(page, lab_server, "two.ipynb").open()
            me = page.evaluate("async () => (await (await fetch('/api/me')).json()).identity")
            names.append((me["username"], me["display_name"]))
            pages.append(page)
        assert names[0][0] != names[1][0], names  # two identities
        chats = [open_chat(p) for p in pages]
        chats[0].send("write t for us")
        expect(chats[1].messages.filter(has_text="write t for us")).to_have_count(1)
        expect(chats[1].widget).to_contain_text(names[0][1])  # shown as the sender's
        expect(chats[1].cards("pending")).to_have_count(1)
        chats[1].cards("pending").locator(".jp-agentspace-card-approve").click()
        for chat in chats:
            decided = chat.cards("done").locator(".jp-agentspace-card-decision")
            expect(decided).to_contain_text(f"approved by {names[1][1]}")  # as the chat names them
            expect(chat.messages.filter(has_text="Written for both of you.")).to_have_count(1)
        for i, page in enumerate(pages):
            page.screenshot(path=str(ARTIFACTS / f"chat_user_{i + 1}.png"))
    finally:
        for context in contexts:
            context.close()


def test_stop_in_the_chat_stops_the_agent_keeping_its_words(
    page: Page, lab_server: LabServer
) -> None:
    lab_server.create_notebook("stop.ipynb")
    words = [f"s{i:03d}" for i in range(400)]
    model = script(lab_server.root, "stop", turn(" ".join(words), delay_ms=50))
    sid = use_model(lab_server, "stop.ipynb", model)
    NotebookPage(page, lab_server, "stop.ipynb").open()
    chat = open_chat(page)
    chat.send("talk for a while")
    message = chat.messages.filter(has_text=words[0])
    expect(message).to_have_count(1)
    run = chat.widget.locator(".jp-agentspace-run")  # the run's card, Stop while it runs
    expect(run).to_have_attribute("data-status", "running")
    run.locator(".jp-agentspace-run-stop").click()
    expect(run).to_have_attribute("data-status", "stopped")
    expect(run.locator(".jp-agentspace-run-stop")).to_have_count(0)
    code, info = lab_server.api("GET", f"/agentspace/api/sessions/{sid}")
    assert code == 200 and info["status"] == "stopped", info
    kept = message.inner_text()
    assert words[0] in kept and words[-1] not in kept  # the partial text stays


def test_the_agent_panel_decides_a_call_shows_the_workspace_and_says_when_offline(
    browser: Browser, own_server: LabServer
) -> None:
    server = own_server
    server.create_notebook("panel.ipynb")
    model = script(
        server.root,
        "panel",
        turn("", ("write_file", {"path": "report.md", "content": "# Report\n"})),
        turn("The report is written."),
    )
    use_model(server, "panel.ipynb", model)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        page.goto(f"{server.url}/api/status?token={server.token}")
        NotebookPage(page, server, "panel.ipynb").open()
        page.locator(".jp-SideBar.jp-mod-right .lm-TabBar-tab", has_text="Agent").click()
        panel = page.locator(".jp-agentspace-panel")
        expect(panel.locator(".jp-agentspace-panel-status")).to_have_attribute(
            "data-status", "idle"
        )
        chat = open_chat(page)
        chat.send("write the report")
        call = panel.locator(".jp-agentspace-panel-call")
        expect(call).to_contain_text("write_file")
        call.locator(".jp-agentspace-panel-approve").click()
        expect(chat.cards("done").locator(".jp-agentspace-card-decision")).to_contain_text(
            "approved by"
        )  # decided in the panel, shown in the chat
        expect(panel.locator(".jp-agentspace-panel-file", has_text="report.md")).to_be_visible()
        expect(panel.locator(".jp-agentspace-panel-usage")).to_contain_text("tokens")
        page.screenshot(path=str(ARTIFACTS / "agent_panel.png"))
        server.stop()
        expect(panel.locator(".jp-agentspace-panel-offline")).to_contain_text("unreachable")
    finally:
        context.close()


def test_a_chat_turns_run_cell_runs_as_a_cell_of_the_open_notebook(
    notebook: Callable[..., NotebookPage], page: Page, lab_server: LabServer
) -> None:
    nb = notebook("runs.ipynb")
    model = script(
        lab_server.root,
        "runs",
        turn("looking", ("list_variables", {})),
        turn("doubling", ("run_cell", {"code": "print(answer * 2)"})),
        turn("It is 84."),
    )
    sid = use_model(lab_server, "runs.ipynb", model)
    tools = {"tools": [], "run_cell": True, "list_variables": True}
    assert lab_server.api("PUT", f"/agentspace/api/sessions/{sid}/tools", tools)[0] == 200
    expect(nb.run_cell("answer = 42")).to_have_text("")
    nb.wait_idle()
    chat = open_chat(page)
    chat.send("what is answer doubled?")
    listed = chat.cards("done").filter(has_text="list_variables")
    expect(listed.locator(".jp-agentspace-card-result")).to_contain_text("answer")
    card = chat.cards("pending").filter(has_text="run_cell")
    expect(card).to_contain_text("print(answer * 2)")
    card.locator(".jp-agentspace-card-approve").click()
    ran = chat.cards("done").filter(has_text="run_cell")
    expect(ran.locator(".jp-agentspace-card-result")).to_contain_text("84")
    # the code ran as a cell of the notebook, below the one the user was in, with its output
    cell = nb.cells.filter(has_text="print(answer * 2)")
    expect(cell).to_have_count(1)
    expect(cell.locator(".jp-OutputArea")).to_contain_text("84")
    expect(chat.messages.filter(has_text="It is 84.")).to_have_count(1)
