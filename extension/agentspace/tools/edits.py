"""Exact-text replacement, the one rule of edit_file and edit_cell.

The model names text to replace by copying it; a copy that does not match, or matches more
than once, is refused with what to do, never guessed at.
"""

from __future__ import annotations

from typing import Any

from agentspace.errors import ToolError


def replace_exact(
    text: str, old: str, new: str, *, replace_all: bool, where: str, reread: str, **data: Any
) -> tuple[str, int]:
    """``text`` with ``old`` replaced by ``new`` (exactly one occurrence unless
    ``replace_all``) and how many there were; else the ToolError the model can act on
    (edit_file's and edit_cell's rule: ``where`` names the file or cell, ``reread`` how to
    copy the text again)."""
    count = text.count(old)
    if count == 0:
        raise ToolError(
            f"old_string was not found in {where}. It must match exactly, including whitespace "
            f"and indentation; {reread}",
            **data,
        )
    if count > 1 and not replace_all:
        raise ToolError(
            f"old_string occurs {count} times in {where}. Add surrounding lines to "
            "old_string so it matches exactly once, or set replace_all to true to "
            "replace every occurrence.",
            matches=count,
            **data,
        )
    return text.replace(old, new, -1 if replace_all else 1), count
