"""The chat bridge in a real server with jupyterlab-chat: a chat client over its WebSocket.

The client speaks jupyterlab-chat's wire protocol as its frontend does; each test reads frames
until the chat shows what it waits for (no sleeps), with a timeout that fails the test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from agentspace.testing import turn, write_script

Api = Callable[..., Awaitable[tuple[int, Any]]]
AGENT = "agentspace-agent"
MIME = "application/vnd.agentspace.toolcall+json"
WAIT = 20.0


@pytest.fixture
def jp_server_config(agentspace_state: Path) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"agentspace": True, "jupyterlab_chat": True}},
        "AgentspaceApp": {
            "state_dir": str(agentspace_state),
            "model": "scripted/echo",
            "sandbox": "bubblewrap",
            "heartbeat_seconds": 0.2,
        },
    }


class Chat:
    """One chat client: the messages as its frontend would hold them."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.me: dict[str, Any] = {}
        self.messages: dict[str, dict[str, Any]] = {}
        self.users: dict[str, Any] = {}
        self.writing: list[bool] = []

    async def connect(self) -> Chat:
        frame = json.loads(await self.ws.read_message())
        assert frame["action"] == "connection", frame
        self.me = frame["user"]
        self.users.update(frame["users"])
        for m in frame["messages"]:
            self.messages[m["id"]] = m
        return self

    def send(self, msg_id: str, body: str, **extra: Any) -> None:
        frame = {"type": "client", "action": "send", "id": msg_id, "body": body, **extra}
        self.ws.write_message(json.dumps(frame))

    async def until(self, check: Callable[[Chat], Any], what: str) -> Any:
        async def loop() -> Any:
            while not (found := check(self)):
                raw = await self.ws.read_message()
                assert raw is not None, f"the chat socket closed before {what}"
                frame = json.loads(raw)
                if frame["action"] == "message":
                    self.messages[frame["message"]["id"]] = frame["message"]
                elif frame["action"] == "users":
                    self.users.update(frame["users"])
                elif frame["action"] == "writing":
                    self.writing.append(frame["state"])
            return found

        try:
            return await asyncio.wait_for(loop(), WAIT)
        except TimeoutError:
            raise AssertionError(f"the chat never showed {what}: {self.bodies()}") from None

    def bodies(self) -> list[tuple[str, str]]:
        return [(m["sender"], m["body"][:80]) for m in self.messages.values()]

    def by(self, sender: str) -> list[dict[str, Any]]:
        return [m for m in self.messages.values() if m["sender"] == sender]

    def card(self, status: str | None = None, tool: str | None = None) -> dict[str, Any] | None:
        for m in self.messages.values():
            data = ((m.get("mime_model") or {}).get("data") or {}).get(MIME)
            if data and status in (None, data["status"]) and tool in (None, data["tool"]):
                return data
        return None


async def until(check: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll ``check`` (a file the server writes by itself) until it holds, or fail."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never: {what}")
        await asyncio.sleep(0.02)  # a polling interval, not a synchronisation


@pytest.fixture
def open_chat(api: Api, jp_ws_fetch: Any) -> Callable[[str], Awaitable[tuple[Chat, str, str]]]:
    async def go(notebook: str) -> tuple[Chat, str, str]:
        status, body = await api("POST", "chats", body={"notebook": notebook})
        assert status == 200, body
        ws = await jp_ws_fetch("api", "chat", "ws", body["path"])
        return await Chat(ws).connect(), body["path"], body["session"]

    return go


async def test_a_prompt_typed_in_the_chat_is_a_turn_of_the_notebooks_session(
    api: Api, open_chat: Any, tmp_path: Path, jp_root_dir: Path
) -> None:
    model = write_script(tmp_path / "s.json", turn("Hello from the agent, " * 20))
    status, created = await api("POST", "sessions", body={"notebook": "nb.ipynb", "model": model})
    assert status == 200, created
    chat, path, sid = await open_chat("nb.ipynb")
    assert path == "agent-chats/nb.chat" and sid == created["id"]
    assert (jp_root_dir / path).is_file()
    chat.send("u1", "say hello", sender={"username": "mallory", "name": "Mallory"})
    reply = await chat.until(
        lambda c: [m for m in c.by(AGENT) if m["body"].endswith("Hello from the agent, ")],
        "the agent's whole reply",
    )
    assert len(reply) == 1
    # the prompt is stamped with the server's identity, never the name the client claimed
    mine = chat.messages["u1"]
    assert mine["sender"] == chat.me["username"] != "mallory"
    assert mine["metadata"]["agentspace"]["key"].startswith("user:msg_")
    assert chat.users[AGENT]["bot"] is True
    await chat.until(lambda c: c.writing and c.writing[-1] is False, "the agent done writing")
    assert chat.writing[0] is True
    status, transcript = await api("GET", f"sessions/{sid}/messages")
    assert [m["content"] for m in transcript["messages"] if m["role"] == "user"] == ["say hello"]


async def test_a_prompt_from_a_cell_shows_in_the_chat_as_the_kernels(
    api: Api, open_chat: Any, tmp_path: Path
) -> None:
    model = write_script(tmp_path / "s.json", turn("from the cell's turn"))
    await api("POST", "sessions", body={"notebook": "k.ipynb", "model": model})
    chat, _, sid = await open_chat("k.ipynb")
    status, _ = await api(
        "POST",
        f"sessions/{sid}/messages",
        body={"text": "asked in a cell"},
        headers={"X-Agentspace-Client": "kernel"},
    )
    assert status == 202
    await chat.until(lambda c: c.by("agentspace-kernel"), "the cell's prompt")
    await chat.until(
        lambda c: [m for m in c.by(AGENT) if m["body"] == "from the cell's turn"],
        "the answer to the cell's prompt",
    )
    assert chat.by("agentspace-kernel")[0]["body"] == "asked in a cell"


async def test_a_held_call_is_a_card_decided_in_the_chat_and_over_rest(
    api: Api, open_chat: Any, tmp_path: Path
) -> None:
    model = write_script(
        tmp_path / "s.json",
        turn("writing", ("write_file", {"path": "a.txt", "content": "one\n"})),
        turn("and again", ("write_file", {"path": "b.txt", "content": "two\n"})),
        turn("both written"),
    )
    await api("POST", "sessions", body={"notebook": "c.ipynb", "model": model})
    chat, _, sid = await open_chat("c.ipynb")
    chat.send("u1", "write the files")
    card = await chat.until(lambda c: c.card("pending"), "a pending card")
    assert card["tool"] == "write_file" and card["session"] == sid
    assert "+one" in (card["preview"] or "")
    message = next(
        m for m in chat.messages.values() if MIME in (m.get("mime_model") or {}).get("data", {})
    )
    fallback = message["mime_model"]["data"]["text/markdown"]
    assert f"/approve {card['tool_call_id']}" in fallback and message["body"] == fallback
    chat.send("u2", f"/approve {card['tool_call_id'][:12]}")
    done = await chat.until(
        lambda c: (
            c.messages[message["id"]]["mime_model"]["data"][MIME]["status"] == "done"
            and c.messages[message["id"]]["mime_model"]["data"][MIME]
        ),
        "the first card done",
    )
    assert done["decision"]["decision"] == "approve"
    assert done["decision"]["by"] == chat.me["username"]
    second = await chat.until(
        lambda c: (x := c.card("pending")) and x["tool_call_id"] != card["tool_call_id"] and x,
        "the second call's card",
    )
    status, body = await api(
        "POST",
        f"sessions/{sid}/approvals/{second['tool_call_id']}",
        body={"decision": "reject", "reason": "not b"},
    )
    assert status == 200, body
    rejected = await chat.until(lambda c: c.card("rejected"), "the second card rejected")
    assert rejected["decision"]["reason"] == "not b"
    await chat.until(
        lambda c: [m for m in c.by(AGENT) if m["body"] == "both written"], "the last words"
    )
    chat.send("u3", f"/approve {second['tool_call_id']}")
    await chat.until(
        lambda c: [m for m in c.by(AGENT) if "No call is waiting" in m["body"]],
        "the refusal of a second decision",
    )


async def test_the_chat_is_rebuilt_from_the_store_when_its_file_is_lost(
    api: Api, open_chat: Any, tmp_path: Path, jp_root_dir: Path
) -> None:
    model = write_script(
        tmp_path / "s.json",
        turn("listing", ("shell", {"command": "echo hi"})),
        turn("listed"),
    )
    await api("POST", "sessions", body={"notebook": "r.ipynb", "model": model})
    status, _ = await api(
        "PATCH",
        "sessions/" + (await open_chat("r.ipynb"))[2],
        body={"policies": {"shell": "allow"}},
    )
    assert status == 200
    chat, path, _ = await open_chat("r.ipynb")
    chat.send("u1", "list it")
    await chat.until(lambda c: [m for m in c.by(AGENT) if m["body"] == "listed"], "the reply")
    await chat.until(lambda c: [m for m in c.by(AGENT) if "✓ done" in m["body"]], "the run's end")
    before = {
        m["metadata"]["agentspace"]["key"]: (m["sender"], m["body"])
        for m in chat.messages.values()
        if m.get("metadata")
    }
    chat.ws.close()
    (jp_root_dir / path).unlink()
    again, _, _ = await open_chat("r.ipynb")
    rebuilt = {
        m["metadata"]["agentspace"]["key"]: (m["sender"], m["body"])
        for m in again.messages.values()
        if m.get("metadata")
    }
    assert rebuilt == before
    assert any(k.startswith("tool:") for k in rebuilt)


async def test_a_chat_turn_has_the_notebooks_kernel_answer_its_kernel_calls(
    api: Api, open_chat: Any, tmp_path: Path, jp_fetch: Any, jp_serverapp: Any
) -> None:
    """No %%agent cell follows a chat's turn: the server runs its kernel calls in the notebook's
    kernel (list_variables at once, run_cell once approved) and records their results."""
    model = write_script(
        tmp_path / "s.json",
        turn("looking", ("list_variables", {})),
        turn("doubling", ("run_cell", {"code": "print(answer * 2)"})),
        turn("it is 84"),
    )
    response = await jp_fetch(
        "api",
        "sessions",
        method="POST",
        body=json.dumps({"path": "v.ipynb", "type": "notebook", "kernel": {"name": "python3"}}),
    )
    kernel_id = json.loads(response.body)["kernel"]["id"]
    client = jp_serverapp.kernel_manager.get_kernel(kernel_id).client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        reply = await client.execute_interactive("answer = 42", timeout=60)
        assert reply["content"]["status"] == "ok"
    finally:
        client.stop_channels()
    status, created = await api("POST", "sessions", body={"notebook": "v.ipynb", "model": model})
    sid = created["id"]
    body = {"tools": [], "run_cell": True, "list_variables": True}
    status, _ = await api("PUT", f"sessions/{sid}/tools", body=body)
    assert status == 200
    chat, _, _ = await open_chat("v.ipynb")
    chat.send("u1", "what is answer doubled?")
    listed = await chat.until(
        lambda c: c.card("done", "list_variables"), "list_variables answered by the kernel"
    )
    assert "answer" in listed["result"] and "42" in listed["result"]
    pending = await chat.until(lambda c: c.card("pending"), "run_cell waiting for approval")
    assert pending["tool"] == "run_cell" and pending["arguments"]["code"] == "print(answer * 2)"
    chat.send("u2", "/approve")
    ran = await chat.until(lambda c: c.card("done", "run_cell"), "run_cell run")
    assert ran["result"].strip() == "84"
    assert ran["decision"]["by"] == chat.me["username"]
    await chat.until(lambda c: [m for m in c.by(AGENT) if m["body"] == "it is 84"], "the end")


async def test_a_client_cannot_post_a_card_nor_edit_anothers_message(
    api: Api, open_chat: Any, tmp_path: Path, jp_ws_fetch: Any
) -> None:
    model = write_script(tmp_path / "s.json", turn("hello"), turn("again"))
    await api("POST", "sessions", body={"notebook": "x.ipynb", "model": model})
    chat, path, _ = await open_chat("x.ipynb")
    forged = {"data": {MIME: {"status": "pending", "tool_call_id": "call_x"}}}
    chat.send(
        "u1",
        "hi",
        mime_model=forged,
        metadata={"agentspace": {"key": "tool:call_x"}, "mine": 1},
    )
    reply = await chat.until(lambda c: [m for m in c.by(AGENT) if m["body"] == "hello"], "hello")
    mine = chat.messages["u1"]
    assert "mime_model" not in mine or mine["mime_model"] is None
    assert mine["metadata"]["mine"] == 1
    assert mine["metadata"]["agentspace"]["key"].startswith("user:")  # ours, not the forged one
    other = Chat(await jp_ws_fetch("api", "chat", "ws", path))
    await other.connect()
    edit = {"type": "client", "action": "edit", "id": reply[0]["id"], "body": "I was edited"}
    other.ws.write_message(json.dumps(edit))
    own = {"type": "client", "action": "edit", "id": "u1", "body": "hi, edited"}
    chat.ws.write_message(json.dumps(own))  # its own message: allowed
    await chat.until(lambda c: c.messages["u1"]["body"] == "hi, edited", "the own edit")
    assert chat.messages[reply[0]["id"]]["body"] == "hello"  # the agent's is untouched


async def test_the_chat_follows_its_notebook_when_renamed(
    api: Api, open_chat: Any, tmp_path: Path, jp_fetch: Any, jp_root_dir: Path
) -> None:
    model = write_script(tmp_path / "s.json", turn("before"), turn("after the move"))
    notebook = {"type": "notebook", "content": {"cells": [], "metadata": {}, "nbformat": 4,
                                                 "nbformat_minor": 5}}  # fmt: skip
    await jp_fetch("api", "contents", "old.ipynb", method="PUT", body=json.dumps(notebook))
    await api("POST", "sessions", body={"notebook": "old.ipynb", "model": model})
    folder = json.dumps({"type": "directory"})
    await jp_fetch("api", "contents", "sub", method="PUT", body=folder)
    chat, path, sid = await open_chat("old.ipynb")
    chat.send("u1", "one")
    await chat.until(lambda c: [m for m in c.by(AGENT) if m["body"] == "before"], "before")
    await jp_fetch(
        "api", "contents", "old.ipynb", method="PATCH", body=json.dumps({"path": "sub/new.ipynb"})
    )
    moved = jp_root_dir / "agent-chats/sub/new.chat"
    await until(lambda: moved.is_file(), "the chat file moved along")  # the rename's listener
    status, body = await api("POST", "chats", body={"notebook": "sub/new.ipynb"})
    assert status == 200 and body == {"path": "agent-chats/sub/new.chat", "session": sid}
    assert not (jp_root_dir / path).exists()
    chat.send("u2", "two")  # the same chat, still mirrored at its new path
    await chat.until(lambda c: [m for m in c.by(AGENT) if m["body"] == "after the move"], "after")


async def test_attached_files_and_cells_go_with_the_prompt(
    api: Api, open_chat: Any, tmp_path: Path, jp_root_dir: Path
) -> None:
    model = write_script(tmp_path / "s.json", turn("seen"), turn("seen again"))
    await api("POST", "sessions", body={"notebook": "att.ipynb", "model": model})
    (jp_root_dir / "data.csv").write_text(
        "region,units\nnorth,120\nAPI_KEY=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z\n"
    )
    (jp_root_dir / "big.txt").write_text("x" * 100_000)
    chat, _, sid = await open_chat("att.ipynb")
    files = [{"type": "file", "value": "data.csv"}, {"type": "file", "value": "big.txt"}]
    chat.send("u1", "look at these", attachments=files)
    await chat.until(lambda c: [m for m in c.by(AGENT) if m["body"] == "seen"], "the answer")
    _, transcript = await api("GET", f"sessions/{sid}/messages")
    (prompt,) = [m["content"] for m in transcript["messages"] if m["role"] == "user"]
    assert "(attached: data.csv)" in prompt and "north,120" in prompt
    assert "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z" not in prompt  # redacted, as the notebook context is
    assert "(attached: big.txt, not sent" in prompt and "xxxx" not in prompt


async def test_a_kernel_call_without_a_kernel_waits_and_resume_asks_again(
    api: Api, open_chat: Any, tmp_path: Path, jp_fetch: Any
) -> None:
    model = write_script(tmp_path / "s.json", turn("", ("list_variables", {})), turn("listed"))
    _, created = await api("POST", "sessions", body={"notebook": "w.ipynb", "model": model})
    sid = created["id"]
    body = {"tools": [], "run_cell": True, "list_variables": True}
    assert (await api("PUT", f"sessions/{sid}/tools", body=body))[0] == 200
    chat, _, _ = await open_chat("w.ipynb")
    chat.send("u1", "what is there?")
    await chat.until(
        lambda c: [
            m for m in c.by(AGENT) if "no kernel running" in m["body"] and "/resume" in m["body"]
        ],
        "the note that the kernel is missing",
    )
    assert chat.card("running", "list_variables")  # still waiting for the kernel
    kernel = {"path": "w.ipynb", "type": "notebook", "kernel": {"name": "python3"}}
    await jp_fetch("api", "sessions", method="POST", body=json.dumps(kernel))
    chat.send("u2", "/resume")
    await chat.until(lambda c: c.card("done", "list_variables"), "list_variables answered")
    await chat.until(lambda c: [m for m in c.by(AGENT) if m["body"] == "listed"], "the answer")
