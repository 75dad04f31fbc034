"""Approvable cells: the text of the cell inserted below a paused run.

The cell is the approval: running it approves (with the arguments as edited
in it), so a headless run, a saved notebook and a person reading it later all
see which call was approved and with what.
"""

from __future__ import annotations

import json

from .view import ToolBlock


def already_in(notebook_file: str, cell: str) -> bool:
    """Whether the saved notebook already has a cell starting with ``cell``'s first line.

    A notebook run again ("Run All") holds the approvable cells inserted the first
    time; a scripted model makes the same call ids, so inserting again would
    duplicate them. Unsaved edits are not seen: this reads the file on disk.
    """
    if not notebook_file:
        return False
    first = cell.split("\n", 1)[0].strip()
    try:
        with open(notebook_file, encoding="utf-8") as f:
            cells = json.load(f).get("cells", [])
    except (OSError, ValueError, AttributeError):
        return False
    for c in cells:
        source = c.get("source", "")
        text = "".join(source) if isinstance(source, list) else str(source)
        if text.lstrip().split("\n", 1)[0].strip() == first:
            return True
    return False


def approval_cell(block: ToolBlock) -> str:
    """``%%approve ID`` + a comment + the arguments as JSON (or the code, for run_cell)."""
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
    return (
        f"%%approve {block.id}\n"
        f"# {block.name} — edit the arguments below, then run this cell to approve\n"
        f"{arguments}"
    )
