"""The one model adapter: every provider through ``litellm.acompletion(stream=True)``.

Why here and only here: litellm's exceptions are translated once, at this
boundary, into ``agentspace.errors`` so the run loop and the UI deal with one
error tree. Retries live here too, and only before the first part is yielded:
once text reached the user a retry would duplicate it, so a mid-stream failure
is raised as is.

litellm is imported lazily (it takes 2-3 s) with its network cost-map fetch
and debug printing turned off.

Throughput (measured with litellm 1.106 on a 2-CPU machine):
litellm builds pydantic objects per chunk (~60 µs) and, when the stream is
drained, runs ``stream_chunk_builder`` over every chunk again (~45 µs per chunk,
twice with ``stream_options.include_usage``). So once a finish reason and the
usage are both known nothing more is needed and the stream is closed early, and
custom providers (which report usage on their finished chunk) are called
without ``include_usage``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import warnings
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from agentspace.errors import (
    AgentspaceError,
    ContextWindowError,
    ModelAuthError,
    ModelError,
    ModelNotFoundError,
    ModelUnavailableError,
    RateLimitError,
)
from agentspace.imports import quietly
from agentspace.models.assembler import StreamAssembler
from agentspace.models.base import Completion, StreamPart, Usage
from agentspace.models.inline import inline, is_custom
from agentspace.models.retention import bound_chunks
from agentspace.pacing import checkpoint

SCRIPTED_CONTEXT_WINDOW = 128_000
_loaded = False
warmed = False  # the preload's warm-up call went through (tests)
log = logging.getLogger(__name__)
_called = False  # whether a model call completed since litellm was loaded
# "Item 'x' on TypedDict class 'C' is using ..." and "Items 'x', 'y' on TypedDict class ..."
TYPEDDICT_NOTICE = r"Items? '[^']+'(?:, '[^']+')* on TypedDict class"
_LITELLM_PREFIX = re.compile(r"^(?:litellm\.\w+:\s*)+")
_sleep = asyncio.sleep  # the retry backoff; a seam so tests can record delays without waiting


def load_litellm() -> None:
    """Import and quiet litellm once, and register the scripted provider."""
    global _loaded
    if _loaded:
        return
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    # pydantic complains about litellm's TypedDicts (ReadOnly items, one or several per
    # message) when it first builds their schemas; they are not ours to fix.
    warnings.filterwarnings("ignore", TYPEDDICT_NOTICE, UserWarning)
    # ~500k long-lived objects: collections during the import would pause every thread
    # (the server's loop included) 100-200 ms, five times over, and full ones after it
    # would walk them all (300 ms pauses under load): imports.quietly.
    quietly(_import_litellm)
    _loaded = True


def _import_litellm() -> None:
    import litellm

    litellm.suppress_debug_info = True
    litellm.set_verbose = False
    if hasattr(litellm, "telemetry"):
        litellm.telemetry = False
    from agentspace.models import scripted

    scripted.register()


def _freeze_after_first_call() -> None:
    """Freeze once more after the first call: it imports ~80k more objects lazily.

    litellm's first ``acompletion`` (with ``tools=``) imports mcp, litellm.proxy types,
    starlette and more: ~700 pydantic classes that every full collection would walk
    (80-100 ms pauses of the server under load). Objects alive now that later become
    cyclic garbage are never collected; once, that is a few kilobytes.
    """
    global _called
    if not _called:
        _called = True
        gc.freeze()


async def load_litellm_async() -> None:
    """``load_litellm`` off the event loop: the import takes seconds and must not stall it."""
    if not _loaded:
        await asyncio.to_thread(load_litellm)


async def preload_litellm(*models: str) -> None:
    """For servers, at engine start: import litellm and make one offline call, in a thread.

    litellm's first call with ``tools=`` imports ~300 more modules (mcp, proxy types:
    ~0.45 s). Done here, the first user's run pays neither that nor the import, and the
    GIL-holding import work happens before any run streams. ``models`` (the configured
    default) get their tokenizers loaded too (``warm_tokenizers``).
    """
    await asyncio.to_thread(_preload, *models)


def _preload(*models: str) -> None:
    load_litellm()
    try:
        quietly(lambda: asyncio.run(_warm_call()))
    except Exception as exc:  # only a warm-up: the first real call does the same work
        log.debug("litellm warm-up call failed: %s", exc)
    quietly(lambda: warm_tokenizers(*models))


# Models whose tokenizers stand for every OpenAI-route model: gpt-4o and later count
# with o200k_base, older ones with cl100k_base (the one litellm loads at import).
TOKENIZER_MODELS = ("gpt-4o", "gpt-3.5-turbo")


def warm_tokenizers(*models: str) -> None:
    """Load the tokenizers litellm's cost calculation uses, here rather than on the loop.

    Why: ``litellm.acompletion`` prices the (still empty) streamed response before it
    returns, on the calling thread, by counting tokens with the model's tokenizer; on the
    OpenAI route that loads a tiktoken encoding the first time (o200k_base: a stall of
    the server's event loop the length of the load). Loaded once per process, so a warm
    call in the preload thread takes it off every later call.
    """
    import litellm

    for model in (*TOKENIZER_MODELS, *models):
        try:
            litellm.token_counter(model=model, text="warm-up")
        except Exception as exc:  # an unknown model has no tokenizer to load
            log.debug("no tokenizer warmed for %s: %s", model, exc)


async def _warm_call() -> None:
    """One scripted call with a tool through litellm's whole streaming path (no network)."""
    global warmed
    import litellm

    function = {"name": "warm", "description": "", "parameters": {"type": "object"}}
    response = await litellm.acompletion(
        model="scripted/echo",
        messages=[{"role": "user", "content": "warm-up"}],
        tools=[{"type": "function", "function": function}],
        stream=True,
    )
    async for _ in response:
        pass
    warmed = True


def _provider(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else ""


def context_window(model: str) -> int | None:
    """The model's input window in tokens from litellm's cost map, or ``None`` if unknown."""
    if _provider(model) == "scripted":
        return SCRIPTED_CONTEXT_WINDOW
    load_litellm()
    import litellm

    try:
        info = litellm.get_model_info(model)
    except Exception:
        return None
    window = info.get("max_input_tokens") or info.get("max_tokens")
    return int(window) if window else None


def cost_of(model: str, usage: Usage) -> float | None:
    """USD for a turn where litellm knows the price; 0 for scripted; ``None`` when unknown."""
    if _provider(model) == "scripted":
        return 0.0
    load_litellm()
    import litellm

    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model,
            prompt_tokens=usage.input_tokens,
            completion_tokens=usage.output_tokens,
        )
    except Exception:
        return None
    return float(prompt_cost + completion_cost)


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and everything it wraps (litellm's ``original_exception``, causes)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        original = getattr(current, "original_exception", None)
        todo += [
            original if isinstance(original, BaseException) else None,
            current.__cause__,
            current.__context__,
        ]
    return seen


def _auth_hint(model: str) -> str:
    import litellm

    try:
        missing = litellm.validate_environment(model).get("missing_keys") or []
    except Exception:
        missing = []
    keys = [key for key in missing if "KEY" in key or "TOKEN" in key] or missing
    if keys:
        return f"set {' or '.join(keys)} in the server's environment"
    return "the provider rejected the API key: check the provider's API key"


def translate(exc: BaseException, model: str) -> BaseException:
    """Map a litellm/openai exception to ``agentspace.errors``; return others unchanged."""
    chain = _causes(exc)
    for inner in chain:
        if isinstance(inner, AgentspaceError):
            return inner  # e.g. a ConfigError from the scripted provider, wrapped by litellm
    import litellm
    import openai

    # litellm wraps stream failures in MidStreamFallbackError; the provider error is inside.
    fallback = litellm.exceptions.MidStreamFallbackError
    real = next((e for e in chain if not isinstance(e, fallback)), exc)
    if not isinstance(real, openai.OpenAIError):
        real = next((e for e in chain if isinstance(e, openai.OpenAIError)), exc)
    detail = _LITELLM_PREFIX.sub("", str(getattr(real, "message", None) or real)).strip()
    data: dict[str, Any] = {"model": model, "status": getattr(real, "status_code", None)}
    if isinstance(real, litellm.ContextWindowExceededError):
        return ContextWindowError(f"The conversation is too long for {model}: {detail}", **data)
    if isinstance(real, (litellm.AuthenticationError, litellm.PermissionDeniedError)):
        return ModelAuthError(f"{model}: authentication failed; {_auth_hint(model)}", **data)
    unknown_model = isinstance(real, (litellm.NotFoundError, litellm.LiteLLMUnknownProvider)) or (
        isinstance(real, litellm.BadRequestError) and "LLM Provider NOT provided" in detail
    )
    if unknown_model:
        return ModelNotFoundError(
            f"Unknown model {model!r}: use a litellm model string such as "
            f'"openai/gpt-4o-mini" or "scripted/echo" ({detail.splitlines()[0]})',
            **data,
        )
    if isinstance(real, litellm.RateLimitError):
        return RateLimitError(f"{model} is rate limited; retry later ({detail})", **data)
    status = data["status"]
    transient = (
        litellm.Timeout,
        litellm.APIConnectionError,
        litellm.ServiceUnavailableError,
        litellm.InternalServerError,
        litellm.BadGatewayError,
        openai.APIConnectionError,
        openai.InternalServerError,
    )
    if isinstance(real, transient) or (isinstance(status, int) and status >= 500):
        return ModelUnavailableError(f"{model} is unavailable: {detail}", **data)
    if isinstance(real, openai.OpenAIError):
        return ModelError(f"{model} failed: {detail}", **data)
    return exc


def _pace(response: Any) -> None:
    """Take a ``pacing.checkpoint()`` after each provider chunk arrives, before litellm's work.

    litellm builds its pydantic objects for a chunk in the same loop step that received
    it, so a checkpoint in the run loop would come after half the work. Where litellm
    already holds the provider's async stream (the scripted provider, OpenAI-compatible
    ones) it is wrapped; a provider whose stream litellm opens lazily is paced by the
    run loop's own checkpoint only.
    """
    chunks = getattr(response, "completion_stream", None)
    if chunks is not None and hasattr(chunks, "__aiter__"):
        response.completion_stream = _paced(chunks)


async def _paced(chunks: Any) -> AsyncIterator[Any]:
    try:
        async for chunk in chunks:
            await checkpoint()
            yield chunk
    finally:
        await _close(chunks)


async def _close(response: Any) -> None:
    """Close litellm's stream (and with it the provider's), whatever state it is in."""
    aclose = getattr(response, "aclose", None)
    if aclose is not None:
        await aclose()
    elif (close := getattr(response, "close", None)) is not None:
        result = close()
        if result is not None:
            await result


class LiteLLMModel:
    """The ``Model`` port over litellm, with retries of transient failures before streaming."""

    def __init__(self, retries: int = 3, backoff: float = 0.5) -> None:
        self.retries = retries
        self.backoff = backoff

    def _call_args(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        model: str,
        params: dict[str, Any],
    ) -> dict[str, Any]:
        call: dict[str, Any] = {**params, "model": model, "messages": messages, "stream": True}
        call["tools"] = tools or None
        if "stream_options" not in call and not is_custom(_provider(model)):
            # Custom providers put usage on their finished chunk; include_usage would make
            # litellm strip it there and rebuild it in an extra pass over every chunk.
            call["stream_options"] = {"include_usage": True}
        return call

    async def stream(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        *,
        model: str,
        params: dict[str, Any],
    ) -> AsyncIterator[StreamPart]:
        """Yield text and tool-call parts, then one ``Completion``; raise ``ModelError``."""
        await load_litellm_async()
        import litellm

        call = self._call_args(messages, tools, model, params)
        attempt = 0
        while True:
            assembler = StreamAssembler()
            started = False
            response: Any = None
            try:
                with inline(model, tools=bool(tools)):  # set-up on the loop, not a thread
                    response = await litellm.acompletion(**call)
                _pace(response)
                bound_chunks(response)
                async for chunk in response:
                    for part in assembler.feed(chunk):
                        started = True
                        yield part
                    hidden = getattr(chunk, "_hidden_params", None)
                    if assembler.usage is None and isinstance(hidden, dict):
                        assembler.note_usage(hidden.get("usage"))
                    if assembler.finish_reason and assembler.usage is not None:
                        break  # all we need; skip litellm's end-of-stream rebuild
            except Exception as exc:
                error = translate(exc, model)
                retryable = isinstance(error, ModelError) and error.retryable
                if started or not retryable or attempt >= self.retries:
                    if error is exc:
                        raise
                    raise error from exc
                delay = self.backoff * (2**attempt)
                attempt += 1
                if delay > 0:
                    await _sleep(delay)
                continue
            finally:
                if response is not None:
                    await _close(response)
            completion = assembler.finish()
            _freeze_after_first_call()
            yield _with_cost(completion, model)
            return


def _with_cost(completion: Completion, model: str) -> Completion:
    usage = replace(completion.usage, cost=cost_of(model, completion.usage))
    return replace(completion, usage=usage)
