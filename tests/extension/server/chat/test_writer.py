"""Operations applied to a real jupyterlab-chat model: batching, keys, coalesced saves."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from jupyterlab_chat.models import ChatMessageAction, ChatMessageEvent
from jupyterlab_chat.websocket_model import WsChatModel

from agentspace.server.chat.projection import AGENT, Post, Revise, Writing
from agentspace.server.chat.writer import ChatWriter


def model_in(root: Path) -> WsChatModel:
    model = WsChatModel(path="a.chat", root_dir=root)
    model.load_from_file()
    return model


def test_streamed_text_is_sent_at_most_once_an_interval_and_the_end_at_once(tmp_path: Path) -> None:
    async def go() -> None:
        model = model_in(tmp_path)
        updated = asyncio.Event()
        bodies: list[str] = []

        def seen(event: ChatMessageEvent) -> None:
            if event.action == ChatMessageAction.SERVER_MSG_UPDATED:
                bodies.append(event.message.body)
                updated.set()

        model.observe_messages(seen)
        writer = ChatWriter(model, interval=0.05)
        writer.apply([Post("text:m", AGENT, "0")])
        text = "0"
        for i in range(1, 100):  # one loop turn: all but the last are folded away
            text += str(i % 10)
            writer.apply([Revise("text:m", body=text, streaming=True)])
        assert bodies == []  # within the interval of the post: held back
        await asyncio.wait_for(updated.wait(), 5)
        assert bodies == [text]  # one update carries all of it
        writer.apply([Revise("text:m", body=text + "!", streaming=True)])
        writer.apply([Revise("text:m", body=text + "!.")])  # the end goes out now
        assert bodies[-1] == text + "!."
        (message,) = model.get_messages()
        assert message.body == text + "!." and message.sender == AGENT
        assert message.metadata == {"agentspace": {"key": "text:m"}}
        await writer.close()

    asyncio.run(go())


def test_a_post_of_a_known_key_revises_and_a_typed_message_can_be_keyed(tmp_path: Path) -> None:
    async def go() -> None:
        model = model_in(tmp_path)
        writer = ChatWriter(model)
        writer.apply([Post("note:1", AGENT, "first", time=1000.0)])
        writer.apply([Post("note:1", AGENT, "second")])
        (message,) = model.get_messages()
        assert message.body == "second" and message.time == 1000.0
        writer.apply([Writing(True)])  # no client: nothing to tell, nothing breaks
        await writer.close()
        again = ChatWriter(model_in(tmp_path))  # from the saved file
        assert again.index == {"note:1": message.id}

    asyncio.run(go())


def test_saves_are_coalesced_atomic_and_flushed_on_close(tmp_path: Path) -> None:
    async def go() -> None:
        model = model_in(tmp_path)
        writer = ChatWriter(model)
        assert writer.saver is not None
        for i in range(50):
            writer.apply([Post(f"note:{i}", AGENT, f"message {i}")])
        assert writer.saver.writes == 0  # each change asked for a save: none done yet
        await writer.close()
        assert writer.saver.writes == 1
        saved = json.loads((tmp_path / "a.chat").read_text())
        assert [m["body"] for m in saved["messages"]] == [f"message {i}" for i in range(50)]
        assert saved["users"][AGENT]["bot"] is True

    asyncio.run(go())
    assert [p.name for p in tmp_path.iterdir()] == ["a.chat"]  # no temporary file left


def test_a_decided_card_names_who_decided_as_the_chat_shows_them(tmp_path: Path) -> None:
    from jupyterlab_chat.models import User

    from agentspace.server.chat import cards

    async def go() -> None:
        model = model_in(tmp_path)
        model.set_user(User(username="u123", name="alice", display_name="Alice A."))
        writer = ChatWriter(model)
        card = cards.new_card("s1", "call_1", "shell")
        card["status"], card["decision"] = "running", {"decision": "approve", "by": "u123"}
        writer.apply([Post("tool:call_1", AGENT, cards.fallback(card), cards.bundle(card))])
        (message,) = model.get_messages()
        shown = message.mime_model["data"][cards.MIME]  # type: ignore[index]
        assert shown["decision"] == {"decision": "approve", "by": "u123", "by_name": "Alice A."}
        assert "approved by Alice A." in message.body
        assert writer.name_of("kernel:anonymous-9") == "Notebook kernel"
        assert writer.name_of("someone-else") == "someone-else"
        await writer.close()

    asyncio.run(go())
