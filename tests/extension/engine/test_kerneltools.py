"""Kernel tools: offered to the model, held until the kernel answers, resumed with its result."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from agentspace.engine.config import EngineConfig
from agentspace.engine.engine import Engine
from agentspace.engine.session import Session
from agentspace.errors import ConflictError, InputError
from agentspace.models.base import StreamPart
from agentspace.store.approvals import Decision
from agentspace.store.database import Store
from agentspace.testing import DirectModel, collect_run, turn
from agentspace.tools.kernel import KernelTool

SUMMARY = KernelTool(
    name="summarise",
    description="Summarise a DataFrame in the user's namespace.",
    parameters={
        "type": "object",
        "properties": {"frame": {"type": "string"}},
        "required": ["frame"],
    },
)


class RecordingModel(DirectModel):
    """The scripted model, remembering the tools and messages of every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = []

    async def stream(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        *,
        model: str,
        params: dict[str, Any],
    ) -> AsyncIterator[StreamPart]:
        self.calls.append((messages, tools))
        async for part in super().stream(messages, tools, model=model, params=params):
            yield part


@pytest.fixture
def model() -> RecordingModel:
    return RecordingModel()


@pytest.fixture
async def kengine(
    make_config: Callable[..., EngineConfig], model: RecordingModel
) -> AsyncIterator[Engine]:
    async with Engine(make_config(), model=model) as eng:
        yield eng


async def held(session: Session, after: int = 0) -> dict[str, Any]:
    """The RUN_FINISHED of the next run, which must end with an interrupt."""
    events = await collect_run(session, after)
    finished = json.loads(events[-1].data)
    assert finished["type"] == "RUN_FINISHED", finished
    assert finished["outcome"]["type"] == "interrupt", finished
    await session.wait()
    return finished


def tool_results(transcript: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in transcript if m["role"] == "tool"]


async def test_a_kernel_tool_is_offered_held_and_resumed_with_its_result(
    kengine: Engine, model: RecordingModel, script: Callable[..., str]
) -> None:
    session = await kengine.session(
        "k.ipynb",
        model=script(turn("Looking.", ("summarise", {"frame": "sales"})), turn("Sales are up.")),
    )
    session.set_kernel_tools([SUMMARY], run_cell=False)
    await session.send("how are sales?")
    finished = await held(session)
    _, offered = model.calls[0]
    names = [t["function"]["name"] for t in offered]
    assert "summarise" in names and "write_file" in names and "run_cell" not in names
    (interrupt,) = finished["outcome"]["interrupts"]
    call_id = interrupt["toolCallId"]
    assert interrupt["reason"] == "kernel_tool"
    assert interrupt["message"] == "Waiting for the notebook's kernel to run summarise"
    assert interrupt["metadata"] == {
        "tool": "summarise",
        "arguments": {"frame": "sales"},
        "executor": "kernel",
        "needs_approval": False,
    }
    assert session.status == "awaiting_approval"
    info = await session.info()
    assert info.pending_approvals == [call_id]
    (pending,) = info.pending_calls
    assert (pending.executor, pending.needs_approval, pending.tool) == (
        "kernel",
        False,
        "summarise",
    )
    assert tool_results(await session.transcript()) == []  # nothing ran it yet

    after = finished_seq = session.log.last_seq
    assert await session.decide(call_id, Decision(decision="result", output="rows: 3")) == []
    events = await collect_run(session, after)
    assert finished_seq < events[-1].seq
    results = [json.loads(e.data) for e in events if e.type == "TOOL_CALL_RESULT"]
    assert [(r["toolCallId"], r["content"]) for r in results] == [(call_id, "rows: 3")]
    assert json.loads(events[-1].data)["outcome"]["type"] == "success"
    await session.wait()
    assert session.status == "idle"
    messages, _ = model.calls[1]  # the model's next turn sees the kernel's answer
    assert {"role": "tool", "tool_call_id": call_id, "content": "rows: 3"} in messages
    with pytest.raises(ConflictError, match="already decided"):
        await session.decide(call_id, Decision(decision="result", output="again"))


async def test_run_cell_asks_and_notes_edited_code(
    kengine: Engine, model: RecordingModel, script: Callable[..., str]
) -> None:
    code = {"code": "df.describe()"}
    session = await kengine.session(
        "rc.ipynb", model=script(turn("", ("run_cell", code)), turn("ok"))
    )
    session.set_kernel_tools([], run_cell=True)
    assert [t.name for t in session.kernel_tools()] == ["run_cell"]
    await session.send("describe df")
    (interrupt,) = (await held(session))["outcome"]["interrupts"]
    call_id = interrupt["toolCallId"]
    assert interrupt["metadata"]["needs_approval"] is True
    assert interrupt["message"] == (
        f"Run the cell `%%agent_run {call_id}` to approve and run this code in your kernel"
    )
    for refused in (
        Decision(decision="approve"),
        Decision(decision="edit", arguments={"code": "1"}),
    ):
        with pytest.raises(ConflictError, match="runs in the notebook's kernel") as err:
            await session.decide(call_id, refused)
        assert "result" in err.value.message and "reject" in err.value.message
    with pytest.raises(InputError, match="always asks"):
        await session.decide(call_id, Decision(decision="result", output="x", remember=True))
    edited = {"code": "df.head()"}
    decision = Decision(decision="result", output="   a\n0  1", arguments=edited)
    await session.decide(call_id, decision)
    await session.wait()
    (result,) = tool_results(await session.transcript())
    assert result == (
        f"Note: the user edited the arguments of this call to {json.dumps(edited)}.\n   a\n0  1"
    )


async def test_same_arguments_get_no_note_and_errors_are_marked(
    kengine: Engine, script: Callable[..., str]
) -> None:
    code = {"code": "1/0"}
    session = await kengine.session("err.ipynb", model=script(turn("", ("run_cell", code))))
    session.set_kernel_tools([], run_cell=True)
    await session.send("divide")
    (interrupt,) = (await held(session))["outcome"]["interrupts"]
    decision = Decision(
        decision="result", output="ZeroDivisionError", is_error=True, arguments=code
    )
    await session.decide(interrupt["toolCallId"], decision)
    await session.wait()
    assert tool_results(await session.transcript()) == ["Error: ZeroDivisionError"]


async def test_result_is_refused_for_a_sandbox_tool(
    kengine: Engine, script: Callable[..., str]
) -> None:
    write = ("write_file", {"path": "a.txt", "content": "x"})
    session = await kengine.session("sb.ipynb", model=script(turn("", write)))
    await session.send("write")
    (interrupt,) = (await held(session))["outcome"]["interrupts"]
    assert interrupt["reason"] == "tool_approval"
    with pytest.raises(InputError, match="only kernel tools take a 'result'") as err:
        await session.decide(interrupt["toolCallId"], Decision(decision="result", output="x"))
    assert not isinstance(err.value, ConflictError)
    assert session.status == "awaiting_approval"  # still waiting: nothing was recorded


async def test_policies_deny_and_ask_and_calls_behind_wait(
    kengine: Engine, script: Callable[..., str]
) -> None:
    ask = SUMMARY.model_copy(update={"name": "careful", "policy": "ask"})
    deny = SUMMARY.model_copy(update={"name": "never", "policy": "deny"})
    frame = {"frame": "f"}
    session = await kengine.session(
        "pol.ipynb",
        model=script(
            turn("", ("never", frame), ("careful", frame), ("list_files", {}), ("nope", {})),
            turn("done"),
        ),
    )
    session.set_kernel_tools([ask, deny], run_cell=False)
    await session.send("go")
    (interrupt,) = (await held(session))["outcome"]["interrupts"]
    assert interrupt["metadata"]["tool"] == "careful"
    assert interrupt["metadata"]["needs_approval"] is True
    assert interrupt["message"].startswith("Approve the call to careful?")
    results = tool_results(await session.transcript())
    # denied at once, unknown answered at once (naming the kernel tools), list_files waits
    assert len(results) == 2
    assert "denied by policy" in results[0]
    assert results[1].startswith("Error: Unknown tool 'nope'") and "careful" in results[1]
    await session.decide(interrupt["toolCallId"], Decision(decision="reject", reason="no"))
    await session.wait()
    transcript = await session.transcript()
    tools = [m for m in transcript if m["role"] == "tool"]
    assert "rejected" in tools[2]["content"] and tools[3]["tool_call_id"].endswith("_2")
    assert session.status == "idle"


async def test_invalid_kernel_arguments_go_back_to_the_model(
    kengine: Engine, script: Callable[..., str]
) -> None:
    session = await kengine.session(
        "bad.ipynb", model=script(turn("", ("summarise", {"frame": 3})), turn("sorry"))
    )
    session.set_kernel_tools([SUMMARY], run_cell=False)
    await session.send("go")
    await session.wait()
    (result,) = tool_results(await session.transcript())
    assert result.startswith("Error: Invalid arguments for tool 'summarise'") and "frame" in result
    assert session.status == "idle" and await session.pending() == []


async def test_long_output_is_cut_to_the_tool_result_limit(
    state_dir: Path, script: Callable[..., str]
) -> None:
    config = EngineConfig(state_dir=state_dir, limits={"max_tool_result_chars": 500})
    async with Engine(config, model=DirectModel()) as engine:
        session = await engine.session(
            "long.ipynb", model=script(turn("", ("run_cell", {"code": "x"})))
        )
        session.set_kernel_tools([], run_cell=True)
        await session.send("go")
        (interrupt,) = (await held(session))["outcome"]["interrupts"]
        output = "HEAD" + "x" * 10_000 + "TAIL"
        await session.decide(interrupt["toolCallId"], Decision(decision="result", output=output))
        await session.wait()
        (result,) = tool_results(await session.transcript())
        assert len(result) <= 500
        assert result.startswith("HEAD") and result.endswith("TAIL")
        assert "characters of the kernel's output cut here" in result


async def test_tool_set_is_checked_and_survives_restart(
    make_config: Callable[..., EngineConfig], script: Callable[..., str]
) -> None:
    model = script(turn("", ("summarise", {"frame": "f"})), turn("after"))
    async with Engine(make_config(), model=DirectModel()) as engine:
        session = await engine.session("restart.ipynb", model=model)
        with pytest.raises(InputError, match="'write_file' has the name of a built-in"):
            session.set_kernel_tools([SUMMARY.model_copy(update={"name": "write_file"})], False)
        with pytest.raises(InputError, match=r"run_cell.*built in"):
            session.set_kernel_tools([SUMMARY.model_copy(update={"name": "run_cell"})], False)
        with pytest.raises(InputError, match="Two kernel tools"):
            session.set_kernel_tools([SUMMARY, SUMMARY], False)
        assert session.kernel_tools() == []  # a refused set changes nothing
        with pytest.raises(InputError, match="run_cell always asks"):
            session.configure(policies={"run_cell": "allow"})
        session.set_kernel_tools([SUMMARY], run_cell=True)
        await session.send("go")
        (interrupt,) = (await held(session))["outcome"]["interrupts"]
        last = session.log.last_seq
    async with Engine(make_config(), model=DirectModel()) as engine:
        session = await engine.session("restart.ipynb")
        assert [t.name for t in session.kernel_tools()] == ["run_cell", "summarise"]
        assert session.status == "awaiting_approval"
        (pending,) = await session.pending()
        assert pending.tool_call_id == interrupt["toolCallId"]
        assert (pending.executor, pending.interrupt().reason) == ("kernel", "kernel_tool")
        with pytest.raises(ConflictError):
            await session.decide(pending.tool_call_id, Decision(decision="approve"))
        await session.decide(pending.tool_call_id, Decision(decision="result", output="42"))
        events = await collect_run(session, last)
        assert json.loads(events[-1].data)["outcome"]["type"] == "success"
        assert tool_results(await session.transcript()) == ["42"]
        listing = {t.name: t for t in session.tools().tools}
        assert listing["run_cell"].policy == "ask" and listing["run_cell"].executor == "kernel"
        assert listing["summarise"].policy == "allow"
        assert listing["write_file"].executor == "sandbox"


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"name": "1abc", "description": "d"}, "pattern"),
        ({"name": "a-b", "description": "d"}, "pattern"),
        ({"name": "f", "description": "d", "parameters": {"type": "string"}}, "for an object"),
        ({"name": "f", "description": "d", "parameters": {"type": "object", "required": 3}},
         "not a valid JSON Schema"),
        ({"name": "f", "description": "d", "policy": "sometimes"}, "policy"),
    ],
)  # fmt: skip
def test_kernel_tool_specs_are_validated(spec: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        KernelTool.model_validate(spec)


def test_result_decisions_need_output() -> None:
    with pytest.raises(ValidationError, match="needs 'output'"):
        Decision(decision="result")
    with pytest.raises(ValidationError, match="only a 'result'"):
        Decision(decision="approve", output="x")


async def test_an_older_database_gets_the_new_approval_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE approvals (session_id TEXT NOT NULL, tool_call_id TEXT NOT NULL,"
            " run_id TEXT NOT NULL, name TEXT NOT NULL, arguments TEXT NOT NULL,"
            " status TEXT NOT NULL, decision TEXT, created REAL NOT NULL,"
            " PRIMARY KEY (session_id, tool_call_id)) WITHOUT ROWID"
        )
        conn.execute(
            "INSERT INTO approvals VALUES ('s', 'c', 'r', 'shell', '{}', 'pending', NULL, 1)"
        )
    store = await Store.open(path)
    try:
        rows = await store.query("SELECT executor, needs_approval FROM approvals")
        assert rows == [("sandbox", 1)]
    finally:
        await store.close()


async def test_list_variables_is_offered_when_the_kernel_says_and_runs_without_asking(
    kengine: Engine, model: RecordingModel, script: Callable[..., str]
) -> None:
    session = await kengine.session(
        "lv.ipynb", model=script(turn("", ("list_variables", {"pattern": "df*"})), turn("ok"))
    )
    assert session.record.list_variables is False  # a record made (or stored) before: not
    session.set_kernel_tools([SUMMARY], run_cell=True, list_variables=True)
    assert [t.name for t in session.kernel_tools()] == ["run_cell", "list_variables", "summarise"]
    listing = {t.name: t for t in session.tools().tools}
    assert (listing["list_variables"].policy, listing["list_variables"].executor) == (
        "allow",
        "kernel",
    )
    await session.send("what data is there?")
    (interrupt,) = (await held(session))["outcome"]["interrupts"]
    assert interrupt["metadata"]["needs_approval"] is False  # the kernel answers it itself
    key = "sk-proj-Ab3dEfGhIjKlMnOpQrStUvWxYz0123456789abcdEFGH"
    output = f"1 variable matching 'df*':\nnote: str, len 60 = 'use {key}'"
    await session.decide(interrupt["toolCallId"], Decision(decision="result", output=output))
    await session.wait()
    (result,) = tool_results(await session.transcript())
    assert key not in result
    assert result == (
        "1 variable matching 'df*':\nnote: str, len 60 = 'use [redacted: openai key]'\n"
        "[agentspace redacted 1 value that looks like a secret (openai key) before sending "
        "this to the model]"
    )
    _, offered = model.calls[0]
    assert "list_variables" in [t["function"]["name"] for t in offered]
    session.set_kernel_tools([], run_cell=True)  # a kernel that does not offer it
    assert [t.name for t in session.kernel_tools()] == ["run_cell"]
    with pytest.raises(InputError, match=r"'list_variables' is built in"):
        session.set_kernel_tools([SUMMARY.model_copy(update={"name": "list_variables"})], True)


async def test_run_cell_output_is_redacted_and_a_tool_of_the_user_is_not(
    kengine: Engine, script: Callable[..., str]
) -> None:
    session = await kengine.session(
        "red.ipynb",
        model=script(
            turn("", ("run_cell", {"code": "print(cfg)"}), ("summarise", {"frame": "f"})),
            turn("ok"),
        ),
    )
    session.set_kernel_tools([SUMMARY], run_cell=True, list_variables=True)
    await session.send("go")
    interrupts = (await held(session))["outcome"]["interrupts"]
    run_cell, summarise = (i["toolCallId"] for i in interrupts)
    secret = "{'password': 'hunter22', 'host': 'db'}"
    await session.decide(summarise, Decision(decision="result", output=secret))
    await session.decide(run_cell, Decision(decision="result", output=secret + "\n"))
    await session.wait()
    first, second = tool_results(await session.transcript())
    assert first == (
        "{'password': '[redacted: password]', 'host': 'db'}\n[agentspace redacted 1 value that "
        "looks like a secret (password) before sending this to the model]"
    )
    assert second == secret  # @agent_tool returns what its author chose to return


async def test_a_record_stored_before_list_variables_loads_without_it(
    make_config: Callable[..., EngineConfig],
) -> None:
    async with Engine(make_config(), model=DirectModel()) as engine:
        session = await engine.session("old.ipynb")
        session.set_kernel_tools([SUMMARY], run_cell=True)
        await session.store.flush()
        path = session.store.path
    with sqlite3.connect(path) as conn:  # as an older version wrote it: no such field
        conn.execute("UPDATE sessions SET data = json_remove(data, '$.list_variables')")
    conn.close()
    async with Engine(make_config(), model=DirectModel()) as engine:
        session = await engine.session("old.ipynb")
        assert session.record.list_variables is False
        assert [t.name for t in session.kernel_tools()] == ["run_cell", "summarise"]
