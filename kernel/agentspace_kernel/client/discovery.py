"""Where the kernel is: which notebook it serves and which Jupyter server (if any) started it.

Remote mode needs three facts: the server's URL, a credential, and the
notebook's path relative to the server root. A kernel started by
jupyter_server has all three without asking anyone: its parent process is the
server, whose ``jpserver-<pid>.json`` runtime file holds URL, token and root
dir, and the server put the notebook's path in ``JPY_SESSION_NAME``. Anything
else (nbclient, nbval, papermill, VS Code, a console) finds no server and gets
embedded mode, with the reason kept so ``%agent status`` can say it.

Only the standard library here: this runs at the first ``%%agent``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ServerInfo:
    """A running Jupyter server, as its runtime file describes it."""

    url: str  # e.g. http://127.0.0.1:8888/ (with the base_url)
    token: str
    root_dir: str
    pid: int
    sock: str = ""  # a unix socket, when the server listens on one
    password: bool = False  # the server has a password (so an empty token is no way in)


@dataclass(frozen=True)
class Location:
    """The answer: a server (or why none) and the notebook's key for its session."""

    server: ServerInfo | None
    notebook: str
    why: str  # one line for `%agent status`
    file: str = ""  # the notebook's file on this machine, when known


def runtime_dirs() -> list[Path]:
    from jupyter_core.paths import jupyter_runtime_dir

    return [Path(jupyter_runtime_dir())]


def server_for_pid(pid: int, dirs: list[Path] | None = None) -> ServerInfo | None:
    for folder in dirs or runtime_dirs():
        path = folder / f"jpserver-{pid}.json"
        try:
            info: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        token = info.get("token") or os.environ.get("JUPYTERHUB_API_TOKEN", "")
        return ServerInfo(
            url=str(info.get("url", "")),
            token=str(token),
            root_dir=str(info.get("root_dir", "")),
            pid=int(info.get("pid", pid)),
            sock=str(info.get("sock") or ""),
            password=bool(info.get("password")),
        )
    return None


def notebook_key(session_name: str, root_dir: str, cwd: str) -> str:
    """The notebook's path relative to the server root (how the server keys sessions).

    ``JPY_SESSION_NAME`` is an absolute OS path when the server knew the file
    name, else the API path; both become the API path here.
    """
    name = session_name.strip()
    if not name:
        return ""
    if os.path.isabs(name) and root_dir:
        try:
            return Path(name).resolve().relative_to(Path(root_dir).resolve()).as_posix()
        except ValueError:
            return Path(name).as_posix().lstrip("/")
    return name.lstrip("/")


def locate(user_ns: dict[str, Any] | None = None, kernel_id: str = "") -> Location:
    """Find the server and the notebook (see the module docstring for the rules)."""
    env = os.environ
    forced = env.get("AGENTSPACE_MODE", "").lower()
    session_name = env.get("JPY_SESSION_NAME", "")
    server = None if forced == "embedded" else server_for_pid(os.getppid())
    if server is not None and not server.token and server.password:
        why = (
            f"the Jupyter server (pid {server.pid}) uses password login only, so the kernel"
            " has no token to call it with; running the agent inside the kernel"
        )
        server = None
    elif server is not None:
        why = f"connected to the Jupyter server at {server.url} (pid {server.pid})"
    elif forced == "embedded":
        why = "AGENTSPACE_MODE=embedded: running the agent inside the kernel"
    else:
        why = "no Jupyter server started this kernel (nbclient, papermill, VS Code or a console):"
        why += " running the agent inside the kernel"
    if server is not None and session_name:
        notebook = notebook_key(session_name, server.root_dir, os.getcwd())
    else:
        notebook = _embedded_notebook(session_name, user_ns or {}, kernel_id)
    return Location(server=server, notebook=notebook, why=why, file=_notebook_file(user_ns or {}))


def _notebook_file(user_ns: dict[str, Any]) -> str:
    """The notebook's path on disk, when the kernel can tell (an absolute session name)."""
    for candidate in (
        os.environ.get("JPY_SESSION_NAME", ""),
        os.environ.get("AGENTSPACE_NOTEBOOK", ""),
        str(user_ns.get("__vsc_ipynb_file__", "")),
    ):
        if candidate and os.path.isabs(candidate):
            return candidate
    return ""


def _embedded_notebook(session_name: str, user_ns: dict[str, Any], kernel_id: str) -> str:
    """A stable key where one can be had (the notebook's file), else one per kernel."""
    explicit = os.environ.get("AGENTSPACE_NOTEBOOK", "")
    vscode = str(user_ns.get("__vsc_ipynb_file__", ""))
    for candidate in (explicit, session_name, vscode):
        if candidate:
            return Path(candidate).expanduser().absolute().as_posix().lstrip("/")
    return f"kernels/{kernel_id or os.getpid()}.ipynb"  # records.ANONYMOUS: agentspace prune
