"""Prices and the preload, through real litellm against a local OpenAI-compatible server.

The server is ``bench/fakeopenai.py`` (the OpenAI chat-completions SSE format), in a
thread: no network, no keys. ``openai/fake-*`` is a model litellm has no price for.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import litellm
import pytest

from agentspace.engine import defaults
from agentspace.engine.config import EngineConfig, Limits
from agentspace.engine.engine import Engine
from agentspace.events import Custom
from agentspace.models.base import Completion
from agentspace.testing import collect_run

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "bench"))
from fakeopenai import serve_in_thread  # noqa: E402


@pytest.fixture(scope="module")
def openai_base() -> Iterator[str]:
    yield f"http://127.0.0.1:{serve_in_thread()}/v1"


def config(state: Path, base: str, **limits: object) -> EngineConfig:
    return EngineConfig(
        state_dir=state,
        model="openai/fake-tool",
        model_params={"api_base": base, "api_key": "sk-fake"},
        limits=Limits(**limits),  # type: ignore[arg-type]
    )


def warnings_in(events: list) -> list[dict[str, str]]:
    found = []
    for stored in events:
        data = json.loads(stored.data)
        if stored.type == "CUSTOM" and data["name"] == Custom.WARNING:
            found.append(data["value"])
    return found


async def test_unknown_price_is_null_and_the_ceiling_says_once_per_run_it_cannot_hold(
    tmp_path: Path, openai_base: str
) -> None:
    async with Engine(config(tmp_path, openai_base, cost_ceiling=0.01)) as engine:
        session = await engine.session("price.ipynb")
        await session.send("list the files")
        events = await collect_run(session, 0)
        assert json.loads(events[-1].data)["type"] == "RUN_FINISHED"
        usage = session.record.usage
        assert usage.model_calls == 2  # the tool call, then the answer: one run
        assert usage.cost is None and usage.unpriced_calls == 2  # never 0.0
        [warning] = warnings_in(events)
        assert warning["code"] == "cost_ceiling_unenforceable"
        assert "openai/fake-tool" in warning["message"] and "cost_ceiling" in warning["message"]
        info = (await engine.list())[0].model_dump(mode="json")
        assert info["usage"]["cost"] is None  # what REST and `agentspace sessions --json` show
        await session.store.flush()
        run_usage = await session.store.query("SELECT usage FROM runs")
        assert json.loads(run_usage[0][0])["cost"] is None


async def test_the_token_budget_still_holds_when_the_price_is_unknown(
    tmp_path: Path, openai_base: str
) -> None:
    async with Engine(config(tmp_path, openai_base, cost_ceiling=0.01, token_budget=5)) as engine:
        session = await engine.session("budget.ipynb")
        await session.send("list the files")
        events = await collect_run(session, 0)
        error = json.loads(events[-1].data)
        assert error["type"] == "RUN_ERROR" and "token budget" in error["message"]
        assert len(warnings_in(events)) == 1


async def test_no_ceiling_no_warning(tmp_path: Path, openai_base: str) -> None:
    async with Engine(config(tmp_path, openai_base)) as engine:
        session = await engine.session("quiet.ipynb")
        await session.send("list the files")
        assert warnings_in(await collect_run(session, 0)) == []


def named_models() -> set[str]:
    """Provider model strings named in the README, the docs and the package's sources."""
    pattern = re.compile(r"\b(?:openai|anthropic|gemini|ollama_chat|ollama)/[A-Za-z0-9][\w.:-]*")
    docs = sorted((ROOT / "docs").glob("*.md"))
    texts = [ROOT / "README.md", *docs, *sorted((ROOT / "extension" / "agentspace").rglob("*.py"))]
    found = {m.rstrip(".") for path in texts for m in pattern.findall(path.read_text())}
    found |= {model for _, model in defaults.PROVIDER_DEFAULTS}
    return found


def test_every_model_named_in_code_and_readme_is_in_litellms_model_map() -> None:
    models = named_models()
    assert {model for _, model in defaults.PROVIDER_DEFAULTS} <= models
    unknown = []
    for model in sorted(models):
        provider, name = model.split("/", 1)
        assert provider != "ollama", f"{model}: use ollama_chat/ (real tool calls)"
        if provider == "ollama_chat":  # the map lists Ollama's models under ollama/
            known = f"ollama/{name}" in litellm.model_cost
        else:
            try:
                known = bool(litellm.get_model_info(model))
            except Exception:
                known = False
        if not known:
            unknown.append(model)
    assert unknown == [], f"not in litellm's model map: {unknown}"


PRELOADED_CALL = """
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
from fakeopenai import serve_in_thread
base = f"http://127.0.0.1:{serve_in_thread()}/v1"
from agentspace.models import litellm_model
litellm_model._preload()
import tiktoken.registry
before = sorted(tiktoken.registry.ENCODINGS)
async def call() -> None:
    model = litellm_model.LiteLLMModel()
    params = {"api_base": base, "api_key": "sk-fake"}
    messages = [{"role": "user", "content": "hi"}]
    async for _ in model.stream(messages, [], model="openai/gpt-4o-mini", params=params):
        pass
asyncio.run(call())
print(json.dumps({"before": before, "after": sorted(tiktoken.registry.ENCODINGS)}))
"""


def test_after_the_preload_the_first_openai_call_loads_no_tokenizer() -> None:
    """litellm prices the response inside ``acompletion``, on the event loop: the
    tokenizer it counts with must already be loaded (by the preload thread)."""
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run(
        [sys.executable, "-c", PRELOADED_CALL, str(ROOT / "bench")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["after"] == loaded["before"], "the call loaded a tokenizer on its thread"


async def test_a_long_stream_keeps_no_chunk_list_growing_with_it(
    openai_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """litellm's stream wrapper kept every chunk (~3 kB each) until the call ended."""
    from agentspace.models import litellm_model

    wrappers: list[object] = []
    pace = litellm_model._pace

    def keep(response: object) -> None:
        wrappers.append(response)
        pace(response)

    monkeypatch.setattr(litellm_model, "_pace", keep)
    model = litellm_model.LiteLLMModel()
    params = {"api_base": openai_base, "api_key": "sk-fake"}
    messages = [{"role": "user", "content": "hi"}]
    parts = [p async for p in model.stream(messages, [], model="openai/fake-5000", params=params)]
    done = parts[-1]
    assert isinstance(done, Completion) and done.usage.output_tokens == 5_000
    assert done.text.count(" ") == 5_000  # the answer itself is whole
    [wrapper] = wrappers
    held = [value for value in vars(wrapper).values() if isinstance(value, list)]
    assert held and max(len(value) for value in held) < 2_000
