"""The ``agentspace`` command, in-process (fast) and as a real process killed mid-run."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from agentspace.cli.main import main
from agentspace.engine.config import EngineConfig
from agentspace.engine.engine import Engine
from agentspace.errors import ConflictError
from agentspace.testing import collect_run, text_of, turn


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_json_streams_one_event_per_line(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(
        capsys,
        "run",
        "--state-dir",
        str(state_dir),
        "--notebook",
        "a.ipynb",
        "--model",
        "scripted/echo",
        "--json",
        "hi there",
    )
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
    assert lines[0]["event"]["type"] == "RUN_STARTED"
    assert lines[-1]["event"]["type"] == "RUN_FINISHED"
    deltas = [
        line["event"]["delta"] for line in lines if line["event"]["type"] == "TEXT_MESSAGE_CONTENT"
    ]
    assert "".join(deltas) == "hi thereYou said: hi there"


def test_a_preview_is_bounded_and_cannot_drive_the_terminal() -> None:
    from agentspace.cli.main import preview_text

    shown = preview_text("+a\x1b[2J\r\tb\n" + "\n".join("+x" for _ in range(50)), lines=3)
    assert shown == "    +a\\x1b[2J\\x0d\tb\n    +x\n    +x\n    … 48 more lines\n"


def test_approval_round_trip_from_the_command_line(
    state_dir: Path, capsys: pytest.CaptureFixture[str], script: Callable[..., str]
) -> None:
    model = script(turn("Writing.", ("write_file", {"path": "n.txt", "content": "x"})), turn("ok"))
    sd = ["--state-dir", str(state_dir)]
    code, out, _ = run_cli(capsys, "run", *sd, "--notebook", "b.ipynb", "--model", model, "go")
    assert code == 0
    assert "[approval needed]" in out
    assert "    --- /dev/null\n    +++ b/n.txt\n    @@ -0,0 +1 @@\n    +x\n" in out  # its diff
    call_id = out.strip().splitlines()[-1].split()[-1]
    assert out.strip().splitlines()[-1] == f"pending: {call_id}"
    code, out, _ = run_cli(capsys, "sessions", *sd, "--json")
    (info,) = [json.loads(line) for line in out.splitlines()]
    assert info["status"] == "awaiting_approval" and info["pending_approvals"] == [call_id]
    code, out, _ = run_cli(capsys, "approve", *sd, "b.ipynb", call_id)
    assert code == 0 and "ok" in out and "Wrote 1 bytes" in out
    assert (Path(info["workspace"]) / "n.txt").read_text() == "x"
    code, out, _ = run_cli(capsys, "events", *sd, "b.ipynb", "--after", "3", "--json")
    assert json.loads(out.splitlines()[0])["seq"] == 4


def test_approve_all_and_none(
    state_dir: Path, capsys: pytest.CaptureFixture[str], script: Callable[..., str]
) -> None:
    model = script(turn("", ("write_file", {"path": "y.txt", "content": "y"})), turn("end"))
    sd = ["--state-dir", str(state_dir)]
    code, out, _ = run_cli(
        capsys, "run", *sd, "--notebook", "c.ipynb", "--model", model, "--approve", "none", "go"
    )
    assert code == 0 and "rejected" in out and "end" in out
    code, out, _ = run_cli(
        capsys, "run", *sd, "--notebook", "d.ipynb", "--model", model, "--approve", "all", "go"
    )
    assert code == 0 and "Wrote 1 bytes" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["events", "nope.ipynb"], "No session"),
        (["approve", "e.ipynb", "call_x"], "No session"),
        (["run", "--notebook", "../x", "hi"], "leaves the root"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    state_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run_cli(capsys, *argv[:1], "--state-dir", str(state_dir), *argv[1:])
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_malformed_script_and_bad_args_json(
    state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], script: Callable[..., str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    sd = ["--state-dir", str(state_dir)]
    code, out, _ = run_cli(
        capsys, "run", *sd, "--notebook", "f.ipynb", "--model", f"scripted/{bad}", "x"
    )
    assert code == 2 and "bad.json" in out
    model = script(turn("", ("write_file", {"path": "z", "content": "z"})))
    run_cli(capsys, "run", *sd, "--notebook", "g.ipynb", "--model", model, "go")
    code, _, err = run_cli(capsys, "approve", *sd, "g.ipynb", "call_0_0", "--args", "{oops")
    assert code == 2 and "not valid JSON" in err


async def test_kill_9_mid_run_is_recovered_as_crashed(
    state_dir: Path, script: Callable[..., str]
) -> None:
    words = " ".join(f"word{i}" for i in range(2000))
    model = script(turn(words, delay_ms=5), turn("resumed fine"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agentspace",
        "run",
        "--state-dir",
        str(state_dir),
        "--notebook",
        "crash.ipynb",
        "--model",
        model,
        "--json",
        "go",
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    assistant: set[str] = set()
    while len(seen) < 30:
        line = await proc.stdout.readline()
        assert line, "the run ended before it could be killed"
        event = json.loads(line)["event"]
        if event["type"] == "TEXT_MESSAGE_START" and event.get("role") == "assistant":
            assistant.add(event["messageId"])
        if event["type"] == "TEXT_MESSAGE_CONTENT" and event["messageId"] in assistant:
            seen.append(event["delta"])
    proc.kill()  # SIGKILL: no cleanup runs in the child
    await proc.wait()
    async with Engine(EngineConfig(state_dir=state_dir)) as engine:
        session = await engine.session("crash.ipynb", create=False)
        assert session.status == "crashed"
        events = await collect_run(session, 0)
        error = json.loads(events[-1].data)
        assert error["type"] == "RUN_ERROR" and error["code"] == "crashed"
        partial = (await session.transcript())[-1]
        assert partial["role"] == "assistant"
        streamed = text_of(events)
        assert partial["content"] == streamed
        # everything a subscriber saw before the kill was committed and kept
        assert len(streamed) >= len("".join(seen)) > 0
        assert streamed.startswith("".join(seen))
        last = events[-1].seq
        await session.resume()
        resumed = await collect_run(session, last)
        assert text_of(resumed) == "resumed fine"


async def test_stop_from_another_process_cancels_the_run(
    state_dir: Path, script: Callable[..., str]
) -> None:
    words = " ".join(f"w{i}" for i in range(5000))
    model = script(turn(words, delay_ms=5))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentspace", "run", "--state-dir", str(state_dir),
        "--notebook", "remote.ipynb", "--model", model, "--json", "go",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    while b"TEXT_MESSAGE_CONTENT" not in await proc.stdout.readline():
        pass
    async with Engine(EngineConfig(state_dir=state_dir)) as engine:
        session = await engine.session("remote.ipynb", create=False)
        with pytest.raises(ConflictError, match="Another process"):
            await session.send("me too")  # the other process serves this session
        await session.stop()
    rest = (await proc.stdout.read()).decode().splitlines()
    assert await proc.wait() == 130
    last = json.loads(rest[-1])["event"]
    assert last["type"] == "RUN_FINISHED" and last["outcome"] == {"type": "cancelled"}


def test_always_allow_marks_the_calls_it_lets_through_and_a_second_decision_is_refused(
    state_dir: Path, capsys: pytest.CaptureFixture[str], script: Callable[..., str]
) -> None:
    model = script(
        turn("", ("write_file", {"path": "1.txt", "content": "1"})),
        turn("", ("write_file", {"path": "2.txt", "content": "2"})),
        turn("ok"),
    )
    sd = ["--state-dir", str(state_dir)]
    code, out, _ = run_cli(capsys, "run", *sd, "--notebook", "m.ipynb", "--model", model, "go")
    assert code == 0 and out.strip().endswith("pending: call_0_0")
    code, out, _ = run_cli(capsys, "approve", *sd, "m.ipynb", "call_0_0", "--always")
    assert code == 0
    assert "[auto-approved: always allow (session)] call_1_0" in out
    assert out.count("[auto-approved") == 1  # the first call was decided, not auto-approved
    code, out, err = run_cli(capsys, "approve", *sd, "m.ipynb", "call_0_0", "--reject", "no")
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("agentspace: The tool call 'call_0_0' was already decided: approved")
    assert "(agentspace CLI, pid" in line
