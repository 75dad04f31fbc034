"""A sandboxed command holds no privilege over the host, also when the server runs as root.

bubblewrap run by root maps the sandbox's user to the host's root, with every capability: a
command could write host sysctls (``/proc/sys/kernel/core_pattern`` is code execution as host
root), mount a cgroup hierarchy and lift its own ``pids.max``. Each probe below is a hostile
command; the suite runs as root on CI, which is the case that matters. A last test builds the
same command line as a server run by a normal user would and runs it as one.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from agentspace.sandbox import sandboxuser
from agentspace.sandbox.base import SANDBOX_UID, SandboxPolicy
from agentspace.sandbox.bubblewrap.sandbox import BubblewrapSandbox
from agentspace.sandbox.workspace import Workspace

MakeWorkspace = Callable[..., Workspace]

# Each line prints key=value; every probe is written so that success means an escape.
PROBE = r"""
echo uid=$(id -u)
grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status | tr -d '\t ' | tr : =
value=$(cat /proc/sys/vm/stat_interval)
(echo "$value" > /proc/sys/vm/stat_interval) 2>/dev/null \
    && echo sysctl=written || echo sysctl=refused
mkdir -p /tmp/m
mount -t tmpfs none /tmp/m 2>/dev/null && echo tmpfs=mounted || echo tmpfs=refused
if mount -t cgroup -o pids none /tmp/m 2>/dev/null; then
    echo cgroup=mounted; (echo max > /tmp/m/pids.max) 2>/dev/null && echo pids=raised
else
    echo cgroup=refused
fi
unshare -U -r sh -c 'echo "$0" > /proc/sys/vm/stat_interval' "$value" 2>/dev/null \
    && echo userns_sysctl=written || echo userns_sysctl=refused
unshare -U -r sh -c 'mount -t cgroup -o pids none /tmp/m' 2>/dev/null \
    && echo userns_cgroup=mounted || echo userns_cgroup=refused
unshare -m true 2>/dev/null && echo unshare_m=ok || echo unshare_m=refused
echo suid_copy=$(./id-suid -u 2>/dev/null || echo refused)
/usr/bin/su -c 'id -u' root </dev/null >/dev/null 2>&1 && echo su=root || echo su=refused
echo host_procs=$(ls /proc | grep -c '^[0-9]')
echo modules=$( (echo x > /proc/sys/kernel/modprobe) 2>/dev/null && echo written || echo refused)
"""


def parse(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def assert_unprivileged(found: dict[str, str], uid: int) -> None:
    assert found["uid"] == str(uid), found
    for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert found[caps] == "0000000000000000", (caps, found)
    assert found["NoNewPrivs"] == "1", found
    escapes = {
        "sysctl": "refused", "tmpfs": "refused", "cgroup": "refused",
        "userns_sysctl": "refused", "userns_cgroup": "refused", "unshare_m": "refused",
        "su": "refused", "modules": "refused",
    }  # fmt: skip
    assert {k: found.get(k) for k in escapes} == escapes, found
    assert "pids" not in found, found
    assert found["suid_copy"] in (str(uid), "refused"), found  # never 0
    assert int(found["host_procs"]) < 10, found  # its own pid namespace: no host process


def plant_setuid_copy(folder: Path) -> None:
    """A setuid-root ``id`` in the workspace, as root would leave one (nosuid must hold)."""
    target = folder / "id-suid"
    shutil.copy("/usr/bin/id", target)
    os.chown(target, 0, 0)
    os.chmod(target, 0o4755)


@pytest.mark.skipif(os.geteuid() != 0, reason="the root case needs a root test run (CI is root)")
async def test_a_command_under_a_root_server_holds_no_privilege(
    make_workspace: MakeWorkspace,
) -> None:
    ws = make_workspace("bubblewrap")
    await ws.sandbox.start()
    pids_max = [d / "pids.max" for d in ws.sandbox.limits.dirs if (d / "pids.max").exists()]  # type: ignore[attr-defined]
    before = [p.read_text() for p in pids_max]
    plant_setuid_copy(ws.folder)
    result = await ws.shell(PROBE)
    assert result.exit_code == 0, result.render()
    assert_unprivileged(parse(result.stdout), SANDBOX_UID)
    assert [p.read_text() for p in pids_max] == before  # the session's own limit is intact


@pytest.mark.skipif(os.geteuid() != 0, reason="the root case needs a root test run (CI is root)")
async def test_files_of_the_root_kernel_stay_writable_by_the_sandbox(
    make_workspace: MakeWorkspace,
) -> None:
    ws = make_workspace("bubblewrap")
    (ws.folder / "old.csv").write_text("made before the sandbox started\n")
    (ws.folder / "sub").mkdir()
    await ws.sandbox.start()
    # what the user's kernel (root) writes later, with its usual modes
    (ws.folder / "later.csv").write_text("written by the kernel\n")
    (ws.folder / "sub" / "deep").mkdir()
    (ws.folder / "sub" / "deep" / "x.txt").write_text("x\n")
    script = (
        "for f in old.csv later.csv sub/deep/x.txt; do echo more >> $f || exit 1; done; "
        "mkdir sub/deep/inner && touch sub/new && rm later.csv && echo ok"
    )
    result = await ws.shell(script)
    assert result.stdout.strip() == "ok", result.render()
    made = ws.folder / "sub" / "new"
    assert made.stat().st_uid == SANDBOX_UID  # the sandbox's files: its own user, not root
    assert (ws.folder / "old.csv").read_text().endswith("more\n")  # and root reads them all
    assert not stat.S_IMODE(os.stat(ws.folder).st_mode) & 0o002  # no world-writable folder


async def test_the_grant_does_not_follow_links_out_of_the_workspace(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("granting other users needs root (CI is root)")
    outside = tmp_path / "outside.txt"
    outside.write_text("host file\n")
    workspace = tmp_path / "ws"
    (workspace / "d").mkdir(parents=True)
    (workspace / "link").symlink_to(outside)
    os.link(outside, workspace / "hardlink")
    (workspace / "d" / "mine.txt").write_text("mine\n")
    sandboxuser.grant(workspace, SANDBOX_UID)
    assert "system.posix_acl_access" not in os.listxattr(outside)
    assert "system.posix_acl_access" in os.listxattr(workspace / "d" / "mine.txt")
    assert "system.posix_acl_default" in os.listxattr(workspace / "d")


async def test_doors_of_a_dead_server_are_removed_at_the_next_start(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("bind mounts need root (CI is root)")
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    workspace = tmp_path / "ws"
    workspace.mkdir()
    child = await asyncio.create_subprocess_exec("true")  # a pid that has surely exited
    await child.wait()
    door = sandboxuser.doors_dir(runtime) / f"sid-{child.pid}"
    door.mkdir()
    from agentspace.sandbox import loopmount

    loopmount.bind(workspace, door)
    assert sandboxuser.is_door(door)
    mine = sandboxuser.open_door(runtime, "live", workspace)  # this process's: kept
    try:
        assert sandboxuser.clean_doors(runtime) == 1
        assert not door.exists() and sandboxuser.is_door(mine)
    finally:
        sandboxuser.close_door(mine)
    assert not mine.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to a normal user needs root (CI is root)")
async def test_a_command_under_a_normal_user_server_holds_no_privilege(
    has_bubblewrap: bool,
) -> None:
    """What a server run by uid 65530 would start: the same argv, run as that user."""
    if not has_bubblewrap:
        pytest.skip("bubblewrap cannot create namespaces here")
    user = 65530
    folder = Path(tempfile.mkdtemp(prefix="agentspace-user-"))
    try:
        os.chmod(folder, 0o755)
        os.chown(folder, user, user)
        plant_setuid_copy(folder)
        policy = SandboxPolicy(network="host", memory_mb=None, cpus=None, pids=None)
        sandbox = BubblewrapSandbox("user-probe", folder, policy)
        sandbox.uid = None  # what a server that is not root builds: no drop, no door
        argv = sandbox._argv(PROBE, {})
        drop = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--"]
        done = await asyncio.create_subprocess_exec(
            *drop, *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await done.communicate()
        assert done.returncode == 0, err.decode()
        assert_unprivileged(parse(out.decode()), user)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
