"""README's first command, `make run`: it opens the welcome notebook, takes jupyter's options
(`make run ARGS="--port 8890 --no-browser"`) and prints the URL that opens that notebook.

`jupyter lab --ServerApp.root_dir=DIR FILE` would resolve FILE against the working directory
(the repository), not DIR; the welcome notebook is named by the server's default URL instead,
relative to its root, which is also the URL the server prints.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(url: str, proc: subprocess.Popen[str], timeout: float = 30) -> str:
    """GET ``url`` once the server listens: it prints its URL a moment before it does."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return str(response.read().decode())
        except urllib.error.URLError as exc:
            if not isinstance(exc.reason, ConnectionRefusedError):
                raise
            if time.monotonic() > deadline:
                raise
        with contextlib.suppress(subprocess.TimeoutExpired):  # the poll interval
            proc.wait(0.05)
        assert proc.poll() is None, "make run exited"


def run_recipe() -> list[str]:
    recipe = re.search(r"^run:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe is not None, "the Makefile has a run target"
    text = recipe.group(1).replace("\\\n", " ").replace("$(ROOT_FLAG)", "")
    return shlex.split(text)


def test_make_run_opens_an_existing_notebook_inside_its_root_dir() -> None:
    words = run_recipe()
    root = next(w.split("=", 1)[1] for w in words if w.startswith("--ServerApp.root_dir="))
    url = next(w.split("=", 1)[1] for w in words if w.startswith("--LabApp.default_url="))
    notebook = url.removeprefix("/lab/tree/")
    assert (ROOT / root / notebook).is_file(), f"{notebook} does not exist in {root}"
    assert "$(ARGS)" in words, "make run passes ARGS on to jupyter lab"
    first_block = (ROOT / "README.md").read_text().split("```")[1]
    assert "\nmake run " in first_block, "README's first code block starts with `make run`"


def test_make_run_takes_a_port_and_no_browser_and_prints_the_welcome_url(
    tmp_path: Path,
) -> None:
    """The real `make run`, on the virtualenv running this test (its setup step not redone)."""
    venv = Path(sys.prefix)
    if not (venv / "bin" / "jupyter").exists():
        pytest.skip(f"{venv} has no jupyter: the tests run from the project's virtualenv")
    port = free_port()
    env = {**os.environ, "JUPYTER_DATA_DIR": str(tmp_path / "data"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "BROWSER": "false"}  # fmt: skip
    stamp = venv / ".installed-stamp"
    argv = ["make", "-s", "-C", str(ROOT), "run", f"VENV={venv}", f"-o{stamp}",
            f"ARGS=--port {port} --no-browser --ServerApp.ip=127.0.0.1"]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # fmt: skip
    lines: list[str] = []
    # the read below ends when the server exits: if no URL comes, end it after a minute
    guard = threading.Timer(60, lambda: os.killpg(proc.pid, signal.SIGTERM))
    guard.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # ends if the server exits
            lines.append(line)
            found = re.search(
                r"(http://127\.0\.0\.1:(\d+)/lab/tree/welcome\.ipynb\?token=\w+)", line
            )
            if found:
                break
        else:
            raise AssertionError("make run printed no welcome URL:\n" + "".join(lines))
        assert int(found.group(2)) == port, found.group(1)
        assert "JupyterLab" in fetch(found.group(1), proc)
    finally:
        guard.cancel()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
