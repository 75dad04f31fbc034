"""Decisions in one process: the moment a run pauses, racing decisions, and stop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from agentspace.engine.config import EngineConfig
from agentspace.engine.engine import Engine
from agentspace.errors import ConflictError
from agentspace.store.approvals import Decision
from agentspace.testing import turn

WRITE = ("write_file", {"path": "a.txt", "content": "x"})


async def test_a_decision_while_the_pausing_run_is_still_finishing_resumes_it(
    engine: Engine, script: Callable[..., str]
) -> None:
    session = await engine.session("finishing.ipynb", model=script(turn("", WRITE), turn("ok")))
    await session.send("go")
    async for stored in session.subscribe(0):
        if stored.type == "RUN_FINISHED":  # published on commit; the run has not ended yet
            assert session.busy
            call = stored.data.split('"toolCallId":"')[1].split('"')[0]
            assert await session.decide(call, Decision(decision="approve"), run_id="r2") == []
            break
    await session.wait()
    assert session.status == "idle"
    runs = [e for e in await session.log.read(0) if e.type == "RUN_STARTED"]
    assert '"runId":"r2"' in runs[-1].data  # the id the resuming client asked for (AG-UI)
    assert (session.folder / "a.txt").read_text() == "x"
    transcript = await session.transcript()
    assert [m["role"] for m in transcript] == ["user", "assistant", "tool", "assistant"]


async def test_a_message_sent_as_a_failed_run_winds_down_is_served(
    make_config: Callable[..., EngineConfig], script: Callable[..., str]
) -> None:
    model = script(turn("", ("list_files", {})))  # then a second model call: over the limit
    async with Engine(make_config(max_model_calls=1)) as engine:
        session = await engine.session("late.ipynb", model=model)
        await session.send("one")
        async for stored in session.subscribe(0):
            if stored.terminal:  # published on commit; the serving task has not let go yet
                assert stored.type == "RUN_ERROR" and session.busy
                break
        await session.send("two")
        await session.wait()
        users = [m["content"] for m in await session.transcript() if m["role"] == "user"]
        assert users == ["one", "two"] and session.queued == 0
        assert session.status == "idle"


async def test_resume_as_a_failed_run_winds_down_is_not_refused_as_running(
    make_config: Callable[..., EngineConfig], script: Callable[..., str]
) -> None:
    """A client that resumes the moment it sees RUN_ERROR finds the session free."""
    model = script(turn("", ("list_files", {})))  # then a second model call: over the limit
    async with Engine(make_config(max_model_calls=1)) as engine:
        session = await engine.session("resume.ipynb", model=model)
        await session.send("one")
        async for stored in session.subscribe(0):
            if stored.terminal:
                assert stored.type == "RUN_ERROR" and session.busy
                break
        await session.resume()  # not ConflictError("already running; stop it first")
        await session.wait()
        assert session.status == "idle"
        assert [e.type for e in await session.log.read(0)].count("RUN_STARTED") == 2


async def test_racing_decisions_in_one_process_one_wins_and_the_tool_runs_once(
    engine: Engine, script: Callable[..., str]
) -> None:
    session = await engine.session(
        "race.ipynb", model=script(turn("", ("write_file", {"path": "n.txt", "content": "1"})))
    )
    await session.send("go")
    await session.wait()
    (pending,) = await session.pending()
    decisions = [
        Decision(decision="edit", arguments={"path": "n.txt", "content": str(i)}) for i in range(5)
    ]
    outcomes = await asyncio.gather(
        *(session.decide(pending.tool_call_id, d, by=f"user{i}") for i, d in enumerate(decisions)),
        return_exceptions=True,
    )
    won = [i for i, o in enumerate(outcomes) if not isinstance(o, BaseException)]
    assert len(won) == 1
    for o in outcomes:
        if isinstance(o, BaseException):
            assert isinstance(o, ConflictError)
            assert o.data["decided_by"] == f"user{won[0]}"
            assert o.data["decision"]["arguments"] == {"path": "n.txt", "content": str(won[0])}
    await session.wait()
    assert (session.folder / "n.txt").read_text() == str(won[0])
    results = [m for m in await session.transcript() if m["role"] == "tool"]
    assert len(results) == 1


async def test_stop_while_awaiting_rejects_and_a_late_decision_is_refused(
    engine: Engine, script: Callable[..., str]
) -> None:
    session = await engine.session("stop.ipynb", model=script(turn("", WRITE), turn("ok")))
    await session.send("go")
    await session.wait()
    (pending,) = await session.pending()
    await session.stop()
    assert session.status == "stopped"
    with pytest.raises(ConflictError, match="already decided: rejected by stop"):
        await session.decide(pending.tool_call_id, Decision(decision="approve"))
    assert not (session.folder / "a.txt").exists()
