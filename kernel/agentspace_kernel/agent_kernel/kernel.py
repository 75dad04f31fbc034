"""The "Agent (Python)" kernel: IPython where a cell is an ``%%agent`` prompt unless it says not.

Why an input transformer and not an overridden ``do_execute``: IPython keeps the raw cell in its
history (``In``, ``_ih``, ``%history``) and the rewritten one only where it compiles code, so
users see what they typed; and ``%%python`` runs through IPython's ordinary path (async cells,
tracebacks, ``%%timeit`` after it) like any other code. The rule itself is `cells.rewrite`.

Only the code of an execute request from a user (not ``silent``, ``store_history``) is rewritten.
Frontends and tools send their own Python in silent or history-less requests (widget managers,
debuggers, variable inspectors, VS Code's helpers); that code stays Python. So does code the
agent's own magic runs with ``shell.run_cell``: it is not the request's code.

``language_info`` stays IPython's (``python``, CodeMirror mode ``ipython``): ``%%python`` cells
need highlighting and completion, and a prompt highlighted as Python costs a few odd colours,
while a prose language would lose both for code. Notebooks saved with this kernel say
``language: python``, so nbconvert and linters still treat them as Python notebooks. The
kernelspec turns JupyterLab's debugger off for this kernel: a breakpoint in a prompt means nothing.

The agent magic comes from the ``agentspace`` IPython extension. It is loaded when the kernel
starts (`AgentKernelApp`), and again on demand by a stand-in ``%%agent`` magic, which reports in
the cell's output why it could not be loaded instead of IPython's bare "magic not found".
"""

from __future__ import annotations

import contextvars
from typing import Any

from ipykernel.ipkernel import IPythonKernel
from ipykernel.kernelapp import IPKernelApp
from IPython.core.error import UsageError
from traitlets import Unicode, default

from agentspace_kernel.agent_kernel.cells import rewrite_lines

# The code of the execute request being served, while it is a user's (else None).
_user_code: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "agentspace_user_code", default=None
)


def _normalise(code: str) -> str:
    return code if code.endswith("\n") else code + "\n"


def agent_cell_transformer(lines: list[str]) -> list[str]:
    """IPython cleanup transformer: `rewrite_lines`, on the current user request's code only."""
    code = _user_code.get()
    if code is None or "".join(lines) != _normalise(code):
        return lines
    return rewrite_lines(lines)


class AgentKernel(IPythonKernel):
    """IPythonKernel whose user cells are agent prompts unless they start with a magic."""

    implementation = "agentspace"
    banner = "Agent (Python): a cell is a prompt for the agent; start it with %%python for code."

    agent_extension = Unicode(
        "agentspace",
        help="The IPython extension that provides the %%agent cell magic.",
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        assert self.shell is not None
        self.agent_extension_error: str | None = None
        # First, before IPython strips leading blank lines or indentation.
        self.shell.input_transformers_cleanup.insert(0, agent_cell_transformer)
        self.shell.register_magic_function(self._agent_stand_in, "cell", "agent")

    def load_agent_extension(self) -> bool:
        """Load the extension providing ``%%agent``; on failure remember why, and say False."""
        assert self.shell is not None
        try:
            result = self.shell.extension_manager.load_extension(self.agent_extension)
        except Exception as e:
            self.agent_extension_error = f"{type(e).__name__}: {e}"
        else:
            if result == "no load function":
                self.agent_extension_error = (
                    f"the module {self.agent_extension!r} has no load_ipython_extension()"
                )
            else:
                self.agent_extension_error = None
        if self.agent_extension_error is not None:
            self.log.warning("%%agent is unavailable: %s", self.agent_extension_error)
            return False
        return True

    def _agent_stand_in(self, line: str, cell: str) -> Any:
        """``%%agent`` until the extension replaces it: load it now, or explain why not."""
        assert self.shell is not None
        if self.load_agent_extension():
            real = self.shell.find_cell_magic("agent")
            if real is not None and real != self._agent_stand_in:
                return self.shell.run_cell_magic("agent", line, cell)
            self.agent_extension_error = (
                f"the extension {self.agent_extension!r} loaded but defines no %%agent magic"
            )
        raise UsageError(
            f"This cell is a prompt for the agent (Agent (Python) kernel), but the %%agent magic "
            f"is unavailable: {self.agent_extension_error}. Start the cell with %%python to run "
            f"it as Python."
        )

    async def do_execute(
        self, code: str, silent: bool, store_history: bool = True, *args: Any, **kwargs: Any
    ) -> Any:
        """Mark a user's request (see the module docstring), then execute as IPython does."""
        token = _user_code.set(code if store_history and not silent else None)
        try:
            return await super().do_execute(code, silent, store_history, *args, **kwargs)
        finally:
            _user_code.reset(token)


class AgentKernelApp(IPKernelApp):
    """IPKernelApp serving `AgentKernel`; loads the agent extension with the configured ones."""

    name = "agentspace-kernel"

    @default("kernel_class")
    def _default_kernel_class(self) -> type:
        return AgentKernel

    def init_extensions(self) -> None:
        super().init_extensions()
        if isinstance(self.kernel, AgentKernel):
            self.kernel.load_agent_extension()
