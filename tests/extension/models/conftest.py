"""Fixtures for the model adapter tests: litellm loaded once, and a programmable provider.

The ``fake`` provider is a real litellm ``CustomLLM`` registered as ``astest``,
so failures travel through litellm's own stream wrapper and exception mapping,
exactly as a paid provider's would, without any network.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from agentspace.models.scripted import _chunk as scripted_chunk

# Test modules import litellm at top level; without this it would fetch its cost map.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from agentspace.models.litellm_model import load_litellm

FAKE_PROVIDER = "astest"

Action = tuple[Any, ...]


@dataclass
class FakeProvider:
    """Each litellm call plays the next plan (the last one repeats)."""

    plans: list[list[Action]] = field(default_factory=list)
    calls: int = 0
    closed: int = 0
    hanging: asyncio.Event | None = None
    seen: list[dict[str, Any]] = field(default_factory=list)

    # Plan actions: what one call of the provider does, in order.
    HANG: ClassVar[Action] = ("hang",)

    @staticmethod
    def text(s: str) -> Action:
        return ("text", s)

    @staticmethod
    def tool(index: int, call_id: str | None, name: str | None, arguments: str) -> Action:
        function = {"name": name, "arguments": arguments}
        return ("tool", {"id": call_id, "type": "function", "index": index, "function": function})

    @staticmethod
    def fail(exc: BaseException) -> Action:
        return ("raise", exc)

    @staticmethod
    def done(reason: str = "stop", prompt: int = 3, completion: int = 5) -> Action:
        return ("done", reason, prompt, completion)

    def reset(self, *plans: list[Action]) -> None:
        self.plans = list(plans)
        self.calls = 0
        self.closed = 0
        self.hanging = asyncio.Event()
        self.seen = []

    async def play(self, kwargs: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        plan = self.plans[min(self.calls, len(self.plans) - 1)]
        self.calls += 1
        self.seen.append(kwargs)
        try:
            for action in plan:
                kind = action[0]
                if kind == "text":
                    yield _chunk(text=action[1])
                elif kind == "tool":
                    yield _chunk(tool_use=action[1])
                elif kind == "raise":
                    raise action[1]
                elif kind == "hang":
                    assert self.hanging is not None
                    self.hanging.set()
                    await asyncio.Event().wait()
                elif kind == "done":
                    _, reason, prompt, completion = action
                    usage = {
                        "prompt_tokens": prompt,
                        "completion_tokens": completion,
                        "total_tokens": prompt + completion,
                    }
                    yield {**_chunk(), "is_finished": True, "finish_reason": reason, "usage": usage}
        finally:
            self.closed += 1


_chunk = scripted_chunk  # the scripted provider's chunk shape, reused


@pytest.fixture(scope="session")
def fake_provider() -> FakeProvider:
    """Load litellm once per session and register the ``astest`` provider."""
    load_litellm()
    import litellm
    from litellm import CustomLLM
    from litellm.utils import custom_llm_setup

    provider = FakeProvider()

    class Handler(CustomLLM):
        # Return the plan's generator itself, so closing litellm's stream closes it at once.
        def astreaming(  # type: ignore[override]
            self, *args: Any, **kwargs: Any
        ) -> AsyncIterator[dict[str, Any]]:
            return provider.play(kwargs)

    litellm.custom_provider_map = [
        *[p for p in litellm.custom_provider_map if p["provider"] != FAKE_PROVIDER],
        {"provider": FAKE_PROVIDER, "custom_handler": Handler()},
    ]
    custom_llm_setup()
    return provider


@pytest.fixture
def fake(fake_provider: FakeProvider) -> FakeProvider:
    fake_provider.reset([FakeProvider.text("ok"), FakeProvider.done()])
    return fake_provider


@pytest.fixture(scope="session", autouse=True)
def _litellm_loaded() -> None:
    load_litellm()


@pytest.fixture
def delays(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retry backoff delays, recorded instead of slept."""
    from agentspace.models import litellm_model

    seen: list[float] = []

    async def record(delay: float) -> None:
        seen.append(delay)

    monkeypatch.setattr(litellm_model, "_sleep", record)
    return seen
