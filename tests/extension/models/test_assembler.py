"""StreamAssembler: provider chunk shapes in, ordered parts and one assembled turn out.

Every case runs twice: on plain OpenAI-shaped dicts and on litellm's own
``ModelResponseStream`` objects, because the adapter feeds the latter and other
callers may feed the former.
"""

from __future__ import annotations

from typing import Any

import pytest

from agentspace.models.assembler import StreamAssembler
from agentspace.models.base import (
    Completion,
    StreamPart,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallBegin,
)


def chunk(
    content: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    finish: str | None = None,
    usage: dict[str, int] | None = None,
    no_choices: bool = False,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "choices": []
        if no_choices
        else [
            {
                "index": 0,
                "delta": {"content": content, "tool_calls": tool_calls},
                "finish_reason": finish,
            }
        ]
    }
    if usage is not None:
        body["usage"] = usage
    return body


def tc(
    index: int | None, id: str | None = None, name: str | None = None, args: str | None = None
) -> dict[str, Any]:
    call: dict[str, Any] = {"id": id, "function": {"name": name, "arguments": args}}
    if index is not None:
        call["index"] = index
    return call


def as_litellm(body: dict[str, Any]) -> Any:
    from litellm.types.utils import ModelResponseStream

    return ModelResponseStream(**body)


@pytest.fixture(params=["dict", "litellm"])
def run(request: pytest.FixtureRequest) -> Any:
    """Feed chunks (converted to the parametrised form) and return (parts, completion)."""

    def go(chunks: list[dict[str, Any]]) -> tuple[list[StreamPart], Completion]:
        assembler = StreamAssembler()
        parts: list[StreamPart] = []
        for body in chunks:
            parts += assembler.feed(body if request.param == "dict" else as_litellm(body))
        completion = assembler.finish()
        check_invariants(parts, completion)
        return parts, completion

    return go


def check_invariants(parts: list[StreamPart], completion: Completion) -> None:
    """Args never precede their begin; streamed args and text equal the assembled turn."""
    begun: dict[str, str] = {}
    args: dict[str, str] = {}
    text = ""
    for part in parts:
        if isinstance(part, ToolCallBegin):
            assert part.id not in begun
            begun[part.id] = part.name
            args[part.id] = ""
        elif isinstance(part, ToolCallArgsDelta):
            assert part.id in begun, f"args for {part.id} before its begin"
            args[part.id] += part.delta
        elif isinstance(part, TextDelta):
            text += part.text
    assert text == completion.text
    for call in completion.tool_calls:
        if call.id in begun:
            assert begun[call.id] == call.name
            assert args[call.id] == call.arguments


def test_text_with_empty_and_none_deltas(run: Any) -> None:
    parts, done = run(
        [
            chunk(""),
            chunk("Hel"),
            chunk(None),
            {"choices": [{"index": 0, "delta": None}]},
            chunk("lo"),
            chunk(finish="stop"),
        ]
    )
    assert parts == [TextDelta("Hel"), TextDelta("lo")]
    assert done.text == "Hello"
    assert done.tool_calls == ()
    assert done.finish_reason == "stop"
    assert done.usage.total_tokens == 0


def test_openai_shape_id_and_name_first_then_args_by_index(run: Any) -> None:
    parts, done = run(
        [
            chunk(tool_calls=[tc(0, "call_a", "write_file", "")]),
            chunk(tool_calls=[tc(0, args='{"path": ')]),
            chunk(tool_calls=[tc(0, args='"a.txt"}')]),
            chunk(finish="tool_calls"),
        ]
    )
    assert parts == [
        ToolCallBegin("call_a", "write_file"),
        ToolCallArgsDelta("call_a", '{"path": '),
        ToolCallArgsDelta("call_a", '"a.txt"}'),
    ]
    assert [(c.id, c.name, c.arguments) for c in done.tool_calls] == [
        ("call_a", "write_file", '{"path": "a.txt"}')
    ]
    assert done.finish_reason == "tool_calls"


def test_provider_repeating_id_and_name_in_every_chunk(run: Any) -> None:
    parts, done = run(
        [
            chunk(tool_calls=[tc(0, "call_r", "read_file", '{"pa')]),
            chunk(tool_calls=[tc(0, "call_r", "read_file", 'th": 1}')]),
        ]
    )
    assert [type(p) for p in parts] == [ToolCallBegin, ToolCallArgsDelta, ToolCallArgsDelta]
    assert len(done.tool_calls) == 1
    assert done.tool_calls[0].arguments == '{"path": 1}'


def test_whole_call_in_one_chunk(run: Any) -> None:
    parts, done = run([chunk("Sure. ", tool_calls=[tc(0, "c1", "list_files", "{}")])])
    assert parts == [
        TextDelta("Sure. "),
        ToolCallBegin("c1", "list_files"),
        ToolCallArgsDelta("c1", "{}"),
    ]
    assert done.tool_calls[0].arguments == "{}"


def test_parallel_calls_interleaved_come_back_in_index_order(run: Any) -> None:
    _, done = run(
        [
            chunk(tool_calls=[tc(1, "c_b", "read_file", "")]),
            chunk(tool_calls=[tc(0, "c_a", "write_file", "")]),
            chunk(tool_calls=[tc(1, args='{"b"'), tc(0, args='{"a"')]),
            chunk(tool_calls=[tc(0, args=": 1}")]),
            chunk(tool_calls=[tc(1, args=": 2}")]),
        ]
    )
    assert [(c.id, c.name, c.arguments) for c in done.tool_calls] == [
        ("c_a", "write_file", '{"a": 1}'),
        ("c_b", "read_file", '{"b": 2}'),
    ]


def test_args_before_name_are_buffered_until_begin(run: Any) -> None:
    parts, done = run(
        [
            chunk(tool_calls=[tc(0, "c1", None, '{"x"')]),
            chunk(tool_calls=[tc(0, args=": ")]),
            chunk(tool_calls=[tc(0, name="edit_file")]),
            chunk(tool_calls=[tc(0, args="1}")]),
        ]
    )
    assert parts == [
        ToolCallBegin("c1", "edit_file"),
        ToolCallArgsDelta("c1", '{"x": '),
        ToolCallArgsDelta("c1", "1}"),
    ]
    assert done.tool_calls[0].arguments == '{"x": 1}'


def test_missing_id_gets_a_stable_generated_one(run: Any) -> None:
    parts, done = run(
        [
            chunk(tool_calls=[tc(0, None, "write_file", "{")]),
            chunk(tool_calls=[tc(0, args="}")]),
            chunk(tool_calls=[tc(1, None, "read_file", "{}")]),
        ]
    )
    ids = {p.id for p in parts if not isinstance(p, TextDelta)}
    assert len(ids) == 2
    first, second = done.tool_calls
    assert first.id.startswith("call_0_") and second.id.startswith("call_1_")
    assert {first.id, second.id} == ids


def test_usage_only_final_chunk_with_empty_choices(run: Any) -> None:
    _, done = run(
        [
            chunk("hi"),
            chunk(finish="stop"),
            chunk(
                no_choices=True,
                usage={"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
            ),
        ]
    )
    assert (done.usage.input_tokens, done.usage.output_tokens) == (7, 2)
    assert done.usage.cost is None
    assert done.finish_reason == "stop"


def test_call_whose_name_never_arrives_is_kept_nameless(run: Any) -> None:
    parts, done = run([chunk(tool_calls=[tc(0, "c9", None, '{"a": 1}')])])
    assert parts == []
    assert [(c.id, c.name, c.arguments) for c in done.tool_calls] == [("c9", "", '{"a": 1}')]


def test_fragments_without_index_follow_their_id() -> None:
    assembler = StreamAssembler()
    parts = assembler.feed(chunk(tool_calls=[tc(None, "x1", "read_file", "{")]))
    parts += assembler.feed(chunk(tool_calls=[tc(None, "x2", "list_files", "{}")]))
    parts += assembler.feed(chunk(tool_calls=[tc(None, "x1", None, "}")]))
    done = assembler.finish()
    check_invariants(parts, done)
    assert [(c.id, c.arguments) for c in done.tool_calls] == [("x1", "{}"), ("x2", "{}")]


def test_anthropic_style_usage_and_none_chunks() -> None:
    assembler = StreamAssembler()
    assert assembler.feed({"choices": None}) == []
    assert assembler.feed({}) == []
    assembler.note_usage({"input_tokens": 4, "output_tokens": 6})
    assembler.note_usage(None)
    assert assembler.finish().usage.total_tokens == 10
