"""Trimming a transcript to a context window."""

from __future__ import annotations

from typing import Any

import pytest

from agentspace.engine.history import build_prompt, to_wire
from agentspace.errors import ContextWindowError


def conversation(turns: int, size: int = 400) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(turns):
        call = {"id": f"c{i}", "type": "function", "function": {"name": "t", "arguments": "{}"}}
        out += [
            {"role": "user", "content": f"q{i} " + "x" * size, "id": f"u{i}"},
            {"role": "assistant", "content": None, "tool_calls": [call], "id": f"a{i}"},
            {"role": "tool", "tool_call_id": f"c{i}", "content": "r" * size, "id": f"t{i}"},
            {"role": "assistant", "content": f"answer {i}", "id": f"b{i}"},
        ]
    return out


def test_everything_fits_and_internal_keys_are_stripped() -> None:
    prompt = build_prompt("sys", conversation(2), window=100_000, max_tool_chars=10_000)
    assert prompt[0] == {"role": "system", "content": "sys"}
    assert len(prompt) == 9
    assert all("id" not in m for m in prompt)


def test_oldest_whole_turns_are_dropped_and_the_cut_is_at_a_user_message() -> None:
    prompt = build_prompt("sys", conversation(40), window=3000, max_tool_chars=10_000)
    assert prompt[1]["role"] == "user"
    assert prompt[-1]["content"] == "answer 39"
    assert "earlier messages of this conversation were left out" in prompt[0]["content"]
    kept_calls = {c["id"] for m in prompt for c in m.get("tool_calls") or []}
    kept_results = {m["tool_call_id"] for m in prompt if m["role"] == "tool"}
    assert kept_calls == kept_results  # no orphaned tool result or call


def test_long_tool_results_are_truncated_with_a_marker() -> None:
    wire = to_wire({"role": "tool", "tool_call_id": "c", "content": "a" * 5000}, 1000)
    assert wire["content"].startswith("a" * 1000)
    assert "4000 more characters truncated" in wire["content"]


def test_a_turn_too_long_for_the_window_is_a_clear_error() -> None:
    huge = [{"role": "user", "content": "x" * 100_000}]
    with pytest.raises(ContextWindowError, match="context window"):
        build_prompt("sys", huge, window=1000, max_tool_chars=1000)


def test_images_of_tool_results_follow_the_turns_results_as_a_user_message() -> None:
    from agentspace.engine.history import estimate_tokens, wire_messages

    image = {"mime": "image/png", "data": "iVBORw0KGgo" + "A" * 40_000, "label": "cell 3"}
    function = {"name": "read_notebook", "arguments": "{}"}
    calls = [{"id": f"t{i}", "type": "function", "function": function} for i in (1, 2)]
    transcript = [
        {"role": "user", "content": "look"},
        {"role": "assistant", "content": "", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "t1", "content": "one", "images": [image]},
        {"role": "tool", "tool_call_id": "t2", "content": "two"},
        {"role": "assistant", "content": "seen"},
    ]
    wire = wire_messages(transcript, 10_000)
    assert [m["role"] for m in wire] == ["user", "assistant", "tool", "tool", "user", "assistant"]
    assert "images" not in wire[2]  # tool messages carry text only
    parts = wire[4]["content"]
    assert parts[0] == {"type": "text", "text": "Image 1 of tool call t1: cell 3"}
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGgo")
    assert estimate_tokens(wire[4]) < 1_100  # an image counts as ~1,000 tokens, not its base64
