"""Sessions through real litellm against local fakes of each provider's wire format.

Each test runs for every wire format (OpenAI, Anthropic, Ollama ``/api/chat``,
vLLM, llama.cpp): a real aiohttp server on 127.0.0.1 (``providerfakes.py`` beside this file)
plays the provider's bytes and records what reached it, so a history the provider
would refuse, a retry too many or a request never sent shows at the fake.

Timeouts are set small (0.3 s) where a stall is the behaviour under test; the
asserts read the outcome, never how long it took.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agentspace.engine.config import EngineConfig, Limits
from agentspace.engine.engine import Engine
from agentspace.engine.session import Session
from agentspace.events import StoredEvent
from agentspace.models import litellm_model
from agentspace.store.approvals import Decision
from agentspace.testing import collect_run, text_of, types_of

from .providerfakes import (
    WIRES,
    Call,
    Cut,
    Done,
    Fail,
    FakeProvider,
    Reply,
    Stall,
    Text,
    turns,
)

WRITE = '{"path": "a.txt", "content": "hi from the model"}'
BROKEN = '{"path": "a.txt", "content": "hi'  # cut off: not JSON
MARKER = "zebra-7731"  # a word of the user's, never to be echoed back in an error


@pytest.fixture(params=WIRES)
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeProvider]:
    async with FakeProvider(request.param) as server:
        yield server


@pytest.fixture
def make_engine(state_dir: Path) -> Callable[..., Engine]:
    def make(fake: FakeProvider, params: dict[str, Any] | None = None, **limits: Any) -> Engine:
        limits = {"first_byte_timeout": 30, "chunk_timeout": 30, "retry_backoff": 0, **limits}
        config = EngineConfig(
            state_dir=state_dir,
            model=fake.model,
            model_params=fake.params if params is None else params,
            limits=Limits(**limits),
        )
        return Engine(config)

    return make


async def run(session: Session, text: str) -> list[StoredEvent]:
    after = session.log.last_seq
    await session.send(text)
    return await collect_run(session, after)


def data(event: StoredEvent) -> dict[str, Any]:
    return json.loads(event.data)  # type: ignore[no-any-return]


def outcome(events: list[StoredEvent]) -> str:
    last = events[-1]
    return "error" if last.type == "RUN_ERROR" else str(data(last)["outcome"]["type"])


def error_of(events: list[StoredEvent]) -> str:
    assert events[-1].type == "RUN_ERROR", types_of(events)
    return str(data(events[-1])["message"])


def assert_clean(message: str) -> None:
    """An error a person can read: no litellm layers, reprs, tracebacks or conversation."""
    for junk in ("b'", 'b"', "Handle with", "Traceback", "Exception -", "litellm.", MARKER):
        assert junk not in message, (junk, message)
    assert len(message) < 800, message


def accepted(fake: FakeProvider) -> None:
    """Every request that reached the fake was one the real provider accepts."""
    assert [seen.problems for seen in fake.requests] == [[]] * len(fake.requests)


# -- the happy path ------------------------------------------------------------
async def test_text_tool_call_approval_history_and_usage(
    fake: FakeProvider, make_engine: Callable[..., Engine]
) -> None:
    fake.script(
        Reply(Text("Let me write it.", pieces=4), Call("write_file", WRITE, pieces=7), Done(11, 7)),
        Reply(Text("Done, the file is written."), Done(40, 5)),
    )
    async with make_engine(fake) as engine:
        session = await engine.session("happy.ipynb")
        events = await run(session, "write a file")
        assert outcome(events) == "interrupt"
        assert text_of(events) == "Let me write it."
        kinds = types_of(events)
        assert kinds.count("TEXT_MESSAGE_CONTENT") >= 4 + 1  # the user's and the model's pieces
        assert kinds.index("TOOL_CALL_START") < kinds.index("TOOL_CALL_END")
        if fake.wire != "ollama":  # Ollama sends a call whole
            assert kinds.count("TOOL_CALL_ARGS") >= 7
        args = "".join(data(e)["delta"] for e in events if e.type == "TOOL_CALL_ARGS")
        assert json.loads(args) == json.loads(WRITE)
        (interrupt,) = data(events[-1])["outcome"]["interrupts"]
        assert interrupt["metadata"]["arguments"] == json.loads(WRITE)
        await session.wait()
        await session.decide(interrupt["toolCallId"], Decision(decision="approve"))
        resumed = await collect_run(session, events[-1].seq)
        assert outcome(resumed) == "success"
        assert text_of(resumed) == "Done, the file is written."
        assert (session.folder / "a.txt").read_text() == "hi from the model"
        await session.wait()
        usage = session.record.usage
        assert (usage.input_tokens, usage.output_tokens) == (51, 12)

    assert len(fake.requests) == 2
    accepted(fake)
    history = turns(fake.wire, fake.requests[1].body)
    assert [t.role for t in history] == ["system", "user", "assistant", "tool"]
    assert history[1].text == "write a file"
    assert history[2].text == "Let me write it."
    ((name, sent),) = history[2].calls
    assert name == "write_file"
    assert (sent if isinstance(sent, dict) else json.loads(sent)) == json.loads(WRITE)
    assert "a.txt" in history[3].text


# -- malformed tool-call arguments ----------------------------------------------
async def test_malformed_arguments_go_back_to_the_model_and_the_session_keeps_working(
    fake: FakeProvider, make_engine: Callable[..., Engine]
) -> None:
    fake.script(
        Reply(Text("Writing."), Call("write_file", BROKEN), Done()),
        Reply(Text("My arguments were broken; I will retry."), Done()),
        Reply(Text("Still here."), Done()),
    )
    async with make_engine(fake) as engine:
        session = await engine.session("broken.ipynb")
        events = await run(session, "write a file")
        assert outcome(events) == "success"  # answered at once, never held for approval
        (result,) = [data(e)["content"] for e in events if e.type == "TOOL_CALL_RESULT"]
        assert "not valid JSON" in result and "did not run" in result
        assert not (session.folder / "a.txt").exists()
        assert text_of(events).endswith("I will retry.")
        later = await run(session, "are you there?")
        assert outcome(later) == "success" and text_of(later) == "Still here."

    assert len(fake.requests) == 3  # every call reached the provider
    accepted(fake)
    history = turns(fake.wire, fake.requests[1].body)
    assert [t.role for t in history] == ["system", "user", "assistant", "tool"]
    assert "not valid JSON" in history[3].text


# -- timeouts --------------------------------------------------------------------
async def warm(engine: Engine, fake: FakeProvider) -> None:
    """One call through the provider's litellm path first: its first call imports modules
    in a thread, which must not count against a short limit under test."""
    model = engine.model
    saved = fake._replies
    fake.script(Reply(Text("warm"), Done()))
    tools = [{"type": "function", "function": {"name": "t", "parameters": {"type": "object"}}}]
    async for _ in model.stream(
        [{"role": "user", "content": "hi"}], tools, model=fake.model, params=fake.params
    ):
        pass
    fake.script(*saved)


@pytest.mark.parametrize(
    ("reply", "limit"),
    [
        (Reply(Stall(headers=False)), "first_byte_timeout"),
        (Reply(Text("A partial answer"), Stall()), "chunk_timeout"),
    ],
    ids=["before-first-byte", "mid-stream"],
)
async def test_a_stalled_stream_ends_in_run_error_keeping_the_partial_text(
    fake: FakeProvider, make_engine: Callable[..., Engine], reply: Reply, limit: str
) -> None:
    fake.script(reply, Reply(Text("Back again."), Done()))
    async with make_engine(fake, model_retries=0, **{limit: 0.3}) as engine:
        await warm(engine, fake)
        session = await engine.session("stall.ipynb")
        events = await run(session, "hello")
        message = error_of(events)
        assert limit in message and "0.3 s" in message
        assert_clean(message)
        await session.wait()
        assert session.status == "failed"
        transcript = await session.transcript()
        partial = [m["content"] for m in transcript if m["role"] == "assistant"]
        assert partial == (["A partial answer"] if limit == "chunk_timeout" else [])
        setattr(engine.model, limit, 30.0)  # the next call must not race a short limit
        later = await run(session, "again")
        assert outcome(later) == "success" and text_of(later) == "Back again."
    accepted(fake)


def test_timeouts_are_configurable_with_sane_defaults() -> None:
    from agentspace.server.app import AgentspaceApp

    assert (Limits().first_byte_timeout, Limits().chunk_timeout) == (60.0, 60.0)
    app = AgentspaceApp()
    app.first_byte_timeout, app.chunk_timeout = 5.0, 7.0
    limits = app.engine_config().limits
    assert (limits.first_byte_timeout, limits.chunk_timeout) == (5.0, 7.0)
    model = Engine(EngineConfig(limits=limits)).model
    assert isinstance(model, litellm_model.LiteLLMModel)
    assert (model.first_byte_timeout, model.chunk_timeout) == (5.0, 7.0)


# -- retries -----------------------------------------------------------------------
async def test_one_retry_layer_honouring_retry_after(
    fake: FakeProvider, make_engine: Callable[..., Engine], delays: list[float]
) -> None:
    fake.script(Reply(Fail(429, retry_after=2)))
    async with make_engine(fake, model_retries=2) as engine:
        session = await engine.session("limited.ipynb")
        message = error_of(await run(session, f"hello {MARKER}"))
    assert len(fake.requests) == 3  # ours only: the SDK's retries are off
    assert delays == [2.0, 2.0]  # the provider's Retry-After, over our (zero) backoff
    assert "rate limited" in message
    assert_clean(message)


async def test_a_retry_after_past_the_cap_is_not_waited_and_says_so(
    fake: FakeProvider, make_engine: Callable[..., Engine], delays: list[float]
) -> None:
    fake.script(Reply(Fail(429, retry_after=600)))
    async with make_engine(fake, model_retries=3) as engine:
        session = await engine.session("capped.ipynb")
        message = error_of(await run(session, "hello"))
    assert len(fake.requests) == 1 and delays == []
    assert "600 s" in message and "max_retry_after" in message


async def test_transient_failures_are_retried_then_the_answer_streams(
    fake: FakeProvider, make_engine: Callable[..., Engine], delays: list[float]
) -> None:
    fake.script(Reply(Fail(500)), Reply(Cut()), Reply(Text("Finally."), Done()))
    async with make_engine(fake, model_retries=3) as engine:
        session = await engine.session("flaky.ipynb")
        events = await run(session, "hello")
    assert outcome(events) == "success" and text_of(events) == "Finally."
    assert len(fake.requests) == 3
    accepted(fake)


@pytest.mark.parametrize(
    "reply",
    [Reply(Fail(401)), Reply(Text("Half an ans"), Cut())],
    ids=["unauthorised", "cut-after-text"],
)
async def test_no_retry_of_permanent_errors_or_after_text_reached_the_user(
    fake: FakeProvider, make_engine: Callable[..., Engine], delays: list[float], reply: Reply
) -> None:
    fake.script(reply, Reply(Text("a second answer"), Done()))
    async with make_engine(fake, model_retries=3) as engine:
        session = await engine.session("once.ipynb")
        events = await run(session, f"hello {MARKER}")
        message = error_of(events)
        transcript = await session.transcript()
    assert len(fake.requests) == 1 and delays == []
    assert_clean(message)
    if isinstance(reply.steps[0], Text):
        assert "closed before the answer was complete" in message
        assert [m["content"] for m in transcript if m["role"] == "assistant"] == ["Half an ans"]


# -- errors that read like help ------------------------------------------------------
async def test_provider_errors_are_the_providers_words_plus_what_to_do(
    fake: FakeProvider, make_engine: Callable[..., Engine]
) -> None:
    fake.script(Reply(Fail(401)), Reply(Fail(500, "the GPU fell over")))
    async with make_engine(fake, model_retries=0) as engine:
        session = await engine.session("errors.ipynb")
        auth = error_of(await run(session, f"hello {MARKER}"))
        down = error_of(await run(session, f"hello {MARKER}"))
    assert_clean(auth)
    assert_clean(down)
    assert "authentication failed" in auth and "restart the server" in auth
    if fake.wire == "ollama":
        assert "OLLAMA_API_KEY" in auth and "needs no key" in auth
        assert "OLLAMA_API_BASE" not in auth
    else:
        assert "rejected the API key" in auth
    assert "the GPU fell over" in down and "unavailable" in down


@pytest.mark.parametrize(
    ("model", "variable"),
    [
        ("openai/gpt-4o-mini", "OPENAI_API_KEY"),
        ("anthropic/claude-haiku-4-5", "ANTHROPIC_API_KEY"),
    ],
)
@pytest.mark.parametrize("embedded", [False, True], ids=["server", "embedded"])
async def test_a_missing_key_says_where_keys_live_and_to_restart(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch, model: str, variable: str, embedded: bool
) -> None:
    monkeypatch.delenv(variable, raising=False)
    config = EngineConfig(
        state_dir=state_dir,
        model=model,
        limits=Limits(model_retries=0),
        **({"preview_url": None} if embedded else {}),
    )
    async with Engine(config) as engine:
        session = await engine.session("nokey.ipynb")
        message = error_of(await run(session, "hello"))
    assert variable in message and "no API key" in message
    if embedded:
        assert "kernel's environment" in message and "restart the kernel" in message
    else:
        assert "Jupyter server's environment" in message and "not from the kernel's" in message
        assert "restart the server" in message
    assert_clean(message)


# -- a tool call cut mid-stream -------------------------------------------------------
async def test_a_tool_call_cut_mid_stream_is_closed_before_run_error(
    fake: FakeProvider, make_engine: Callable[..., Engine]
) -> None:
    fake.script(
        Reply(Text("Writing."), Call("write_file", WRITE, pieces=6, cut_after=3)),
        Reply(Text("Recovered."), Done()),
    )
    async with make_engine(fake, model_retries=3) as engine:
        session = await engine.session("cut.ipynb")
        events = await run(session, "write a file")
        kinds = types_of(events)
        assert kinds[-1] == "RUN_ERROR"
        assert_clean(error_of(events))
        if fake.wire != "ollama":  # Ollama's call is one line: cut, it never began
            start = kinds.index("TOOL_CALL_START")
            end = kinds.index("TOOL_CALL_END", start)
            assert start < end < kinds.index("TOOL_CALL_RESULT", end) < len(kinds) - 1
            (_one_call,) = {data(e).get("toolCallId") for e in events if "TOOL_CALL" in e.type}
        assert kinds.count("TOOL_CALL_START") == kinds.count("TOOL_CALL_END")
        assert not (session.folder / "a.txt").exists()
        later = await run(session, "try again")
        assert outcome(later) == "success" and text_of(later) == "Recovered."
    assert len(fake.requests) == 2
    accepted(fake)
