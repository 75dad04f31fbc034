"""Writes ``store_of_2026_12_03.db``: a state database as main left it on 2026-12-03.

Run with that version's code (commit a64fd2b), from a checkout of it::

    git worktree add /tmp/old a64fd2b
    PYTHONPATH=/tmp/old/extension:/tmp/old/kernel python make_store_of_2026_12_03.py OUT_DIR

It holds one session in each status that version stored (idle, awaiting_approval, stopped,
failed, interrupted after a kill -9 mid-run), with their runs' outcomes (success, interrupt,
error, interrupted), so the migration to today's names is tested on real data.
"""

import asyncio
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from agentspace.config import EngineConfig

from agentspace.engine import Engine
from agentspace.testing import write_script


async def main(out: Path) -> None:
    state = out / "state"
    shutil.rmtree(state, ignore_errors=True)
    config = EngineConfig(state_dir=state, sandbox="local", model="scripted/echo")
    write = write_script(
        out / "write.json",
        {"text": "Writing.", "tool_calls": [
            {"name": "write_file", "arguments": {"path": "a.txt", "content": "x"}}]},
        {"text": "Written."},
    )  # fmt: skip
    async with Engine(config) as engine:
        done = await engine.session("done.ipynb")
        await done.send("hello")
        await done.wait()
        for name in ("paused.ipynb", "stopped.ipynb"):
            s = await engine.session(name, model=write)
            await s.send("write it")
            await s.wait()
        await (await engine.session("stopped.ipynb")).stop()
        failed = await engine.session("failed.ipynb", model="scripted/" + str(out / "none.json"))
        await failed.send("fail")
        await failed.wait()
        await engine.store.flush()
    slow = write_script(out / "slow.json", {"text": " ".join(["w"] * 3000), "delay_ms": 5})
    proc = subprocess.Popen(  # noqa: ASYNC220 - a one-off script, nothing else runs
        [sys.executable, "-m", "agentspace", "run", "--state-dir", str(state), "--notebook",
         "crashed.ipynb", "--model", slow, "--json", "go"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    deltas = 0
    while deltas < 20:
        event = json.loads(proc.stdout.readline())["event"]
        deltas += event["type"] == "TEXT_MESSAGE_CONTENT"
    proc.kill()
    proc.wait()
    async with Engine(config) as engine:  # recovers the crashed run as that version did
        crashed = await engine.session("crashed.ipynb", create=False)
        assert crashed.status == "interrupted", crashed.status
        await engine.store.flush()
    db = next(state.glob("*.db"))
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
        print(
            conn.execute("SELECT notebook, json_extract(data, '$.status') FROM sessions").fetchall()
        )
        print(conn.execute("SELECT outcome FROM runs ORDER BY started").fetchall())
    conn.close()
    shutil.copy(db, out / "store_of_2026_12_03.db")


asyncio.run(main(Path(sys.argv[1]).resolve()))
