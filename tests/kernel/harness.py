"""Real kernels for the kernel-side tests: embedded (started by jupyter_client) and remote
(started by a real ``jupyter server`` subprocess, so discovery finds it as in JupyterLab).

``Kernel.run(code)`` executes a cell and collects what a frontend would get:
stream text, text/plain of displays (and their updates), payloads (the
approvable cell), errors and widget comm messages.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@dataclass
class Output:
    text: str = ""
    plain: list[str] = field(default_factory=list)  # text/plain of displays and updates
    widgets: list[dict[str, Any]] = field(default_factory=list)  # widget-view bundles
    payloads: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    comms: list[dict[str, Any]] = field(default_factory=list)  # comm_open / comm_msg contents

    @property
    def next_input(self) -> str | None:
        for p in self.payloads:
            if p.get("source") == "set_next_input":
                return str(p["text"])
        return None

    def buttons(self, label: str) -> list[str]:
        """The comm ids of the widget buttons labelled ``label`` that this cell opened."""
        return [
            c["comm_id"]
            for c in self.comms
            if c.get("data", {}).get("state", {}).get("description") == label and "comm_id" in c
        ]

    @property
    def final(self) -> str:
        """What a saved notebook shows: the stream text, or the last display's text."""
        return self.text + (self.plain[-1] if self.plain else "")


class Kernel:
    def __init__(self, client: BlockingKernelClient, interrupt: Callable[[], None]) -> None:
        self.client = client
        self.interrupt = interrupt  # as the frontend's stop button: SIGINT via the manager

    def run(self, code: str, timeout: float = 120, during: Any = None) -> Output:
        """Execute ``code``; ``during(out, msg)`` is called for each message while it runs."""
        msg_id = self.client.execute(code)
        out = Output()
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self.client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            except Empty as exc:
                raise AssertionError(f"the cell did not finish in {timeout} s: {out}") from exc
            kind, content = msg["msg_type"], msg["content"]
            if kind in ("comm_open", "comm_msg"):
                out.comms.append(content)
            if msg["parent_header"].get("msg_id") != msg_id and kind != "update_display_data":
                continue
            if kind == "stream":
                out.text += content["text"]
            elif kind == "error":
                out.errors.append("\n".join(content["traceback"]))
            elif kind in ("display_data", "execute_result", "update_display_data"):
                data = content["data"]
                out.plain.append(str(data.get("text/plain", "")))
                if WIDGET_MIME in data:
                    out.widgets.append(data[WIDGET_MIME])
            elif kind == "status" and content["execution_state"] == "idle":
                break
            if during is not None:
                during(out, msg)
        reply = self.client.get_shell_msg(timeout=10)
        out.payloads = list(reply["content"].get("payload") or [])
        return out

    def _wait(
        self, match: Callable[[dict[str, Any]], str | None], what: str, timeout: float
    ) -> str:
        """Read iopub (any cell) until ``match(msg)`` returns something; return it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self.client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            except Empty as exc:
                raise AssertionError(f"nothing showed {what} in {timeout} s") from exc
            found = match(msg)
            if found is not None:
                return found

    def wait_for_display(self, text: str, timeout: float = 60) -> str:
        """The first display update (from any cell) whose text/plain contains ``text``."""

        def match(msg: dict[str, Any]) -> str | None:
            if msg["msg_type"] not in ("update_display_data", "display_data"):
                return None
            plain = str(msg["content"]["data"].get("text/plain", ""))
            return plain if text in plain else None

        return self._wait(match, repr(text), timeout)

    def wait_for_state(self, text: str, timeout: float = 60) -> None:
        """Wait until a widget's state update (a comm message) contains ``text``."""

        def match(msg: dict[str, Any]) -> str | None:
            if msg["msg_type"] != "comm_msg":
                return None
            state = json.dumps(msg["content"].get("data", {}), ensure_ascii=False)
            return state if text in state else None

        self._wait(match, f"a widget with {text!r}", timeout)

    def click(self, comm_id: str) -> None:
        """Send a widget button click, as a frontend does."""
        content = {"comm_id": comm_id, "data": {"method": "custom", "content": {"event": "click"}}}
        msg = self.client.session.msg("comm_msg", content)
        self.client.shell_channel.send(msg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def isolated_env(tmp: Path) -> dict[str, str]:
    """Jupyter's data, runtime and config dirs inside ``tmp`` (the default state dir too)."""
    env = {**os.environ}
    for name in ("data", "runtime", "config"):
        (tmp / name).mkdir(parents=True, exist_ok=True)
    env.update(
        JUPYTER_DATA_DIR=str(tmp / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        IPYTHONDIR=str(tmp / "ipython"),
    )
    env.pop("JPY_SESSION_NAME", None)
    return env


@contextlib.contextmanager
def embedded_kernel(tmp: Path, cwd: Path | None = None) -> Iterator[Kernel]:
    """A python3 kernel started by jupyter_client: no server, so embedded mode."""
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=isolated_env(tmp), cwd=str(cwd or tmp))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        yield Kernel(client, manager.interrupt_kernel)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


@dataclass
class Server:
    url: str
    token: str
    root: Path
    runtime: Path

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path.lstrip("/"), data=data, method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    @contextlib.contextmanager
    def kernel(self, notebook: str) -> Iterator[Kernel]:
        """A kernel the server starts for ``notebook``, as JupyterLab does when it opens one."""
        # as JupyterLab sends it: the path, and the file name as "name"
        body = {"path": notebook, "name": Path(notebook).name, "type": "notebook"}
        session = self.call("POST", "api/sessions", {**body, "kernel": {"name": "python3"}})
        kernel_id = session["kernel"]["id"]
        client = BlockingKernelClient()
        client.load_connection_file(str(self.runtime / f"kernel-{kernel_id}.json"))
        client.start_channels()
        try:
            client.wait_for_ready(timeout=60)
            yield Kernel(client, lambda: self.call("POST", f"api/kernels/{kernel_id}/interrupt"))
        finally:
            client.stop_channels()
            with contextlib.suppress(Exception):
                self.call("DELETE", f"api/sessions/{session['id']}")


@contextlib.contextmanager
def jupyter_server(tmp: Path, **agentspace: Any) -> Iterator[Server]:
    """A real ``jupyter server`` subprocess with agentspace enabled, on a free port."""
    port, token = free_port(), secrets.token_hex(16)
    root = tmp / "root"
    root.mkdir(parents=True, exist_ok=True)
    config = tmp / "jupyter_server_config.json"
    settings = {"state_dir": str(tmp / "state"), "sandbox": "bubblewrap", "model": "scripted/echo"}
    settings.update(agentspace)
    config.write_text(json.dumps({
        "ServerApp": {"jpserver_extensions": {"agentspace": True}},
        "AgentspaceApp": settings,
    }))  # fmt: skip
    argv = [sys.executable, "-m", "jupyter_server", f"--port={port}", "--ip=127.0.0.1",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
            "--ServerApp.open_browser=False", f"--config={config}"]  # fmt: skip
    if os.geteuid() == 0:
        argv.append("--allow-root")
    env = isolated_env(tmp)
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}/", token, root, tmp / "runtime")
    try:
        deadline = time.monotonic() + 60
        while True:  # bounded readiness poll: the server answers after ~2 s
            try:
                server.call("GET", "api/status")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        "jupyter server did not start:\n" + (tmp / "server.log").read_text()
                    ) from None
                time.sleep(0.05)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
