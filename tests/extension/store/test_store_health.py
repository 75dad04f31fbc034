"""The store's health in the engine: damage refused at start, orphans said loudly, labels."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from agentspace.engine.config import EngineConfig
from agentspace.engine.engine import Engine
from agentspace.errors import StoreDamaged
from agentspace.store.damage import KINDS, Kind, build_state, damage
from agentspace.store.labels import read_label
from agentspace.store.status import SCHEMA_VERSION


@pytest.mark.parametrize("kind", KINDS)
async def test_a_damaged_database_is_refused_at_start_with_what_to_do(
    state_dir: Path, make_config: Callable[..., EngineConfig], kind: Kind
) -> None:
    build_state(state_dir)
    damage(state_dir / "agentspace.db", kind)
    with pytest.raises(StoreDamaged) as caught:
        await Engine(make_config()).start()
    error = caught.value
    assert error.code == "store_damaged"
    assert str(state_dir / "agentspace.db") in error.message
    assert f"agentspace doctor --repair --state-dir {state_dir}" in error.message
    assert "backup" in error.message


async def test_a_deleted_database_next_to_workspaces_warns_loudly(
    state_dir: Path, make_config: Callable[..., EngineConfig], caplog: pytest.LogCaptureFixture
) -> None:
    async with Engine(make_config()) as engine:
        for name in ("a.ipynb", "b.ipynb"):
            await engine.session(name)
    _drop_database(state_dir)
    with caplog.at_level(logging.WARNING, logger="agentspace"):
        async with Engine(make_config()) as engine:
            assert await engine.list() == []
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    text = warning.getMessage()
    assert "2 workspace folder(s)" in text and "have no session" in text
    assert "just created" in text
    assert f"agentspace doctor --state-dir {state_dir}" in text
    assert "--adopt" in text and "--prune" in text


def _drop_database(state_dir: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state_dir / 'agentspace.db'}{suffix}").unlink(missing_ok=True)


async def test_an_emptied_database_warns_too(
    state_dir: Path, make_config: Callable[..., EngineConfig], caplog: pytest.LogCaptureFixture
) -> None:
    build_state(state_dir, sessions=1, events=1)
    (state_dir / "agentspace.db").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="agentspace"):
        async with Engine(make_config()):
            pass
    assert any("1 workspace folder(s)" in r.getMessage() for r in caplog.records)


async def test_no_warning_when_every_workspace_has_its_session(
    engine: Engine, make_config: Callable[..., EngineConfig], caplog: pytest.LogCaptureFixture
) -> None:
    await engine.session("a.ipynb")
    with caplog.at_level(logging.WARNING, logger="agentspace"):
        async with Engine(make_config()):
            pass
    assert not [r for r in caplog.records if "workspace folder" in r.getMessage()]


async def test_a_workspace_is_labelled_with_its_notebook_and_follows_renames(
    engine: Engine, state_dir: Path
) -> None:
    session = await engine.session("dir/a.ipynb")
    assert read_label(state_dir, session.id) == "dir/a.ipynb"
    label = json.loads((state_dir / "workspaces" / f"{session.id}.json").read_text())
    assert label == {"session_id": session.id, "notebook": "dir/a.ipynb"}
    await engine.rename_notebooks("dir", "other")
    assert read_label(state_dir, session.id) == "other/a.ipynb"
    await engine.delete(session.id, purge=True)
    assert read_label(state_dir, session.id) is None


async def test_a_rename_onto_a_notebook_with_a_session_keeps_both_and_moves_the_rest(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    old = await engine.session("d/old.ipynb")
    other = await engine.session("d/b.ipynb")
    taken = await engine.session("e/old.ipynb")  # made for the new path first (a race)
    with caplog.at_level(logging.WARNING, logger="agentspace"):
        assert await engine.rename_notebooks("d", "e") == 1
    assert (await engine.session("e/b.ipynb", create=False)).id == other.id
    assert (await engine.session("e/old.ipynb", create=False)).id == taken.id
    assert (await engine.session("d/old.ipynb", create=False)).id == old.id
    assert any("keeps its old key" in r.getMessage() for r in caplog.records)


async def test_health_reports_sessions_orphans_and_integrity(
    engine: Engine, state_dir: Path
) -> None:
    session = await engine.session("a.ipynb")
    orphan = state_dir / "workspaces" / ("f" * 32)
    orphan.mkdir()
    (orphan / "data.bin").write_bytes(b"x" * 10_000)
    from agentspace.store.status import forget

    forget(engine.store.path)
    report = await engine.health()
    assert report["store"]["sessions"] == 1
    assert report["store"]["integrity"]["state"] == "ok"
    assert report["store"]["schema_version"] == SCHEMA_VERSION and report["store"]["schema_current"]
    (found,) = report["orphaned_workspaces"]
    assert found["id"] == "f" * 32 and found["bytes"] >= 10_000 and found["bytes_complete"]
    assert not report["ok"] and "agentspace doctor" in report["message"]
    assert session.id not in json.dumps(report["orphaned_workspaces"])
