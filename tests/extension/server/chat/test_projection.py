"""Events → chat operations: the projection fed event lists, as the store keeps them."""

from __future__ import annotations

from typing import Any

from agentspace.server.chat import cards
from agentspace.server.chat.mirror import collapse
from agentspace.server.chat.projection import (
    AGENT,
    KERNEL,
    ChatProjection,
    Op,
    Post,
    Revise,
    Writing,
    sender_of,
)

CALL = "call_0123456789abcdef"


def feed(events: list[dict[str, Any]], projection: ChatProjection | None = None) -> list[Op]:
    p = projection or ChatProjection("s1", "/base/")
    ops: list[Op] = []
    for seq, event in enumerate(events, 1):
        ops += p.apply(seq, event)
    return ops


def prompt(mid: str, text: str, name: str | None = "alice") -> list[dict[str, Any]]:
    return [
        {"type": "TEXT_MESSAGE_START", "messageId": mid, "role": "user", "name": name},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": mid, "delta": text},
        {"type": "TEXT_MESSAGE_END", "messageId": mid},
    ]


def words(mid: str, *deltas: str) -> list[dict[str, Any]]:
    return [
        {"type": "TEXT_MESSAGE_START", "messageId": mid, "role": "assistant"},
        *({"type": "TEXT_MESSAGE_CONTENT", "messageId": mid, "delta": d} for d in deltas),
        {"type": "TEXT_MESSAGE_END", "messageId": mid},
    ]


def call(name: str, args: str) -> list[dict[str, Any]]:
    half = len(args) // 2
    return [
        {"type": "TOOL_CALL_START", "toolCallId": CALL, "toolCallName": name},
        {"type": "TOOL_CALL_ARGS", "toolCallId": CALL, "delta": args[:half]},
        {"type": "TOOL_CALL_ARGS", "toolCallId": CALL, "delta": args[half:]},
        {"type": "TOOL_CALL_END", "toolCallId": CALL},
    ]


def interrupt(preview: str | None = None, **meta: Any) -> dict[str, Any]:
    metadata = {"tool": "write_file", "needs_approval": True, **meta}
    if preview:
        metadata["preview"] = preview
    return {
        "type": "RUN_FINISHED",
        "outcome": {
            "type": "interrupt",
            "interrupts": [
                {"id": CALL, "toolCallId": CALL, "reason": "approval", "metadata": metadata}
            ],
        },
    }


def decision(**value: Any) -> dict[str, Any]:
    return {
        "type": "CUSTOM",
        "name": "agentspace.decision",
        "value": {"tool_call_id": CALL, **value},
    }


def card_of(ops: list[Op]) -> dict[str, Any]:
    last = [op for op in ops if isinstance(op, Post | Revise) and op.mime][-1]
    assert last.mime is not None
    data: dict[str, Any] = last.mime["data"][cards.MIME]
    return data


def test_a_prompt_is_posted_whole_with_its_sender_and_the_reply_streams() -> None:
    start = {"type": "RUN_STARTED", "runId": "r1"}
    ops = feed([start, *prompt("m1", "hi"), *words("m2", "Hel", "lo", "!")])
    assert ops[0] == Writing(True)
    assert isinstance(ops[1], Post) and ops[1].key == "run:r1" and ops[1].mime is not None
    assert ops[1].mime["data"][cards.RUN_MIME]["status"] == "running"
    assert ops[2] == Post("user:m1", "alice", "hi")
    assert ops[3] == Post("text:m2", AGENT, "Hel")
    assert ops[4:6] == [
        Revise("text:m2", body="Hello", streaming=True),
        Revise("text:m2", body="Hello!", streaming=True),
    ]
    assert ops[6] == Revise("text:m2", body="Hello!")  # the end: sent at once


def test_a_run_card_says_how_the_run_ended_with_its_usage() -> None:
    p = ChatProjection("s1")
    feed([{"type": "RUN_STARTED", "runId": "r1"}], p)
    usage = [{"inputTokens": 1200, "outputTokens": 34}]
    (_, end) = p.apply(5, {"type": "RUN_FINISHED", "outcome": {"type": "success"}, "usage": usage})
    assert isinstance(end, Revise) and end.key == "run:r1" and end.mime is not None
    assert end.mime["data"][cards.RUN_MIME]["status"] == "finished"
    assert end.body == "✓ done · 1,200 tokens in, 34 out"
    feed([{"type": "RUN_STARTED", "runId": "r2"}], p)
    ops = p.apply(9, {"type": "RUN_FINISHED", "outcome": {"type": "cancelled"}})
    assert [op.body for op in ops if isinstance(op, Revise) and op.key == "run:r2"] == ["⏹ stopped"]


def test_a_prompt_from_a_kernel_is_the_kernels_and_an_empty_reply_posts_nothing() -> None:
    assert sender_of("kernel:anonymous-1") == KERNEL and sender_of(None) == KERNEL
    assert sender_of("bob") == "bob"
    ops = feed([*prompt("m1", "from a cell", "kernel:x"), *words("m2")])
    assert ops == [Post("user:m1", KERNEL, "from a cell")]


def test_a_held_call_becomes_pending_with_its_diff_then_approved_and_done() -> None:
    p = ChatProjection("s1")
    ops = feed(call("write_file", '{"path": "a.txt", "content": "x"}'), p)
    assert isinstance(ops[0], Post) and ops[0].key == f"tool:{CALL}"
    assert [op.streaming for op in ops[1:3] if isinstance(op, Revise)] == [True, True]
    card = card_of(ops)
    assert card["arguments"] == {"path": "a.txt", "content": "x"} and card["status"] == "calling"
    card = card_of(p.apply(10, interrupt(preview="--- a.txt\n+++ a.txt\n+x")))
    assert card["status"] == "pending" and card["preview"].endswith("+x")
    assert card["can_remember"] is True
    card = card_of(p.apply(11, decision(decision="approve", by="bob")))
    assert card["status"] == "running" and card["decision"] == {"decision": "approve", "by": "bob"}
    card = card_of(p.apply(12, {"type": "TOOL_CALL_RESULT", "toolCallId": CALL, "content": "ok"}))
    assert card["status"] == "done" and card["result"] == "ok" and not card["is_error"]


def test_an_edited_call_shows_the_new_arguments_without_the_old_diff() -> None:
    p = ChatProjection("s1")
    feed([*call("write_file", '{"path": "a"}'), interrupt(preview="+old")], p)
    card = card_of(p.apply(20, decision(decision="edit", arguments={"path": "b"}, by="c")))
    assert card["arguments"] == {"path": "b"} and card["preview"] is None
    note = "Note: the user edited the arguments of this call\nwritten b"
    card = card_of(p.apply(21, {"type": "TOOL_CALL_RESULT", "toolCallId": CALL, "content": note}))
    assert card["result"] == "written b"


def test_a_rejected_call_keeps_its_reason_and_a_failed_one_is_an_error() -> None:
    p = ChatProjection("s1")
    feed([*call("shell", '{"command": "rm -rf x"}'), interrupt(tool="shell")], p)
    card = card_of(p.apply(9, decision(decision="reject", reason="too risky", by="dee")))
    assert card["status"] == "rejected"
    assert cards.decided(card) == "rejected by dee: too risky"
    p2 = ChatProjection("s1")
    feed(call("shell", '{"command": "false"}'), p2)
    card = card_of(
        p2.apply(9, {"type": "TOOL_CALL_RESULT", "toolCallId": CALL, "content": "Error: exit 1"})
    )
    assert card["status"] == "failed" and card["is_error"]


def test_a_call_allowed_by_policy_says_so_and_its_process_and_preview_are_linked() -> None:
    p = ChatProjection("s1", "/base/")
    feed(call("start_process", '{"command": "python -m http.server"}'), p)
    feed([decision(decision="approve", auto=True, rule="server: *")], p)
    p.apply(
        30,
        {
            "type": "CUSTOM",
            "name": "agentspace.process",
            "value": {"event": "started", "name": "web"},
        },
    )
    ops = p.apply(
        31,
        {
            "type": "CUSTOM",
            "name": "agentspace.preview",
            "value": {"port": 8000, "url": "/base/agentspace/preview/s1/8000/"},
        },
    )
    card = card_of(ops)
    assert cards.decided(card) == "allowed by policy (server: *)"
    assert card["links"] == [
        {"label": "output of web", "path": "agentspace/api/sessions/s1/processes/web/output"},
        {"label": "preview :8000", "path": "agentspace/preview/s1/8000/"},
    ]


def test_a_stop_cancels_open_cards_and_a_failed_run_says_why() -> None:
    p = ChatProjection("s1")
    feed(call("shell", '{"command": "sleep 100"}'), p)
    p.apply(8, decision(decision="approve", by="a"))
    ops = p.apply(9, {"type": "RUN_FINISHED", "outcome": {"type": "cancelled"}})
    assert ops[0] == Writing(False) and card_of(ops)["status"] == "cancelled"
    ops = feed([{"type": "RUN_ERROR", "message": "the provider is down; try again"}])
    assert ops[-1] == Post("note:1", AGENT, "⚠️ **The run failed:** the provider is down; try again")


def test_the_context_sent_with_a_prompt_is_attached_to_it() -> None:
    value = {
        "message_id": "m1",
        "notebook": "a.ipynb",
        "cell": "c1",
        "cells": ["c0"],
        "error": None,
    }
    ops = feed(
        [*prompt("m1", "why?"), {"type": "CUSTOM", "name": "agentspace.context", "value": value}]
    )
    assert ops[-1] == Revise("user:m1", attach=value)


def test_a_kernel_call_that_needs_no_approval_runs_and_cannot_be_remembered() -> None:
    p = ChatProjection("s1")
    feed(call("summarise", '{"frame": "df"}'), p)
    event = interrupt(tool="summarise", needs_approval=False)
    event["outcome"]["interrupts"][0]["reason"] = "kernel_tool"
    card = card_of(p.apply(5, event))
    assert card["status"] == "running" and card["can_remember"] is False


def test_a_replay_collapses_to_one_post_per_message_with_the_end_state() -> None:
    events = [
        *prompt("m1", "go"),
        {
            "type": "CUSTOM",
            "name": "agentspace.context",
            "value": {"message_id": "m1", "notebook": "n.ipynb"},
        },
        *words("m2", "a", "b", "c"),
        *call("write_file", '{"path": "x"}'),
        interrupt(),
        decision(decision="approve", by="z"),
        {"type": "TOOL_CALL_RESULT", "toolCallId": CALL, "content": "done"},
    ]
    ops = collapse(feed(events))
    posts = [op for op in ops if isinstance(op, Post)]
    assert [op.key for op in posts] == ["user:m1", "text:m2", f"tool:{CALL}"]
    assert posts[1].body == "abc"
    assert card_of([posts[2]])["status"] == "done"
    (attach,) = [op for op in ops if isinstance(op, Revise)]
    assert attach.key == "user:m1" and attach.attach is not None


def test_the_text_fallback_names_the_commands_and_cannot_be_broken_out_of() -> None:
    card = cards.new_card("s1", CALL, "shell")
    cards.set_arguments(card, '{"command": "echo ```; <img src=x onerror=alert(1)>"}')
    card["status"] = "pending"
    text = cards.fallback(card)
    assert f"/approve {CALL}" in text and f"/reject {CALL}" in text and f"/edit {CALL}" in text
    assert "````bash\necho ```; <img" in text  # a longer fence than any run inside
    cards.set_result(card, "x" * (cards.RESULT_LIMIT + 5))
    assert card["result"].endswith("(5 more characters: the transcript has them all)")


def test_a_turn_paused_for_a_decision_keeps_one_run_card_as_it_goes_on() -> None:
    p = ChatProjection("s1")
    feed([{"type": "RUN_STARTED", "runId": "r1"}, *call("write_file", '{"path": "a"}')], p)
    ops = p.apply(20, interrupt())
    assert [op.body for op in ops if isinstance(op, Revise) and op.key == "run:r1"] == [
        "‖ waiting for a decision"
    ]
    ops = p.apply(21, {"type": "RUN_STARTED", "runId": "r2"})  # the decision resumed it
    assert not [op for op in ops if isinstance(op, Post)]
    (revise,) = [op for op in ops if isinstance(op, Revise)]
    assert revise.key == "run:r1" and revise.mime is not None
    assert revise.mime["data"][cards.RUN_MIME]["status"] == "running"
