"""nbval's run of the notebooks (``make notebooks-check``): leave no workspace mounted."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentspace.sandbox.diskleftovers import release_under


@pytest.fixture(scope="session", autouse=True)
def _no_mounted_workspaces() -> Iterator[None]:
    """The kernels' embedded engines mount their workspaces' quota filesystems (as root) in
    the throwaway Jupyter data dir the Makefile gives them; unmount them when done."""
    yield
    data = os.environ.get("JUPYTER_DATA_DIR")
    if data and Path(data).resolve().is_relative_to(Path(tempfile.gettempdir()).resolve()):
        release_under(Path(data).resolve())
