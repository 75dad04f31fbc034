"""Sessions end to end through the real litellm path with the scripted model."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from agentspace.engine.config import EngineConfig
from agentspace.engine.engine import Engine, normalise_notebook
from agentspace.errors import (
    ConflictError,
    InputError,
    NotFoundError,
    PayloadTooLargeError,
    QueueFullError,
)
from agentspace.store.approvals import Decision
from agentspace.testing import collect_run, stored, text_of, turn, types_of


async def test_echo_run_streams_ag_ui_events_with_contiguous_seqs(engine: Engine) -> None:
    session = await engine.session("demo.ipynb")
    receipt = await session.send("hello there")
    assert receipt.position == 0
    events = await collect_run(session, 0)
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(seqs) + 1))
    kinds = types_of(events)
    assert kinds[0] == "RUN_STARTED" and kinds[-1] == "RUN_FINISHED"
    assert text_of(events, "user") == "hello there"
    assert text_of(events) == "You said: hello there"
    assert json.loads(events[-1].data)["outcome"]["type"] == "success"
    await session.wait()
    assert session.status == "idle"
    transcript = await session.transcript()
    assert [m["role"] for m in transcript] == ["user", "assistant"]
    assert transcript[1]["content"] == "You said: hello there"


async def test_session_is_keyed_by_normalised_notebook_path(engine: Engine) -> None:
    a = await engine.session("dir/./nb.ipynb")
    b = await engine.session("dir/nb.ipynb")
    assert a is b and a.notebook == "dir/nb.ipynb"
    assert (await engine.get(a.id)) is a
    for bad in ("", "/etc/passwd", "../x.ipynb", "a/../../x"):
        with pytest.raises(InputError):
            normalise_notebook(bad)
    with pytest.raises(NotFoundError):
        await engine.get("no-such-id")
    with pytest.raises(NotFoundError):
        await engine.session("other.ipynb", create=False)


async def test_messages_are_served_one_at_a_time_in_order(
    engine: Engine, script: Callable[..., str]
) -> None:
    model = script(*(turn(f"answer {i} with some words", delay_ms=5) for i in range(3)))
    session = await engine.session("q.ipynb", model=model)
    receipts = [await session.send(f"question {i}") for i in range(3)]
    assert [r.position for r in receipts] == [0, 1, 2]
    await session.wait()
    events = [e async for e in stored(session)]
    runs = [e.type for e in events if e.type in ("RUN_STARTED", "RUN_FINISHED")]
    assert runs == ["RUN_STARTED", "RUN_FINISHED"] * 3  # never two runs at once
    assert text_of(events, "user") == "question 0question 1question 2"
    assert text_of(events) == "".join(f"answer {i} with some words" for i in range(3))


async def _user_message_started(session: Any) -> None:
    async for event in session.subscribe(0):
        if event.type == "TEXT_MESSAGE_START" and json.loads(event.data).get("role") == "user":
            return


async def test_queue_and_size_bounds_give_clear_errors_and_lose_nothing(
    make_config: Callable[..., EngineConfig], script: Callable[..., str]
) -> None:
    async with Engine(make_config(max_queue=2, max_message_bytes=100)) as engine:
        model = script(*(turn("slow answer", delay_ms=20) for _ in range(3)))
        session = await engine.session("bound.ipynb", model=model)
        with pytest.raises(PayloadTooLargeError, match="limit is 100"):
            await session.send("x" * 101)
        await session.send("one")
        await asyncio.wait_for(_user_message_started(session), 10)  # "one" left the queue
        await session.send("two")
        await session.send("three")  # "one" is running, two wait
        with pytest.raises(QueueFullError, match="already waiting"):
            await session.send("four")
        await session.wait()
        transcript = await session.transcript()
        assert [m["content"] for m in transcript if m["role"] == "user"] == ["one", "two", "three"]


async def test_tool_calls_approval_flow(engine: Engine, script: Callable[..., str]) -> None:
    model = script(
        turn("Let me look.", ("list_files", {"path": "."})),
        turn("Writing.", ("write_file", {"path": "a.txt", "content": "hi"})),
        turn("Done."),
    )
    session = await engine.session("tools.ipynb", model=model)
    await session.send("make a file")
    events = await collect_run(session, 0)
    finished = json.loads(events[-1].data)
    assert finished["outcome"]["type"] == "interrupt"
    (interrupt,) = finished["outcome"]["interrupts"]
    call_id = interrupt["toolCallId"]
    assert interrupt["metadata"] == {
        "tool": "write_file",
        "arguments": {"path": "a.txt", "content": "hi"},
        "executor": "sandbox",
        "needs_approval": True,
        "preview": "--- /dev/null\n+++ b/a.txt\n@@ -0,0 +1 @@\n+hi\n\\ No newline at end of file",
    }
    assert interrupt["reason"] == "tool_approval"
    assert "TOOL_CALL_RESULT" in types_of(events)  # list_files ran without asking
    await session.wait()
    assert session.status == "awaiting_approval"
    assert not (session.folder / "a.txt").exists()
    after = events[-1].seq
    assert await session.decide(call_id, Decision(decision="approve")) == []
    resumed = await collect_run(session, after)
    assert (session.folder / "a.txt").read_text() == "hi"
    assert json.loads(resumed[-1].data)["outcome"]["type"] == "success"
    assert "Done." in text_of(resumed)
    with pytest.raises(ConflictError, match="already decided"):
        await session.decide(call_id, Decision(decision="approve"))
    with pytest.raises(NotFoundError):
        await session.decide("call_nope", Decision(decision="approve"))


async def test_reject_edit_and_remember(engine: Engine, script: Callable[..., str]) -> None:
    write = ("write_file", {"path": "x.txt", "content": "1"})
    model = script(turn("", write), turn("", write), turn("", write), turn("", write), turn("ok"))
    session = await engine.session("decide.ipynb", model=model)
    await session.send("go")

    async def pending_id() -> str:
        await session.wait()
        (p,) = [p for p in await session.pending() if p.status == "pending"]
        return p.tool_call_id

    call = await pending_id()
    await session.decide(call, Decision(decision="reject", reason="not that file"))
    call = await pending_id()
    tool_msgs = [m for m in await session.transcript() if m["role"] == "tool"]
    assert "rejected" in tool_msgs[-1]["content"] and "not that file" in tool_msgs[-1]["content"]
    assert not (session.folder / "x.txt").exists()
    with pytest.raises(InputError, match="edited arguments are invalid"):
        await session.decide(call, Decision(decision="edit", arguments={"path": 3}))
    await session.decide(
        call, Decision(decision="edit", arguments={"path": "y.txt", "content": "edited"})
    )
    call = await pending_id()
    assert (session.folder / "y.txt").read_text() == "edited"
    await session.decide(call, Decision(decision="approve", remember=True))
    await session.wait()
    # the fourth write ran without asking: the tool is now always allowed here
    assert session.record.policies == {"write_file": "allow"}
    assert session.status == "idle"
    assert (session.folder / "x.txt").read_text() == "1"


async def test_deny_policy_and_invalid_arguments_reach_the_model(
    state_dir: Any, script: Callable[..., str]
) -> None:
    config = EngineConfig(state_dir=state_dir, policies={"write_file": "deny"})
    model = script(
        turn("", ("write_file", {"path": "a", "content": "b"}), ("read_file", {"nope": 1})),
        turn("fine"),
    )
    async with Engine(config) as engine:
        session = await engine.session("deny.ipynb", model=model)
        await session.send("go")
        await session.wait()
        results = [m["content"] for m in await session.transcript() if m["role"] == "tool"]
        assert "denied by policy" in results[0]
        assert results[1].startswith("Error:") and "path" in results[1]
        assert session.status == "idle"


async def test_stop_cancels_within_200ms_and_keeps_partial_text(
    engine: Engine, script: Callable[..., str]
) -> None:
    long = " ".join(f"w{i}" for i in range(400))
    model = script(turn(long, delay_ms=10), turn("continued"))
    session = await engine.session("stop.ipynb", model=model)
    await session.send("talk")
    async for event in session.subscribe(0):
        if event.type == "TEXT_MESSAGE_CONTENT" and "w5" in event.data:
            break
    t0 = time.perf_counter()
    await session.stop()
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.2, elapsed
    assert session.status == "stopped"
    events = [e async for e in stored(session)]
    finished = [json.loads(e.data) for e in events if e.type == "RUN_FINISHED"]
    assert finished[-1]["outcome"]["type"] == "cancelled"
    partial = (await session.transcript())[-1]
    assert partial["role"] == "assistant" and partial["content"].startswith("w0 w1 w2 w3 w4 w5")
    assert text_of(events) == partial["content"]
    after = events[-1].seq
    await session.resume()
    resumed = await collect_run(session, after)
    assert text_of(resumed) == "continued"


async def test_token_budget_blocks_until_raised(
    make_config: Callable[..., EngineConfig],
) -> None:
    async with Engine(make_config(token_budget=1)) as engine:
        session = await engine.session("budget.ipynb")
        await session.send("first")
        await session.wait()  # the first call fits (nothing used yet)
        last = session.log.last_seq
        await session.send("second")
        events = await collect_run(session, last)
        error = json.loads(events[-1].data)
        assert error["type"] == "RUN_ERROR" and "token budget" in error["message"]
        await session.wait()
        assert session.status == "failed"
        engine.config.limits.token_budget = 10_000
        last = session.log.last_seq
        await session.resume()
        assert json.loads((await collect_run(session, last))[-1].data)["type"] == "RUN_FINISHED"


async def test_max_model_calls_ends_the_run_with_a_clear_error(
    make_config: Callable[..., EngineConfig], script: Callable[..., str]
) -> None:
    listing = turn("", ("list_files", {}))
    async with Engine(make_config(max_model_calls=2)) as engine:
        session = await engine.session("loop.ipynb", model=script(listing, listing, listing))
        await session.send("go")
        events = await collect_run(session, 0)
        error = json.loads(events[-1].data)
        assert error["type"] == "RUN_ERROR" and "2 model calls" in error["message"]
        assert session.record.usage.model_calls == 2


async def test_unknown_model_is_a_run_error_that_says_what_to_do(engine: Engine) -> None:
    session = await engine.session("bad.ipynb", model="no-such-provider/model-x")
    await session.send("hi")
    events = await collect_run(session, 0)
    error = json.loads(events[-1].data)
    assert error["type"] == "RUN_ERROR"
    assert error["code"] in ("model_not_found", "model_error")
    await session.wait()
    assert session.status == "failed"


async def test_usage_is_recorded_per_run_and_session(engine: Engine) -> None:
    session = await engine.session("usage.ipynb")
    await session.send("count my tokens")
    events = await collect_run(session, 0)
    usage = json.loads(events[-1].data)["usage"][0]
    assert usage["totalTokens"] > 0
    await session.wait()
    assert session.record.usage.total_tokens == usage["totalTokens"]
    rows = await engine.store.query("SELECT outcome, usage FROM runs")
    assert rows[0][0] == "finished" and json.loads(rows[0][1])["output_tokens"] > 0


async def test_state_survives_restart(
    make_config: Callable[..., EngineConfig], script: Callable[..., str]
) -> None:
    model = script(turn("", ("write_file", {"path": "f", "content": "c"})), turn("after"))
    async with Engine(make_config()) as engine:
        session = await engine.session("restart.ipynb", model=model)
        await session.send("go")
        await session.wait()
        sid, last = session.id, session.log.last_seq
        (pending,) = await session.pending()
    async with Engine(make_config()) as engine:
        session = await engine.session("restart.ipynb")
        assert session.id == sid and session.status == "awaiting_approval"
        assert session.log.last_seq == last
        await session.decide(pending.tool_call_id, Decision(decision="approve"))
        events = await collect_run(session, last)
        assert text_of(events) == "after"
        decision = json.loads(events[0].data)
        assert decision["name"] == "agentspace.decision" and events[0].seq == last + 1
        assert "RUN_STARTED" in types_of(events)


async def test_many_subscribers_see_every_event_once_in_order(
    engine: Engine, script: Callable[..., str]
) -> None:
    text = " ".join(f"t{i}" for i in range(300))
    session = await engine.session("fan.ipynb", model=script(turn(text, delay_ms=1)))
    await session.send("go")

    async def watch(after: int) -> list[int]:
        out = []
        async for e in session.subscribe(after):
            out.append(e.seq)
            if e.terminal:
                return out
        return out

    tasks = [asyncio.create_task(watch(0)) for _ in range(20)]
    async for e in session.subscribe(0):  # late subscribers join mid-stream, across the seam
        if e.seq >= 100:
            break
    tasks += [asyncio.create_task(watch(0)) for _ in range(20)]
    tasks += [asyncio.create_task(watch(5)) for _ in range(5)]
    results = await asyncio.gather(*tasks)
    for seqs in results:
        assert seqs == list(range(seqs[0], seqs[-1] + 1))
        assert seqs[-1] == results[0][-1]
    assert all(r[0] == 1 for r in results[:40]) and all(r[0] == 6 for r in results[40:])


class FailingMidStream:
    """A provider that streams a few words, then drops the connection."""

    async def stream(self, messages: Any, tools: Any, **kw: Any) -> Any:
        from agentspace.errors import ModelUnavailableError
        from agentspace.models.base import TextDelta

        for word in ("partial ", "answer "):
            yield TextDelta(word)
        raise ModelUnavailableError("The provider closed the stream; try again (resume).")


async def test_provider_failing_mid_stream_keeps_partial_text(
    make_config: Callable[..., EngineConfig],
) -> None:
    async with Engine(make_config(), model=FailingMidStream()) as engine:
        session = await engine.session("midstream.ipynb")
        await session.send("hi")
        events = await collect_run(session, 0)
        error = json.loads(events[-1].data)
        assert error["type"] == "RUN_ERROR" and error["code"] == "model_unavailable"
        assert "resume" in error["message"]
        assert types_of(events)[-2] == "TEXT_MESSAGE_END"  # the cut message is closed
        await session.wait()
        assert session.status == "failed"
        last = (await session.transcript())[-1]
        assert last == {"role": "assistant", "content": "partial answer ", "id": last["id"]}


async def test_snapshot_and_per_session_configuration(
    engine: Engine, script: Callable[..., str]
) -> None:
    session = await engine.session("snap.ipynb")
    session.configure(
        model=script(turn("ok", ("read_file", {"path": "x"}))), policies={"read_file": "deny"}
    )
    await session.send("read x")
    await session.wait()
    snapshot = (await session.snapshot()).model_dump(by_alias=True, exclude_none=True)
    roles = [m["role"] for m in snapshot["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert snapshot["messages"][1]["toolCalls"][0]["function"]["name"] == "read_file"
    assert "denied by policy" in snapshot["messages"][2]["content"]
    assert snapshot["type"] == "MESSAGES_SNAPSHOT"


async def test_unknown_tool_is_answered_without_asking(
    engine: Engine, script: Callable[..., str]
) -> None:
    session = await engine.session(
        "unknown.ipynb", model=script(turn("", ("rm_rf", {})), turn("ok"))
    )
    await session.send("go")
    await session.wait()
    assert session.status == "idle"
    tool = next(m for m in await session.transcript() if m["role"] == "tool")
    assert "Unknown tool 'rm_rf'" in tool["content"] and "write_file" in tool["content"]
