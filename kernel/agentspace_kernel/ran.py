"""What this kernel ran: the cell running now, the errors cells raised, the cells in order.

Why the kernel keeps this: it is the one part that always knows which cell sent a prompt
(ipykernel passes the frontend's ``cellId`` to IPython, ``ExecutionInfo.cell_id``) and the
exception a cell raised with its traceback as the user saw it, also where no notebook file
is known (nbclient, nbval). It feeds the context attached to a prompt (``engine.context``),
``%agent fix`` and, in an embedded kernel that cannot tell its file, ``read_notebook`` (the
cells it ran, read-only). Two IPython event hooks, registered by ``%load_ext``; nothing is
copied but the failing cell's source and its traceback text.
"""

from __future__ import annotations

import re
import reprlib
import traceback
from dataclasses import dataclass, field
from typing import Any

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")  # as notebook.render's
AGENT_PREFIXES = ("%%agent", "%agent", "%%approve", "%reject", "%%agent_run")
TRACEBACK_CHARS = 20_000
OUT_CHARS = 2_000


@dataclass
class Failure:
    """A cell that raised: what the prompt context and ``%agent fix`` send."""

    cell_id: str | None
    source: str
    ename: str
    evalue: str
    traceback: str
    execution_count: int | None

    def ref(self) -> dict[str, Any]:
        return {
            "cell_id": self.cell_id,
            "source": self.source,
            "ename": self.ename,
            "evalue": self.evalue[:20_000],
            "traceback": self.traceback[-TRACEBACK_CHARS:],
            "execution_count": self.execution_count,
        }


@dataclass
class Ran:
    shell: Any = None
    cell_id: str | None = None  # the cell running now
    raw_cell: str = ""
    failures: dict[int, Failure] = field(default_factory=dict)  # by execution count
    last: Failure | None = None
    sent: Failure | None = None  # the last failure a prompt's context carried

    def install(self, shell: Any) -> None:
        if self.shell is shell:
            return
        self.shell = shell
        shell.events.register("pre_run_cell", self._pre)
        shell.events.register("post_run_cell", self._post)

    def _pre(self, info: Any) -> None:
        self.cell_id = getattr(info, "cell_id", None) or None
        self.raw_cell = getattr(info, "raw_cell", "") or ""

    def _post(self, result: Any) -> None:
        error = result.error_in_exec or result.error_before_exec
        source = getattr(result.info, "raw_cell", "") or ""
        if error is None or source.lstrip().startswith(AGENT_PREFIXES):
            return
        failure = Failure(
            cell_id=getattr(result.info, "cell_id", None) or None,
            source=source,
            ename=type(error).__name__,
            evalue=str(error),
            traceback=self._traceback(error),
            execution_count=result.execution_count,
        )
        if result.execution_count is not None:
            self.failures[result.execution_count] = failure
            while len(self.failures) > 100:
                self.failures.pop(next(iter(self.failures)))
        self.last = failure

    def _traceback(self, error: BaseException) -> str:
        shown = getattr(self.shell, "_last_traceback", None)  # ipykernel keeps what it showed
        if shown:
            text = "\n".join(str(line) for line in shown)
        else:
            text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        return ANSI.sub("", text)  # stored as the model will read it

    def failure_of(self, cell_id: str) -> Failure | None:
        """The latest failure of the cell ``cell_id``, if this kernel saw it."""
        for failure in reversed(list(self.failures.values())):
            if failure.cell_id == cell_id:
                return failure
        return None

    def context(self, prompt_source: str) -> dict[str, Any]:
        """The ``PromptContext`` of a prompt sent from the cell running now (engine.context).

        The last error goes with the first prompt after it, not again with every prompt.
        """
        ctx: dict[str, Any] = {
            "cell_id": self.cell_id,
            "cell_source": self.raw_cell or prompt_source,
            "doc_error": False,
        }
        if self.last is not None and self.last is not self.sent:
            ctx["error"] = self.last.ref()
            self.sent = self.last
        return ctx

    def cells(self) -> list[dict[str, Any]]:
        """The cells this kernel ran, as nbformat cells (for a kernel with no notebook file)."""
        ns = self.shell.user_ns if self.shell is not None else {}
        history = getattr(self.shell, "history_manager", None)
        inputs: list[str] = list(getattr(history, "input_hist_raw", None) or ns.get("In", []))
        outs: dict[int, Any] = dict(ns.get("Out", {}))
        short = reprlib.Repr()
        short.maxstring = short.maxother = OUT_CHARS
        cells = []
        for n, source in enumerate(inputs):
            if n == 0:
                continue
            outputs: list[dict[str, Any]] = []
            if n in outs:
                text = short.repr(outs[n])
                outputs.append({"output_type": "execute_result", "data": {"text/plain": text}})
            if (failure := self.failures.get(n)) is not None:
                outputs.append(
                    {
                        "output_type": "error",
                        "ename": failure.ename,
                        "evalue": failure.evalue,
                        "traceback": failure.traceback.splitlines(),
                    }
                )
            cells.append(
                {
                    "id": f"in-{n}",
                    "cell_type": "code",
                    "source": source,
                    "execution_count": n,
                    "outputs": outputs,
                }
            )
        return cells


RAN = Ran()
