"""``%agent fix [CELL_ID]``: the failing cell and its traceback, sent as the prompt.

The most common request in a notebook is "fix this error". The kernel knows the cell that
raised and the traceback it showed (``ran``), so the prompt carries both (its context); the
agent reads the notebook for more and proposes an ``edit_cell``, held for the user's approval
as a diff. ``CELL_ID`` names a cell (JupyterLab's "Fix with agent" passes
the cell's id); without it, the last cell that raised in this kernel.
"""

from __future__ import annotations

from typing import Any

from agentspace_kernel.errors import UsageError
from agentspace_kernel.ran import RAN, Failure

FIX_USAGE = "usage: %agent fix [CELL_ID]: ask the agent to fix the cell that raised"


def prompt_of(failure: Failure) -> str:
    """The words of the prompt; the cell's code and its traceback go with it as its context
    (``engine.context``: bounded, secrets redacted, shown as attached in every view)."""
    where = f"cell {failure.cell_id}" if failure.cell_id else "the cell"
    if failure.execution_count is not None:
        where += f" (In [{failure.execution_count}])"
    return (
        f"Fix the error in {where}: it raised {failure.ename}: {failure.evalue[:500]}. Its code "
        "and traceback are in the notebook context. Read the notebook if you need more, then "
        "propose the fix to that cell with edit_cell."
    )


def fix_prompt(cell_id: str) -> tuple[str, dict[str, Any]]:
    """The prompt and its context for ``%agent fix [CELL_ID]``."""
    if len(cell_id.split()) > 1:
        raise UsageError(FIX_USAGE)
    failure = RAN.failure_of(cell_id) if cell_id else RAN.last
    context: dict[str, Any] = {"cell_id": cell_id or None, "doc_error": False}
    if failure is None and cell_id:  # raised before %load_ext, or in another kernel
        text = (
            f"Fix the error in cell {cell_id}: read it (read_notebook with cell_id="
            f"{cell_id!r}) to see its code and the error it shows, then propose the fix with "
            "edit_cell."
        )
        return text, {"cell_id": cell_id, "doc_error": True}
    if failure is None:
        raise UsageError(
            "No cell has raised an error in this kernel since %load_ext agentspace. Run the "
            "failing cell again, or name it: %agent fix CELL_ID."
        )
    context["cell_id"] = failure.cell_id
    context["cell_source"] = failure.source
    context["error"] = failure.ref()
    RAN.sent = failure  # sent: the next prompt does not carry it again
    return prompt_of(failure), context
