"""The ``scripted`` provider: a deterministic model for demos, tests and benchmarks.

Why a litellm custom provider and not a fake ``Model``: ``scripted/...`` goes
through the real ``litellm.acompletion(stream=True, tools=...)`` path, so demos
and tests exercise the same chunk handling, usage and error wrapping as a paid
provider, offline and for free.

Two forms:

* ``scripted/echo`` answers ``You said: <last user message text>``.
* ``scripted/<path>`` plays a JSON script, one turn per model call::

      {"turns": [{"text": "...", "delay_ms": 0,
                  "tool_calls": [{"name": "write_file", "arguments": {...}}]}]}

  ``scripted//abs/path.json`` is an absolute path, ``scripted/rel.json`` is
  relative to the working directory. The turn played is the number of
  assistant messages already in the conversation, so a resumed session picks
  up where it stopped. After the last turn it answers ``(script finished)``.

Nothing here imports litellm at module import time: ``register()`` and the
handler class import it lazily, so importing agentspace stays fast.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentspace.errors import ConfigError

if TYPE_CHECKING:
    from litellm.types.utils import GenericStreamingChunk, ModelResponse

PROVIDER = "scripted"
ECHO = "echo"
FINISHED_TEXT = "(script finished)"
CONTEXT = re.compile(r"\A<notebook-context>\n.*?\n</notebook-context>\n\n", re.DOTALL)


class ScriptToolCall(BaseModel):
    """A tool call to make.

    ``arguments`` is an object, or raw text sent as is, so a script can send
    malformed JSON on purpose to exercise argument errors.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    arguments: dict[str, Any] | str = Field(default_factory=dict)


class ScriptTurn(BaseModel):
    """One assistant turn: streamed text, then tool calls."""

    model_config = ConfigDict(extra="forbid")

    text: str = ""
    tool_calls: list[ScriptToolCall] = Field(default_factory=list)
    delay_ms: int = Field(0, ge=0, description="Pause between text deltas (cancellable).")


class Script(BaseModel):
    """A whole script file."""

    model_config = ConfigDict(extra="forbid")

    turns: list[ScriptTurn]


@dataclass(frozen=True, slots=True)
class PlannedTurn:
    """What one model call will produce, decided before any chunk is sent."""

    text: str
    tool_calls: tuple[tuple[str, str, str], ...]  # (id, name, arguments JSON)
    delay_ms: int
    prompt_tokens: int
    completion_tokens: int

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"


_WORD = re.compile(r"\S+\s*|\s+")
_MAX_RUN = 50
_cache: dict[Path, tuple[tuple[int, int], Script]] = {}


def split_words(text: str) -> list[str]:
    """Word-sized deltas whose concatenation is exactly ``text``.

    litellm raises "The model is repeating the same chunk" after 100 identical
    chunks in a row, so a long run of one word is broken by merging a pair.
    """
    pieces: list[str] = []
    run = 0
    for piece in _WORD.findall(text):
        if pieces and pieces[-1] == piece:
            run += 1
            if run >= _MAX_RUN:
                pieces[-1] += piece
                run = 1
                continue
        else:
            run = 1
        pieces.append(piece)
    return pieces


def script_path(name: str) -> Path:
    """The script file for a model name, with or without the ``scripted/`` prefix."""
    if name.startswith(PROVIDER + "/"):
        name = name[len(PROVIDER) + 1 :]
    return Path(name).expanduser()


def _bad(path: Path, why: str) -> ConfigError:
    return ConfigError(f"scripted model: {path} {why}", path=str(path))


def load_script(path: Path) -> Script:
    """Read and validate a script, cached until the file changes."""
    try:
        stat = path.stat()
        key = (stat.st_mtime_ns, stat.st_size)
        # A relative path means another file after a chdir. An absolute one is its own key:
        # resolve() is a syscall per path component, on the loop, for every turn.
        where = path if path.is_absolute() else path.resolve()
        cached = _cache.get(where)
        if cached is not None and cached[0] == key:
            return cached[1]
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        why = f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        raise _bad(path, why) from exc
    except (OSError, UnicodeDecodeError) as exc:
        why = f"cannot be read as a script file ({getattr(exc, 'strerror', None) or exc}); use "
        raise _bad(path, why + "scripted/echo or scripted/<path to a JSON script>") from exc
    try:
        script = Script.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        why = (
            f"is not a valid script ({problems}); expected "
            '{"turns": [{"text": "...", "tool_calls": [{"name": "...", "arguments": {}}], '
            '"delay_ms": 0}]}'
        )
        raise _bad(path, why) from exc
    _cache[where] = (key, script)
    return script


def _field(message: Any, key: str) -> Any:
    return message.get(key) if isinstance(message, dict) else getattr(message, key, None)


def _text_of(content: Any) -> str:
    """Text of a message's content: a string or a list of OpenAI content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(_field(part, "text") or "") for part in content if _field(part, "type") == "text"
        )
    return ""


def _words(text: str) -> int:
    return len(text.split())


def plan_turn(name: str, messages: list[Any]) -> PlannedTurn:
    """Decide the reply for a conversation; raise ``ConfigError`` for a bad script."""
    prompt_tokens = sum(_words(_text_of(_field(m, "content"))) for m in messages)
    if name in (ECHO, f"{PROVIDER}/{ECHO}"):
        users = [m for m in messages if _field(m, "role") == "user"]
        last_user = _text_of(_field(users[-1], "content")) if users else ""
        last_user = CONTEXT.sub("", last_user, count=1)  # engine.context's, before the words
        text = f"You said: {last_user}"
        return PlannedTurn(text, (), 0, prompt_tokens, _words(text))
    script = load_script(script_path(name))
    turn_index = sum(1 for m in messages if _field(m, "role") == "assistant")
    if turn_index >= len(script.turns):
        return PlannedTurn(FINISHED_TEXT, (), 0, prompt_tokens, _words(FINISHED_TEXT))
    turn = script.turns[turn_index]
    calls = tuple(
        (
            f"call_{turn_index}_{i}",
            call.name,
            call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments),
        )
        for i, call in enumerate(turn.tool_calls)
    )
    completion_tokens = _words(turn.text) + sum(_words(args) + 1 for _, _, args in calls)
    return PlannedTurn(turn.text, calls, turn.delay_ms, prompt_tokens, completion_tokens)


def _chunk(text: str = "", tool_use: Any = None) -> GenericStreamingChunk:
    return {
        "text": text,
        "tool_use": tool_use,
        "is_finished": False,
        "finish_reason": "",
        "usage": None,
        "index": 0,
    }


def turn_chunks(turn: PlannedTurn) -> Iterator[tuple[bool, GenericStreamingChunk]]:
    """The turn as litellm ``GenericStreamingChunk`` s, each flagged if a delay precedes it.

    Usage rides on the final, finished chunk: litellm ignores chunks without
    content once a finish reason was seen, so it cannot come later.
    """
    for i, piece in enumerate(split_words(turn.text)):
        yield i > 0, _chunk(piece)
    for i, (call_id, name, arguments) in enumerate(turn.tool_calls):
        tool_use = {
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": arguments},
            "index": i,
        }
        yield False, _chunk(tool_use=tool_use)
    yield (
        False,
        {
            "text": "",
            "tool_use": None,
            "is_finished": True,
            "finish_reason": turn.finish_reason,
            "usage": {
                "prompt_tokens": turn.prompt_tokens,
                "completion_tokens": turn.completion_tokens,
                "total_tokens": turn.prompt_tokens + turn.completion_tokens,
            },
            "index": 0,
        },
    )


def _model_response(turn: PlannedTurn, model: str) -> ModelResponse:
    import litellm

    tool_calls = [
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        for call_id, name, arguments in turn.tool_calls
    ]
    message = litellm.Message(content=turn.text, role="assistant", tool_calls=tool_calls or None)
    return litellm.ModelResponse(
        model=f"{PROVIDER}/{model}",
        choices=[litellm.Choices(finish_reason=turn.finish_reason, index=0, message=message)],
        usage=litellm.Usage(
            prompt_tokens=turn.prompt_tokens,
            completion_tokens=turn.completion_tokens,
            total_tokens=turn.prompt_tokens + turn.completion_tokens,
        ),
    )


def _make_handler() -> Any:
    """Build the ``CustomLLM`` subclass only when litellm is being imported anyway."""
    from litellm import CustomLLM

    class ScriptedLLM(CustomLLM):
        """litellm calls these with keyword arguments; only model and messages matter."""

        async def astreaming(  # type: ignore[override]
            self, *args: Any, **kwargs: Any
        ) -> AsyncIterator[GenericStreamingChunk]:
            turn = plan_turn(kwargs["model"], kwargs["messages"])
            for delayed, chunk in turn_chunks(turn):
                if delayed and turn.delay_ms:
                    await asyncio.sleep(turn.delay_ms / 1000)
                yield chunk

        def streaming(self, *args: Any, **kwargs: Any) -> Iterator[GenericStreamingChunk]:
            turn = plan_turn(kwargs["model"], kwargs["messages"])
            for delayed, chunk in turn_chunks(turn):
                if delayed and turn.delay_ms:
                    time.sleep(turn.delay_ms / 1000)
                yield chunk

        async def acompletion(self, *args: Any, **kwargs: Any) -> ModelResponse:
            return _model_response(plan_turn(kwargs["model"], kwargs["messages"]), kwargs["model"])

        def completion(self, *args: Any, **kwargs: Any) -> ModelResponse:
            return _model_response(plan_turn(kwargs["model"], kwargs["messages"]), kwargs["model"])

    return ScriptedLLM()


def register() -> None:
    """Make ``scripted/...`` a litellm provider. Idempotent; keeps other custom providers."""
    import litellm
    from litellm.utils import custom_llm_setup

    if not any(item.get("provider") == PROVIDER for item in litellm.custom_provider_map):
        litellm.custom_provider_map = [
            *litellm.custom_provider_map,
            {"provider": PROVIDER, "custom_handler": _make_handler()},
        ]
    custom_llm_setup()
