"""One cell's view of the session: send or decide, then follow events until the run pauses.

The cell coroutine runs on the kernel's loop (so widget messages and the
kernel's interrupt reach it) and does its I/O on the agent loop through
``loop.bridge`` / ``loop.relay``. When a run pauses on an approval the cell
returns; a widget view keeps following in the background, so a click on
Approve streams the resumed run into the same widget, and a decision made
anywhere else (another cell, the chat panel, REST) marks the card decided.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TextIO

from agentspace_kernel import loop
from agentspace_kernel.errors import ClientError
from agentspace_kernel.view.render import TextPrinter, plain, plain_quiet, static_html
from agentspace_kernel.view.state import RunView

if TYPE_CHECKING:
    from agentspace_kernel.client.base import AgentClient, Event
    from agentspace_kernel.view.widget import RunWidget

Start = Callable[[dict[str, Any]], bool]
DECISION = "agentspace.decision"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

_background: set[asyncio.Task[None]] = set()  # followers that outlive their cell
OUT: ContextVar[TextIO | None] = ContextVar("agentspace_out", default=None)
KERNEL_INTERRUPT: ContextVar[bool] = ContextVar("agentspace_kernel_interrupt", default=False)
"""Set by ``CellRun.follow`` once it has shown a run the kernel interrupt stopped as stopped
(the kernel's interrupt button: not a crashed run, nor one paused for approval)."""
PROBE: list[tuple[int, float]] | None = None
"""bench/kernel.py sets a list here: (event timestamp ms, time.time() once drawn) per delta."""


@contextlib.contextmanager
def redirected(out: TextIO) -> Iterator[None]:
    """Send this context's text output to ``out`` (a magic run from a worker thread)."""
    token = OUT.set(out)
    try:
        yield
    finally:
        OUT.reset(token)


def message_start(message_id: str) -> Start:
    """Start showing at this user message (skips runs queued before it)."""
    return lambda e: e.get("type") == "TEXT_MESSAGE_START" and e.get("messageId") == message_id


def next_run(e: dict[str, Any]) -> bool:
    return e.get("type") == "RUN_STARTED"


class CellRun:
    """The output of one ``%%agent`` / ``%%approve`` cell, as a widget or as text."""

    def __init__(self, client: AgentClient, widgets: bool, quiet: bool = False) -> None:
        self.client = client
        self.quiet = quiet
        self.view = RunView(kernel_here=True)  # until the cell returns
        self.widget: RunWidget | None = None
        self.printer = TextPrinter()
        self.display_id = ""
        self.fallback_id = ""  # the instructions shown if the widget is gone (see _show_fallback)
        # Widget clicks may be dispatched on another thread (an ipykernel subshell):
        # background work is always started on the loop of the cell that made the view.
        self.home = asyncio.get_running_loop()
        self._deciding = False
        from agentspace_kernel.ran import RAN

        self.cell_id = RAN.cell_id  # the %%agent cell this view is the output of
        if widgets:
            from agentspace_kernel.view.widget import RunWidget

            self.widget = RunWidget(self._decide_clicked, self._stop_clicked)

    # -- entry points ---------------------------------------------------------
    async def message(self, text: str, context: dict[str, Any] | None = None) -> RunView:
        info = await loop.bridge(self.client.info())
        receipt = await loop.bridge(self.client.send(text, context))
        self.show()
        if receipt.get("status") == "awaiting_approval":
            await self._show_pending(info, receipt)
            return self.view
        start = message_start(receipt["message_id"])
        return await self.follow(int(info.get("last_seq", 0)), start)

    async def decision(self, tool_call_id: str, decision: dict[str, Any]) -> RunView:
        info = await loop.bridge(self.client.info())
        if self.view.tool(tool_call_id) is None:  # a new cell: show the call it decides
            call = await loop.bridge(find_call(self.client, tool_call_id))
            if call is not None:
                self.view.seed(tool_call_id, *call)
        block = self.view.tool(tool_call_id)
        if block is not None:  # the view names who decided only when it was someone else
            block.decided_here = True
        result = await loop.bridge(self.client.decide(tool_call_id, decision))
        value = {"tool_call_id": tool_call_id, **decision}
        self.render(self.view.apply({"type": "CUSTOM", "name": DECISION, "value": value}))
        self.show()
        remaining = list(result.get("pending") or [])
        if remaining:  # the run resumes once every call of its pause is decided
            self._say(
                f"Decision on {tool_call_id} recorded; still waiting for: {', '.join(remaining)}.\n"
            )
            calls = (await loop.bridge(self.client.info())).get("pending_calls") or []
            self.view.seed_pending([c for c in calls if self.view.tool(c["tool_call_id"]) is None])
            self.view.state = "paused"
            return self.view
        return await self.follow(int(info.get("last_seq", 0)), next_run)

    async def resumed(self) -> RunView:
        info = await loop.bridge(self.client.info())
        result = await loop.bridge(self.client.resume())
        self.show()
        if not result.get("running"):
            self._say(f"Nothing to resume (status: {result.get('status')}).\n")
            return self.view
        return await self.follow(int(info.get("last_seq", 0)), next_run)

    # -- following ------------------------------------------------------------
    async def follow(self, after: int, start: Start | None) -> RunView:
        """Apply events after ``after`` from the first ``start`` match until the run ends."""
        started = start is None
        if self.view.ended:  # following the next run: until it starts, nothing has ended
            self.view.state = "waiting"
        events: Any = loop.relay(self.client.events(after))
        try:
            async for batch in events:
                changed: list[int] = []
                for seq, event in batch:
                    if not started:
                        started = start is not None and start(event)
                        if not started:
                            continue
                    changed += self.view.apply(event, seq)
                    if self.view.ended:
                        break
                if self.view.ended:  # the session's spend so far, for the footer
                    with contextlib.suppress(ClientError):
                        info = await loop.bridge(self.client.info())
                        self.view.spend = info.get("usage") or {}
                        self.view.model = str(info.get("effective_model") or info.get("model"))
                self.render(changed)
                if PROBE is not None:
                    drawn = time.time()
                    PROBE.extend(
                        (int(e.get("timestamp", 0)), drawn)
                        for _, e in batch
                        if e.get("type") == "TEXT_MESSAGE_CONTENT"
                    )
                if self.view.ended:
                    break
        except asyncio.CancelledError:  # the kernel interrupt: stop the run too
            with contextlib.suppress(Exception):
                loop.call(self.client.stop(), timeout=5)
            self.render(self.view.stopped())
            KERNEL_INTERRUPT.set(True)
            raise
        finally:
            await events.aclose()
            (OUT.get() or sys.stdout).flush()
        return self.view

    def keep_following(self) -> None:
        """After the cell returns on a pause: follow decisions made anywhere (widgets only)."""
        self.view.kernel_here = False  # no cell runs now: kernel calls wait, shown so
        if self.widget is None or not self.view.pending:
            return
        self._show_fallback()
        self.render([self.view.blocks.index(b) for b in self.view.pending] + [-1])
        self._spawn(self._watch_decisions)

    async def _watch_decisions(self) -> None:
        """Mark cards decided elsewhere; stop once nothing in this view waits."""
        with contextlib.suppress(ClientError):
            events: Any = loop.relay(self.client.events(self.view.last_seq))
            try:
                async for batch in events:
                    changed: list[int] = []
                    for seq, event in batch:
                        if event.get("type") == "CUSTOM":
                            changed += self.view.apply(event, seq)
                    if not self.view.pending:
                        if not self._deciding:  # decided elsewhere: the run goes on there
                            changed += self.view.moved()
                        self.render(changed)
                        return
                    self.render(changed)
            finally:
                await events.aclose()

    # -- rendering ------------------------------------------------------------
    def show(self) -> None:
        """Put the view in the cell's output (once)."""
        if self.widget is None or self.display_id:
            return
        from IPython.display import display

        handle = display(self._bundle(), raw=True, display_id=True)
        self.display_id = handle.display_id if handle is not None else ""

    def _show_fallback(self) -> None:
        """Put the pending calls' instructions in the cell's output, next to the widget.

        A saved notebook reopened after the kernel (or server) restarted has no widget
        model: JupyterLab and Notebook 7 would say "Error displaying widget: model not
        found" and nothing else. This output says how to decide the calls from cells; its
        CSS hides it while the widget is alive, and hides that error once it is not.
        """
        if self.fallback_id:
            return
        from IPython.display import display

        handle = display(fallback_bundle(self.view), raw=True, display_id=True)
        self.fallback_id = handle.display_id if handle is not None else ""

    def _bundle(self) -> dict[str, Any]:
        """The widget while something can still happen; once the run is over, static HTML
        and text, which a saved and reopened notebook (or nbconvert) still shows."""
        assert self.widget is not None
        if self.view.ended and self.view.state != "paused":
            return {"text/plain": plain(self.view), "text/html": static_html(self.view)}
        view = {"version_major": 2, "version_minor": 0, "model_id": self.widget.model_id}
        return {"text/plain": plain(self.view), WIDGET_MIME: view}

    def render(self, changed: list[int]) -> None:
        if self.widget is not None:
            self.widget.update(self.view, changed)
            if self.view.ended and self.display_id:
                from IPython.display import update_display

                update_display(self._bundle(), raw=True, display_id=self.display_id)
            if self.fallback_id and -1 in changed:
                from IPython.display import update_display

                update_display(fallback_bundle(self.view), raw=True, display_id=self.fallback_id)
            return
        if self.quiet:  # only the answer, once it is complete
            if self.view.ended:
                self._say(plain_quiet(self.view))
            return
        self._say(self.printer.update(self.view))

    def _say(self, text: str) -> None:
        """Write text; ipykernel sends it on its own flush interval, so a cell's stream
        output stays a few messages, not one per token."""
        if text:
            (OUT.get() or sys.stdout).write(text)

    async def _show_pending(self, info: dict[str, Any], receipt: dict[str, Any]) -> None:
        waiting = ", ".join(info.get("pending_approvals") or []) or "an earlier call"
        self._say(
            f"The session is waiting for a decision on {waiting} first (%%approve ID or"
            f" %reject ID REASON); your message is queued (position {receipt.get('position')})"
            " and runs after.\n"
        )
        self.view.state = "paused"

    # -- widget callbacks (kernel loop, from comm messages) --------------------
    def _spawn(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``work()`` as a task on the home loop, from whatever thread calls this."""

        def start() -> None:
            task = self.home.create_task(work())
            _background.add(task)
            task.add_done_callback(_background.discard)

        self.home.call_soon_threadsafe(start)

    def _decide_clicked(self, tool_call_id: str, decision: dict[str, Any]) -> None:
        self._deciding = True  # this view follows the resumed run itself
        self.view.cells = False  # no cell runs: the next pause gets no inserted cell
        self._spawn(lambda: self._decide(tool_call_id, decision))

    async def _decide(self, tool_call_id: str, decision: dict[str, Any]) -> None:
        try:
            await self.decision(tool_call_id, decision)
            self._deciding = False  # followed to its next pause: what comes is decided anywhere
            if self.view.state == "paused" and self.view.pending:
                self.keep_following()  # the chat or another view may decide the next call
            self._ask_for_cell()
        except ClientError as exc:
            card = self.widget.card(tool_call_id) if self.widget else None
            if card is not None:  # another decision won (409): nothing left to click
                card.failed(exc.message, settled=exc.code == "conflict" and "decision" in exc.data)

    def _ask_for_cell(self) -> None:
        """After a button decision the run paused on another call: ask the frontend for its
        approval cell below the %%agent cell (no cell runs, so no ``set_next_input``
        carries it; the labextension inserts it, once per call: labextension/src/cells.ts)."""
        if self.view.state != "paused" or not self.view.pending:
            return
        from agentspace_kernel.view.cells import approval_cell

        block = self.view.pending[0]
        if block.kernel_tool and block.name != "run_cell":
            return  # answered by the kernel at the next cell, not by an approval cell
        request = {"after": self.cell_id, "source": approval_cell(block), "call": block.id}
        from IPython.display import display

        text = f"(the next call, {block.id}, waits: its approval cell goes below the %%agent cell)"
        display({CELL_MIME: request, "text/plain": text}, raw=True, transient={"agentspace": 1})

    def _stop_clicked(self) -> None:
        loop.submit(self.client.stop())


CELL_MIME = "application/vnd.agentspace.cell+json"
"""A request for an approval cell, read by the labextension (labextension/src/cells.ts)."""

FALLBACK_CSS = (
    "<style>"
    # the widget is alive: it shows the same instructions on its cards
    ".jp-OutputArea-child:has(.agentspace-view) ~ .jp-OutputArea-child .agentspace-fallback"
    "{display:none}"
    # the widget is gone: hide the frontend's error text (the output node itself, marked
    # jupyter-widgets, with only that text in it; a live widget's output node is unmarked)
    ".jp-OutputArea-child:has(~ .jp-OutputArea-child .agentspace-fallback)"
    " .jp-OutputArea-output.jupyter-widgets:not(:has(*)){display:none}"
    "</style>"
)


def fallback_bundle(view: RunView) -> dict[str, Any]:
    """What decides the view's pending calls from cells, for a frontend without the widget."""
    from agentspace_kernel.view.render import escape, waiting_hint

    if view.state != "paused" or not view.pending:
        return {"text/plain": "", "text/html": ""}
    lines = [f"‖ {b.name} {b.id}: {waiting_hint(b, view.cell_below(b))}" for b in view.pending]
    intro = (
        "This run waits for a decision. If its live view is gone (the kernel restarted),"
        " run %load_ext agentspace first, then:"
    )
    items = "".join(f"<li><code>{escape(line)}</code></li>" for line in lines)
    html = (
        f"<div class='agentspace-fallback'>{FALLBACK_CSS}<p>{escape(intro)}</p>"
        f"<ul>{items}</ul></div>"
    )
    return {"text/plain": "\n".join([intro, *lines]), "text/html": html}


async def find_call(client: AgentClient, tool_call_id: str) -> tuple[str, str] | None:
    """The name and arguments (JSON text) of a call in the recent transcript."""
    for message in reversed(await client.history(50)):
        for call in message.get("tool_calls") or []:
            if call.get("id") == tool_call_id:
                function = call.get("function") or {}
                return str(function.get("name", "?")), str(function.get("arguments") or "")
    return None


def shown(events: list[tuple[int, Event]]) -> RunView:
    """A view of ``events`` (for tests and ``%agent history``)."""
    view = RunView()
    for seq, event in events:
        view.apply(event, seq)
    return view
