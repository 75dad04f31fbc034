"""The magics: ``%%agent``, ``%agent SUBCOMMAND``, ``%%approve``, ``%reject``.

``%%agent`` cells must run as coroutines on the kernel's loop: then the cell
stays busy while the run streams (so "Run All" keeps its order and headless
runs see the whole answer) and ipykernel still delivers widget clicks (Stop,
Approve) meanwhile. IPython only runs a cell as a coroutine when its code has
a top-level ``await``, so an input transformer rewrites these cells to
``await agentspace_kernel.magics.magics.run_cell_async(...)``. The registered magics
remain for direct calls (``run_cell_magic``, ``%autoawait off``), which run the
same flow on a worker thread and print its text at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from traitlets import Enum, Unicode

from agentspace_kernel.errors import ClientError
from agentspace_kernel.magics.flows import Flows

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from agentspace_kernel.client.base import AgentClient

_magics: AgentMagics | None = None


@magics_class
class AgentMagics(Flows, Magics):
    """Talk to this notebook's agent session. Settings: ``%config AgentMagics.<name> = ...``."""

    mode = Enum(
        ["auto", "remote", "embedded"],
        "auto",
        help="auto: the Jupyter server that started the kernel if there is one, else the engine "
        "inside the kernel; remote or embedded to force one.",
    ).tag(config=True)
    view = Enum(
        ["auto", "widget", "text"],
        "auto",
        help="How %%agent shows a run: widgets (JupyterLab, Notebook 7, VS Code), plain text "
        "(consoles, nbconvert, nbval) or auto (widgets where a frontend draws them).",
    ).tag(config=True)
    model = Unicode(
        "", help="Embedded mode's default model (empty: as the server decides it)."
    ).tag(config=True)
    state_dir = Unicode(
        "", help="Embedded mode's state folder (empty: the Jupyter data dir, as the server)."
    ).tag(config=True)
    sandbox = Enum(
        ["auto", "bubblewrap", "docker", "local"], "auto", help="Embedded mode's sandbox."
    ).tag(config=True)

    def __init__(self, shell: InteractiveShell) -> None:
        super().__init__(shell)
        self._client: AgentClient | None = None
        self._lock = threading.Lock()
        self._tools_key: tuple[str, str] | None = None

    # -- the client -----------------------------------------------------------
    def client(self) -> AgentClient:
        """This notebook's client, connected on first use (the server, or the engine here)."""
        with self._lock:
            if self._client is None:
                from agentspace_kernel import loop
                from agentspace_kernel.client.base import Settings
                from agentspace_kernel.client.connect import connect
                from agentspace_kernel.client.discovery import locate

                ns = self.shell.user_ns if self.shell is not None else {}
                location = locate(ns, _kernel_id())
                settings = Settings(self.mode, self.state_dir, self.sandbox, self.model)
                client = connect(location, settings)
                loop.call(client.open())
                loop.on_shutdown(client.close)
                self._client = client
            return self._client

    def widgets(self) -> bool:
        if self.view != "auto":
            return self.view == "widget"
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            return False
        return self.client().mode == "remote" or "VSCODE_PID" in os.environ

    # -- magics ---------------------------------------------------------------
    @cell_magic("agent")  # type: ignore[arg-type]
    def agent_cell(self, line: str, cell: str) -> None:
        """Send the cell to this notebook's agent and show the run (see AGENT_USAGE)."""
        _sync(lambda: self.cell_async("agent", line, cell))

    @cell_magic("approve")  # type: ignore[arg-type]
    def approve_cell(self, line: str, cell: str) -> None:
        """Approve a pending tool call, with the (possibly edited) arguments in the cell."""
        _sync(lambda: self.cell_async("approve", line, cell))

    @line_magic("reject")  # type: ignore[arg-type]
    def reject_line(self, line: str) -> None:
        """Reject a pending tool call, with a reason the agent sees."""
        _sync(lambda: self.line_async("reject", line))

    @line_magic("agent")  # type: ignore[arg-type]
    def agent_line(self, line: str) -> None:
        """%agent SUBCOMMAND: status, stop, resume, history, files, ps, logs, preview, ..."""
        from agentspace_kernel.magics.commands import parse

        try:
            if line.split(None, 1)[:1] in (["resume"], ["fix"]):
                _sync(lambda: self.line_async("agent", line))
                return
            name, args = parse(line)
            from agentspace_kernel.magics.commands import COMMANDS

            text = COMMANDS[name](self.client(), args)
            if name == "preview" and text.startswith(("/", "http://127.0.0.1:")):  # a link
                from html import escape

                from IPython.display import display

                link = f'<a href="{escape(text)}" target="_blank" rel="noopener">{escape(text)}</a>'
                display({"text/plain": text, "text/html": link}, raw=True)
                return
            print(text)
        except ClientError as exc:
            print(exc.message)

    # -- the async forms (what the transformer calls) -------------------------
    async def cell_async(self, name: str, line: str, cell: str) -> None:
        with _interruptible(self):
            if name == "agent":
                await self._agent(line, cell)
            elif name == "agent_run":
                await self._agent_run(line, cell)
            else:
                await self._approve(line, cell)

    async def line_async(self, name: str, line: str) -> None:
        with _interruptible(self):
            if name == "reject":
                await self._reject(line)
            elif line.split(None, 1)[:1] == ["fix"]:
                await self._fix(line.split(None, 1)[1] if " " in line.strip() else "")
            else:
                await self._resume()


@contextlib.contextmanager
def _interruptible(magics: AgentMagics) -> Iterator[None]:
    """A client error prints its one line; the kernel's interrupt ends the cell as Stop does.

    ipykernel turns an interrupt of an async cell into a ``CancelledError`` in it, which
    IPython would print as a long traceback. The run was stopped and shown so by
    ``CellRun.follow``; an interrupt anywhere else stops the run here. The cell then
    returns normally: its output says it was stopped and keeps what streamed.
    """
    from agentspace_kernel.magics.cellrun import KERNEL_INTERRUPT

    token = KERNEL_INTERRUPT.set(False)
    try:
        yield
    except ClientError as exc:
        print(exc.message)
    except asyncio.CancelledError:
        if not KERNEL_INTERRUPT.get():
            from agentspace_kernel import loop

            with contextlib.suppress(Exception):
                loop.call(magics.client().stop(), timeout=5)
            print("[stopped: %agent resume continues]")
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()  # handled: the cell goes on to return
    finally:
        KERNEL_INTERRUPT.reset(token)


def _kernel_id() -> str:
    from IPython import get_ipython

    ip = get_ipython()
    kernel = getattr(ip, "kernel", None)
    connection = getattr(getattr(kernel, "parent", None), "connection_file", "") or ""
    base = os.path.basename(connection)
    base = base.removesuffix(".json")
    return base.removeprefix("kernel-")


def _sync(make: Any) -> None:
    """Run an async magic from synchronous code: on a worker thread's loop, text only."""
    import io

    from agentspace_kernel.magics.cellrun import redirected

    buffer = io.StringIO()

    def work() -> None:
        with redirected(buffer):
            asyncio.run(make())

    thread = threading.Thread(target=work, name="agentspace-magic")
    thread.start()
    thread.join()
    print(buffer.getvalue(), end="")


async def run_cell_async(name: str, line: str, cell: str) -> None:
    """What a rewritten ``%%agent`` / ``%%approve`` cell awaits."""
    assert _magics is not None, "run %load_ext agentspace first"
    await _magics.cell_async(name, line, cell)


async def run_line_async(name: str, line: str) -> None:
    """What a rewritten one-line ``%reject`` / ``%agent resume`` cell awaits."""
    assert _magics is not None, "run %load_ext agentspace first"
    await _magics.line_async(name, line)


def register(shell: InteractiveShell) -> AgentMagics:
    global _magics
    from agentspace_kernel.magics.transform import install
    from agentspace_kernel.ran import RAN

    RAN.install(shell)
    magics = AgentMagics(shell)
    shell.register_magics(magics)
    install(shell)
    _magics = magics
    return magics
