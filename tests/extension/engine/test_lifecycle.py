"""A session's status moves only along the transition table, and each move happens for real.

The table is checked as a table (every pair allowed or refused), then every allowed move is
made by a real engine: runs that finish, pause for approval, are stopped, fail, and crash
(an open run left by a dead process), and the resumes out of each.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from agentspace.engine.config import EngineConfig
from agentspace.engine.engine import Engine
from agentspace.engine.lifecycle import AFTER, TRANSITIONS, TransitionError, check
from agentspace.engine.session import Session
from agentspace.events import Custom
from agentspace.store import records
from agentspace.store.approvals import Decision
from agentspace.store.states import Outcome, Status
from agentspace.testing import stored, turn

EDGES = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}


@pytest.mark.parametrize(("current", "new"), list(itertools.product(Status, Status)))
def test_the_table_allows_its_moves_and_refuses_the_rest(current: Status, new: Status) -> None:
    if current == new or (current, new) in EDGES:
        check(current, new)
    else:
        with pytest.raises(TransitionError, match=f"from {current.value} to {new.value}"):
            check(current, new)


def test_every_outcome_leaves_a_status_a_running_session_may_take() -> None:
    assert set(AFTER) == set(Outcome)
    assert all(status in TRANSITIONS[Status.RUNNING] for status in AFTER.values())


async def moves(session: Session) -> set[tuple[Status, Status]]:
    """The status changes a session went through, read from its committed events."""
    seen, last = set(), Status.IDLE
    async for event in stored(session):
        data = json.loads(event.data)
        if event.type == "CUSTOM" and data["name"] == Custom.STATUS:
            new = Status(data["value"]["status"])
            if new != last:
                seen.add((last, new))
            last = new
    return seen


async def test_every_allowed_move_is_made_by_a_real_engine(
    make_config: Callable[..., EngineConfig], script: Callable[..., str], tmp_path: Path
) -> None:
    write = script(turn("Writing.", ("write_file", {"path": "a.txt", "content": "x"})), turn("ok"))
    slow = script(turn(" ".join(["w"] * 400), delay_ms=5), turn("again"))
    config = make_config()
    made: set[tuple[Status, Status]] = set()
    async with Engine(config) as engine:
        paused = await engine.open("paused.ipynb", write)  # idle -> running -> awaiting
        await paused.send("write")
        await paused.wait()
        assert paused.status == Status.AWAITING_APPROVAL
        (call,) = await paused.pending()
        await paused.decide(call.tool_call_id, Decision(decision="approve"))  # -> running
        await paused.wait()
        assert paused.status == Status.IDLE  # running -> idle

        refused = await engine.open("refused.ipynb", write)
        await refused.send("write")
        await refused.wait()
        await refused.stop()  # awaiting -> stopped
        assert refused.status == Status.STOPPED
        await refused.update(model="scripted/echo")
        await refused.resume()  # stopped -> running
        await refused.wait()

        stopped = await engine.open("stopped.ipynb", slow)
        await stopped.send("talk")
        async for event in stopped.subscribe(0):
            if event.type == "TEXT_MESSAGE_CONTENT":
                break
        await stopped.stop()  # running -> stopped
        assert stopped.status == Status.STOPPED

        failed = await engine.open("failed.ipynb", "scripted/" + str(tmp_path / "none.json"))
        await failed.send("fail")
        await failed.wait()
        assert failed.status == Status.FAILED  # running -> failed
        await failed.update(model="scripted/echo")
        await failed.resume()  # failed -> running
        await failed.wait()

        crashed = await engine.open("crashed.ipynb", "scripted/echo")
        # what a process killed mid-run leaves: the session running, a run open, its owner dead
        crashed.set_status(Status.RUNNING)
        engine.store.write(records.INSERT_RUN, (crashed.id, "run_dead", 0.0, "1:0", 1))
        await engine.store.flush()
        for s in (paused, refused, stopped, failed):
            made |= await moves(s)
    async with Engine(config) as engine:
        crashed = await engine.session("crashed.ipynb", create=False)
        assert crashed.status == Status.CRASHED  # running -> crashed, at the next load
        await crashed.resume()  # crashed -> running
        await crashed.wait()
        assert crashed.status == Status.IDLE
        made |= await moves(crashed)
    assert made == EDGES


async def test_a_move_outside_the_table_is_refused_where_status_changes(engine: Engine) -> None:
    session = await engine.session("x.ipynb")
    with pytest.raises(TransitionError):
        session.set_status(Status.AWAITING_APPROVAL)  # idle cannot pause
    assert session.status == Status.IDLE
