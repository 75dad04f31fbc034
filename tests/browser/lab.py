"""A real JupyterLab subprocess and a Playwright handle on a notebook in it, for browser tests.

Kept out of conftest.py so the pieces can be read (and reused by a test) on their own. Every wait
is a poll on a condition with a deadline, never a fixed sleep: the server's `api/status`, the
kernel status shown in JupyterLab's status bar, the text of an output area.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page, expect

CHROMIUM = "/usr/bin/chromium"
# Measured on these machines (shared/DESIGN.md): as root, chromium refuses to start with its
# sandbox ("Running as root without --no-sandbox is not supported"); Playwright passes
# --no-sandbox by default too, said here so the flags stand on their own. The rest keeps the
# browser off the network and quiet.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# "Python 3 (ipykernel) | Idle" in the status bar; "No Kernel | ..." until a kernel is attached.
KERNEL_IDLE = re.compile(r"^(?!No Kernel).+ \| Idle$")
# JupyterLab's first-run "get notified about Jupyter news?" toast covers the notebook's lower
# right corner; no test wants it.
PAGE_CONFIG = {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def package_paths() -> list[str]:
    """The folders this process imports agentspace and agentspace_kernel from.

    Put first on the PYTHONPATH of the server (and so of its kernels), so a worktree under test
    runs its own code even where the virtualenv has another checkout installed editable.
    """
    import agentspace
    import agentspace_kernel

    return [str(Path(m.__file__ or "").parent.parent) for m in (agentspace, agentspace_kernel)]


def agent_kernelspec_dir() -> Path:
    """The shipped "Agent (Python)" kernelspec folder (kernel.json and logos)."""
    import agentspace_kernel

    return Path(agentspace_kernel.__file__ or "").parent / "kernelspec"


def labextension_dir() -> Path:
    """The labextension jupyter-agentspace as built next to the agentspace package imported here
    (scripts/labextension.sh builds it into extension/agentspace/labextension)."""
    import agentspace

    return Path(agentspace.__file__ or "").parent / "labextension"


@dataclass
class LabServer:
    """`jupyter lab` in a temporary root, config, data and runtime dir, with agentspace enabled."""

    base: Path
    port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    proc: subprocess.Popen[bytes] | None = None
    prefixes: tuple[Path, ...] = ()  # more installs on the path (e.g. jupyter-collaboration)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def env(self) -> dict[str, str]:
        """The server's environment: this checkout first on the path, its own Jupyter dirs."""
        here = str(Path(__file__).parent)  # linkprobe.py, the tests' server extension
        extra = [str(p) for p in self.prefixes]
        pythonpath = [*package_paths(), here, *extra,
                      *filter(None, [os.environ.get("PYTHONPATH")])]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(pythonpath),
               "JUPYTER_CONFIG_DIR": str(self.base / "config"),
               "JUPYTER_DATA_DIR": str(self.data_dir),
               "JUPYTER_RUNTIME_DIR": str(self.base / "runtime")}  # fmt: skip
        if self.prefixes:  # their server config (enabling them) and their labextensions
            env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(f"{p}/etc/jupyter" for p in extra)
            env["JUPYTER_PATH"] = os.pathsep.join(f"{p}/share/jupyter" for p in extra)
        return env

    @property
    def log(self) -> Path:
        return self.base / "server.log"

    def start(self, timeout: float = 60) -> None:
        """Start the server and return once `api/status` answers 200."""
        cfg_dir, data_dir = self.base / "config", self.data_dir
        for d in (self.root, cfg_dir / "labconfig"):
            d.mkdir(parents=True, exist_ok=True)
        (cfg_dir / "labconfig/page_config.json").write_text(json.dumps(PAGE_CONFIG))
        # As a wheel installs it; its leading "python" is the server's sys.executable.
        shutil.copytree(agent_kernelspec_dir(), data_dir / "kernels/agentspace", dirs_exist_ok=True)
        # This checkout's labextension, linked as `jupyter labextension develop` links it (the
        # data dir comes before the venv's, so it wins over another checkout's installed one).
        built = labextension_dir()
        if not (built / "package.json").exists():
            raise RuntimeError(f"{built} is not built: run scripts/labextension.sh (make setup).")
        (data_dir / "labextensions").mkdir(parents=True, exist_ok=True)
        link = data_dir / "labextensions/jupyter-agentspace"
        if not link.is_symlink():  # a restart of the same server keeps it
            link.symlink_to(built, target_is_directory=True)
        config = self.base / "jupyter_server_config.json"
        config.write_text(json.dumps({
            "ServerApp": {"jpserver_extensions": {"agentspace": True, "notebook": True,
                                                   "jupyterlab_chat": True, "linkprobe": True}},
            "LabApp": {"news_url": None},
            "AgentspaceApp": {"state_dir": str(self.base / "state"), "model": "scripted/echo"},
        }))  # fmt: skip
        argv = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={self.port}",
                "--ip=127.0.0.1", f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.root}", f"--config={config}"]  # fmt: skip
        if os.geteuid() == 0:
            argv.append("--allow-root")
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited {self.proc.returncode}:\n{self.tail()}")
            try:
                if self.api("GET", "/api/status")[0] == 200:
                    return
            except OSError:
                pass
            try:
                self.proc.wait(0.05)  # the poll interval; returns early if the server dies
            except subprocess.TimeoutExpired:
                pass
        raise RuntimeError(f"jupyter lab did not answer in {timeout} s:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One authenticated REST call; returns (status, decoded JSON or None)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            return e.code, None

    def create_notebook(
        self, name: str, kernel: str = "python3", sources: tuple[str, ...] = ("",)
    ) -> None:
        """Write a notebook through the contents API, so opening it needs no kernel dialog."""
        cells = [
            {"id": f"cell-{i}", "cell_type": "code", "source": src, "metadata": {},
             "outputs": [], "execution_count": None}
            for i, src in enumerate(sources)
        ]  # fmt: skip
        metadata = {"kernelspec": {"name": kernel, "display_name": kernel}}
        notebook = {"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}
        body = {"type": "notebook", "content": notebook}
        code, _ = self.api("PUT", f"/api/contents/{name}", body)
        assert code in (200, 201), (code, self.tail())


class NotebookPage:
    """A notebook open in JupyterLab with its kernel idle; cells are run as a user runs them."""

    def __init__(self, page: Page, server: LabServer, name: str) -> None:
        self.page, self.server, self.name = page, server, name

    def open(self, timeout_ms: float = 60_000) -> NotebookPage:
        self.page.goto(f"{self.server.url}/lab/tree/{self.name}?reset")
        self.wait_idle(timeout_ms)
        return self

    @property
    def panel(self) -> Locator:
        return self.page.locator(".jp-NotebookPanel:visible")

    @property
    def cells(self) -> Locator:
        return self.panel.locator(".jp-Notebook .jp-Cell")

    def wait_idle(self, timeout_ms: float = 60_000) -> None:
        """Wait until the status bar shows the notebook's kernel (not "No Kernel") as Idle."""
        status = self.page.locator("#jp-main-statusbar").get_by_text(KERNEL_IDLE)
        expect(status).to_be_visible(timeout=timeout_ms)

    def run_cell(self, source: str, index: int = -1, *, keystrokes: bool = False) -> Locator:
        """Put `source` into a cell (the last by default) and run it with Shift+Enter.

        `keystrokes=True` types it key by key, as a user does (single lines: a typed newline
        auto-indents); otherwise it is inserted at once, as a paste is. Returns the cell's output
        area: wait on it with `expect(...)` for what should appear.
        """
        # Pinned by position: Shift+Enter on the last cell appends one, which `.last` would follow.
        cell = self.cells.nth(index if index >= 0 else self.cells.count() + index)
        editor = cell.locator(".jp-InputArea-editor .cm-content")
        editor.click()
        if keystrokes:
            self.page.keyboard.type(source)
        else:
            editor.fill(source)
        self.page.keyboard.press("Shift+Enter")
        return cell.locator(".jp-OutputArea")
