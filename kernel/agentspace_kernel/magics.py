"""The magics: ``%%agent``, ``%agent SUBCOMMAND``, ``%%approve``, ``%reject``.

``%%agent`` cells must run as coroutines on the kernel's loop: then the cell
stays busy while the run streams (so "Run All" keeps its order and headless
runs see the whole answer) and ipykernel still delivers widget clicks (Stop,
Approve) meanwhile. IPython only runs a cell as a coroutine when its code has
a top-level ``await``, so an input transformer rewrites these cells to
``await agentspace_kernel.magics.run_cell_async(...)``. The registered magics
remain for direct calls (``run_cell_magic``, ``%autoawait off``), which run the
same flow on a worker thread and print its text at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import threading
from typing import TYPE_CHECKING, Any

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from traitlets import Enum, Unicode

from .errors import ClientError, UsageError

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from .client.base import AgentClient
    from .view import RunView

CELL_MAGICS = ("agent", "approve")
ASYNC_LINES = ("reject", "agent resume")
AGENT_USAGE = "usage: %%agent [--model MODEL] [--new] [--quiet], then your message in the cell"
APPROVE_USAGE = "usage: %%approve [TOOL_CALL_ID], then the arguments as JSON (optional)"
REJECT_USAGE = "usage: %reject TOOL_CALL_ID [REASON...]"
AGENT_RUN_USAGE = "usage: %%agent_run TOOL_CALL_ID, then the code to run for the agent"

_magics: AgentMagics | None = None


@magics_class
class AgentMagics(Magics):
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
                from . import loop
                from .client.base import Settings, connect
                from .discovery import locate

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
        from .commands import parse

        try:
            name, args = parse(line)
            if name == "resume":
                _sync(lambda: self.line_async("agent", line))
                return
            from .commands import COMMANDS

            text = COMMANDS[name](self.client(), args)
            if name == "preview" and text.startswith("/"):  # a link the browser can open
                from IPython.display import display

                link = f'<a href="{text}" target="_blank" rel="noopener">{text}</a>'
                display({"text/plain": text, "text/html": link}, raw=True)
                return
            print(text)
        except ClientError as exc:
            print(exc.message)

    # -- the async forms (what the transformer calls) -------------------------
    async def cell_async(self, name: str, line: str, cell: str) -> None:
        try:
            if name == "agent":
                await self._agent(line, cell)
            elif name == "agent_run":
                await self._agent_run(line, cell)
            else:
                await self._approve(line, cell)
        except ClientError as exc:
            print(exc.message)

    async def line_async(self, name: str, line: str) -> None:
        try:
            if name == "reject":
                await self._reject(line)
            else:
                await self._resume()
        except ClientError as exc:
            print(exc.message)

    def _run(self, quiet: bool = False) -> Any:
        from .cellrun import CellRun

        on_main = threading.current_thread() is threading.main_thread()
        widgets = on_main and not quiet and self.widgets()
        return CellRun(self.client(), widgets=widgets, quiet=quiet)

    async def _agent(self, line: str, cell: str) -> None:
        from . import loop

        options = _agent_options(line)
        if not cell.strip():
            raise UsageError("The %%agent cell is empty: write your message below the first line.")
        client = self.client()
        if options["new"]:
            await loop.bridge(client.reset())
        if options["model"]:
            await loop.bridge(client.configure(model=resolve_model(options["model"])))
        await self._sync_tools()
        run = self._run(quiet=options["quiet"])
        if await self._kernel_calls_first(run):
            return
        view = await run.message(cell.strip())
        await self._paused(run, view)

    async def _sync_tools(self) -> None:
        """Offer the notebook's @agent_tool functions and run_cell (only when they changed)."""
        from . import loop, tools

        specs = tools.specs()
        key = json.dumps(specs, sort_keys=True)
        client = self.client()
        if self._tools_key == (client.session_id, key):
            return
        await loop.bridge(client.set_kernel_tools(specs, run_cell=True))
        self._tools_key = (client.session_id, key)

    async def _kernel_calls_first(self, run: Any) -> bool:
        """Calls waiting for this kernel (made while no cell ran) run before a new message."""
        from . import loop

        info = await loop.bridge(run.client.info())
        waiting = [p for p in info.get("pending_calls") or [] if _runs_here(p)]
        if not waiting:
            return False
        run.view.seed_pending(waiting)
        view = await self._run_kernel_calls(run, run.view)
        await self._paused(run, view)
        return True

    async def _resume(self) -> None:
        run = self._run()
        if not await self._kernel_calls_first(run):
            await self._paused(run, await run.resumed())

    async def _agent_run(self, line: str, cell: str) -> None:
        """Run the agent's proposed code (as edited in the cell); its output is the result."""
        from . import loop
        from .execute import run_code

        client = self.client()
        call_id = line.strip()
        if not call_id or len(call_id.split()) != 1:
            raise UsageError(AGENT_RUN_USAGE)
        original = await loop.bridge(_original_arguments(client, call_id))
        if self.shell is None:
            raise UsageError("%%agent_run needs an IPython kernel.")
        output, failed = await run_code(self.shell, cell)
        decision: dict[str, Any] = {"decision": "result", "output": output, "is_error": failed}
        if isinstance(original, dict) and original.get("code", "").strip() != _code(cell).strip():
            decision["arguments"] = {"code": _code(cell)}
        run = self._run()
        await self._paused(run, await run.decision(call_id, decision))

    async def _approve(self, line: str, cell: str) -> None:
        from . import loop

        client = self.client()
        call_id = await _call_id(client, line.strip(), APPROVE_USAGE)
        arguments = _approve_arguments(cell)
        decision: dict[str, Any] = {"decision": "approve"}
        if arguments is not None:
            original = await loop.bridge(_original_arguments(client, call_id))
            if original is None or arguments != original:
                decision = {"decision": "edit", "arguments": arguments}
        run = self._run()
        await self._paused(run, await run.decision(call_id, decision))

    async def _reject(self, line: str) -> None:
        words = line.strip().split(None, 1)
        if not words:
            raise UsageError(REJECT_USAGE)
        reason = words[1].strip() if len(words) > 1 else None
        run = self._run()
        view = await run.decision(words[0], {"decision": "reject", "reason": reason})
        await self._paused(run, view)

    async def _run_kernel_calls(self, run: Any, view: RunView) -> RunView:
        """Run the calls this kernel answers without asking (@agent_tool functions), in order."""
        from . import tools

        while view.state == "paused" and view.pending and _runs_here_block(view.pending[0]):
            block = view.pending[0]
            output, failed = tools.call(block.name, block.parsed_arguments)
            decision = {"decision": "result", "output": output, "is_error": failed}
            view = await run.decision(block.id, decision)
        return view

    async def _paused(self, run: Any, view: RunView) -> None:
        """A run paused: answer kernel calls, insert the cell that approves the next one."""
        view = await self._run_kernel_calls(run, view)
        if view.state != "paused" or not view.pending:
            return
        from .cells import approval_cell

        first = view.pending[0]
        if self.shell is not None:
            self.shell.set_next_input(approval_cell(first), replace=False)
        run.keep_following()


def _runs_here(pending: dict[str, Any]) -> bool:
    """A pending call this kernel runs without asking (an allowed @agent_tool)."""
    return pending.get("reason") == "kernel_tool" and not pending.get("needs_approval")


def _runs_here_block(block: Any) -> bool:
    meta = (block.interrupt or {}).get("metadata") or {}
    return bool(block.kernel_tool and not meta.get("needs_approval"))


def _code(cell: str) -> str:
    """The cell's code without the comment lines the inserted cell starts with."""
    lines = cell.splitlines()
    while lines and lines[0].startswith("# "):
        lines.pop(0)
    return "\n".join(lines)


def _kernel_id() -> str:
    from IPython import get_ipython

    ip = get_ipython()
    kernel = getattr(ip, "kernel", None)
    connection = getattr(getattr(kernel, "parent", None), "connection_file", "") or ""
    base = os.path.basename(connection)
    base = base.removesuffix(".json")
    return base.removeprefix("kernel-")


def resolve_model(name: str) -> str:
    """``scripted/<file>`` relative to the notebook's folder, made absolute.

    The kernel runs in the notebook's folder, the server does not: a script
    beside the notebook must be found by whichever process plays it.
    """
    prefix = "scripted/"
    rest = name[len(prefix) :] if name.startswith(prefix) else ""
    if not rest or rest == "echo" or rest.startswith("/"):
        return name
    candidate = os.path.abspath(rest)
    return prefix + candidate if os.path.exists(candidate) else name


def _agent_options(line: str) -> dict[str, Any]:
    options: dict[str, Any] = {"model": None, "new": False, "quiet": False}
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"{exc}. {AGENT_USAGE}") from exc
    while words:
        word = words.pop(0)
        if word in ("--new", "--quiet"):
            options[word[2:]] = True
        elif word == "--model" and words:
            options["model"] = words.pop(0)
        elif word.startswith("--model="):
            options["model"] = word.split("=", 1)[1]
        else:
            raise UsageError(f"unknown option {word!r}. {AGENT_USAGE}")
    return options


def _approve_arguments(cell: str) -> Any:
    """The JSON object in an ``%%approve`` cell (comment lines dropped); None if there is none."""
    body = "\n".join(ln for ln in cell.splitlines() if not ln.lstrip().startswith("#")).strip()
    if not body:
        return None
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise UsageError(f"The arguments are not valid JSON ({exc}). {APPROVE_USAGE}") from exc
    if not isinstance(value, dict):
        raise UsageError(f"The arguments must be a JSON object. {APPROVE_USAGE}")
    return value


async def _call_id(client: AgentClient, given: str, usage: str) -> str:
    """The call to decide: the one named, or the only one pending."""
    from . import loop

    if given:
        if len(given.split()) != 1:
            raise UsageError(usage)
        return given
    pending = (await loop.bridge(client.info())).get("pending_approvals") or []
    if len(pending) == 1:
        return str(pending[0])
    if not pending:
        raise UsageError("Nothing is waiting for approval in this session.")
    raise UsageError(f"Several calls are waiting ({', '.join(pending)}): name one. {usage}")


async def _original_arguments(client: AgentClient, call_id: str) -> Any:
    from .cellrun import find_call

    call = await find_call(client, call_id)
    try:
        return json.loads(call[1] or "{}") if call is not None else None
    except ValueError:
        return None


def _sync(make: Any) -> None:
    """Run an async magic from synchronous code: on a worker thread's loop, text only."""
    import io

    from .cellrun import redirected

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
    from .transform import install

    magics = AgentMagics(shell)
    shell.register_magics(magics)
    install(shell)
    _magics = magics
    return magics
