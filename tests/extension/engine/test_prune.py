"""``agentspace prune``: anonymous kernels' sessions idle for a while go, with their workspaces;
named notebooks' sessions and recent ones stay."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from agentspace.cli.main import main
from agentspace.engine.config import EngineConfig
from agentspace.engine.engine import Engine
from agentspace.testing import collect_run

TEN_DAYS = 10 * 86_400


async def make_sessions(state_dir: Path) -> dict[str, Path]:
    """Three sessions, each with a run; the first two are backdated 10 days."""
    async with Engine(EngineConfig(state_dir=state_dir, model="scripted/echo")) as engine:
        folders = {}
        for key in ("kernels/old.ipynb", "old-but-named.ipynb", "kernels/recent.ipynb"):
            session = await engine.session(key)
            after = session.log.last_seq
            await session.send("hello")
            await collect_run(session, after)
            folders[key] = Path(session.record.workspace)
            (folders[key] / "result.csv").write_text("a,b\n")

        def age(c: sqlite3.Connection) -> None:
            for key in ("kernels/old.ipynb", "old-but-named.ipynb"):
                (sid,) = c.execute("SELECT id FROM sessions WHERE notebook = ?", (key,)).fetchone()
                c.execute("UPDATE sessions SET created = created - ? WHERE id = ?", (TEN_DAYS, sid))
                c.execute(
                    "UPDATE runs SET started = started - ? WHERE session_id = ?", (TEN_DAYS, sid)
                )

        await engine.store.transaction(age)
        return folders


def test_prune_deletes_only_idle_anonymous_sessions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    folders = asyncio.run(make_sessions(state))

    assert main(["prune", "--state-dir", str(state), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would delete\tkernels/old.ipynb" in out and "recent" not in out
    assert all(f.exists() for f in folders.values())  # a dry run deletes nothing

    assert main(["prune", "--state-dir", str(state)]) == 0
    assert "1 anonymous kernel session(s) idle for 7 days deleted" in capsys.readouterr().out
    assert not folders["kernels/old.ipynb"].exists()
    assert folders["old-but-named.ipynb"].exists() and folders["kernels/recent.ipynb"].exists()

    assert main(["sessions", "--state-dir", str(state)]) == 0
    listed = capsys.readouterr().out
    assert "kernels/old.ipynb" not in listed
    assert "old-but-named.ipynb" in listed and "kernels/recent.ipynb" in listed
