"""Embedded mode on a damaged store: the cell says what happened and what to do."""

from __future__ import annotations

from pathlib import Path

from agentspace.store.damage import build_state, damage

from .harness import embedded_kernel


def test_a_damaged_store_is_explained_in_the_cell(tmp_path: Path) -> None:
    state = tmp_path / "state"
    build_state(state, sessions=1, events=50)
    damage(state / "agentspace.db", "header")
    with embedded_kernel(tmp_path) as kernel:
        assert not kernel.run("%load_ext agentspace").errors
        kernel.run(f"%config AgentMagics.state_dir = {str(state)!r}")
        out = kernel.run("%%agent --model scripted/echo\nhello")
    assert out.errors == []  # said, not raised: no traceback in the notebook
    assert f"The state database {state / 'agentspace.db'} is damaged" in out.text
    assert f"agentspace doctor --repair --state-dir {state}" in out.text
    assert "backup" in out.text
