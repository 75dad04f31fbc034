"""The input transformer that makes agent cells coroutines (see ``magics``' docstring).

A cell whose first line is ``%%agent``, ``%%approve`` or ``%%agent_run``, or a
cell that is a single ``%reject ...`` or ``%agent resume`` line, becomes one
line of Python that awaits the magic's async form. The cell text travels as a
string literal, so nothing in it is interpreted. Cells are left alone when
autoawait is off (the registered magics then run synchronously).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

CELLS = ("agent", "approve", "agent_run")
LINES = ("reject", "agent resume", "agent fix")
TARGET = "__import__('agentspace_kernel.magics.magics').magics.magics"


def rewrite(lines: list[str], autoawait: bool = True) -> list[str]:
    """The cell's lines, rewritten if it is an agent cell (IPython line transformer form)."""
    if not autoawait:
        return lines
    text = "".join(lines)
    stripped = text.lstrip()
    if stripped.startswith("%%"):
        first, _, body = stripped.partition("\n")
        name, _, line = first[2:].partition(" ")
        if name.strip() in CELLS:
            call = f"run_cell_async({name.strip()!r}, {line.strip()!r}, {body!r})"
            return [f"await {TARGET}.{call}\n"]
        return lines
    single = stripped.strip()
    if single.startswith("%") and "\n" not in single:
        command = single[1:]
        for prefix in LINES:
            if command == prefix or command.startswith(prefix + " "):
                name = prefix.split()[0]
                rest = command[len(name) :].strip()  # "resume" / "fix ID" for %agent
                return [f"await {TARGET}.run_line_async({name!r}, {rest!r})\n"]
    return lines


def install(shell: InteractiveShell) -> None:
    """Register the transformer once (``%load_ext`` may run again)."""
    transformers = shell.input_transformers_cleanup
    if any(getattr(t, "__name__", "") == "agentspace_rewrite" for t in transformers):
        return

    def agentspace_rewrite(lines: list[str]) -> list[str]:
        return rewrite(lines, bool(getattr(shell, "autoawait", False)))

    transformers.append(agentspace_rewrite)


def uninstall(shell: InteractiveShell) -> None:
    transformers = shell.input_transformers_cleanup
    transformers[:] = [
        t for t in transformers if getattr(t, "__name__", "") != "agentspace_rewrite"
    ]
