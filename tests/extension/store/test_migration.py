"""A store written by main of 2026-12-03 opens with today's names, and its sessions go on.

``data/store_of_2026_12_03.db`` was written by that version's code
(``data/make_store_of_2026_12_03.py`` says how): one session in each status it stored, the
crashed one ``interrupted`` after a real kill -9, and run outcomes ``success``,
``interrupt``, ``error`` and ``interrupted``.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

from agentspace.engine.config import EngineConfig
from agentspace.engine.engine import Engine
from agentspace.store.approvals import Decision
from agentspace.store.database import VERSION
from agentspace.store.states import Status
from agentspace.testing import turn

OLD = Path(__file__).parent / "data" / "store_of_2026_12_03.db"
WRITE = ("write_file", {"path": "b.txt", "content": "y\n"})


def old_state(state: Path) -> Path:
    """The old database in a fresh state dir, its workspaces pointed into it."""
    (state / "workspaces").mkdir(parents=True)
    db = state / "agentspace.db"
    shutil.copy(OLD, db)
    with sqlite3.connect(db) as conn:  # where this machine keeps them, not where it was made
        for sid, old in conn.execute("SELECT id, json_extract(data, '$.workspace') FROM sessions"):
            conn.execute(
                "UPDATE sessions SET data = json_set(data, '$.workspace', ?) WHERE id = ?",
                (str(state / "workspaces" / Path(old).name), sid),
            )
    conn.close()
    return db


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        found = conn.execute(sql).fetchall()
    conn.close()
    return found


def test_the_fixture_holds_the_old_words() -> None:
    statuses = {s for (s,) in rows(OLD, "SELECT json_extract(data, '$.status') FROM sessions")}
    assert "interrupted" in statuses
    outcomes = {o for (o,) in rows(OLD, "SELECT outcome FROM runs")}
    assert outcomes == {"success", "interrupt", "error", "interrupted"}
    assert rows(OLD, "PRAGMA user_version") == [(0,)]


async def test_an_old_store_is_migrated_and_its_sessions_go_on(
    tmp_path: Path, script: Callable[..., str]
) -> None:
    db = old_state(tmp_path / "state")
    config = EngineConfig(state_dir=tmp_path / "state", sandbox="local", model="scripted/echo")
    async with Engine(config) as engine:
        status = {i.notebook: i.status for i in await engine.list()}
        assert status == {
            "done.ipynb": Status.IDLE,
            "paused.ipynb": Status.AWAITING_APPROVAL,
            "stopped.ipynb": Status.STOPPED,
            "failed.ipynb": Status.FAILED,
            "crashed.ipynb": Status.CRASHED,
        }
        crashed = await engine.open("crashed.ipynb", "scripted/echo")
        before = await crashed.transcript()
        assert before[-1]["role"] == "assistant" and before[-1]["content"].startswith("w w")
        await crashed.resume()
        await crashed.wait()
        assert crashed.status == Status.IDLE
        assert (await crashed.transcript())[: len(before)] == before

        paused = await engine.open("paused.ipynb", "scripted/echo")
        (call,) = await paused.pending()
        assert call.preview is None  # held before previews: it loads, and shows its arguments
        assert "preview" not in (call.interrupt().metadata or {})
        await paused.decide(call.tool_call_id, Decision(decision="approve"))
        await paused.wait()
        assert paused.status == Status.IDLE
        assert (paused.folder / "a.txt").read_text() == "x"

        # a call held in the migrated store keeps its preview in the new column
        done = await engine.open("new.ipynb", script(turn("", WRITE), turn("ok")))
        await done.send("write b")
        await done.wait()
        (held,) = [p for p in await done.pending() if p.status == "pending"]
        assert held.preview == "--- /dev/null\n+++ b/b.txt\n@@ -0,0 +1 @@\n+y"
    outcomes = {o for (o,) in rows(db, "SELECT outcome FROM runs")}
    assert outcomes == {"finished", "paused", "failed", "crashed"}
    assert rows(db, "PRAGMA user_version") == [(VERSION,)] and VERSION >= 6
    columns = {r[1]: r for r in rows(db, "PRAGMA table_info(approvals)")}
    assert columns["preview"][2:4] == ("TEXT", 0)  # added, nullable
    previews = rows(db, "SELECT name, preview IS NULL FROM approvals ORDER BY created")
    assert previews[-1] == ("write_file", 0) and all(old for _, old in previews[:-1])
    statuses = {s for (s,) in rows(db, "SELECT json_extract(data, '$.status') FROM sessions")}
    assert "interrupted" not in statuses
