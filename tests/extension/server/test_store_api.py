"""The store's health over REST (a real Jupyter server): GET api/status, 503 on damage."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from agentspace.store.damage import KINDS, build_state, damage
from agentspace.store.status import SCHEMA_VERSION

Api = Callable[..., Awaitable[tuple[int, Any]]]


async def test_status_reports_a_healthy_store(api: Api, agentspace_state: Path) -> None:
    code, _ = await api("POST", "sessions", body={"notebook": "a.ipynb"})
    assert code == 200
    code, status = await api("GET", "status")
    assert code == 200, status
    store = status["store"]
    assert store["path"] == str(agentspace_state / "agentspace.db")
    assert store["sessions"] == 1 and store["schema_current"]
    assert store["schema_version"] == SCHEMA_VERSION
    assert store["integrity"]["state"] == "ok"
    assert status["orphaned_workspaces"] == [] and status["ok"]
    assert status["sandbox"] == "bubblewrap"


async def test_status_lists_the_models_to_pick_from(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(variable, raising=False)
    code, status = await api("GET", "status")
    assert code == 200
    models = status["models"]
    assert models["default"] == "scripted/echo" and models["models"] == ["scripted/echo"]
    assert "not a catalogue" in models["about"] and "ANTHROPIC_API_KEY" in models["about"]
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")  # read at each request
    _, status = await api("GET", "status")
    assert status["models"]["models"] == [
        "scripted/echo",
        "anthropic/claude-haiku-4-5",
        "anthropic/claude-sonnet-4-5",
    ]
    assert "sk-test" not in json.dumps(status)


@pytest.fixture
def orphaned(agentspace_state: Path) -> dict[str, str]:
    """Workspaces whose database was deleted, before the server starts."""
    made = build_state(agentspace_state, sessions=2, events=2)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{agentspace_state / 'agentspace.db'}{suffix}").unlink(missing_ok=True)
    return made


async def test_orphaned_workspaces_are_said_in_the_log_and_the_status(
    orphaned: dict[str, str], api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="agentspace"):
        code, _ = await api("GET", "sessions")
    assert code == 200
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("2 workspace folder(s)" in w and "agentspace doctor" in w for w in warnings)
    code, status = await api("GET", "status")
    assert code == 200
    found = {o["id"]: o for o in status["orphaned_workspaces"]}
    assert set(found) == set(orphaned.values())
    assert all(o["bytes"] > 0 and o["bytes_complete"] for o in found.values())
    assert {o["notebook"] for o in found.values()} == {"nb0.ipynb", "nb1.ipynb"}
    assert not status["ok"] and "agentspace doctor" in status["message"]
    assert status["store"]["sessions"] == 0


@pytest.fixture(params=KINDS)
def damaged(request: pytest.FixtureRequest, agentspace_state: Path) -> dict[str, str]:
    made = build_state(agentspace_state, sessions=3, events=200)
    damage(agentspace_state / "agentspace.db", request.param)
    return made


async def test_a_damaged_store_answers_503_everywhere_and_jupyter_keeps_serving(
    damaged: dict[str, str],
    api: Api,
    jp_fetch: Callable[..., Awaitable[Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sid = damaged["nb1.ipynb"]
    calls = [
        ("GET", "sessions", None),
        ("POST", "sessions", {"notebook": "new.ipynb"}),
        ("GET", f"sessions/{sid}", None),
        ("GET", f"sessions/{sid}/messages", None),
        ("POST", f"sessions/{sid}/messages", {"text": "hi"}),
        ("GET", "sessions", None),  # again: not a one-off
    ]
    for method, path, body in calls:
        code, reply = await api(method, path, body=body)
        assert code == 503, (method, path, reply)
        assert reply["error"] == "store_damaged", reply
        assert "agentspace doctor --repair" in reply["message"]
        assert "backup" in reply["message"]
    code, status = await api("GET", "status")
    assert code == 200
    assert status["store"]["integrity"]["state"] == "damaged" and not status["ok"]
    assert "agentspace doctor --repair" in status["message"]
    assert status["models"]["default"] == "scripted/echo"  # and what to pick from, still
    # The rest of Jupyter is not affected.
    assert (await jp_fetch("api", "status")).code == 200
    assert (await jp_fetch("api", "contents")).code == 200
    assert not [r for r in caplog.records if "Uncaught exception" in r.getMessage()]


async def test_the_server_serves_the_repaired_file_at_its_next_request(
    agentspace_state: Path, api: Api
) -> None:
    from agentspace.store.repair import repair

    made = build_state(agentspace_state, sessions=2, events=20)
    damage(agentspace_state / "agentspace.db", "header")
    code, reply = await api("GET", "sessions")
    assert code == 503 and reply["error"] == "store_damaged"
    done = repair(agentspace_state / "agentspace.db")  # what `agentspace doctor --repair` does
    assert done.complete and done.backup.exists()
    code, reply = await api("GET", "sessions")
    assert code == 200, reply
    assert {s["id"] for s in reply["sessions"]} == set(made.values())
