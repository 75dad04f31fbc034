"""Kernel calls answered by the server, for turns no ``%%agent`` cell follows (the chat's).

A kernel call (``run_cell``, ``list_variables``, an ``@agent_tool`` function) runs in the
notebook's kernel, and a ``%%agent`` cell that follows the run answers it from inside the
kernel. A turn sent from the chat has no such cell, so the server answers it through the
kernel's own channels, as a frontend would: it finds the notebook's kernel in the server's
session manager, runs the code (``run_cell``: an ordinary execution, in the user's namespace
and history; the tools: a silent one that calls ``agentspace_kernel.tools``, its answer read
from ``user_expressions``), and records the ``result`` decision. The kernel queues the request
behind whatever it is running, as it would a cell.

Approving a kernel call from the chat, the side panel or REST means exactly that: the server
runs it and its output is the result (``decide``).
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import re
from typing import TYPE_CHECKING, Any

from agentspace.errors import ConflictError

if TYPE_CHECKING:
    from agentspace.engine.session import Session
    from agentspace.server.links import Links
    from agentspace.store.approvals import Decision, PendingCall

log = logging.getLogger(__name__)
MAX_OUTPUT = 20_000
TIMEOUT = 600.0  # seconds a kernel call may run (a long cell is normal; a hung one is not)
READY_TIMEOUT = 60.0  # seconds a kernel (just started, say) may take to answer at all
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
TOOL_CODE = (  # call_once: a %%agent cell asking for the same call gets this result, not a rerun
    "import json as __agentspace_json, agentspace_kernel.tools as __agentspace_tools\n"
    "__agentspace_answer = __agentspace_json.dumps(__agentspace_tools.call_once("
    "{session!r}, {call!r}, {name!r}, __agentspace_json.loads({arguments!r})))"
)
TOOL_CLEANUP = "del __agentspace_json, __agentspace_tools, __agentspace_answer"


class KernelCalls:
    def __init__(self, serverapp: Any, links: Links | None = None) -> None:
        self.serverapp = serverapp
        self.links = links  # a browser that has the notebook open runs run_cell as a cell
        self._clients: dict[str, tuple[Any, asyncio.Lock]] = {}  # kernel id -> its client

    async def kernel_of(self, notebook: str) -> str | None:
        """The id of the kernel the notebook has open in this server (None: none is)."""
        from agentspace.engine.engine import normalise_notebook

        manager = getattr(self.serverapp, "session_manager", None)
        if manager is None:
            return None
        key = normalise_notebook(notebook)
        for entry in await manager.list_sessions():
            path = entry.get("path") or (entry.get("notebook") or {}).get("path") or ""
            kernel = entry.get("kernel") or {}
            try:
                same = normalise_notebook(path) == key
            except Exception:
                same = False
            if same and kernel.get("id"):
                return str(kernel["id"])
        return None

    async def run(self, session: Session, call: PendingCall, arguments: Any) -> tuple[str, bool]:
        """Run the call in the notebook's kernel: (result text, is_error)."""
        from agentspace.tools.kernel import RUN_CELL

        code = (arguments or {}).get("code") if isinstance(arguments, dict) else None
        if call.name == RUN_CELL and isinstance(code, str) and self.links is not None:
            if self.links.get(session.notebook) is not None:  # shown where the user looks
                reply = await self.links.request(
                    session.notebook,
                    "run",
                    timeout=TIMEOUT,
                    code=code,
                    cell_id=(arguments or {}).get("cell_id"),
                    tool_call_id=call.tool_call_id,
                )
                outputs = reply.get("outputs")
                shown = (
                    [o for o in outputs if isinstance(o, dict)] if isinstance(outputs, list) else []
                )
                return outputs_text(shown), reply.get("status") != "ok"
        kernel_id = await self.kernel_of(session.notebook)
        if kernel_id is None:
            raise ConflictError(
                f"The call {call.tool_call_id!r} ({call.name}) runs in the notebook's kernel, "
                f"and {session.notebook} has no kernel running in this server: open the "
                "notebook (start its kernel) and decide again, or reject the call.",
                code="no_kernel",
            )
        client, lock = await self._client(kernel_id)
        async with lock:  # one execution at a time per client (the kernel runs one anyway)
            if call.name == RUN_CELL:
                if not isinstance(code, str):
                    return "run_cell needs its code.", True
                return await _run_code(client, code)
            return await _call_tool(client, session.id, call.tool_call_id, call.name, arguments)

    async def _client(self, kernel_id: str) -> tuple[Any, asyncio.Lock]:
        """The server's client of a kernel, kept (a new one per call could miss the start of
        its replies on iopub, a subscription that is not made yet) and ready."""
        manager = self.serverapp.kernel_manager
        for gone in [k for k in self._clients if k not in manager.list_kernel_ids()]:
            self._clients.pop(gone)[0].stop_channels()
        entry = self._clients.get(kernel_id)
        if entry is None:
            client = manager.get_kernel(kernel_id).client()
            client.start_channels()
            try:
                await client.wait_for_ready(timeout=READY_TIMEOUT)
            except Exception as exc:
                client.stop_channels()
                raise ConflictError(
                    f"The notebook's kernel did not answer within {READY_TIMEOUT:g} s ({exc}); "
                    "restart it and decide again.",
                    code="no_kernel",
                ) from exc
            entry = self._clients.setdefault(kernel_id, (client, asyncio.Lock()))
        return entry

    def close(self) -> None:
        for client, _ in self._clients.values():
            client.stop_channels()
        self._clients.clear()

    async def decide(
        self, session: Session, tool_call_id: str, decision: Decision, by: str | None
    ) -> list[str]:
        """``Session.decide``, but an approved (or edited) kernel call is run here first."""
        from agentspace.store.approvals import Decision

        if decision.decision not in ("approve", "edit"):
            return await session.decide(tool_call_id, decision, by=by)
        call = next((p for p in await session.pending() if p.tool_call_id == tool_call_id), None)
        if call is None or call.executor != "kernel" or call.status != "pending":
            return await session.decide(tool_call_id, decision, by=by)
        arguments = decision.arguments if decision.decision == "edit" else call.parsed_arguments
        output, failed = await self.run(session, call, arguments)
        result = Decision(
            decision="result",
            output=output,
            is_error=failed,
            arguments=decision.arguments if decision.decision == "edit" else None,
        )
        return await session.decide(tool_call_id, result, by=by)


def outputs_text(outputs: list[dict[str, Any]]) -> str:
    """What a run printed, displayed (as text), returned and raised: the call's result."""
    parts: list[str] = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            text = out.get("text", "")
            parts.append("".join(text) if isinstance(text, list) else str(text))
        elif kind in ("execute_result", "display_data"):
            data = out.get("data") or {}
            plain = data.get("text/plain")
            if plain is not None:
                parts.append(("".join(plain) if isinstance(plain, list) else str(plain)) + "\n")
            else:
                parts.append(f"[{', '.join(sorted(data))}]\n")
        elif kind == "error":
            parts.append("\n".join(out.get("traceback") or [str(out.get("evalue", ""))]))
    text = ANSI.sub("", "".join(parts))
    if len(text) > MAX_OUTPUT:
        cut = len(text) - MAX_OUTPUT
        half = MAX_OUTPUT // 2
        text = text[:half] + f"\n… ({cut:,} characters cut) …\n" + text[-half:]
    return text or "(no output)"


async def _run_code(client: Any, code: str) -> tuple[str, bool]:
    """Run ``code`` as a cell through the server's own client of the kernel (no browser)."""
    outputs: list[dict[str, Any]] = []

    def output(msg: dict[str, Any]) -> None:
        kind = msg["header"]["msg_type"]
        if kind in ("stream", "execute_result", "display_data", "error"):
            outputs.append({"output_type": kind, **msg["content"]})

    reply = await client.execute_interactive(
        code, store_history=True, allow_stdin=False, output_hook=output, timeout=TIMEOUT
    )
    failed = reply["content"].get("status") != "ok" or any(
        o["output_type"] == "error" for o in outputs
    )
    return outputs_text(outputs), failed


async def _call_tool(
    client: Any, session: str, call: str, name: str, arguments: Any
) -> tuple[str, bool]:
    code = TOOL_CODE.format(session=session, call=call, name=name, arguments=json.dumps(arguments))
    reply = await client.execute_interactive(
        code,
        silent=True,
        store_history=False,
        allow_stdin=False,
        user_expressions={"answer": "__agentspace_answer"},
        output_hook=lambda msg: None,
        timeout=TIMEOUT,
    )
    content = reply["content"]
    await client.execute_interactive(
        TOOL_CLEANUP, silent=True, store_history=False, output_hook=lambda m: None
    )
    if content.get("status") != "ok":
        return (
            f"The kernel could not run {name}: {content.get('ename')}: {content.get('evalue')} "
            "(is agentspace installed in the notebook's kernel environment?)",
            True,
        )
    answer = (content.get("user_expressions") or {}).get("answer") or {}
    raw = (answer.get("data") or {}).get("text/plain")
    if answer.get("status") != "ok" or not isinstance(raw, str):
        return f"The kernel gave no answer for {name}.", True
    text, failed = json.loads(ast.literal_eval(raw))
    return str(text), bool(failed)
