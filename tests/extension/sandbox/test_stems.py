"""Stems (workspace/stems.py): a command's chain started ahead, given its command later.

A stem must be indistinguishable from the one-shot chain for the command, must not let a
command's text become bubblewrap options, and must never be what a command depends on:
a dead one is replaced, a closed sandbox leaves none behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from agentspace.sandbox import sandboxuser
from agentspace.sandbox.base import SANDBOX_UID
from agentspace.sandbox.bubblewrap import holders
from agentspace.sandbox.bubblewrap.sandbox import BubblewrapSandbox
from agentspace.sandbox.hostproc import alive
from agentspace.sandbox.workspace import Workspace

MakeWorkspace = Callable[..., Workspace]
PROBE = (
    "id; hostname; grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status; "
    "readlink /proc/self/ns/net; ls -a / /tmp; pwd; env | sort; echo $0; "
    "ls /proc/self/fd; cat /proc/self/cgroup"
)


def sandbox_of(ws: Workspace) -> BubblewrapSandbox:
    assert isinstance(ws.sandbox, BubblewrapSandbox)
    return ws.sandbox


async def output(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_command_from_a_stem_sees_what_the_one_shot_chain_gives_it(
    make_workspace: MakeWorkspace,
) -> None:
    ws = make_workspace("bubblewrap")
    sandbox = sandbox_of(ws)
    await ws.shell("true")  # started; the next command's stem is on its way
    stemmed = await output((await sandbox.exec(PROBE)).process)  # type: ignore[attr-defined]
    one_shot = await output(
        await asyncio.create_subprocess_exec(
            *sandbox._argv(PROBE, {}), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
    )  # fmt: skip
    assert stemmed == one_shot
    code, out, _ = stemmed
    assert code == 0
    assert "AGENTSPACE_COMMAND" not in out  # the command's carrier is gone before it runs
    assert out.split("/workspace\n", 1)[1].count("\n") > 3  # env, $0, fds, cgroup printed


async def test_a_nul_cannot_turn_a_command_or_its_environment_into_options(
    make_workspace: MakeWorkspace,
) -> None:
    """The options travel NUL-separated: a NUL would start an option of the command's
    choosing (``--bind / /host``). Refused as execve refuses it, before anything runs."""
    ws = make_workspace("bubblewrap")
    sandbox = sandbox_of(ws)
    escape = "--bind\0/\0/host"
    with pytest.raises(ValueError, match="null byte"):
        await sandbox.exec(f"ls /host\0{escape}")
    with pytest.raises(ValueError, match="null byte"):
        await sandbox.exec("ls /host", env={"X": f"1\0{escape}"})
    result = await ws.shell("ls /host; echo next")
    assert (result.exit_code, result.stdout) == (0, "next\n"), result.render()


async def test_a_stem_that_died_waiting_is_replaced(
    make_workspace: MakeWorkspace, until: Callable[..., Any]
) -> None:
    ws = make_workspace("bubblewrap")
    sandbox = sandbox_of(ws)
    await ws.shell("true")
    await until(lambda: len(sandbox._stems) == 2, "the next commands' stems")
    for stem in sandbox._stems:  # the OOM killer, an operator: the next command must run
        stem.process.kill()
        await stem.process.wait()
    result = await ws.shell("echo fine")
    assert (result.exit_code, result.stdout) == (0, "fine\n"), result.render()


async def test_a_new_sandbox_runs_its_first_command_in_its_spare_s_stem_and_cgroups(
    make_workspace: MakeWorkspace, until: Callable[..., Any]
) -> None:
    spares = holders.pool(SANDBOX_UID if sandboxuser.dropping() else None)
    await make_workspace("bubblewrap", name="before").shell("true")
    await spares.ready()
    assert len(spares._ready) == 1
    spare = spares._ready[0]
    if not spare.limits.dirs:
        pytest.skip("no writable cgroups: a spare comes without a stem")
    assert spare.stem is not None and spare.stem.alive
    stem_pid = spare.stem.process.pid
    ws = make_workspace("bubblewrap", pids=64)
    sandbox = sandbox_of(ws)
    execution = await sandbox.exec("sleep 30")
    try:
        assert execution.process.pid == stem_pid  # type: ignore[attr-defined]
        # in them before anything of the command runs: a stem just made may still be in
        # its join (the write to cgroup.procs waits for an RCU grace period)
        pid = execution.process.pid  # type: ignore[attr-defined]
        await until(lambda: pid in sandbox.limits.pids_in(), "the command in the cgroups", 5)
        assert all(str(d).endswith(sandbox.limits.dirs[0].name) for d in sandbox.limits.dirs)
        assert sandbox.limits.pids == 64 and spare.limits is sandbox.limits
    finally:
        execution.kill()
        await execution.wait()


async def test_closing_a_sandbox_ends_its_stems(
    make_workspace: MakeWorkspace, until: Callable[..., Any]
) -> None:
    ws = make_workspace("bubblewrap")
    sandbox = sandbox_of(ws)
    await ws.shell("true")
    await until(lambda: len(sandbox._stems) == 2, "the next commands' stems")
    pids = [stem.process.pid for stem in sandbox._stems]
    await asyncio.wait_for(ws.close(), 30)
    assert not sandbox._stems and not sandbox._stemming
    await until(lambda: all(not alive(p) or _zombie(p) for p in pids), "the stems to end", 5)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


async def test_a_huge_command_is_delivered_whole(make_workspace: MakeWorkspace) -> None:
    """Beyond a pipe's capacity (64 kB) the rest of the options is written from a thread
    (up to what execve takes in one string: 128 kB)."""
    ws = make_workspace("bubblewrap")
    command = f"echo {' '.join(['x' * 999] * 100)} | wc -c"  # 100 kB
    result = await ws.shell(command)
    assert (result.exit_code, result.stdout.strip()) == (0, str(100 * 1000)), result.render()
