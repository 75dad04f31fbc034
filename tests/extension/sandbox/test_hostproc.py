"""A command that has ended and been reaped is never signalled by its old pid.

Once the kernel has given the pid back, it may be another process's (pids wrap at
``pid_max``; under a busy test suite they do), so a late stop or kill must not send
anything to it, nor read its ``/proc`` children: that killed other sandboxes' holders.
"""

from __future__ import annotations

import pytest

from agentspace.sandbox import hostproc
from agentspace.sandbox.hostproc import HostExecution, spawn


async def test_a_reaped_command_is_not_signalled_by_its_old_pid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    process = await spawn(["true"])
    execution = HostExecution(process, extra_pids=lambda: [])
    assert await execution.wait() == 0  # reaped: its pid is free for anyone
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(hostproc.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    monkeypatch.setattr(hostproc, "descendants", lambda pid: [pid + 1])
    execution.terminate()
    execution.kill()
    assert sent == []


async def test_a_running_command_is_still_killed_with_its_tree() -> None:
    process = await spawn(["sh", "-c", "sleep 60 & wait"])
    execution = HostExecution(process)
    execution.kill()
    assert await execution.wait() == 128 + 9
