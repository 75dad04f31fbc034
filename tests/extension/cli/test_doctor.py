"""``agentspace doctor`` as a real process on real, really damaged SQLite files."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agentspace.store.damage import KINDS, Kind, build_state, damage

EVENTS = 200


def agentspace(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentspace", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def doctor(state: Path, *flags: str) -> tuple[int, dict[str, Any]]:
    done = agentspace("doctor", "--state-dir", str(state), "--json", *flags)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def rows(db: Path, table: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
    finally:
        conn.close()


def drop_database(state: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state / 'agentspace.db'}{suffix}").unlink(missing_ok=True)


def age(folder: Path) -> None:
    """Older than the minute in which a folder may be a session being made (never pruned)."""
    old = time.time() - 3600
    os.utime(folder, (old, old))


def test_a_healthy_state_dir_exits_0(tmp_path: Path) -> None:
    build_state(tmp_path, sessions=2, events=3)
    code, report = doctor(tmp_path)
    assert code == 0, report
    assert report["integrity"]["state"] == "ok" and report["sessions"] == 2
    assert report["orphaned_workspaces"] == [] and report["sessions_without_workspace"] == []
    human = agentspace("doctor", "--state-dir", str(tmp_path))
    assert human.returncode == 0 and "2 session(s); 0 orphaned workspace(s)" in human.stdout


def test_bad_input_exits_2(tmp_path: Path) -> None:
    done = agentspace("doctor", "--state-dir", str(tmp_path), "--dry-run")
    assert done.returncode == 2 and "--dry-run goes with --prune" in done.stderr
    done = agentspace("doctor", "--state-dir", str(tmp_path / "nope"))
    assert done.returncode == 2 and "not a directory" in done.stderr
    done = agentspace("doctor", "--state-dir", str(tmp_path), "--adopt", "--prune")
    assert done.returncode == 2


def test_orphans_are_listed_then_adopted_under_their_notebooks(tmp_path: Path) -> None:
    made = build_state(tmp_path, sessions=2, events=3)
    unlabelled = tmp_path / "workspaces" / ("e" * 32)  # made before labels existed
    unlabelled.mkdir()
    (unlabelled / "old.txt").write_text("old work")
    drop_database(tmp_path)
    code, report = doctor(tmp_path)
    assert code == 1
    found = {o["id"]: o for o in report["orphaned_workspaces"]}
    assert set(found) == {*made.values(), "e" * 32}
    assert found[made["nb0.ipynb"]]["notebook"] == "nb0.ipynb"
    assert found["e" * 32]["notebook"] is None and found["e" * 32]["bytes"] > 0

    code, report = doctor(tmp_path, "--adopt")
    assert code == 0, report
    adopted = {a["id"]: a for a in report["adopted"]}
    assert adopted[made["nb1.ipynb"]]["notebook"] == "nb1.ipynb"
    assert adopted["e" * 32]["notebook"] == f"orphans/{'e' * 32}.ipynb"
    assert "no label" in adopted["e" * 32]["how"]
    # The sessions are real: the engine serves them, with their files.
    listed = agentspace("sessions", "--state-dir", str(tmp_path), "--json")
    assert listed.returncode == 0, listed.stderr
    infos = {i["notebook"]: i for i in map(json.loads, listed.stdout.splitlines())}
    assert set(infos) == {"nb0.ipynb", "nb1.ipynb", f"orphans/{'e' * 32}.ipynb"}
    assert (Path(infos["nb0.ipynb"]["workspace"]) / "notes.txt").read_text().startswith("the")
    assert (unlabelled / "old.txt").read_text() == "old work"
    assert doctor(tmp_path)[0] == 0


def test_a_label_naming_a_notebook_that_has_a_session_is_not_followed(tmp_path: Path) -> None:
    made = build_state(tmp_path, sessions=1, events=1)
    stray = tmp_path / "workspaces" / ("d" * 32)
    stray.mkdir()
    (tmp_path / "workspaces" / f"{'d' * 32}.json").write_text(json.dumps({"notebook": "nb0.ipynb"}))
    code, report = doctor(tmp_path, "--adopt")
    assert code == 0
    (item,) = report["adopted"]
    assert item["notebook"] == f"orphans/{'d' * 32}.ipynb" and "another session" in item["how"]
    assert made["nb0.ipynb"] in {r[0] for r in rows(tmp_path / "agentspace.db", "sessions")}


def test_orphans_are_pruned_after_a_dry_run(tmp_path: Path) -> None:
    made = build_state(tmp_path, sessions=2, events=1)
    drop_database(tmp_path)
    build_state(tmp_path, sessions=1, events=1)  # a new database, with a session of its own
    folders = [tmp_path / "workspaces" / sid for sid in made.values()]
    for folder in folders:
        age(folder)
    young = tmp_path / "workspaces" / ("c" * 32)  # maybe a session being created right now
    young.mkdir()
    code, report = doctor(tmp_path, "--prune", "--dry-run")
    assert code == 1
    assert {p["id"] for p in report["pruned"] if p["pruned"]} == set(made.values())
    assert all(f.is_dir() for f in folders)
    code, report = doctor(tmp_path, "--prune")
    assert code == 1  # the young one is kept, and said so
    assert not any(f.exists() for f in folders)
    assert not any((tmp_path / "workspaces" / f"{sid}.json").exists() for sid in made.values())
    assert young.is_dir()
    assert [p["how"] for p in report["pruned"] if not p["pruned"]] == [
        "made in the last minute: kept"
    ]
    assert len(rows(tmp_path / "agentspace.db", "sessions")) == 1


def test_a_session_whose_workspace_is_gone_is_reported(tmp_path: Path) -> None:
    made = build_state(tmp_path, sessions=1, events=1)
    (tmp_path / "workspaces" / made["nb0.ipynb"] / "notes.txt").unlink()
    (tmp_path / "workspaces" / made["nb0.ipynb"]).rmdir()
    code, report = doctor(tmp_path)
    assert code == 1
    assert [m["id"] for m in report["sessions_without_workspace"]] == [made["nb0.ipynb"]]


@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_database_is_found_and_repaired_with_a_backup(tmp_path: Path, kind: Kind) -> None:
    db = tmp_path / "agentspace.db"
    build_state(tmp_path, sessions=3, events=EVENTS)
    before = {t: rows(db, t) for t in ("sessions", "events", "messages")}
    damage(db, kind)
    damaged_bytes = db.read_bytes()
    # Every other command refuses it, saying what to do.
    listed = agentspace("sessions", "--state-dir", str(tmp_path))
    assert listed.returncode == 1
    assert f"agentspace doctor --repair --state-dir {tmp_path}" in listed.stderr
    code, report = doctor(tmp_path)
    assert code == 1 and report["integrity"]["state"] == "damaged"
    assert db.read_bytes() == damaged_bytes  # looking changes nothing

    code, report = doctor(tmp_path, "--repair")
    assert code == 0, report
    repair = report["repair"]
    backup = Path(repair["backup"])
    assert backup.name.startswith("agentspace.db.bak-") and backup.read_bytes() == damaged_bytes
    assert report["integrity_after"]["state"] == "ok"
    after = {t: rows(db, t) for t in ("sessions", "events", "messages")}
    for table, old in before.items():
        kept = set(after[table])
        assert kept <= set(old), table  # nothing made up
    tables = {t["table"]: t for t in repair["tables"]}
    if kind == "header":  # the header is rebuilt: every row comes back
        assert repair["header_rebuilt"] and after == before
    if kind == "page":  # one page of events: the rest is all there, the loss is named
        assert after["sessions"] == before["sessions"]
        assert after["messages"] == before["messages"]
        lost = len(before["events"]) - len(after["events"])
        assert 0 < lost < 40 and tables["events"]["lost"]
    if kind == "truncated":
        assert tables["sessions"]["recovered"] + tables["events"]["recovered"] > 0
    # What was readable in the damaged file is in the repaired one (the backup, read again).
    readable = _readable_rows(backup)
    for table in ("sessions", "events", "messages"):
        assert readable[table] <= set(after[table]), table
    # The repaired store serves again.
    listed = agentspace("sessions", "--state-dir", str(tmp_path), "--json")
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.splitlines()) == len(after["sessions"])


def _readable_rows(backup: Path) -> dict[str, set[tuple[Any, ...]]]:
    """The rows SQLite can read from the damaged file by a plain scan (until the damage)."""
    found: dict[str, set[tuple[Any, ...]]] = {}
    try:
        conn = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
    except sqlite3.Error:
        return {t: set() for t in ("sessions", "events", "messages")}
    for table in ("sessions", "events", "messages"):
        got: set[tuple[Any, ...]] = set()
        try:
            for row in conn.execute(f"SELECT * FROM {table}"):
                got.add(row)
        except sqlite3.Error:
            pass
        found[table] = got
    conn.close()
    return found


def test_repair_on_a_healthy_database_changes_nothing(tmp_path: Path) -> None:
    build_state(tmp_path, sessions=1, events=2)
    before = (tmp_path / "agentspace.db").read_bytes()
    code, _ = doctor(tmp_path, "--repair")
    assert code == 0 and (tmp_path / "agentspace.db").read_bytes() == before
    assert not list(tmp_path.glob("agentspace.db.bak-*"))


def test_repair_waits_for_the_processes_that_have_the_database_open(tmp_path: Path) -> None:
    db = tmp_path / "agentspace.db"
    build_state(tmp_path, sessions=1, events=50)
    damage(db, "page")
    hold = (
        f"import sqlite3, sys; c = sqlite3.connect({str(db)!r}); "
        "c.execute('PRAGMA user_version').fetchone(); print('open', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        code, report = doctor(tmp_path, "--repair")
        assert code == 1 and report["held_by"] == [holder.pid]
        assert not list(tmp_path.glob("agentspace.db.bak-*"))
    finally:
        holder.communicate("")
    code, report = doctor(tmp_path, "--repair")
    assert code == 0 and Path(report["repair"]["backup"]).exists()
