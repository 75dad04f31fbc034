"""A workspace's label: which notebook its session served, kept beside the folder.

Why: the database is the only record tying a workspace folder to a notebook. If it is
deleted or lost, ``agentspace doctor --adopt`` can give the folder its session back under
its own notebook only if something outside the database says which one that was. The label
is ``<state>/workspaces/<session id>.json`` (beside the folder, not in it: the sandbox cannot
rewrite it and the agent's listings do not show it). It is a hint, read as untrusted input:
the doctor validates the notebook key and never takes one another session holds.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path


def label_path(state_dir: Path, session_id: str) -> Path:
    return state_dir / "workspaces" / f"{session_id}.json"


def write_label(state_dir: Path, session_id: str, notebook: str) -> None:
    """Write (or rewrite) the label atomically; a failure only loses the hint."""
    path = label_path(state_dir, session_id)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(OSError):
        tmp.write_text(json.dumps({"session_id": session_id, "notebook": notebook}))
        tmp.replace(path)


def ensure_label(state_dir: Path, session_id: str, notebook: str) -> None:
    """Label a workspace made before labels existed (cheap: one stat when it has one)."""
    if read_label(state_dir, session_id) != notebook:
        write_label(state_dir, session_id, notebook)


def read_label(state_dir: Path, session_id: str) -> str | None:
    try:
        data = json.loads(label_path(state_dir, session_id).read_text())
    except (OSError, ValueError):
        return None
    notebook = data.get("notebook") if isinstance(data, dict) else None
    return notebook if isinstance(notebook, str) and notebook else None


def remove_label(state_dir: Path, session_id: str) -> None:
    label_path(state_dir, session_id).unlink(missing_ok=True)
