"""What ``Session.info()`` says: facts of one moment, agreeing with the events up to its
``last_seq``, and the limits that apply."""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from agentspace.engine.config import EngineConfig
from agentspace.engine.engine import Engine
from agentspace.engine.session import Session
from agentspace.models import litellm_model
from agentspace.models.litellm_model import SCRIPTED_CONTEXT_WINDOW
from agentspace.store.approvals import Decision
from agentspace.store.records import SessionInfo, SessionLimits
from agentspace.store.states import Status
from agentspace.testing import collect_run, stored, turn

WRITE = ("write_file", {"path": "a.txt", "content": "hi"})
_in_info: contextvars.ContextVar[bool] = contextvars.ContextVar("in_info", default=False)


async def folded(session: Session, upto: int) -> tuple[str, list[str]]:
    """The status and the held calls that the events up to ``upto`` give (a view's fold)."""
    status, held = "idle", []
    async for event in stored(session):
        if event.seq > upto:
            break
        data = json.loads(event.data)
        if event.type == "CUSTOM" and data["name"] == "agentspace.status":
            status = data["value"]["status"]
        elif event.type == "RUN_FINISHED" and data["outcome"]["type"] == "interrupt":
            held = [i["toolCallId"] for i in data["outcome"]["interrupts"]]
        elif event.type == "CUSTOM" and data["name"] == "agentspace.decision":
            held = [c for c in held if c != data["value"]["tool_call_id"]]
    return status, held if status == Status.AWAITING_APPROVAL else []


async def assert_agrees(session: Session, info: SessionInfo) -> None:
    ids = [p.tool_call_id for p in info.pending_calls]
    assert (info.status, ids) == await folded(session, info.last_seq)
    if info.status == Status.AWAITING_APPROVAL:
        assert ids, "awaiting approval, yet no call listed"


def stall_reads_until(
    monkeypatch: pytest.MonkeyPatch, session: Session, ready: Callable[[], bool]
) -> None:
    """The store's reads made by ``info()`` come back only once ``ready()``: what a busy
    loop does to an await (the reader thread and the pacing checkpoint take their time)."""
    real = session.store.read

    async def read(fn: Callable[..., Any]) -> Any:
        result = await real(fn)
        if _in_info.get():
            for _ in range(1000):
                if ready():
                    break
                await asyncio.sleep(0.01)
        return result

    monkeypatch.setattr(session.store, "read", read)


async def info_in(make: Callable[[], Awaitable[SessionInfo]]) -> SessionInfo:
    async def marked() -> SessionInfo:
        _in_info.set(True)
        return await make()

    return await asyncio.create_task(marked())


async def test_an_info_read_as_the_run_pauses_agrees_with_its_events(
    engine: Engine, script: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = script(turn("word " * 30, WRITE, delay_ms=10), turn("Done."))
    session = await engine.session("pause.ipynb", model=model)
    await session.send("write it")
    async for event in session.subscribe(0):  # the answer streams: the pause is to come
        if event.type == "TEXT_MESSAGE_CONTENT" and json.loads(event.data)["delta"] != "write it":
            break
    stall_reads_until(monkeypatch, session, lambda: session.status == Status.AWAITING_APPROVAL)
    info = await info_in(session.info)  # begun while running, over once paused
    assert session.status == Status.AWAITING_APPROVAL
    await assert_agrees(session, info)  # the moment it read: running, nothing held yet
    monkeypatch.undo()

    paused = await session.info()
    assert paused.status == Status.AWAITING_APPROVAL and len(paused.pending_calls) == 1
    await assert_agrees(session, paused)
    # and across the decision, the continuation and its end
    stall_reads_until(monkeypatch, session, lambda: not session.busy)
    task = asyncio.create_task(info_in(session.info))
    await asyncio.sleep(0)
    await session.decide(paused.pending_calls[0].tool_call_id, Decision(decision="approve"))
    await assert_agrees(session, await task)
    monkeypatch.undo()
    await session.wait()
    done = await session.info()
    assert done.status == Status.IDLE and done.pending_calls == []
    await assert_agrees(session, done)
    (listed,) = await engine.list()
    assert listed.last_seq == done.last_seq == session.last_seq


async def test_the_info_gives_the_limits_that_apply(
    make_config: Callable[..., EngineConfig], script: Callable[..., str]
) -> None:
    async with Engine(make_config()) as engine:
        info = await (await engine.session("plain.ipynb")).info()
        assert info.limits == SessionLimits(
            token_budget=None,
            cost_ceiling=None,
            max_model_calls=20,
            context_window=SCRIPTED_CONTEXT_WINDOW,  # what the history is trimmed to
        )
    capped = make_config(token_budget=5000, cost_ceiling=0.25, max_model_calls=7)
    async with Engine(capped) as engine:
        session = await engine.session("capped.ipynb")
        await session.send("hello")
        await collect_run(session, 0)
        info = await session.info()
        assert info.limits == SessionLimits(
            token_budget=5000,
            cost_ceiling=0.25,
            max_model_calls=7,
            context_window=SCRIPTED_CONTEXT_WINDOW,
        )
        assert 0 < info.usage.total_tokens < 5000
        dumped = info.model_dump(mode="json")["limits"]
        assert dumped == {
            "token_budget": 5000,
            "cost_ceiling": 0.25,
            "max_model_calls": 7,
            "context_window": SCRIPTED_CONTEXT_WINDOW,
        }


async def test_the_context_window_never_imports_litellm_to_be_told(
    make_config: Callable[..., EngineConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(litellm_model, "_loaded", False)  # as in a server that just started

    def refuse() -> None:
        raise AssertionError("litellm was asked")

    monkeypatch.setattr(litellm_model, "load_litellm", refuse)
    async with Engine(make_config()) as engine:
        session = await engine.session("paid.ipynb", model="openai/gpt-4o-mini")
        limits = (await session.info()).limits
        assert limits is not None and limits.context_window is None  # not known yet
    async with Engine(make_config(context_window=4096)) as engine:
        session = await engine.session("paid.ipynb")
        limits = (await session.info()).limits
        assert limits is not None and limits.context_window == 4096  # the override holds


async def test_previews_are_none_until_the_workspace_is_made_here(engine: Engine) -> None:
    session = await engine.session("web.ipynb")
    assert (await session.info()).previews is None  # the events are the only word on them
