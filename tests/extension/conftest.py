"""Shared fixtures: an engine on a temporary state dir with the scripted model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentspace.engine.config import EngineConfig, Limits
from agentspace.engine.engine import Engine
from agentspace.sandbox.diskleftovers import release_under
from agentspace.testing import write_script


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / "state"
    yield state
    release_under(state)  # the workspaces' quota filesystems (mounts outlive engines)


@pytest.fixture
def make_config(state_dir: Path) -> Callable[..., EngineConfig]:
    def make(**limits: Any) -> EngineConfig:
        return EngineConfig(state_dir=state_dir, model="scripted/echo", limits=Limits(**limits))

    return make


@pytest.fixture
async def engine(make_config: Callable[..., EngineConfig]) -> AsyncIterator[Engine]:
    async with Engine(make_config()) as eng:
        yield eng


@pytest.fixture
def script(tmp_path: Path) -> Callable[..., str]:
    """``script(turn(...), ...)`` writes a script file and returns its model string."""
    counter = iter(range(1_000_000))

    def make(*turns: dict[str, Any]) -> str:
        return write_script(tmp_path / f"script{next(counter)}.json", *turns)

    return make
