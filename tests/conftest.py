"""Suite-wide teardown: no workspace filesystem stays mounted, no loop device attached."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentspace.sandbox.diskleftovers import release_under


@pytest.fixture(scope="session", autouse=True)
def _no_mounted_workspaces(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Engines leave workspaces mounted on purpose (a restart reuses them); the suite's
    temporary state directories must not, or each run would leave loop devices behind."""
    yield
    release_under(tmp_path_factory.getbasetemp())
