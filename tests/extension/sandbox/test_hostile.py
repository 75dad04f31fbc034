"""Hostile commands and paths against real sandboxes: nothing leaks out, everything ends.

Each test runs on bubblewrap and on the local backend where the property is meant to hold
for both (local relies on the session's cgroups to find escaped processes; they are writable
where this suite runs, and the tests that need them skip where they are not). No mocks; waits
are bounded polls.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentspace.errors import PathEscapeError, ToolError
from agentspace.sandbox import cgroups, processes
from agentspace.sandbox.hostproc import descendants
from agentspace.sandbox.workspace import Workspace
from agentspace.tools.base import ToolContext
from agentspace.tools.files import edit_file, list_files, read_file, write_file
from agentspace.tools.processes import (
    list_processes,
    process_output,
    restart_processes,
    start_process,
    stop_process,
)

MakeWorkspace = Callable[..., Workspace]
KINDS = pytest.mark.parametrize("kind", ["bubblewrap", "local"])


async def call(tool: Any, ctx: ToolContext, **arguments: Any) -> str:
    output = await tool.run(ctx, tool.parse_arguments(arguments))
    text: str = output.text
    return text


def sandbox_pids(ws: Workspace) -> list[int]:
    """The processes in the session's cgroups (bubblewrap and local both keep ``limits``),
    but for bubblewrap's stems: the next commands' chains, waiting for it (stems.py)."""
    pids: list[int] = ws.sandbox.limits.pids_in()  # type: ignore[attr-defined]
    stems = {stem.process.pid for stem in getattr(ws.sandbox, "_stems", [])}
    return [pid for pid in pids if pid not in stems]


def needs_cgroups(kind: str) -> None:
    if kind == "local" and cgroups.layout() == "none":
        pytest.skip("the local backend only finds escaped processes through writable cgroups")


# --- paths out of the workspace through the file tools ----------------------------------


@KINDS
async def test_file_tools_refuse_every_way_out(
    kind: str, make_workspace: MakeWorkspace, tool_context: Callable[..., ToolContext]
) -> None:
    ws = make_workspace(kind)
    ctx = tool_context(ws)
    # links made by the sandboxed command itself, pointing at the host's root and above
    made = await ws.shell("ln -s / escape && ln -s ../.. up && ln -s escape/etc indirect")
    assert made.exit_code == 0, made.render()
    name = f"agentspace-escape-{uuid.uuid4().hex}"
    outside = [Path("/tmp") / name, ws.folder.parent / name, ws.folder.parent.parent / name]

    reads = ["escape/etc/passwd", "indirect/passwd", "up/ws/state", "../state", "/etc/passwd"]
    for path in reads:
        with pytest.raises(PathEscapeError, match=r"outside the workspace|absolute paths"):
            await call(read_file, ctx, path=path)
    writes = [f"escape/tmp/{name}", f"up/{name}", f"up/ws/{name}", f"../{name}", f"/tmp/{name}"]
    for path in writes:
        with pytest.raises(PathEscapeError, match="Refused path"):
            await call(write_file, ctx, path=path, content="pwned")
    with pytest.raises(PathEscapeError):
        await call(edit_file, ctx, path="escape/etc/hostname", old_string="a", new_string="b")
    for path in ("escape", "up", "escape/tmp"):
        with pytest.raises(PathEscapeError):
            await call(list_files, ctx, path=path)
    assert not [p for p in outside if p.exists()]
    # the links themselves are shown, not followed; the workspace is otherwise untouched
    listing = await call(list_files, ctx, path=".")
    assert "escape -> /" in listing and "up -> ../.." in listing
    assert sorted(p.name for p in ws.folder.iterdir()) == [
        ".agentspace",
        "escape",
        "indirect",
        "up",
    ]


# --- fork bomb --------------------------------------------------------------------------


@KINDS
async def test_fork_bomb_is_contained(
    kind: str, make_workspace: MakeWorkspace, until: Callable[..., Any]
) -> None:
    needs_cgroups(kind)
    ws = make_workspace(kind, pids=64)
    started = time.monotonic()
    # dash (/bin/sh) rejects ':' as a function name, so the classic bomb runs in bash; the
    # sleep keeps the command (and on bubblewrap its pid namespace) alive while it rages
    result = await ws.shell("bash -c ':(){ :|:& };:'; sleep 30", timeout=5)
    assert result.limit in ("pids", "timeout"), result.render()
    assert time.monotonic() - started < 5 + 4  # the timeout plus the drain grace at most
    assert "LIMIT" in result.render() or "KILLED" in result.render()
    assert ws.sandbox.limits.counters().get("pids", 0) > 0  # type: ignore[attr-defined]
    # nothing of it is left: not in the session's cgroups, not among our children
    await until(lambda: not sandbox_pids(ws), "the bomb's processes to be gone", timeout=5)
    assert not [p for p in descendants(os.getpid()) if b"bash" in _cmdline(p)]
    # the host (a process of ours) and the sandbox itself still work right after
    host = await asyncio.create_subprocess_exec("true")
    assert await host.wait() == 0
    after = await ws.shell("echo still here", timeout=10)
    assert (after.exit_code, after.stdout) == (0, "still here\n"), after.render()


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


# --- memory -----------------------------------------------------------------------------


@KINDS
async def test_memory_hog_is_killed_and_reported(kind: str, make_workspace: MakeWorkspace) -> None:
    needs_cgroups(kind)
    ws = make_workspace(kind, memory_mb=128)
    result = await ws.shell("python3 -c 'x = b\"x\" * (2 << 30); print(len(x))'", timeout=20)
    assert result.limit == "memory", result.render()
    assert result.exit_code == 128 + 9
    assert "out of memory" in result.render()
    assert "2147483648" not in result.stdout
    again = await ws.shell("python3 -c 'print(len(b\"x\" * (16 << 20)))'")
    assert (again.exit_code, again.stdout, again.limit) == (0, f"{16 << 20}\n", None)


# --- endless output ---------------------------------------------------------------------


@KINDS
async def test_endless_output_is_bounded(kind: str, make_workspace: MakeWorkspace) -> None:
    ws = make_workspace(kind, log_bytes=10_000, output_chars=1_000)
    started = time.monotonic()
    result = await ws.shell("yes", timeout=3)
    assert time.monotonic() - started < 3 + 4
    assert result.limit == "timeout"
    text = result.render()
    assert len(text) < 2_000, len(text)
    assert result.output_bytes > 1_000_000  # it really did write a lot
    log = ws.folder / result.log
    assert log.stat().st_size <= 10_000
    assert result.dropped_bytes == result.output_bytes - log.stat().st_size
    assert f"{result.dropped_bytes} bytes beyond the log cap were discarded" in text
    assert f"the full output is in {result.log}" in text


# --- timeouts ---------------------------------------------------------------------------


@KINDS
async def test_sigterm_ignoring_command_is_killed_at_its_timeout(
    kind: str,
    make_workspace: MakeWorkspace,
    marker: Callable[[], str],
    pids_with: Callable[[str], list[int]],
    until: Callable[..., Any],
) -> None:
    ws = make_workspace(kind)
    sleep = f"sleep {marker()}"
    started = time.monotonic()
    result = await ws.shell(f"trap '' TERM; {sleep}", timeout=1)
    assert time.monotonic() - started < 5
    assert (result.limit, result.exit_code) == ("timeout", 128 + 9)
    assert "wall-time limit" in result.render()
    await until(lambda: not pids_with(sleep), "the sleep to be gone", timeout=3)


DAEMONS = {
    "setsid-disown": "bash -c \"setsid sh -c '{sleep}' >/dev/null 2>&1 & disown\"; {sleep}",
    "nohup-orphan": "nohup sh -c '{sleep} &' >/dev/null 2>&1 & {sleep}",
}


@KINDS
@pytest.mark.parametrize("how", sorted(DAEMONS))
async def test_daemonized_processes_do_not_survive_the_timeout(
    kind: str,
    how: str,
    make_workspace: MakeWorkspace,
    marker: Callable[[], str],
    pids_with: Callable[[str], list[int]],
    until: Callable[..., Any],
) -> None:
    needs_cgroups(kind)
    ws = make_workspace(kind)
    sleep = f"sleep {marker()}"
    started = time.monotonic()
    result = await ws.shell(DAEMONS[how].format(sleep=sleep), timeout=1)
    assert result.limit == "timeout", result.render()
    assert time.monotonic() - started < 5
    await until(lambda: not pids_with(sleep), f"every {sleep!r} to be gone", timeout=3)
    await until(lambda: not sandbox_pids(ws), "the cgroups to be empty", timeout=3)


@KINDS
async def test_a_daemon_escaping_while_a_process_runs_is_killed_alone(
    kind: str,
    make_workspace: MakeWorkspace,
    marker: Callable[[], str],
    pids_with: Callable[[str], list[int]],
    until: Callable[..., Any],
) -> None:
    needs_cgroups(kind)
    ws = make_workspace(kind)
    background = f"sleep {marker()}"
    await ws.processes.start(background, name="background")
    await until(lambda: pids_with(background), "the background process to start")
    sleep = f"sleep {marker()}"
    started = time.monotonic()
    result = await ws.shell(DAEMONS["nohup-orphan"].format(sleep=sleep), timeout=1)
    assert result.limit == "timeout", result.render()
    assert time.monotonic() - started < 5
    await until(lambda: not pids_with(sleep), f"every {sleep!r} to be gone", timeout=3)
    assert pids_with(background)  # the session's other process is left alone
    assert ws.processes.get("background").status == "running"


async def test_local_result_returns_even_if_an_untraceable_process_keeps_the_pipes(
    make_workspace: MakeWorkspace,
    marker: Callable[[], str],
    pids_with: Callable[[str], list[int]],
    until: Callable[..., Any],
) -> None:
    """With another process running, an orphan that cleared its environment cannot be told
    apart from that process's own, so it survives the command; the result must still come."""
    needs_cgroups("local")
    ws = make_workspace("local")
    await ws.processes.start(f"sleep {marker()}", name="background")
    orphan = f"sleep {marker()}"
    started = time.monotonic()
    result = await ws.shell(f"env -i sh -c '{orphan} &' & sleep {marker()}", timeout=1)
    assert result.limit == "timeout", result.render()
    assert time.monotonic() - started < 1 + 2 * 2 + 1  # timeout, kill wait, drain grace
    assert pids_with(orphan)  # the known limit of the local backend...
    await ws.close()
    await until(lambda: not pids_with(orphan), "the orphan to end with the workspace")  # ...until


# --- stopping and closing ---------------------------------------------------------------


@KINDS
async def test_stop_process_kills_what_ignores_sigterm(
    kind: str,
    make_workspace: MakeWorkspace,
    tool_context: Callable[..., ToolContext],
    marker: Callable[[], str],
    pids_with: Callable[[str], list[int]],
    until: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(processes, "STOP_GRACE", 0.5)  # the SIGKILL comes after the grace
    ws = make_workspace(kind)
    ctx = tool_context(ws)
    sleep = f"sleep {marker()}"
    await call(start_process, ctx, command=f"trap '' TERM; echo armed; {sleep}", name="stubborn")
    await until(lambda: "armed" in ws.processes.output("stubborn"), "the trap to be set")
    await until(lambda: pids_with(sleep), "the sleep to start")
    started = time.monotonic()
    text = await call(stop_process, ctx, name="stubborn")
    assert time.monotonic() - started < 0.5 + 3
    assert text == "Process 'stubborn' is stopped (exit code 137)."
    await until(lambda: not pids_with(sleep), "the sleep to be gone", timeout=3)
    assert "stubborn: stopped (exit code 137)" in await call(list_processes, ctx)


@KINDS
async def test_closing_the_processes_leaves_nothing_running(
    kind: str,
    make_workspace: MakeWorkspace,
    marker: Callable[[], str],
    pids_with: Callable[[str], list[int]],
    until: Callable[..., Any],
) -> None:
    ws = make_workspace(kind)
    sleep = f"sleep {marker()}"
    await ws.processes.start(f"trap '' TERM; {sleep}", name="stubborn")
    await ws.processes.start(f"{sleep} & {sleep} & wait", name="forks")
    await ws.processes.start(f"setsid sh -c '{sleep}' & {sleep}", name="session-leader")
    await until(lambda: len(pids_with(sleep)) == 5, "the five sleeps to start")
    await ws.processes.close()
    await until(lambda: not pids_with(sleep), "every sleep to be gone", timeout=5)
    assert {r.status for r in ws.processes.listing()} == {"stopped_by_restart"}
    if kind == "bubblewrap" or cgroups.layout() != "none":
        await until(lambda: not sandbox_pids(ws), "the cgroups to be empty", timeout=5)


@KINDS
async def test_closing_the_workspace_removes_its_cgroups(
    kind: str, make_workspace: MakeWorkspace, marker: Callable[[], str]
) -> None:
    needs_cgroups(kind)
    ws = make_workspace(kind)
    await ws.processes.start(f"sleep {marker()}", name="napper")
    assert (await ws.shell(f"nohup sleep {marker()} >/dev/null 2>&1 &")).exit_code == 0
    groups = list(ws.sandbox.limits.dirs)  # type: ignore[attr-defined]
    assert groups and all(g.is_dir() for g in groups)
    await ws.close()
    assert not [g for g in groups if g.exists()]


@KINDS
async def test_restart_shows_stopped_processes_and_starts_them_again(
    kind: str,
    make_workspace: MakeWorkspace,
    tool_context: Callable[..., ToolContext],
    marker: Callable[[], str],
    pids_with: Callable[[str], list[int]],
    until: Callable[..., Any],
) -> None:
    first = make_workspace(kind)
    sleep = f"sleep {marker()}"
    await first.processes.start(sleep, name="napper")
    await first.processes.start("echo done", name="oneshot")
    await until(lambda: first.processes.get("oneshot").status == "exited", "oneshot to end")
    await until(lambda: pids_with(sleep), "the sleep to start")
    await first.close()  # the server stops
    await until(lambda: not pids_with(sleep), "the sleep to end with the server", timeout=5)

    second = make_workspace(kind)  # the server starts again: same folder, state, session
    assert second.folder == first.folder
    states = {r.name: r.status for r in second.processes.listing()}
    assert states == {"napper": "stopped_by_restart", "oneshot": "exited"}
    ctx = tool_context(second)
    assert "restart_processes" in await call(list_processes, ctx)
    assert await call(restart_processes, ctx) == "Restarted: napper"
    assert second.processes.get("napper").status == "running"
    await until(lambda: pids_with(sleep), "the sleep to run again")
    assert await call(restart_processes, ctx) == "Nothing to restart."


# --- quota ------------------------------------------------------------------------------


@KINDS
async def test_quota_refuses_a_write_that_does_not_fit(
    kind: str, make_workspace: MakeWorkspace, tool_context: Callable[..., ToolContext]
) -> None:
    ws = make_workspace(kind, quota_mb=1)
    ctx = tool_context(ws)
    with pytest.raises(ToolError, match=r"over its 1 MB quota") as refused:
        await call(write_file, ctx, path="big.txt", content="x" * (2 << 20))
    assert not isinstance(refused.value, PathEscapeError)
    assert not (ws.folder / "big.txt").exists()
    assert not [p for p in ws.folder.rglob("*") if p.is_file()]  # no temp file either
    assert await call(write_file, ctx, path="small.txt", content="fits") == (
        "Wrote 4 bytes to small.txt"
    )


# --- logs are written by the server: a link planted in the workspace must not steer them -----


@KINDS
async def test_a_planted_log_link_does_not_make_the_server_write_outside(
    kind: str, make_workspace: MakeWorkspace, tmp_path: Path
) -> None:
    ws = make_workspace(kind)
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("host file\n")
    refused = re.escape("Cannot write the log .agentspace/logs/")
    # the sandboxed command replaces a process's log by a link to a host file...
    plant = f"ln -s {victim} .agentspace/logs/evil.log && mkfifo .agentspace/logs/fifo.log"
    assert (await ws.shell(plant)).exit_code == 0
    with pytest.raises(ToolError, match=refused + r"evil\.log"):
        await ws.processes.start("echo INJECTED", name="evil")
    with pytest.raises(ToolError, match=refused + r"fifo\.log"):  # and a FIFO does not hang us
        await ws.processes.start("echo INJECTED", name="fifo")
    # ...and the whole log folder by a link to a host folder
    planted = f"rm -rf .agentspace/logs && ln -s {outside} .agentspace/logs"
    assert (await ws.shell(planted)).exit_code == 0
    with pytest.raises(ToolError, match=refused):
        await ws.shell("echo INJECTED")
    with pytest.raises(ToolError, match=refused):
        await ws.processes.start("echo INJECTED", name="evil2")
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]
    assert victim.read_text() == "host file\n"
    assert not ws.processes.listing()  # nothing was started
    # removing the link lets the logs be made again
    (ws.folder / ".agentspace" / "logs").unlink()
    assert (await ws.shell("echo fine")).stdout == "fine\n"


@KINDS
async def test_process_output_does_not_read_through_a_planted_link(
    kind: str,
    make_workspace: MakeWorkspace,
    tmp_path: Path,
    tool_context: Callable[..., ToolContext],
    until: Callable[..., Any],
) -> None:
    ws = make_workspace(kind)
    secret = tmp_path / "host-secret.txt"
    secret.write_text("TOPSECRET\n")
    await ws.processes.start("echo harmless", name="reader")
    await until(lambda: ws.processes.get("reader").status == "exited", "the process to end")
    swap = f"ln -sf {secret} .agentspace/logs/reader.log"
    assert (await ws.shell(swap)).exit_code == 0
    with pytest.raises(PathEscapeError, match="leads outside the workspace") as refused:
        await call(process_output, tool_context(ws), name="reader")
    assert "TOPSECRET" not in str(refused.value)


# --- privileges: a command holds none, whoever runs the server --------------------------

PRIVILEGED = ["bubblewrap", "docker"]
# Each line prints what the command managed; a sandbox that holds prints none of the ESCAPED-
# words. A sysctl is written back with the value read, so a failing sandbox changes nothing.
ESCAPES = r"""f=/proc/sys/kernel/core_pattern
v=$(cat $f) && printf '%s\n' "$v" 2>/dev/null >$f && echo ESCAPED-sysctl
mkdir -p /tmp/m
mount -t tmpfs none /tmp/m 2>/dev/null && echo ESCAPED-tmpfs && umount /tmp/m
mount -t cgroup -o pids none /tmp/m 2>/dev/null && echo ESCAPED-cgroup
own=$(sed -n 's/^[0-9]*:pids:\(.*\)$/\1/p' /proc/self/cgroup)
v2=$(sed -n 's/^0::\(.*\)$/\1/p' /proc/self/cgroup)
for g in /tmp/m$own /sys/fs/cgroup/pids$own /sys/fs/cgroup$v2; do
  [ -f $g/pids.max ] && echo max 2>/dev/null >$g/pids.max && echo ESCAPED-pids.max
done
umount /tmp/m 2>/dev/null
unshare -U sh -c 'printf "%s\n" "$(cat $0)" >$0' $f 2>/dev/null && echo ESCAPED-userns-sysctl
unshare -Ur sh -c 'mount --bind /tmp /workspace' 2>/dev/null && echo NESTED-bind-in-own-userns
unshare -m true 2>/dev/null && echo ESCAPED-mountns
echo uid=$(id -u)
grep -E '^(CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status"""


async def _workspace_for(kind: str, make_workspace: MakeWorkspace, request: Any) -> Workspace:
    if kind == "docker":
        request.getfixturevalue("docker_host")
    return make_workspace(kind)


@pytest.mark.parametrize("kind", PRIVILEGED)
async def test_a_command_holds_no_privilege(
    kind: str, make_workspace: MakeWorkspace, request: Any
) -> None:
    """As root (CI) the command is an unprivileged user without capabilities or a way back:
    no sysctl, no mount (tmpfs, cgroup), no raised pids.max, no namespace that gains any."""
    ws = await _workspace_for(kind, make_workspace, request)
    result = await ws.shell(ESCAPES)
    assert result.exit_code == 0, result.render()
    assert "ESCAPED" not in result.stdout, result.stdout
    status = dict(re.findall(r"^(\w+):\s+(\S+)$", result.stdout, re.M))
    assert status == {
        "CapEff": "0" * 16, "CapPrm": "0" * 16, "CapBnd": "0" * 16, "CapAmb": "0" * 16,
        "NoNewPrivs": "1",
    }, result.stdout  # fmt: skip
    uid = int(re.findall(r"^uid=(\d+)$", result.stdout, re.M)[0])
    if os.geteuid() == 0:
        assert uid == ws.sandbox.policy.uid != 0


@pytest.mark.parametrize("kind", PRIVILEGED)
async def test_a_setuid_root_binary_gives_no_root(
    kind: str, make_workspace: MakeWorkspace, request: Any
) -> None:
    """A setuid-root file (here put in the workspace by root, as a hostile image or a root
    kernel could) runs with the caller's ids: no_new_privs, no capabilities to gain."""
    if os.geteuid() != 0:
        pytest.skip("only root can make a setuid-root file (CI runs as root)")
    ws = await _workspace_for(kind, make_workspace, request)
    made = await ws.shell("mkdir -p s && cp /bin/busybox s/busybox")
    assert made.exit_code == 0, made.render()
    setuid = ws.folder / "s" / "busybox"
    os.chown(setuid, 0, 0)
    os.chmod(setuid, 0o4755)
    checks = "s/busybox id -u; s/busybox sh -c 'grep -E \"^(Uid|CapEff):\" /proc/self/status'"
    if kind == "bubblewrap":  # the host's own setuid helpers are visible there
        checks += "; mount -t tmpfs none /tmp 2>/dev/null && echo ESCAPED-mount"
        checks += "; su -c true root </dev/null 2>/dev/null && echo ESCAPED-su"
    result = await ws.shell(checks)
    assert "ESCAPED" not in result.stdout, result.stdout
    assert result.stdout.splitlines()[0] == str(ws.sandbox.policy.uid), result.stdout
    assert re.search(r"^CapEff:\s+0{16}$", result.stdout, re.M), result.stdout
    assert not re.search(r"^Uid:.*\b0\b", result.stdout, re.M), result.stdout


@pytest.mark.parametrize("kind", PRIVILEGED)
async def test_files_root_writes_stay_writable_by_the_sandbox(
    kind: str, make_workspace: MakeWorkspace, request: Any
) -> None:
    """The user's (root) kernel and the server's file tools write as root; the command can
    still change those files, and the host can read what the command wrote."""
    ws = await _workspace_for(kind, make_workspace, request)
    (ws.folder / "old").mkdir()
    (ws.folder / "old" / "by-root.txt").write_text("root\n")
    result = await ws.shell(
        "echo sandbox >> old/by-root.txt && mkdir -p old/new && echo x > old/new/f"
        " && cat old/by-root.txt"
    )
    assert (result.exit_code, result.stdout) == (0, "root\nsandbox\n"), result.render()
    (ws.folder / "old" / "new" / "later.txt").write_text("root again\n")  # after the grant
    again = await ws.shell("echo sandbox >> old/new/later.txt && rm old/new/f && echo ok")
    assert (again.exit_code, again.stdout) == (0, "ok\n"), again.render()
    assert (ws.folder / "old" / "new" / "later.txt").read_text() == "root again\nsandbox\n"


# --- leftovers of a killed server -------------------------------------------------------

MAKE_SPARE = """
import asyncio, shutil, sys
from agentspace.sandbox.bubblewrap.holders import pool
async def main():
    spares = pool()
    await spares.take(shutil.which("bwrap"), shutil.which("nsenter"))  # and a spare refilled
    await spares.ready()
    print(*[str(d) for p in spares._ready for d in p.limits.dirs], flush=True)
    sys.stdin.read()  # until killed
asyncio.run(main())
"""


async def test_a_killed_servers_spare_cgroups_are_removed_at_the_next_start(
    has_bubblewrap: bool, until: Callable[..., Any]
) -> None:
    if not has_bubblewrap or cgroups.layout() == "none":
        pytest.skip("needs bubblewrap and writable cgroups (CI: root)")
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", MAKE_SPARE, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": ":".join(sys.path)},
    )  # fmt: skip
    assert server.stdout is not None
    line = await asyncio.wait_for(server.stdout.readline(), 60)
    left = [Path(p) for p in line.decode().split()]
    assert left and all(p.is_dir() for p in left), line
    server.kill()  # kill -9: nothing of its own clean-up runs
    await server.wait()
    assert all(p.is_dir() for p in left)  # the fault: empty groups stay behind
    # a live server's spare groups are not touched: ours, made the same way
    live = cgroups.Limits(cgroups.pool_name(), None, None, None)
    live.create()
    try:
        removed: list[Path] = []

        def sweep() -> bool:  # what the next start runs before its first spare
            removed.extend(cgroups.remove_stale_pools())
            return set(left) <= set(removed)

        # Swept until done: the spare's stem (stems.py) sees its pipe close and ends on its
        # own within milliseconds, then its groups can go; a next server starts long after.
        await until(sweep, "the killed server's groups to be removed", timeout=5)
        assert not [p for p in left if p.exists()]
        assert all(d.is_dir() for d in live.dirs)
    finally:
        live.remove()
