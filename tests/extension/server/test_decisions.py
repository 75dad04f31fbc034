"""Exactly one decision wins: racing decisions over REST, and from the CLI on one state dir.

Each round pauses a fresh session on one call, fires several decisions at it at
once (gathered, no sleeps), and then counts what the tool did: the shell
command appends a line to a file in the workspace, so the number of lines is
the number of times it ran. One decision gets 200; every other one gets 409
naming the decision that won. A last message through the session's queue is
the barrier: anything a second run would have done is done before it answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from agentspace.testing import turn, write_script

from .sse import read_sse

Api = Callable[..., Awaitable[tuple[int, Any]]]
ROUNDS = 20
PROCESS_ROUNDS = 6  # each starts two processes: fewer rounds, the same race
APPEND = "echo ran >> count.txt"
SUMMARY = {
    "name": "summarise",
    "description": "Summarise a DataFrame of the user's namespace.",
    "parameters": {"type": "object", "properties": {"frame": {"type": "string"}}},
}


@pytest.fixture
def headers(jp_auth_header: dict[str, str]) -> dict[str, str]:
    return dict(jp_auth_header)


@pytest.fixture
def events(
    jp_base_url: str, jp_http_port: int, headers: dict[str, str]
) -> Callable[[str, int], Awaitable[list[tuple[int | None, dict[str, Any]]]]]:
    """Events of session ``sid`` after ``after`` up to the next RUN_FINISHED."""

    async def read(sid: str, after: int) -> list[tuple[int | None, dict[str, Any]]]:
        path = f"{jp_base_url.rstrip('/')}/agentspace/api/sessions/{sid}/events?after={after}"
        try:
            _, got = await read_sse(jp_http_port, path, headers)
        except TimeoutError as exc:  # a broken session: the round fails, the tally goes on
            raise Stuck(f"no RUN_FINISHED after seq {after}") from exc
        return got

    return read


class Stuck(Exception):
    """The session never finished a run (a second run broke it)."""


class Round:
    """One session paused on one call."""

    def __init__(self, sid: str, call: str, last: int) -> None:
        self.sid, self.call, self.last = sid, call, last


async def paused(api: Api, events: Any, tmp_path: Path, name: str, kernel: bool) -> Round:
    if kernel:
        first = turn("checking", ("summarise", {"frame": "sales"}))
    else:
        first = turn("appending", ("shell", {"command": APPEND}))
    model = write_script(tmp_path / f"{name}.json", first, turn("done"), turn("pong"))
    status, created = await api("POST", "sessions", body={"notebook": name, "model": model})
    assert status == 200, created
    sid = created["id"]
    if kernel:
        status, listing = await api("PUT", f"sessions/{sid}/tools", body={"tools": [SUMMARY]})
        assert status == 200, listing
    await api("POST", f"sessions/{sid}/messages", body={"text": "go"})
    got = await events(sid, 0)
    (interrupt,) = got[-1][1]["outcome"]["interrupts"]
    return Round(sid, interrupt["toolCallId"], int(got[-1][0] or 0))


async def settle(api: Api, events: Any, r: Round) -> list[dict[str, Any]]:
    """Every event after the pause, once a later message has been answered (the barrier)."""
    await events(r.sid, r.last)  # the continuation, wherever it runs
    status, receipt = await api("POST", f"sessions/{r.sid}/messages", body={"text": "ping"})
    assert status == 202, receipt
    everything: list[dict[str, Any]] = []
    after = r.last
    while True:
        page = await events(r.sid, after)
        everything += [e for _, e in page]
        after = int(page[-1][0] or 0)
        if any(e.get("messageId") == receipt["message_id"] for _, e in page):
            return everything


def results_of(everything: list[dict[str, Any]], call: str) -> list[str]:
    return [
        e["content"]
        for e in everything
        if e.get("type") == "TOOL_CALL_RESULT" and e["toolCallId"] == call
    ]


async def ran(api: Api, sid: str) -> int:
    status, body = await api("GET", f"sessions/{sid}/files/count.txt")
    if status == 404:
        return 0
    assert status == 200, body
    return body.decode().count("ran")


DECISIONS: dict[str, list[dict[str, Any]]] = {
    "approve/approve": [{"decision": "approve"}] * 3,
    "approve/reject": [{"decision": "approve"}, {"decision": "reject", "reason": "no"}] * 2,
    "edit/edit": [
        {"decision": "edit", "arguments": {"command": f"{APPEND}; echo {i} >> who.txt"}}
        for i in range(3)
    ],
    "result/result": [{"decision": "result", "output": f"rows: {i}"} for i in range(3)],
}


@pytest.mark.parametrize("kind", list(DECISIONS))
async def test_exactly_one_decision_wins_over_rest(
    api: Api, events: Any, tmp_path: Path, kind: str
) -> None:
    kernel = kind == "result/result"
    wrong: list[Any] = []
    for n in range(ROUNDS):
        r = await paused(api, events, tmp_path, f"{kind.replace('/', '-')}-{n}.ipynb", kernel)
        url = f"sessions/{r.sid}/approvals/{r.call}"
        replies = await asyncio.gather(*(api("POST", url, body=d) for d in DECISIONS[kind]))
        codes = [code for code, _ in replies]
        winners = [i for i, code in enumerate(codes) if code == 200]
        problems = []
        try:
            everything = await settle(api, events, r)
        except Stuck as exc:
            everything = []
            problems.append(f"stuck: {exc}")
        results = results_of(everything, r.call)
        count = await ran(api, r.sid)
        if len(winners) != 1 or sorted(set(codes)) != [200, 409]:
            problems.append(f"codes {codes}")
        if len(results) != 1:
            problems.append(f"{len(results)} results")
        if winners and everything:
            won = DECISIONS[kind][winners[0]]
            for code, body in replies:
                if code == 409:  # the loser hears what won, and who took it
                    said = body.get("decision") or {}
                    if (
                        "already decided" not in body["message"]
                        or said.get("decision") != won["decision"]
                        or not body.get("decided_by")
                    ):
                        problems.append(f"409 says {body}")
            if kernel and results[:1] != [won["output"]]:
                problems.append(f"result {results} for {won}")
            if not kernel and count != (0 if won["decision"] == "reject" else 1):
                problems.append(f"ran {count} times")
            if kind == "edit/edit":
                _, who = await api("GET", f"sessions/{r.sid}/files/who.txt")
                if who.decode().split() != [str(winners[0])]:
                    problems.append(f"edits that ran: {who!r}")
        if problems:
            wrong.append(problems)
    assert not wrong, f"{len(wrong)} of {ROUNDS} rounds wrong: {wrong}"


async def test_agui_resume_that_loses_is_a_409_naming_the_winner(
    api: Api,
    events: Any,
    tmp_path: Path,
    jp_http_port: int,
    headers: dict[str, str],
    jp_base_url: str,
) -> None:
    r = await paused(api, events, tmp_path, "agui-race.ipynb", kernel=False)
    status, _ = await api(
        "POST", f"sessions/{r.sid}/approvals/{r.call}", body={"decision": "reject", "reason": "no"}
    )
    assert status == 200
    await events(r.sid, r.last)
    run = {
        "threadId": r.sid,
        "runId": "late",
        "state": {},
        "tools": [],
        "context": [],
        "forwardedProps": {},
        "messages": [],
        "resume": [{"interruptId": r.call, "status": "resolved", "payload": "approve"}],
    }
    url = f"{jp_base_url.rstrip('/')}/agentspace/api/sessions/{r.sid}/agui"
    body = json.dumps(run).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", jp_http_port)
    head = [f"POST {url} HTTP/1.0", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    raw = await reader.read()
    writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    assert b" 409 " in status_line
    reply = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert reply["decision"] == {"decision": "reject", "reason": "no"}
    assert "already decided: rejected by" in reply["message"] and "(reason: no)" in reply["message"]
    assert await ran(api, r.sid) == 0


READY = """
import asyncio, sys
from agentspace.cli import main as cli
from agentspace.engine.config import EngineConfig
from agentspace.engine.engine import Engine
from agentspace.errors import AgentspaceError

async def main():
    args = cli.parser().parse_args(sys.argv[1:])
    async with Engine(EngineConfig(state_dir=args.state_dir)) as engine:
        await engine.find(args.key)
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        try:
            return await args.fn(args, engine)
        except AgentspaceError as exc:  # as cli.main says it
            print(f"agentspace: {exc.message}", file=sys.stderr)
            return cli.EXIT_BAD_INPUT

sys.exit(asyncio.run(main()))
"""


def _cli(state: Path, *args: str) -> subprocess.Popen[str]:
    """``agentspace approve …`` in its own process, started and held until released.

    Starting Python and opening the store cost far more than a decision; holding each
    process on a line of stdin lets the test release them together, so they race.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", READY, *args, "--state-dir", str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


async def _wait(proc: subprocess.Popen[str]) -> tuple[int, str]:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    out, err = await asyncio.to_thread(proc.communicate, None, 120)
    return proc.returncode, out + err


@pytest.mark.parametrize("kind", ["approve/approve", "approve/reject"])
async def test_exactly_one_decision_wins_across_processes(
    api: Api, events: Any, tmp_path: Path, agentspace_state: Path, kind: str
) -> None:
    """The server (in this process) and two ``agentspace approve`` processes, one state dir."""
    wrong: list[Any] = []
    tally: list[int] = []
    for n in range(PROCESS_ROUNDS):
        r = await paused(api, events, tmp_path, f"x-{kind.replace('/', '-')}-{n}.ipynb", False)
        cli_args = ["--reject", "no"] if kind == "approve/reject" else []
        procs = await asyncio.gather(
            *(
                asyncio.to_thread(_cli, agentspace_state, "approve", r.sid, r.call, *cli_args)
                for _ in range(2)
            )
        )
        rest, *clis = await asyncio.gather(
            api("POST", f"sessions/{r.sid}/approvals/{r.call}", body={"decision": "approve"}),
            *(_wait(p) for p in procs),
        )
        wins = [rest[0] == 200] + [code == 0 for code, _ in clis]
        problems = []
        for code, text in clis:
            if code != 0 and (code != 2 or "already decided" not in text):
                problems.append(f"CLI exit {code}: {text}")  # a clear line, bad-input code
        if rest[0] != 200 and (rest[0] != 409 or "already decided" not in rest[1]["message"]):
            problems.append(f"REST {rest}")
        try:
            everything = await settle(api, events, r)
        except Stuck as exc:
            everything = []
            problems.append(f"stuck: {exc}")
        results = results_of(everything, r.call)
        rejected = any("rejected" in text for text in results)
        count = await ran(api, r.sid)
        if wins.count(True) != 1:
            problems.append(f"{wins.count(True)} won")
        if len(results) != 1 or count != (0 if rejected else 1):
            problems.append(f"{len(results)} results, ran {count} times")
        if problems:
            wrong.append(problems)
        tally.append(wins.index(True) if True in wins else -1)
    print("winners (0: REST, 1-2: CLI):", tally)  # shown with -s: who won each round
    assert not wrong, f"{len(wrong)} of {PROCESS_ROUNDS} rounds wrong: {wrong}"
