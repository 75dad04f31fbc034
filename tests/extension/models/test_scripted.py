"""The scripted provider, through litellm itself and through the LiteLLMModel adapter."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import litellm
import pytest

from agentspace.errors import ConfigError
from agentspace.models import scripted
from agentspace.models.assembler import StreamAssembler
from agentspace.models.base import Completion, StreamPart, TextDelta, ToolCallBegin
from agentspace.models.litellm_model import LiteLLMModel

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "write_file",
            "description": "Write a file.",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
        },
    }
]
USER = [{"role": "user", "content": "hello there"}]


def write(path: Path, turns: list[dict[str, Any]]) -> str:
    path.write_text(json.dumps({"turns": turns}))
    return f"scripted/{path}"


async def via_litellm(model: str, messages: list[dict[str, Any]]) -> tuple[list[Any], Completion]:
    response = await litellm.acompletion(model=model, messages=messages, tools=TOOLS, stream=True)
    assembler = StreamAssembler()
    chunks = []
    async for chunk in response:
        chunks.append(chunk)
        assembler.feed(chunk)
    return chunks, assembler.finish()


async def via_model(model: str, messages: list[dict[str, Any]]) -> list[StreamPart]:
    return [
        part
        async for part in LiteLLMModel(retries=0).stream(messages, TOOLS, model=model, params={})
    ]


def test_register_is_idempotent() -> None:
    scripted.register()
    scripted.register()
    providers = [p["provider"] for p in litellm.custom_provider_map]
    assert providers.count("scripted") == 1


@pytest.mark.parametrize("text", ["", "one", "  two  words\n\nand\ttabs  ", "ha " * 300])
def test_split_words_concatenates_to_the_text(text: str) -> None:
    pieces = scripted.split_words(text)
    assert "".join(pieces) == text
    run = longest = 0
    for i, piece in enumerate(pieces):
        run = run + 1 if i and pieces[i - 1] == piece else 1
        longest = max(longest, run)
    assert longest < 100


async def test_echo_through_litellm() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "first"}]},
        {"role": "assistant", "content": "ok"},
        *USER,
    ]
    chunks, done = await via_litellm("scripted/echo", messages)
    assert done.text == "You said: hello there"
    assert done.finish_reason == "stop"
    assert len(chunks) >= 4  # word-sized deltas, not one blob


async def test_echo_non_streaming_and_sync() -> None:
    response = await litellm.acompletion(model="scripted/echo", messages=USER)
    assert response.choices[0].message.content == "You said: hello there"
    sync = litellm.completion(model="scripted/echo", messages=USER)
    assert sync.choices[0].message.content == "You said: hello there"
    assert sync.usage.prompt_tokens == 2


async def test_script_text_then_tool_calls(tmp_path: Path) -> None:
    model = write(
        tmp_path / "s.json",
        [
            {
                "text": "Writing  it now.",
                "tool_calls": [
                    {"name": "write_file", "arguments": {"path": "a.txt", "content": "x"}},
                    {"name": "write_file", "arguments": '{"path": "b.txt"}'},
                ],
            },
        ],
    )
    _, done = await via_litellm(model, USER)
    assert done.text == "Writing  it now."
    assert [(c.id, c.name, json.loads(c.arguments)) for c in done.tool_calls] == [
        ("call_0_0", "write_file", {"path": "a.txt", "content": "x"}),
        ("call_0_1", "write_file", {"path": "b.txt"}),
    ]
    assert done.finish_reason == "tool_calls"

    parts = await via_model(model, USER)
    completion = parts[-1]
    assert isinstance(completion, Completion)
    assert completion.tool_calls == done.tool_calls
    assert [p for p in parts if isinstance(p, ToolCallBegin)] == [
        ToolCallBegin("call_0_0", "write_file"),
        ToolCallBegin("call_0_1", "write_file"),
    ]
    assert "".join(p.text for p in parts if isinstance(p, TextDelta)) == "Writing  it now."
    assert completion.usage.input_tokens == 2
    assert completion.usage.output_tokens > 0
    assert completion.usage.cost == 0.0


async def test_turn_is_chosen_by_assistant_count_then_script_finishes(tmp_path: Path) -> None:
    model = write(tmp_path / "two.json", [{"text": "first"}, {"text": "second"}])
    history = [
        *USER,
        {"role": "assistant", "content": "first"},
        {"role": "user", "content": "again"},
    ]
    assert (await via_litellm(model, USER))[1].text == "first"
    assert (await via_litellm(model, history))[1].text == "second"
    finished = [*history, {"role": "assistant", "content": "second"}, *USER]
    parts = await via_model(model, finished)
    assert isinstance(parts[-1], Completion)
    assert parts[-1].text == "(script finished)"


async def test_relative_script_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "rel.json").write_text(json.dumps({"turns": [{"text": "relative"}]}))
    monkeypatch.chdir(tmp_path)
    parts = await via_model("scripted/rel.json", USER)
    assert isinstance(parts[-1], Completion) and parts[-1].text == "relative"


async def test_repetitive_text_survives_litellms_repetition_guard(tmp_path: Path) -> None:
    model = write(tmp_path / "ha.json", [{"text": "ha " * 300}])
    parts = await via_model(model, USER)
    assert isinstance(parts[-1], Completion) and parts[-1].text == "ha " * 300


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot be read as a script file"),
        ("{not json", "not valid JSON (line 1"),
        ('{"turns": [{"txt": "x"}]}', "turns.0.txt"),
        ('{"turns": [{"tool_calls": [{"arguments": {}}]}]}', "turns.0.tool_calls.0.name"),
        ('{"turns": [{"delay_ms": -1}]}', "turns.0.delay_ms"),
    ],
)
async def test_bad_script_is_a_config_error(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as info:
        await via_model(f"scripted/{path}", USER)
    assert expected in info.value.message
    assert str(path) in info.value.message
    # Straight through litellm the ConfigError is wrapped, but still the cause.
    with pytest.raises(Exception) as raw:
        await via_litellm(f"scripted/{path}", USER)
    assert "scripted model" in str(raw.value)


async def test_script_edits_are_picked_up(tmp_path: Path) -> None:
    path = tmp_path / "live.json"
    model = write(path, [{"text": "before"}])
    assert (await via_litellm(model, USER))[1].text == "before"
    write(path, [{"text": "after, longer"}])
    assert (await via_litellm(model, USER))[1].text == "after, longer"


async def test_delay_ms_is_cancellable(tmp_path: Path) -> None:
    model = write(tmp_path / "slow.json", [{"text": "a b c d", "delay_ms": 600_000}])
    first = asyncio.Event()
    seen: list[StreamPart] = []

    async def consume() -> None:
        async for part in LiteLLMModel().stream(USER, [], model=model, params={}):
            seen.append(part)
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert seen == [TextDelta("a ")]
