"""Cards in jupyter-ai's tool-call shape (``metadata.tool_calls``), and the writer stamping it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, get_args

from jupyterlab_chat.websocket_model import WsChatModel

from agentspace.server.chat import cards, jupyterai
from agentspace.server.chat.projection import AGENT, ChatProjection, Post, Revise
from agentspace.server.chat.writer import ChatWriter

CALL = "call_0123456789abcdef"
ACP_STATUSES = {"pending", "in_progress", "completed", "failed"}
ACP_KINDS = {"read", "edit", "delete", "move", "search", "execute", "think", "fetch", "other"}


def started(p: ChatProjection, tool: str, args: str) -> dict[str, Any]:
    p.apply(1, {"type": "TOOL_CALL_START", "toolCallId": CALL, "toolCallName": tool})
    p.apply(2, {"type": "TOOL_CALL_ARGS", "toolCallId": CALL, "delta": args})
    p.apply(3, {"type": "TOOL_CALL_END", "toolCallId": CALL})
    return p.cards[CALL]


def held(p: ChatProjection, tool: str, **meta: Any) -> None:
    interrupt: dict[str, Any] = {"id": CALL, "toolCallId": CALL, "reason": "approval"}
    interrupt["metadata"] = {"tool": tool, "needs_approval": True, **meta}
    p.apply(
        4, {"type": "RUN_FINISHED", "outcome": {"type": "interrupt", "interrupts": [interrupt]}}
    )


def decided(p: ChatProjection, **value: Any) -> None:
    value = {"tool_call_id": CALL, **value}
    p.apply(5, {"type": "CUSTOM", "name": "agentspace.decision", "value": value})


def result(p: ChatProjection, text: str) -> None:
    p.apply(6, {"type": "TOOL_CALL_RESULT", "toolCallId": CALL, "content": text})


def row(card: dict[str, Any]) -> dict[str, Any]:
    (call,) = jupyterai.jupyter_ai_metadata(card)["tool_calls"]
    assert "session_id" not in call and "diffs" not in call  # never their buttons, never a diff
    assert call["status"] in ACP_STATUSES and call["kind"] in ACP_KINDS
    return call


def test_every_status_maps_to_one_of_acps() -> None:
    assert set(jupyterai.JAI_STATUS) == set(get_args(cards.CardStatus))
    assert set(jupyterai.JAI_STATUS.values()) <= ACP_STATUSES


def test_an_asked_call_is_pending_without_buttons_then_says_who_approved_it() -> None:
    p = ChatProjection("s1")
    card = started(p, "shell", '{"command": "ls -la\\npwd"}')
    assert row(card) == {
        "tool_call_id": CALL,
        "title": "shell: ls -la",
        "kind": "execute",
        "status": "pending",
        "raw_input": {"command": "ls -la\npwd"},
    }
    held(p, "shell")
    assert row(card)["permission_status"] == "pending"
    assert "permission_options" not in row(card)  # their "Allow?" buttons need options
    decided(p, decision="approve", by="bob")
    assert row(card)["status"] == "in_progress"
    result(p, "a.txt")
    assert row(card) == {
        "tool_call_id": CALL,
        "title": "shell: ls -la",
        "kind": "execute",
        "status": "completed",
        "raw_input": {"command": "ls -la\npwd"},
        "raw_output": "a.txt",
        "permission_status": "resolved",
        "permission_options": [
            {"option_id": "approve", "name": "approved by bob", "kind": "allow_once"}
        ],
        "selected_option_id": "approve",
    }


def test_a_rejection_is_a_failed_call_with_a_reject_option_naming_who_and_why() -> None:
    p = ChatProjection("s1")
    card = started(p, "write_file", '{"path": "notes/a.md", "content": "x"}')
    held(p, "write_file", preview="--- a\n+++ a\n+x")
    decided(p, decision="reject", reason="not now", by="dee")
    result(p, "The user rejected this call: not now")
    call = row(card)
    assert call["status"] == "failed" and call["kind"] == "edit"
    assert call["locations"] == ["notes/a.md"] and call["title"] == "write_file: notes/a.md"
    assert call["permission_options"] == [
        {"option_id": "reject", "name": "rejected by dee: not now", "kind": "reject_once"}
    ]
    assert call["selected_option_id"] == "reject"


def test_an_edit_shows_the_edited_arguments_and_always_allow_is_allow_always() -> None:
    p = ChatProjection("s1")
    card = started(p, "edit_cell", '{"cell_id": "c1", "source": "1"}')
    held(p, "edit_cell")
    args = {"cell_id": "c1", "source": "2"}
    decided(p, decision="edit", arguments=args, remember=True, by="eve")
    call = row(card)
    assert call["raw_input"] == args and call["title"] == "edit_cell: c1"
    assert call["permission_options"] == [
        {"option_id": "edit", "name": "edited by eve", "kind": "allow_always"}
    ]


def test_a_call_nobody_was_asked_about_has_no_permission() -> None:
    p = ChatProjection("s1")
    card = started(p, "start_process", '{"command": "python -m http.server"}')
    decided(p, decision="approve", auto=True, rule="server: *")  # a policy let it through
    assert "permission_status" not in row(card) and row(card)["status"] == "in_progress"
    kernel = cards.new_card("s1", CALL, "run_cell")
    kernel.update(arguments={"code": "df.head()"}, status="done", result="ok")
    kernel["decision"] = {"decision": "result"}  # needed no approval: the kernel ran it
    assert "permission_status" not in row(kernel)
    kernel["decision"] = {"decision": "result", "by": "ann"}  # approved in the cell, then run
    assert row(kernel)["permission_options"][0]["name"] == "approved by ann, run in the kernel"
    assert row(kernel)["title"] == "run_cell: df.head()" and row(kernel)["kind"] == "execute"


def test_a_stopped_or_failed_call_is_failed_and_long_texts_are_cut() -> None:
    p = ChatProjection("s1")
    card = started(p, "summarise", '{"frame": "' + "x" * 5000 + '"}')
    p.apply(9, {"type": "RUN_FINISHED", "outcome": {"type": "cancelled"}})
    call = row(card)
    assert card["status"] == "cancelled" and call["status"] == "failed"
    assert call["title"] == "summarise" and call["kind"] == "other"
    assert len(call["raw_input"]["frame"]) == jupyterai.META_LIMIT + 2
    assert card["arguments"]["frame"] == "x" * 5000  # the card keeps it all
    broken = cards.new_card("s1", CALL, "shell")
    cards.set_arguments(broken, '{"command": "ls')  # never parsed: the text as it came
    cards.set_result(broken, "Error: " + "y" * 5000)
    broken["status"] = "failed"
    call = row(broken)
    assert call["raw_input"] == '{"command": "ls' and call["status"] == "failed"
    assert call["raw_output"].endswith("\n…") and call["title"] == "shell"


def meta(model: WsChatModel) -> dict[str, Any]:
    return model.get_messages()[0].metadata or {}


def test_the_writer_stamps_a_cards_metadata_beside_its_key_and_keeps_it_current(
    tmp_path: Path,
) -> None:
    async def go() -> None:
        model = WsChatModel(path="a.chat", root_dir=tmp_path)
        model.load_from_file()
        writer = ChatWriter(model)
        card = cards.new_card("s1", CALL, "shell")
        cards.set_arguments(card, '{"command": "ls"}')
        key = f"tool:{CALL}"
        writer.apply([Post(key, AGENT, cards.fallback(card), cards.bundle(card))])
        writer.apply([Post("text:m", AGENT, "words")])
        card_message, text_message = model.get_messages()
        assert card_message.metadata == {
            "tool_calls": [jupyterai.jupyter_ai_tool_call(card)],
            "agentspace": {"key": key},
        }
        assert text_message.metadata == {"agentspace": {"key": "text:m"}}
        done = {**card, "status": "done", "result": "a.txt"}
        writer.apply([Revise(key, cards.fallback(done), cards.bundle(done))])
        (call,) = meta(model)["tool_calls"]
        assert call["status"] == "completed" and call["raw_output"] == "a.txt"
        assert meta(model)["agentspace"] == {"key": key}
        # A chat written before cards carried it (or by anything else): a rebuild adds it.
        stale = model.get_messages()[0]
        stale.metadata = {"agentspace": {"key": key}}
        model.update_message(stale)
        writer.apply([Post(key, AGENT, cards.fallback(done), cards.bundle(done))])
        assert meta(model)["tool_calls"] == [call]
        await writer.close()

    asyncio.run(go())
