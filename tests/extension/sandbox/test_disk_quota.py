"""The workspace quota as a filesystem limit: real loop devices, real ext4, real bubblewrap.

Needs root (loop devices and mount), as on CI; the non-root fallback is checked from a
subprocess that drops to ``nobody`` with ``setpriv``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from agentspace.engine.config import EngineConfig
from agentspace.engine.engine import Engine
from agentspace.sandbox import diskleftovers, disks, loopmount, treecopy
from agentspace.testing import collect_run, turn

ROOT_ONLY = pytest.mark.skipif(
    disks.probe() is not None, reason=f"no quota filesystems here: {disks.probe()} (CI is root)"
)
REPO = Path(__file__).resolve().parents[3]
PYTHONPATH = f"{REPO / 'extension'}:{REPO / 'kernel'}"


def config(state_dir: Path, quota_mb: int | None = 20, **kw: object) -> EngineConfig:
    return EngineConfig(
        state_dir=state_dir,
        sandbox="bubblewrap",
        sandbox_policy={"quota_mb": quota_mb, "memory_mb": 256},
        policies={"*": "allow"},
        **kw,  # type: ignore[arg-type]
    )


async def shell_tool(engine: Engine, notebook: str, model: str) -> list[str]:
    """The shell tool's results in one run of ``model`` (a script of shell calls)."""
    session = await engine.session(notebook, model=model)
    after = session.log.last_seq
    await session.send("go")
    events = await collect_run(session, after)
    return [json.loads(e.data)["content"] for e in events if e.type == "TOOL_CALL_RESULT"]


def loops_under(folder: Path) -> list[loopmount.Loop]:
    return [lp for lp in loopmount.loops() if lp.backing.startswith(f"{folder}/")]


def mounted_at(folder: Path) -> int:
    return sum(1 for target in loopmount.mounts() if target == str(folder))


@ROOT_ONLY
async def test_a_command_past_the_quota_gets_the_limit_and_loses_nothing(
    state_dir: Path, script: Callable[..., str]
) -> None:
    fill = "dd if=/dev/zero of=big bs=1M count=40"
    model = script(
        turn("", ("shell", {"command": "mkdir -p src && echo kept > src/before.txt"})),
        turn("", ("shell", {"command": fill})),
        turn("", ("shell", {"command": "cat src/before.txt; rm big; echo ok > after.txt"})),
        turn("done"),
    )
    async with Engine(config(state_dir)) as engine:
        made, full, after = await shell_tool(engine, "dd.ipynb", model)
        session = await engine.session("dd.ipynb")
        assert made.startswith("exit code: 0")
        assert full.startswith("exit code: 1"), full
        assert "the workspace is full: its quota is 20 MB (sandbox_policy.quota_mb)" in full
        assert "stdout:\nkept\n" in after and after.startswith("exit code: 0")
        assert (session.folder / "src" / "before.txt").read_text() == "kept\n"
        assert (session.folder / "after.txt").read_text() == "ok\n"
        assert sorted(os.listdir(session.folder)) == [".agentspace", "after.txt", "src"]
        image = state_dir / diskleftovers.DIR / f"{session.id}.img"
        assert image.stat().st_blocks * 512 < 30 << 20  # the host disk took the quota only
        st = os.statvfs(session.folder)  # a fresh filesystem offers the whole quota
        assert st.f_blocks * st.f_frsize >= 20 << 20
        info = await session.info()
        assert "20 MB quota enforced by its own filesystem (commands too)" in info.sandbox_backend


@ROOT_ONLY
async def test_a_file_tool_write_past_the_quota_is_refused_clearly(state_dir: Path) -> None:
    async with Engine(config(state_dir)) as engine:
        session = await engine.session("w.ipynb")
        runtime = await engine.workspaces.get(session)
        (session.folder / "a.txt").write_text("a")
        with pytest.raises(Exception, match="the workspace is full: its quota is 20 MB"):
            runtime.check_quota(30 << 20)
        assert (session.folder / "a.txt").read_text() == "a"


@ROOT_ONLY
async def test_a_restart_reuses_the_mount_and_a_purge_unmounts_and_detaches(
    state_dir: Path,
) -> None:
    async with Engine(config(state_dir)) as engine:
        session = await engine.session("r.ipynb")
        folder, sid = session.folder, session.id
        (folder / "f.txt").write_text("x")
        device = loopmount.mounts()[str(folder)]
    assert folder.is_mount()  # the mount outlives the server
    async with Engine(config(state_dir)) as engine:
        session = await engine.session("r.ipynb")
        await engine.workspaces.get(session)
        assert mounted_at(folder) == 1 and loopmount.mounts()[str(folder)] == device
        assert (folder / "f.txt").read_text() == "x"
        await engine.delete(sid, purge=True)
        assert not folder.is_mount()
        assert not (state_dir / diskleftovers.DIR / f"{sid}.img").exists()
    assert loops_under(state_dir) == []


@ROOT_ONLY
async def test_a_raised_quota_grows_the_filesystem_and_keeps_the_files(state_dir: Path) -> None:
    async with Engine(config(state_dir, 20)) as engine:
        folder = (await engine.session("g.ipynb")).folder
        (folder / "f.txt").write_text("x")
    async with Engine(config(state_dir, 60)) as engine:
        session = await engine.session("g.ipynb")
        st = os.statvfs(folder)
        assert st.f_bavail * st.f_frsize >= 60 << 20
        assert (folder / "f.txt").read_text() == "x"
        assert "60 MB quota enforced" in (await session.info()).sandbox_backend


@ROOT_ONLY
async def test_an_existing_plain_workspace_moves_into_an_image_with_every_file(
    state_dir: Path,
) -> None:
    async with Engine(config(state_dir, None)) as engine:  # no quota: a plain folder, as before
        folder = (await engine.session("old.ipynb")).folder
    assert not folder.is_mount()
    (folder / "sub").mkdir()
    (folder / "sub" / "data.bin").write_bytes(os.urandom(100_000))
    (folder / "link").symlink_to("sub/data.bin")
    os.chmod(folder / "sub" / "data.bin", 0o600)
    before = treecopy.inventory(folder)
    data = (folder / "sub" / "data.bin").read_bytes()
    async with Engine(config(state_dir, 20)) as engine:
        session = await engine.session("old.ipynb")
        assert folder.is_mount()
        assert treecopy.inventory(folder) == before
        assert (folder / "sub" / "data.bin").read_bytes() == data
        assert not (folder.parent / f".{session.id}.plain").exists()
        assert "enforced by its own filesystem" in (await session.info()).sandbox_backend


@ROOT_ONLY
async def test_an_existing_workspace_over_its_quota_stays_plain_and_says_so(
    state_dir: Path,
) -> None:
    async with Engine(config(state_dir, None)) as engine:
        folder = (await engine.session("big.ipynb")).folder
    (folder / "big.bin").write_bytes(os.urandom(3 << 20))
    async with Engine(config(state_dir, 2)) as engine:
        session = await engine.session("big.ipynb")
        assert not folder.is_mount()
        assert len((folder / "big.bin").read_bytes()) == 3 << 20
        status = (await session.info()).sandbox_backend
        assert "checked by the file tools and PUT only; commands are NOT limited" in status
        assert "kept as a plain folder" in status


@ROOT_ONLY
def test_an_interrupted_migration_is_finished_at_the_next_open(tmp_path: Path) -> None:
    """Killed after the copy was verified (the image complete) but before the swap."""
    state, sid = tmp_path / "state", "s1"
    folder = state / "workspaces" / sid
    folder.mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    images = disks.Disks(state)
    images.start()
    assert images._migrate(sid, folder, 20) == ""  # the copy, then "killed"
    assert not folder.is_mount()
    try:
        assert disks.Disks(state).open(sid, folder, 20).mode == "filesystem"
        assert folder.is_mount() and (folder / "a.txt").read_text() == "a"
        assert not (folder.parent / f".{sid}.plain").exists()
    finally:
        diskleftovers.release_under(state)


def test_without_root_the_status_says_commands_are_not_limited(
    request: pytest.FixtureRequest,
) -> None:
    """A real unprivileged server (``setpriv`` to nobody): the fallback, and what it says."""
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user (CI is root)")
    nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
    probe = subprocess.run(
        [*nobody, sys.executable, "-c", "import pydantic, agentspace.engine.engine"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": PYTHONPATH},
    )  # fmt: skip
    if probe.returncode != 0:  # e.g. a checkout under a 0700 folder such as mktemp -d's
        pytest.skip(f"an unprivileged user cannot import this checkout: {probe.stderr[-200:]}")
    tmp_path = Path(tempfile.mkdtemp(prefix="agentspace-nobody-"))  # pytest's is root-only
    tmp_path.chmod(0o777)
    request.addfinalizer(lambda: shutil.rmtree(tmp_path, ignore_errors=True))
    code = textwrap.dedent(
        f"""
        import asyncio
        from pathlib import Path
        from agentspace.engine.config import EngineConfig
        from agentspace.engine.engine import Engine
        async def main():
            config = EngineConfig(state_dir=Path({str(tmp_path / "state")!r}), sandbox="local",
                                  sandbox_policy={{"quota_mb": 20}})
            async with Engine(config) as engine:
                session = await engine.session("n.ipynb")
                await engine.workspaces.get(session)
                print((await session.info()).sandbox_backend)
        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [*nobody, sys.executable, "-c", code],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": PYTHONPATH, "HOME": str(tmp_path),
             "XDG_RUNTIME_DIR": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (
        "disk: 20 MB quota checked by the file tools and PUT only; commands are NOT limited "
        "(the server does not run as root" in done.stdout
    )


LEAVE = """
import asyncio, os, sys
from pathlib import Path
from agentspace.engine.config import EngineConfig
from agentspace.engine.engine import Engine
from agentspace.sandbox import diskleftovers, disks, loopmount, treecopy
async def main():
    state = Path(sys.argv[1])
    config = EngineConfig(state_dir=state, sandbox="bubblewrap", sandbox_policy={"quota_mb": 20})
    engine = await Engine(config).start(preload_model=True)
    session = await engine.session("k.ipynb")
    await engine.workspaces._filling  # a spare ready
    # and one being prepared right now: formatted and on its temporary mount
    spare = state / diskleftovers.DIR / f"spare-{diskleftovers.token_name()}-cut.img"
    with open(spare, "wb") as f:
        f.truncate(disks.image_bytes(20))
    disks._run(*disks.mkfs_argv(spare, 20))
    mnt = state / diskleftovers.DIR / f".prep-{diskleftovers.token_name()}-cut"
    mnt.mkdir()
    loopmount.mount_ext4(spare, mnt)
    print(session.id, flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


@ROOT_ONLY
async def test_what_a_killed_server_left_is_cleaned_at_the_next_start(state_dir: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LEAVE, str(state_dir), stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": PYTHONPATH},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        sid = (await proc.stdout.readline()).decode().strip()
        assert sid, "the subprocess did not start"
        assert len(loops_under(state_dir)) == 2  # the session's mount and the half-made spare
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    left = sorted(p.name for p in (state_dir / diskleftovers.DIR).glob("spare-*"))
    assert len(left) == 2
    async with Engine(config(state_dir)) as engine:
        assert list((state_dir / diskleftovers.DIR).glob("spare-*")) == []
        assert list((state_dir / diskleftovers.DIR).glob(".prep-*")) == []
        (only,) = loops_under(state_dir)  # the session's, reused
        assert only.backing == str(state_dir / diskleftovers.DIR / f"{sid}.img")
        await engine.delete(sid, purge=True)
    assert loops_under(state_dir) == []


@ROOT_ONLY
def test_mounts_whose_state_dir_was_removed_are_released(tmp_path: Path) -> None:
    state = tmp_path / "state"
    images = disks.Disks(state)
    folder = state / "workspaces" / "gone"
    images.open("gone", folder, 20)
    assert folder.is_mount()
    (state / diskleftovers.DIR / "gone.img").unlink()  # the state dir is being removed under it
    diskleftovers.release_deleted()
    assert not folder.is_mount()
    assert loops_under(state) == []


@ROOT_ONLY
async def test_a_folder_a_container_binds_is_not_swapped_under_it(state_dir: Path) -> None:
    """As a docker container made before the change: its own mount namespace binds the
    plain folder; moving the files into an image then would leave it writing to nothing."""
    async with Engine(config(state_dir, None)) as engine:
        folder = (await engine.session("c.ipynb")).folder
    (folder / "a.txt").write_text("a")
    holder = await asyncio.create_subprocess_exec(
        "unshare", "-m", "--propagation", "private", "sh", "-c",
        f"mount --bind {folder} /mnt && echo bound && exec sleep 1000",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert await holder.stdout.readline() == b"bound\n"
        async with Engine(config(state_dir, 20)) as engine:
            session = await engine.session("c.ipynb")
            assert not folder.is_mount()
            assert (folder / "a.txt").read_text() == "a"
            assert "in use by a container" in (await session.info()).sandbox_backend
    finally:
        holder.kill()
        await holder.wait()
    async with Engine(config(state_dir, 20)) as engine:  # gone: now it moves
        await engine.session("c.ipynb")
        assert folder.is_mount() and (folder / "a.txt").read_text() == "a"


@ROOT_ONLY
async def test_a_lowered_quota_shrinks_when_the_files_fit_and_says_so_when_not(
    state_dir: Path,
) -> None:
    async with Engine(config(state_dir, 100)) as engine:
        folder = (await engine.session("s.ipynb")).folder
        (folder / "big.bin").write_bytes(os.urandom(30 << 20))
    async with Engine(config(state_dir, 20)) as engine:  # 30 MB in use: kept at 100 MB
        session = await engine.session("s.ipynb")
        assert len((folder / "big.bin").read_bytes()) == 30 << 20
        status = (await session.info()).sandbox_backend
        assert "lowered to 20 MB but 30 MB are in use" in status
        assert "keeps its 100 MB" in status
    (folder / "big.bin").unlink()
    (folder / "small.txt").write_text("s")
    async with Engine(config(state_dir, 20)) as engine:  # now it fits: shrunk
        session = await engine.session("s.ipynb")
        st = os.statvfs(folder)
        assert 20 << 20 <= st.f_blocks * st.f_frsize < 30 << 20
        assert (folder / "small.txt").read_text() == "s"
        assert "20 MB quota enforced" in (await session.info()).sandbox_backend


@ROOT_ONLY
async def test_files_written_while_unmounted_are_never_hidden_or_deleted(state_dir: Path) -> None:
    async with Engine(config(state_dir)) as engine:
        folder = (await engine.session("u.ipynb")).folder
        (folder / "inside.txt").write_text("in the image")
    loopmount.unmount(folder)  # by an admin, say; then something writes to the bare folder
    (folder / "outside.txt").write_text("in the folder")
    async with Engine(config(state_dir)) as engine:
        session = await engine.session("u.ipynb")
        assert not folder.is_mount()
        assert (folder / "outside.txt").read_text() == "in the folder"
        status = (await session.info()).sandbox_backend
        assert "files were written to the folder while its quota filesystem" in status
    assert (state_dir / diskleftovers.DIR / f"{session.id}.img").exists()  # its files are kept too


@ROOT_ONLY
async def test_a_quota_change_waits_while_the_workspace_is_in_use(state_dir: Path) -> None:
    async with Engine(config(state_dir, 20)) as engine:
        folder = (await engine.session("b.ipynb")).folder
    user = await asyncio.create_subprocess_exec("sleep", "1000", cwd=folder)  # a shell in it
    try:
        async with Engine(config(state_dir, 60)) as engine:
            session = await engine.session("b.ipynb")
            assert folder.is_mount()
            status = (await session.info()).sandbox_backend
            assert "20 MB quota enforced" in status
            assert "changed to 60 MB; it applies once nothing uses the workspace" in status
    finally:
        user.kill()
        await user.wait()
    async with Engine(config(state_dir, 60)) as engine:
        session = await engine.session("b.ipynb")
        assert "60 MB quota enforced" in (await session.info()).sandbox_backend


@ROOT_ONLY
def test_two_processes_opening_one_workspace_mount_it_once(tmp_path: Path) -> None:
    """The server and the CLI on one state dir: one mounts, the other finds the mount."""
    state, sid = tmp_path / "state", "both"
    folder = state / "workspaces" / sid
    code = (
        "import sys; from pathlib import Path; from agentspace.sandbox import disks; "
        "print(disks.Disks(Path(sys.argv[1])).open(sys.argv[2], Path(sys.argv[3]), 20).mode)"
    )
    argv = [sys.executable, "-c", code, str(state), sid, str(folder)]
    env = {**os.environ, "PYTHONPATH": PYTHONPATH}
    try:
        procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env) for _ in "ab"]
        assert [p.communicate(timeout=60)[0].strip() for p in procs] == ["filesystem"] * 2
        assert mounted_at(folder) == 1
        (only,) = loops_under(state)
        assert only.backing == str(state / diskleftovers.DIR / f"{sid}.img")
    finally:
        diskleftovers.release_under(state)


@ROOT_ONLY
def test_a_folder_changed_after_its_copy_is_kept_beside_the_image(tmp_path: Path) -> None:
    """Killed between the copy and the swap, then written to: neither version is dropped."""
    state, sid = tmp_path / "state", "s2"
    folder = state / "workspaces" / sid
    folder.mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    images = disks.Disks(state)
    images.start()
    assert images._migrate(sid, folder, 20) == ""
    (folder / "late.txt").write_text("written after the copy")
    try:
        state_now = disks.Disks(state).open(sid, folder, 20)
        assert state_now.mode == "filesystem" and "it is kept at" in state_now.note
        plain = folder.parent / f".{sid}.plain"
        assert (plain / "late.txt").read_text() == "written after the copy"
        assert (folder / "a.txt").read_text() == "a"
    finally:
        diskleftovers.release_under(state)
