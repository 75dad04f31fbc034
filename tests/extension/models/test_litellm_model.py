"""LiteLLMModel: error translation, retries before streaming only, closing, cost. No network.

Failures come from litellm's real exception classes raised inside a registered
``CustomLLM`` (the ``fake`` fixture), so they pass through litellm's stream
wrapper (which wraps many of them in ``MidStreamFallbackError``) as a real
provider's would; a few use litellm's ``mock_response=``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import litellm
import pytest

from agentspace import errors
from agentspace.models import litellm_model
from agentspace.models.base import Completion, StreamPart, TextDelta, Usage
from agentspace.models.litellm_model import LiteLLMModel, context_window, cost_of, translate

USER = [{"role": "user", "content": "hi"}]
FAKE = "astest/x"  # the conftest's programmable provider (``fake`` fixture)


async def collect(model: LiteLLMModel, name: str = FAKE, **params: Any) -> list[StreamPart]:
    return [part async for part in model.stream(USER, [], model=name, params=params)]


def rate_limit() -> Exception:
    return litellm.RateLimitError("slow down", llm_provider="astest", model="x")


def unavailable() -> Exception:
    return litellm.ServiceUnavailableError("overloaded", llm_provider="astest", model="x")


# -- translation ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("exc", "kind", "words"),
    [
        (
            litellm.RateLimitError("slow", llm_provider="openai", model="m"),
            errors.RateLimitError,
            "rate limited",
        ),
        (
            litellm.Timeout("took too long", model="m", llm_provider="openai"),
            errors.ModelUnavailableError,
            "took too long",
        ),
        (
            litellm.APIConnectionError("refused", llm_provider="openai", model="m"),
            errors.ModelUnavailableError,
            "refused",
        ),
        (
            litellm.ServiceUnavailableError("down", llm_provider="openai", model="m"),
            errors.ModelUnavailableError,
            "down",
        ),
        (
            litellm.InternalServerError("boom", llm_provider="openai", model="m"),
            errors.ModelUnavailableError,
            "boom",
        ),
        (
            litellm.BadGatewayError("gateway", llm_provider="openai", model="m"),
            errors.ModelUnavailableError,
            "gateway",
        ),
        (
            litellm.ContextWindowExceededError("too many tokens", model="m", llm_provider="openai"),
            errors.ContextWindowError,
            "too long",
        ),
        (
            litellm.NotFoundError("no such model", model="m", llm_provider="openai"),
            errors.ModelNotFoundError,
            '"scripted/echo"',
        ),
        (
            litellm.BadRequestError(
                "LLM Provider NOT provided. Pass in", model="m", llm_provider=""
            ),
            errors.ModelNotFoundError,
            '"openai/gpt-4o-mini"',
        ),
        (
            litellm.BadRequestError("temperature must be <= 2", model="m", llm_provider="openai"),
            errors.ModelError,
            "temperature must be <= 2",
        ),
    ],
)
def test_translate(exc: Exception, kind: type[errors.ModelError], words: str) -> None:
    error = translate(exc, "openai/gpt-4o-mini")
    assert type(error) is kind
    assert isinstance(error, errors.ModelError)
    assert words in error.message
    assert error.retryable == (kind in (errors.RateLimitError, errors.ModelUnavailableError))
    assert "litellm." not in error.message.split(":", 1)[-1][:12]


@pytest.mark.parametrize(
    ("model", "env"),
    [
        ("openai/gpt-4o-mini", "OPENAI_API_KEY"),
        ("anthropic/claude-3-5-sonnet-20240620", "ANTHROPIC_API_KEY"),
    ],
)
def test_auth_error_names_the_missing_key(
    model: str, env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(env, raising=False)
    exc = litellm.AuthenticationError("no key", llm_provider="x", model=model)
    error = translate(exc, model)
    assert isinstance(error, errors.ModelAuthError)
    assert env in error.message


def test_auth_error_with_key_present_says_it_was_rejected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    exc = litellm.AuthenticationError("invalid key", llm_provider="openai", model="m")
    error = translate(exc, "openai/gpt-4o-mini")
    assert isinstance(error, errors.ModelAuthError)
    assert "rejected" in error.message


def test_translate_unwraps_mid_stream_wrappers_and_keeps_our_errors() -> None:
    wrapped = litellm.exceptions.MidStreamFallbackError(
        message="x", model="m", llm_provider="astest", original_exception=rate_limit()
    )
    assert isinstance(translate(wrapped, "m"), errors.RateLimitError)
    config = errors.ConfigError("bad script")
    try:
        try:
            raise config
        except errors.ConfigError as inner:
            raise litellm.APIConnectionError("x", llm_provider="p", model="m") from inner
    except Exception as outer:
        assert translate(outer, "m") is config
    bug = ValueError("not a provider error")
    assert translate(bug, "m") is bug


# -- streaming, retries, closing -----------------------------------------------
async def test_parts_usage_and_call_arguments(fake: Any) -> None:
    fake.reset([fake.text("Hello "), fake.text("world"), fake.done(prompt=11, completion=2)])
    tools = [{"type": "function", "function": {"name": "t", "parameters": {"type": "object"}}}]
    model = LiteLLMModel()
    parts = [p async for p in model.stream(USER, tools, model=FAKE, params={"temperature": 0.1})]
    assert parts[:2] == [TextDelta("Hello "), TextDelta("world")]
    done = parts[-1]
    assert isinstance(done, Completion)
    assert (done.text, done.finish_reason) == ("Hello world", "stop")
    assert (done.usage.input_tokens, done.usage.output_tokens) == (11, 2)
    assert done.usage.cost is None  # litellm has no price for this provider
    sent = fake.seen[0]["optional_params"]
    assert sent["tools"] == tools and sent["temperature"] == 0.1
    assert "stream_options" not in sent  # custom providers report usage themselves
    assert fake.closed == 1


async def test_transient_errors_are_retried_before_streaming(
    fake: Any, delays: list[float]
) -> None:
    fake.reset(
        [fake.fail(rate_limit())], [fake.fail(unavailable())], [fake.text("ok"), fake.done()]
    )
    parts = await collect(LiteLLMModel(retries=3, backoff=0.25))
    assert isinstance(parts[-1], Completion) and parts[-1].text == "ok"
    assert fake.calls == 3
    assert delays == [0.25, 0.5]


async def test_retries_give_up_with_the_translated_error(fake: Any, delays: list[float]) -> None:
    fake.reset([fake.fail(rate_limit())])
    with pytest.raises(errors.RateLimitError) as info:
        await collect(LiteLLMModel(retries=2, backoff=1.0))
    assert fake.calls == 3
    assert delays == [1.0, 2.0]
    assert info.value.data["model"] == FAKE


async def test_no_retry_once_a_part_was_yielded(fake: Any, delays: list[float]) -> None:
    fake.reset([fake.text("partial "), fake.fail(unavailable())], [fake.text("again")])
    seen: list[StreamPart] = []
    with pytest.raises(errors.ModelUnavailableError):
        async for part in LiteLLMModel(retries=3, backoff=0).stream(
            USER, [], model=FAKE, params={}
        ):
            seen.append(part)
    assert seen == [TextDelta("partial ")]
    assert fake.calls == 1
    assert delays == []


async def test_permanent_errors_are_not_retried(fake: Any, delays: list[float]) -> None:
    fake.reset(
        [fake.fail(litellm.AuthenticationError("bad key", llm_provider="astest", model="x"))]
    )
    with pytest.raises(errors.ModelAuthError):
        await collect(LiteLLMModel(retries=3, backoff=0))
    assert fake.calls == 1


async def test_cancellation_closes_the_provider_stream(fake: Any) -> None:
    fake.reset([fake.text("a "), fake.HANG])

    async def consume() -> None:
        async for _ in LiteLLMModel().stream(USER, [], model=FAKE, params={}):
            pass

    task = asyncio.create_task(consume())
    assert fake.hanging is not None
    await asyncio.wait_for(fake.hanging.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake.closed == 1


async def test_consumer_closing_early_closes_the_provider_stream(fake: Any) -> None:
    fake.reset([fake.text("a "), fake.text("b "), fake.done()])
    stream = LiteLLMModel().stream(USER, [], model=FAKE, params={})
    assert await anext(stream) == TextDelta("a ")
    await stream.aclose()  # type: ignore[attr-defined]
    assert fake.closed == 1


# -- real litellm paths that fail before any network ----------------------------
async def test_unknown_provider_is_model_not_found() -> None:
    with pytest.raises(errors.ModelNotFoundError) as info:
        await collect(LiteLLMModel(retries=0), "gpt-nonexistent-xyz")
    assert "scripted/echo" in info.value.message


async def test_mock_response_stream_and_errors(
    monkeypatch: pytest.MonkeyPatch, delays: list[float]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model = LiteLLMModel(retries=1, backoff=0.5)
    parts = await collect(model, "openai/gpt-4o-mini", mock_response="hello mock world")
    done = parts[-1]
    assert isinstance(done, Completion) and done.text == "hello mock world"
    assert done.usage.cost is not None and done.usage.cost > 0
    with pytest.raises(errors.RateLimitError):
        await collect(model, "openai/gpt-4o-mini", mock_response="litellm.RateLimitError")
    assert delays == [0.5]
    auth = litellm.AuthenticationError("no key", llm_provider="openai", model="gpt-4o-mini")
    with pytest.raises(errors.ModelAuthError, match="OPENAI_API_KEY"):
        await collect(model, "openai/gpt-4o-mini", mock_response=auth)


# -- model facts ----------------------------------------------------------------
def test_context_window_and_cost() -> None:
    assert context_window("scripted/echo") == 128_000
    assert context_window("openai/gpt-4o-mini") == 128_000
    assert context_window("nonprovider/model-x") is None
    assert cost_of("scripted/echo", Usage(10, 10)) == 0.0
    priced = cost_of("openai/gpt-4o-mini", Usage(1_000_000, 0))
    assert priced is not None and priced > 0
    assert cost_of("nonprovider/model-x", Usage(10, 10)) is None


async def test_paced_stream_passes_every_chunk_and_closes_the_provider_stream() -> None:
    """The pacing wrapper around the provider's chunks (fairness.pacing) changes nothing else."""

    class Chunks:
        closed = False

        def __init__(self) -> None:
            self.left = [1, 2, 3]

        def __aiter__(self) -> Chunks:
            return self

        async def __anext__(self) -> int:
            if not self.left:
                raise StopAsyncIteration
            return self.left.pop(0)

        async def aclose(self) -> None:
            self.closed = True

    class Response:
        completion_stream: Any = None

    response = Response()
    response.completion_stream = inner = Chunks()
    litellm_model._pace(response)
    assert [chunk async for chunk in response.completion_stream] == [1, 2, 3]
    assert inner.closed

    response.completion_stream = inner = Chunks()
    litellm_model._pace(response)
    async for _ in response.completion_stream:
        break
    await response.completion_stream.aclose()
    assert inner.closed


async def test_the_servers_preload_makes_one_offline_call_through_litellm() -> None:
    """The warm-up (imports litellm's lazy modules before any user's run) must keep working
    with the installed litellm: a failure would only be logged, so it is checked here."""
    litellm_model.warmed = False
    await litellm_model.preload_litellm()
    assert litellm_model.warmed
