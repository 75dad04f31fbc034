"""``agentspace doctor``: check the state database, list and adopt or prune orphans, repair.

Why it works on SQLite directly, not through an engine: it must run on a database an engine
refuses to open (damaged), and must not start sandboxes or mount workspaces to look at them.
Exit codes follow the CLI's: 0 nothing wrong (or everything asked was done), 1 problems
found and left, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from agentspace.errors import InputError
from agentspace.store.health import Orphan, check, scan
from agentspace.store.labels import remove_label, write_label

EXIT_OK, EXIT_PROBLEMS, EXIT_BAD_INPUT = 0, 1, 2
YOUNG_SECONDS = 60.0  # a folder this new may be a session being created right now: never pruned


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    d = sub.add_parser(
        "doctor",
        parents=[common],
        help="check the state database; list, adopt or prune orphaned workspaces; repair",
    )
    action = d.add_mutually_exclusive_group()
    action.add_argument(
        "--adopt", action="store_true", help="give each orphaned workspace a session again"
    )
    action.add_argument("--prune", action="store_true", help="delete orphaned workspaces")
    action.add_argument(
        "--repair",
        action="store_true",
        help="copy a damaged database to <db>.bak-<time>, then keep every readable row",
    )
    d.add_argument("--dry-run", action="store_true", help="with --prune: say what would go")
    d.add_argument("--json", action="store_true", help="one JSON report")


def run(args: argparse.Namespace, state_dir: Path) -> int:
    if args.dry_run and not args.prune:
        raise InputError("--dry-run goes with --prune (adopt and repair keep a backup or undo).")
    if not state_dir.is_dir() and args.state_dir is None:  # a fresh machine: nothing yet
        print(f"no state directory yet at {state_dir}: nothing to check")
        return EXIT_OK
    if not state_dir.is_dir():
        raise InputError(f"{state_dir} is not a directory; give the state dir with --state-dir.")
    db = state_dir / "agentspace.db"
    report: dict[str, Any] = {"state_dir": str(state_dir), "database": str(db)}
    lines: list[str] = []
    integrity = check(db, full=True, steps=None)
    report["integrity"] = integrity.to_dict()
    detail = f" ({integrity.detail})" if integrity.detail else ""
    lines.append(f"database {db}: {integrity.state}{detail}")
    code = EXIT_OK
    if integrity.state == "damaged":
        if not args.repair:
            lines.append(
                "  it is damaged: stop the server and kernels using it, then run "
                f"`agentspace doctor --repair --state-dir {state_dir}` (a backup is kept)"
            )
            return _done(args, report, lines, EXIT_PROBLEMS)
        from agentspace.store.repair import holders, repair

        users = holders(db)
        if users:
            lines.append(
                f"  not repaired: process(es) {', '.join(map(str, users))} have it open (a "
                "Jupyter server or kernel?); stop them, then run this again"
            )
            report["held_by"] = users
            return _done(args, report, lines, EXIT_PROBLEMS)
        done = repair(db)
        report["repair"] = done.to_dict()
        lines.append(f"  backup of the damaged file: {done.backup}")
        if done.header_rebuilt:
            lines.append(
                "  its header did not match the file (garbage over it, or the file was cut "
                "short): rebuilt from a template to read the rest"
            )
        for t in done.tables:
            lost = f"; LOST: {t.lost}" if t.lost else ""
            lines.append(f"  {t.table}: {t.recovered} row(s) recovered{lost}")
        after = check(db, full=True, steps=None)
        report["integrity_after"] = after.to_dict()
        lines.append(f"  repaired database: {after.state}")
        if after.state != "ok":
            return _done(args, report, lines, EXIT_PROBLEMS)
    elif args.repair:
        lines.append("  nothing to repair")
    if not db.exists():
        lines.append("  no database yet: the next start creates it")
    sessions = _sessions(db)
    report["sessions"] = len(sessions)
    found = scan(state_dir, sessions, limit=None)
    report["orphaned_workspaces"] = [o.to_dict() for o in found.orphans]
    report["sessions_without_workspace"] = [
        {"id": sid, "notebook": nb, "path": folder} for sid, nb, folder in found.missing
    ]
    lines.append(f"{len(sessions)} session(s); {len(found.orphans)} orphaned workspace(s)")
    for o in found.orphans:
        label = f" (was {o.notebook})" if o.notebook else ""
        lines.append(f"  orphan {o.id}{label}: {o.bytes} bytes, {o.folder}")
    for sid, nb, folder in found.missing:
        lines.append(f"  session {sid} ({nb}) has no workspace folder {folder}")
    if found.missing:
        code = EXIT_PROBLEMS
    if args.adopt and found.orphans:
        report["adopted"] = adopted = _adopt(db, state_dir, found.orphans, sessions)
        for item in adopted:
            lines.append(f"  adopted {item['id']} as {item['notebook']} ({item['how']})")
    elif args.prune and found.orphans:
        report["pruned"] = pruned = _prune(state_dir, found.orphans, dry_run=args.dry_run)
        verb = "would delete" if args.dry_run else "deleted"
        for item in pruned:
            lines.append(f"  {verb if item['pruned'] else 'kept'} {item['id']}: {item['how']}")
        if args.dry_run or not all(item["pruned"] for item in pruned):
            code = EXIT_PROBLEMS
    elif found.orphans:
        lines.append(
            "  they are kept; `--adopt` gives each a session again, `--prune` deletes them"
        )
        code = EXIT_PROBLEMS
    return _done(args, report, lines, code)


def _done(args: argparse.Namespace, report: dict[str, Any], lines: list[str], code: int) -> int:
    report["exit"] = code
    if args.json:
        print(json.dumps(report))
    else:
        print("\n".join(lines))
    return code


def _sessions(db: Path) -> dict[str, tuple[str, str]]:
    if not db.exists():
        return {}
    conn = sqlite3.connect(db, timeout=10)
    try:
        rows = conn.execute(
            "SELECT id, notebook, COALESCE(json_extract(data, '$.workspace'), '') FROM sessions"
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}
        raise
    finally:
        conn.close()
    return {sid: (nb, folder) for sid, nb, folder in rows}


def _adopt(
    db: Path, state_dir: Path, orphans: list[Orphan], sessions: dict[str, tuple[str, str]]
) -> list[dict[str, str]]:
    """One session row per orphan: under its label's notebook when it has one nobody holds,
    else ``orphans/<id>.ipynb`` (labels are hints a sandbox could not write, but checked)."""
    from agentspace.engine.engine import normalise_notebook
    from agentspace.store.database import _connect, _migrate
    from agentspace.store.records import INSERT_SESSION, SessionRecord

    taken = {nb for nb, _ in sessions.values()}
    done = []
    conn = _connect(db)
    try:
        _migrate(conn)
        for o in orphans:
            notebook, how = f"orphans/{o.id}.ipynb", "it has no label of its notebook"
            if o.notebook:
                try:
                    key = normalise_notebook(o.notebook)
                except InputError:
                    key, how = "", f"its label {o.notebook!r} is not a notebook path"
                if key and key in taken:
                    how = f"{key} has another session now"
                elif key:
                    notebook, how = key, "from its label"
            record = SessionRecord(id=o.id, notebook=notebook, workspace=str(o.folder))
            conn.execute(INSERT_SESSION, (o.id, notebook, record.created, record.model_dump_json()))
            taken.add(notebook)
            write_label(state_dir, o.id, notebook)
            if notebook.startswith("orphans/"):
                how += (
                    f"; open or create the notebook {notebook} to use it (renaming that "
                    "notebook in Jupyter moves the session with it)"
                )
            done.append({"id": o.id, "notebook": notebook, "how": how})
    finally:
        conn.close()
    return done


def _prune(state_dir: Path, orphans: list[Orphan], *, dry_run: bool) -> list[dict[str, Any]]:
    from agentspace.sandbox.diskleftovers import DIR, purge_files

    done = []
    now = time.time()
    for o in orphans:
        try:
            young = now - o.folder.stat().st_mtime < YOUNG_SECONDS
        except OSError:
            young = False
        if young:
            done.append({"id": o.id, "pruned": False, "how": "made in the last minute: kept"})
            continue
        if not dry_run:
            images = state_dir / DIR
            if images.is_dir():
                purge_files(images, o.id, o.folder)  # its quota image, unmounted first
            shutil.rmtree(o.folder, ignore_errors=True)
            shutil.rmtree(state_dir / "sandboxes" / o.id, ignore_errors=True)
            remove_label(state_dir, o.id)
        done.append({"id": o.id, "pruned": True, "how": f"{o.bytes} bytes"})
    return done
