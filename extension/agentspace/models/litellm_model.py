"""The one model adapter: every provider through ``litellm.acompletion(stream=True)``.

Why here and only here: litellm's exceptions are translated once, at this
boundary, into ``agentspace.errors`` (``models/faults.py``) so the run loop and
the UI deal with one error tree. Retries live here too, and only here (the
OpenAI SDK's own are turned off: nested, one 429 cost twelve requests), and
only before the first part is yielded: once text reached the user a retry would
duplicate it, so a mid-stream failure is raised as is. The timeouts (first
chunk, between chunks) are here because no provider's client enforces them on
a stream: without them a stalled provider keeps a run ``running`` forever.

litellm is imported lazily (it is slow: bench/RESULTS.md, server section, first
use) with its network cost-map fetch and debug printing turned off.

Throughput (bench/engine.py; bench/RESULTS.md, engine section): litellm builds
pydantic objects per chunk and, when the stream is drained, runs
``stream_chunk_builder`` over every chunk again (a cost of the same order, twice
with ``stream_options.include_usage``). So once a finish reason and the
usage are both known nothing more is needed and the stream is closed early, and
custom providers (which report usage on their finished chunk) are called
without ``include_usage``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import warnings
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from agentspace.errors import ModelError, ModelUnavailableError
from agentspace.fairness.imports import quietly
from agentspace.fairness.pacing import checkpoint
from agentspace.models import faults
from agentspace.models.assembler import StreamAssembler
from agentspace.models.base import Completion, StreamPart, Usage
from agentspace.models.inline import inline, is_custom
from agentspace.models.retention import bound_chunks

SCRIPTED_CONTEXT_WINDOW = 128_000
CLOSE_TIMEOUT = 5.0  # seconds: closing a stream must not hang on a stalled provider
_loaded = False
warmed = False  # the preload's warm-up call went through (tests)
log = logging.getLogger(__name__)
_called = False  # whether a model call completed since litellm was loaded
# "Item 'x' on TypedDict class 'C' is using ..." and "Items 'x', 'y' on TypedDict class ..."
TYPEDDICT_NOTICE = r"Items? '[^']+'(?:, '[^']+')* on TypedDict class"
_sleep = asyncio.sleep  # the retry backoff; a seam so tests can record delays without waiting


def loaded() -> bool:
    """Whether litellm is imported here already (asking it anything now costs no import)."""
    return _loaded


def load_litellm() -> None:
    """Import and quiet litellm once, and register the scripted provider."""
    global _loaded
    if _loaded:
        return
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    # pydantic complains about litellm's TypedDicts (ReadOnly items, one or several per
    # message) when it first builds their schemas; they are not ours to fix.
    warnings.filterwarnings("ignore", TYPEDDICT_NOTICE, UserWarning)
    # A great many long-lived objects: collections during the import would pause every
    # thread (the server's loop included), time and again, and full ones after it would
    # walk them all (long pauses under load; bench/RESULTS.md, server section):
    # imports.quietly.
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
    """Freeze once more after the first call: it imports many more objects lazily.

    litellm's first ``acompletion`` (with ``tools=``) imports mcp, litellm.proxy types,
    starlette and more: hundreds of pydantic classes that every full collection would
    walk (long pauses of the server under load; bench/RESULTS.md, server section). Objects
    alive now that later become cyclic garbage are never collected; once, that is little.
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

    litellm's first call with ``tools=`` imports many more modules (mcp, proxy types),
    which is slow. Done here, the first user's run pays neither that nor the import,
    and the GIL-holding import work happens before any run streams. ``models`` (the configured
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


def supports_images(model: str) -> bool:
    """Whether the model takes images in its messages (litellm's model map; False if unknown)."""
    if _provider(model) == "scripted":
        return False
    load_litellm()
    import litellm

    try:
        return bool(litellm.supports_vision(model=model))
    except Exception:
        return False


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


def translate(exc: BaseException, model: str, **context: Any) -> BaseException:
    """Map a litellm/openai exception to ``agentspace.errors`` (models/faults.py)."""
    return faults.translate(exc, model, **context)


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


async def _close_within(response: Any, seconds: float) -> None:
    """Close a stream, but never wait on a stalled provider for longer than ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            await _close(response)
    except TimeoutError:
        log.debug("closing a model stream took over %s s; left to the connection pool", seconds)


class LiteLLMModel:
    """The ``Model`` port over litellm: one retry layer, timeouts, errors that say what to do.

    Retries: only here (the OpenAI SDK's own are turned off with ``max_retries=0``),
    only for transient failures (rate limits, 5xx, connection errors, a call that
    sent nothing in time) and only before any part was yielded. A provider's
    ``Retry-After`` is waited when it is at most ``max_retry_after`` seconds; a
    longer one ends the call at once with an error that says how long to wait.

    Timeouts: ``first_byte_timeout`` from the start of a call to its first chunk,
    ``chunk_timeout`` between two chunks. Each covers only the wait for the
    provider, never the consumer's work between chunks.
    """

    def __init__(
        self,
        retries: int = 3,
        backoff: float = 0.5,
        *,
        max_retry_after: float = 30.0,
        first_byte_timeout: float = 60.0,
        chunk_timeout: float = 60.0,
        keys_in: faults.KeysIn = "server",
    ) -> None:
        self.retries = retries
        self.backoff = backoff
        self.max_retry_after = max_retry_after
        self.first_byte_timeout = first_byte_timeout
        self.chunk_timeout = chunk_timeout
        self.keys_in: faults.KeysIn = keys_in

    def _call_args(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        model: str,
        params: dict[str, Any],
    ) -> dict[str, Any]:
        call: dict[str, Any] = {**params, "model": model, "messages": messages, "stream": True}
        call["tools"] = tools or None
        # One retry layer: ours. The OpenAI SDK's would retry each of ours three times.
        call.setdefault("max_retries", 0)
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
        context: dict[str, Any] = {"keys_in": self.keys_in}
        if params.get("api_key"):
            context["key_sent"] = True
        attempt = 0
        while True:
            assembler = StreamAssembler()
            started = False
            response: Any = None
            loop = asyncio.get_running_loop()
            # The first chunk is due first_byte_timeout after the call starts; each later
            # one chunk_timeout after the one before. Only waits for the provider count.
            deadline = loop.time() + self.first_byte_timeout
            first, waited = True, self.first_byte_timeout
            try:
                async with asyncio.timeout_at(deadline):
                    with inline(model, tools=bool(tools)):  # set-up on the loop, not a thread
                        response = await litellm.acompletion(**call)
                    _pace(response)
                    bound_chunks(response)
                    chunks = response.__aiter__()
                while True:
                    if not first:
                        deadline, waited = loop.time() + self.chunk_timeout, self.chunk_timeout
                    try:
                        async with asyncio.timeout_at(deadline):
                            chunk = await chunks.__anext__()
                    except StopAsyncIteration:
                        break
                    except TimeoutError:
                        raise self._stalled(model, first, waited) from None
                    first = False
                    for part in assembler.feed(chunk):
                        started = True
                        yield part
                    hidden = getattr(chunk, "_hidden_params", None)
                    if assembler.usage is None and isinstance(hidden, dict):
                        assembler.note_usage(hidden.get("usage"))
                    if assembler.finish_reason and assembler.usage is not None:
                        break  # all we need; skip litellm's end-of-stream rebuild
            except TimeoutError:
                error: BaseException = self._stalled(model, True, self.first_byte_timeout)
                if started or attempt >= self.retries:
                    raise error from None
                attempt += 1
                await self._backoff(attempt - 1, None)
                continue
            except Exception as exc:
                error = translate(exc, model, **context)
                retryable = isinstance(error, ModelError) and error.retryable
                if started or not retryable or attempt >= self.retries:
                    if error is exc:
                        raise
                    raise error from None
                wait = getattr(error, "data", {}).get("retry_after")
                if wait is not None and wait > self.max_retry_after:
                    assert isinstance(error, ModelError)
                    raise type(error)(
                        f"{error.message} The provider asked to wait {wait:g} s before "
                        f"retrying, longer than agentspace waits ({self.max_retry_after:g} s, "
                        "limits.max_retry_after): resume after that.",
                        **error.data,
                    ) from None
                attempt += 1
                await self._backoff(attempt - 1, wait)
                continue
            finally:
                if response is not None:
                    await _close_within(response, CLOSE_TIMEOUT)
            completion = assembler.finish()
            _freeze_after_first_call()
            yield _with_cost(completion, model)
            return

    async def _backoff(self, attempt: int, retry_after: float | None) -> None:
        """Wait before a retry: the backoff, or longer when the provider asked for it."""
        delay = self.backoff * (2**attempt)
        if retry_after is not None:
            delay = max(delay, retry_after)
        if delay > 0:
            await _sleep(delay)

    def _stalled(self, model: str, first: bool, waited: float) -> ModelUnavailableError:
        if first:
            what, limit = "sent nothing", "limits.first_byte_timeout"
        else:
            what, limit = "stopped sending mid-answer", "limits.chunk_timeout"
        return ModelUnavailableError(
            f"{model} {what} for {waited:g} s ({limit}), so the call was ended; what it had "
            "sent is kept. Resume to try again, or raise the limit for a slow model "
            "(c.AgentspaceApp." + limit.split(".", 1)[1] + ").",
            model=model,
            status=None,
            timeout=limit.split(".", 1)[1],
        )


def _with_cost(completion: Completion, model: str) -> Completion:
    usage = replace(completion.usage, cost=cost_of(model, completion.usage))
    return replace(completion, usage=usage)
