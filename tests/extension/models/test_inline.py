"""models.inline: litellm's set-up step runs on the loop for pure providers, threads otherwise.

Real litellm and its real ``acompletion``: the tests fail if another litellm version
stops submitting ``litellm.main.completion`` to the default executor (the inline path
would then silently be a thread again).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator

import litellm
import pytest

from agentspace.models import inline
from agentspace.models.base import TextDelta
from agentspace.models.litellm_model import LiteLLMModel

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with no provider warmed or demoted and zeroed counts."""
    monkeypatch.setattr(inline, "_warm", set())
    monkeypatch.setattr(inline, "_demoted", set())
    monkeypatch.setattr(inline, "stats", {"inline": 0, "threaded": 0})
    yield


async def text(model: str = "scripted/echo") -> str:
    parts = [p async for p in LiteLLMModel().stream(USER, [], model=model, params={})]
    return "".join(p.text for p in parts if isinstance(p, TextDelta))


async def test_the_set_up_runs_on_the_loop_after_the_first_call() -> None:
    assert await text() == "You said: hi"
    assert inline.stats == {"inline": 0, "threaded": 1}  # the first imports: a thread
    assert await text() == "You said: hi"
    assert await text() == "You said: hi"
    assert inline.stats == {"inline": 2, "threaded": 1}


async def test_acompletion_goes_on_without_a_loop_turn() -> None:
    """The whole ``acompletion`` is one step of the task: a pacing checkpoint covers it."""
    await text()  # warm
    turns = 0

    def tick() -> None:
        nonlocal turns
        turns += 1

    loop = asyncio.get_running_loop()
    with inline.inline("scripted/echo", tools=False):
        loop.call_soon(tick)
        response = await litellm.acompletion(model="scripted/echo", messages=USER, stream=True)
        assert turns == 0  # a thread's result would take two loop turns to come back
    await response.aclose()
    assert inline.stats["inline"] == 1


async def test_other_work_submitted_meanwhile_still_runs_in_threads() -> None:
    await text()
    loop = asyncio.get_running_loop()
    with inline.inline("scripted/echo", tools=False):
        ident = await loop.run_in_executor(None, threading.get_ident)
    assert ident != threading.get_ident()
    assert inline.stats["inline"] == 0  # and the one submission it was armed for is spent
    ident = await loop.run_in_executor(None, threading.get_ident)
    assert ident != threading.get_ident()


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("openai/gpt-4o-mini", True),
        ("gpt-4o-mini", True),
        ("anthropic/claude-3-5-haiku-latest", True),
        ("scripted/echo", True),  # registered custom providers
        ("bedrock/anthropic.claude-3-haiku", False),  # AWS credentials: I/O in the set-up
        ("vertex_ai/gemini-1.5-pro", False),  # Google token refresh
        ("azure/my-deployment", False),  # Entra ID tokens
        ("ollama/llama3", False),
        ("not a model", False),
    ],
)
def test_only_providers_with_a_pure_set_up_are_inlined(model: str, expected: bool) -> None:
    assert inline.inlinable(inline.provider_of(model)) is expected


async def test_a_provider_whose_set_up_turns_slow_goes_back_to_threads(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    await text()
    monkeypatch.setattr(inline, "SLOW", 0.0)  # every step is "slow" now, and imports nothing
    with caplog.at_level(logging.WARNING, logger=inline.__name__):
        assert await text() == "You said: hi"
    assert "scripted" in inline._demoted
    assert "set up in a thread from now on" in caplog.text
    assert await text() == "You said: hi"
    assert inline.stats == {"inline": 1, "threaded": 2}


async def test_an_error_in_the_set_up_reaches_the_caller() -> None:
    await litellm.acompletion(model="scripted/echo", messages=USER, stream=True)
    inline._warm.add(("scripted", False))
    with pytest.raises(litellm.APIConnectionError), inline.inline("scripted/echo", tools=False):
        await litellm.acompletion(model="scripted/echo", messages=None, stream=True)
    assert inline.stats["inline"] == 1
    assert await text() == "You said: hi"  # and the next call is fine
