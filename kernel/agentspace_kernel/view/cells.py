"""Approvable cells: the text of the cell inserted below a paused run.

The cell is the approval: running it approves (with the arguments as edited
in it), so a headless run, a saved notebook and a person reading it later all
see which call was approved and with what.
"""

from __future__ import annotations

import json

from agentspace_kernel.view.render import preview_lines
from agentspace_kernel.view.state import ToolBlock

DECIDING = ("%%approve", "%reject", "%%agent_run")
"""The magics whose first word after them is the call they decide."""


def _first_lines(notebook_file: str) -> list[str]:
    """The first non-blank line of each code cell in the saved notebook ([] if unreadable)."""
    try:
        with open(notebook_file, encoding="utf-8") as f:
            cells = json.load(f).get("cells", [])
    except (OSError, ValueError, AttributeError):
        return []
    lines = []
    for c in cells:
        if not isinstance(c, dict) or c.get("cell_type", "code") != "code":
            continue
        source = c.get("source", "")
        text = "".join(source) if isinstance(source, list) else str(source)
        lines.append(text.lstrip().split("\n", 1)[0].strip())
    return lines


def decided_call(line: str) -> str | None:
    """The call id a cell's first line decides (``%reject ID …``, ``%%approve ID``), or None."""
    words = line.split()
    if len(words) >= 2 and words[0] in DECIDING:
        return words[1]
    return None


def already_in(notebook_file: str, cell: str) -> bool:
    """Whether the saved notebook already has a cell for what ``cell`` would do.

    A cell that decides a call (``%%approve ID``, ``%reject ID``, ``%%agent_run ID``)
    holds that call: a notebook run again ("Run All") holds the cells inserted the
    first time, or the author's own ``%reject`` for it, and a scripted model makes
    the same call ids. A second cell for the call would decide it before the
    author's (approvals.ipynb once approved the ``rm`` it says it rejects). Other
    cells (``%agent resume``) match on their first line. Unsaved edits are not
    seen: this reads the file on disk.
    """
    if not notebook_file:
        return False
    first = cell.split("\n", 1)[0].strip()
    call = decided_call(first)
    for line in _first_lines(notebook_file):
        if line == first or (call is not None and decided_call(line) == call):
            return True
    return False


def approval_cell(block: ToolBlock) -> str:
    """``%%approve ID`` + a comment + the arguments as JSON (or the code, for run_cell).

    A call whose tool has a preview gets it as comment lines above the JSON (the
    diff of what it would change, ``render.PREVIEW_LINES`` at most).
    """
    if block.kernel_tool and block.name == "run_cell":
        code = (
            block.parsed_arguments.get("code", "")
            if isinstance(block.parsed_arguments, dict)
            else ""
        )
        return (
            f"%%agent_run {block.id}\n"
            "# code the agent proposes for this kernel: edit it if you like, run this cell to"
            " approve;\n# its output goes back to the agent\n"
            f"{code}"
        )
    if block.kernel_tool:
        return "%agent resume"
    arguments = json.dumps(block.parsed_arguments, indent=2, ensure_ascii=False)
    diff = preview_lines(block)
    shown = "".join(f"#   {line}\n" for line in diff)  # comments: %%approve reads only the JSON
    return (
        f"%%approve {block.id}\n"
        f"# {block.name} — edit the arguments below, then run this cell to approve\n"
        + (f"# what it would change:\n{shown}" if diff else "")
        + arguments
    )
