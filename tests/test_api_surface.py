"""Adapters use the application API only: no reaching into a session's or the engine's parts.

The server's handlers, the CLI, the shipped fakes and the kernel side's embedded client are
thin adapters over public methods of ``Engine`` and ``Session`` (read from the source with
``ast``): none of them touches the store, the event log, the record or the registry of
workspaces, which stay private to the engine.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADAPTERS = [
    *sorted((ROOT / "extension" / "agentspace" / "server").glob("*.py")),
    *sorted((ROOT / "extension" / "agentspace" / "cli").glob("*.py")),
    ROOT / "extension" / "agentspace" / "testing.py",
    *sorted((ROOT / "kernel" / "agentspace_kernel").rglob("*.py")),
]
PRIVATE = {"store", "log", "record", "workspaces"}  # the engine's parts
OWNERS = ("session", "engine")  # what the adapters call the engine's objects


def reach_ins(path: Path) -> list[str]:
    """``file:line: code`` of each use of an engine part on a session or engine object."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE:
            if any(word in ast.unparse(node.value).lower() for word in OWNERS):
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return sorted(found)


def test_the_scan_finds_a_reach_in(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "async def f(session, self):\n"
        "    await session.store.flush()\n"
        "    (await self.engine()).workspaces\n"
        "    self.log.warning('a logger is not the event log')\n"
    )
    assert reach_ins(probe) == [
        "probe.py:2: session.store",
        "probe.py:3: (await self.engine()).workspaces",
    ]


def test_no_adapter_reaches_into_the_engine() -> None:
    assert len(ADAPTERS) > 30
    assert [hit for path in ADAPTERS for hit in reach_ins(path)] == []
