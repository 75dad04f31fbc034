"""What the agent magics do, as coroutines on the kernel's loop (mixed into ``AgentMagics``).

Send a message, decide a call, run the agent's code or the notebook's tools,
resume: each follows the session's events into a ``CellRun`` view, then,
if the run paused, answers what this kernel answers itself (allowed
``@agent_tool`` calls) and inserts the cell that approves the next call.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

from agentspace_kernel.errors import UsageError
from agentspace_kernel.magics.arguments import (
    AGENT_RUN_USAGE,
    APPROVE_USAGE,
    REJECT_USAGE,
    agent_options,
    approve_arguments,
    code_of,
    original_arguments,
    pending_call_id,
    resolve_model,
)

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from agentspace_kernel.client.base import AgentClient
    from agentspace_kernel.view.state import RunView


class Flows:
    """The async side of ``AgentMagics``: needs ``client()``, ``widgets()`` and ``shell``."""

    shell: InteractiveShell | None
    _tools_key: tuple[str, str] | None

    if TYPE_CHECKING:  # provided by AgentMagics, which mixes this in

        def client(self) -> AgentClient: ...

        def widgets(self) -> bool: ...

    def _run(self, quiet: bool = False) -> Any:
        from agentspace_kernel.magics.cellrun import CellRun

        on_main = threading.current_thread() is threading.main_thread()
        widgets = on_main and not quiet and self.widgets()
        return CellRun(self.client(), widgets=widgets, quiet=quiet)

    async def _agent(self, line: str, cell: str) -> None:
        from agentspace_kernel import loop

        options = agent_options(line)
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
        from agentspace_kernel.ran import RAN

        context = RAN.context(f"%%agent {line}\n{cell}") if options["context"] else None
        view = await run.message(cell.strip(), context or {"attach": False})
        await self._paused(run, view)

    async def _fix(self, cell_id: str) -> None:
        """``%agent fix [CELL_ID]``: the failing cell and its traceback are the prompt."""
        from agentspace_kernel.magics.fix import fix_prompt

        text, context = fix_prompt(cell_id.strip())
        await self._sync_tools()
        run = self._run()
        if await self._kernel_calls_first(run):
            return
        await self._paused(run, await run.message(text, context))

    async def _sync_tools(self) -> None:
        """Offer the notebook's @agent_tool functions, run_cell and list_variables (only when
        they changed)."""
        from agentspace_kernel import loop, tools

        specs = tools.specs()
        key = json.dumps(specs, sort_keys=True)
        client = self.client()
        if self._tools_key == (client.session_id, key):
            return
        await loop.bridge(client.set_kernel_tools(specs, run_cell=True, list_variables=True))
        self._tools_key = (client.session_id, key)

    async def _kernel_calls_first(self, run: Any) -> bool:
        """Calls waiting for this kernel (made while no cell ran) run before a new message."""
        from agentspace_kernel import loop

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
        from agentspace_kernel import loop
        from agentspace_kernel.magics.execute import run_code

        client = self.client()
        call_id = line.strip()
        if not call_id or len(call_id.split()) != 1:
            raise UsageError(AGENT_RUN_USAGE)
        original = await loop.bridge(original_arguments(client, call_id))
        if self.shell is None:
            raise UsageError("%%agent_run needs an IPython kernel.")
        output, failed = await run_code(self.shell, cell)
        decision: dict[str, Any] = {"decision": "result", "output": output, "is_error": failed}
        if isinstance(original, dict) and original.get("code", "").strip() != code_of(cell).strip():
            decision["arguments"] = {"code": code_of(cell)}
        run = self._run()
        await self._paused(run, await run.decision(call_id, decision))

    async def _approve(self, line: str, cell: str) -> None:
        from agentspace_kernel import loop

        client = self.client()
        words = line.split()
        always = "--always" in words  # always allow this tool in the session
        given = " ".join(w for w in words if w != "--always")
        call_id = await pending_call_id(client, given, APPROVE_USAGE)
        arguments = approve_arguments(cell)
        decision: dict[str, Any] = {"decision": "approve"}
        if arguments is not None:
            original = await loop.bridge(original_arguments(client, call_id))
            if original is None or arguments != original:
                decision = {"decision": "edit", "arguments": arguments}
        if always:
            decision["remember"] = True
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
        """Run the calls this kernel answers without asking (@agent_tool functions and
        list_variables), in order."""
        from agentspace_kernel import tools

        while view.state == "paused" and view.pending and _runs_here_block(view.pending[0]):
            block = view.pending[0]
            session = run.client.session_id or ""
            output, failed = tools.call_once(session, block.id, block.name, block.parsed_arguments)
            decision = {"decision": "result", "output": output, "is_error": failed}
            view = await run.decision(block.id, decision)
        return view

    async def _paused(self, run: Any, view: RunView) -> None:
        """A run paused: answer kernel calls, insert the cell that approves the next one."""
        view = await self._run_kernel_calls(run, view)
        if view.state != "paused" or not view.pending:
            return
        from agentspace_kernel.view.cells import already_in, approval_cell

        cell = approval_cell(view.pending[0])
        if self.shell is not None and not already_in(self.client().location.file, cell):
            self.shell.set_next_input(cell, replace=False)
        run.keep_following()


def _runs_here(pending: dict[str, Any]) -> bool:
    """A pending call this kernel runs without asking (an allowed @agent_tool)."""
    return pending.get("reason") == "kernel_tool" and not pending.get("needs_approval")


def _runs_here_block(block: Any) -> bool:
    meta = (block.interrupt or {}).get("metadata") or {}
    return bool(block.kernel_tool and not meta.get("needs_approval"))
