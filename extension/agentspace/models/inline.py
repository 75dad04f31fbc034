"""litellm's set-up step on the event loop, in the run's own paced unit, not in a thread.

Why: ``litellm.acompletion`` runs ``completion()`` (argument mapping, provider
routing, logging set-up: a little Python) in the loop's default thread pool
and awaits it. When 200 runs start at once that is 200 hand-offs to pool threads
whose Python competes with the event loop for the GIL: each socket write the loop
makes releases the GIL, a pool thread takes it, and the loop waits up to the 5 ms
switch interval to get it back. bench/server.py measured long loop stalls made
mostly of pool-thread CPU (bench/RESULTS.md, server section: the burst). The step
itself is cheap; the thread is what costs. On the loop, after the run's
``pacing.checkpoint()``, it is bulk work like any other, and what ``acompletion``
does after it runs in the same step.

How: ``InlineExecutor`` becomes the running loop's default executor. It is a
``ThreadPoolExecutor`` and everything else submitted to it runs in its threads as
before. Inside ``inline(model)`` the task's next submission, if it is litellm's
``completion``, runs at once, and ``submit`` returns a finished asyncio future,
which ``run_in_executor`` hands back as it is, so ``acompletion`` goes on
without a loop turn. Only providers whose set-up does no I/O are inlined
(``PURE``: providers that authenticate with an API key, and registered custom
providers such as ``scripted``). A provider whose inline step takes more than
``SLOW`` seconds (a credential refresh, say) goes back to the thread for good,
with a warning. A provider's first call (with tools, and without) is set up in a
thread: it imports litellm's lazy modules (mcp, proxy types), which is slow; a slow
step that imported modules is not counted as I/O. Anything unexpected (another
litellm version that submits something else) falls through to the thread pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import logging
import sys
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)

SLOW = 0.02  # seconds: an inline step this long did I/O; that provider goes back to threads

# Providers whose litellm set-up is pure computation (an API key in a header, no token fetch).
PURE = frozenset(
    {
        "openai",
        "text-completion-openai",
        "anthropic",
        "gemini",
        "groq",
        "mistral",
        "deepseek",
        "together_ai",
        "openrouter",
        "fireworks_ai",
        "hosted_vllm",
        "lm_studio",
        "llamafile",
        "xai",
        "cerebras",
        "perplexity",
        "deepinfra",
        "nvidia_nim",
        "cohere_chat",
    }
)

# The provider whose next litellm step this task runs inline; None when not armed.
_armed: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "agentspace_inline", default=None
)
_installed: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
_warm: set[tuple[str, bool]] = set()  # (provider, with tools) whose first step ran, threaded
_demoted: set[str] = set()  # providers seen doing I/O in the step: threads from now on
stats = {"inline": 0, "threaded": 0}  # litellm steps run each way while armed (tests, benches)


class InlineExecutor(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor: a thread pool that runs an armed litellm step inline."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        provider = _armed_provider(fn)
        if provider is None:
            return super().submit(fn, *args, **kwargs)
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        modules = len(sys.modules)
        started = time.perf_counter()
        try:
            done.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the awaiting task, as a thread's would be
            done.set_exception(exc)
        took = time.perf_counter() - started
        stats["inline"] += 1
        imported = len(sys.modules) - modules  # a one-time cost, not a reason to demote
        if took > SLOW and not imported and provider not in _demoted:
            _demoted.add(provider)
            log.warning(
                "litellm's set-up for %s took %.0f ms on the event loop (I/O in it?); its "
                "calls set up in a thread from now on",
                provider,
                took * 1000,
            )
        return done


def _armed_provider(fn: Callable[..., Any]) -> str | None:
    """The provider if ``fn`` is the armed task's litellm ``completion`` step, else None."""
    provider = _armed.get()
    if provider is None:
        return None
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # submitted from a thread (no loop): never inline
        return None
    _armed.set(None)
    if not _is_litellm_completion(fn):
        stats["threaded"] += 1
        return None
    return provider


def _is_litellm_completion(fn: Callable[..., Any]) -> bool:
    """``acompletion`` submits ``partial(context.run, partial(completion, ...))``.

    ``litellm.main.completion``: the package's ``litellm.completion`` may be a dispatch
    layer in front of it.
    """
    import litellm.main

    inner = fn.args[0] if isinstance(fn, functools.partial) and fn.args else None
    return isinstance(inner, functools.partial) and inner.func is litellm.main.completion


@functools.lru_cache(maxsize=256)
def provider_of(model: str) -> str:
    """litellm's provider for a model string ('' if it cannot tell)."""
    import litellm

    try:
        return str(litellm.get_llm_provider(model=model)[1])
    except Exception:
        return ""


def is_custom(provider: str) -> bool:
    """Whether ``provider`` is a custom provider registered with litellm (``scripted``)."""
    import litellm

    return any(item.get("provider") == provider for item in litellm.custom_provider_map)


def inlinable(provider: str) -> bool:
    """Whether the provider's set-up may run on the loop (``PURE`` or custom, not demoted)."""
    if not provider or provider in _demoted:
        return False
    return provider in PURE or is_custom(provider)


@contextlib.contextmanager
def inline(model: str, *, tools: bool = True) -> Iterator[None]:
    """Run the litellm set-up step of the ``acompletion`` awaited in this block on the loop.

    ``tools``: whether the call passes tools (litellm's first such call imports more).
    """
    provider = provider_of(model)
    first = (provider, tools) not in _warm  # it imports litellm's lazy modules: slow
    _warm.add((provider, tools))
    if first or not inlinable(provider):
        stats["threaded"] += 1
        yield
        return
    loop = asyncio.get_running_loop()
    if loop not in _installed:
        loop.set_default_executor(InlineExecutor(thread_name_prefix="asyncio"))
        _installed.add(loop)
    armed = _armed.set(provider)
    try:
        yield
    finally:
        _armed.reset(armed)
