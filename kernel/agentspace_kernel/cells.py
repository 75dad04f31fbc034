"""Approvable cells: the text of the cell inserted below a paused run.

The cell is the approval: running it approves (with the arguments as edited
in it), so a headless run, a saved notebook and a person reading it later all
see which call was approved and with what.
"""

from __future__ import annotations

import json

from .view import ToolBlock


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
