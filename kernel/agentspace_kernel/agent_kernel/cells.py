"""How the "Agent (Python)" kernel reads a cell: a prompt for the agent unless it says otherwise.

A pure function of the cell's text, so the rule is tested without a kernel:

- the first non-blank line is ``%%python`` (trailing spaces allowed): the rest is Python, run in
  the kernel's namespace. The ``%%python`` line becomes a comment rather than vanishing, so line
  numbers in tracebacks match the cell as the user sees it; if the next non-blank line is itself a
  cell magic (``%%python`` then ``%%timeit``) the line is dropped, as IPython reads a cell magic
  only on a cell's first line. ``%%python`` with arguments (``%%python --bg``) is IPython's own
  script magic (a subprocess) and is left alone;
- the first non-blank line starts with ``%`` or ``!``: a magic or a shell escape, unchanged;
- a cell of only whitespace: unchanged (nothing runs);
- anything else, comments included: ``%%agent`` is put in front, so the text is the prompt.
"""

from __future__ import annotations

AGENT_MAGIC = "%%agent"
PYTHON_MAGIC = "%%python"
PYTHON_MARKER = "# %%python\n"


def _first_code_line(lines: list[str]) -> int | None:
    return next((i for i, line in enumerate(lines) if line.strip()), None)


def rewrite_lines(lines: list[str]) -> list[str]:
    """Rewrite a cell given as lines with their line ends (IPython's transformer convention)."""
    first = _first_code_line(lines)
    if first is None:
        return lines
    head = lines[first].strip()
    if head == PYTHON_MAGIC:
        rest = lines[first + 1 :]
        following = _first_code_line(rest)
        if following is not None and rest[following].lstrip().startswith("%%"):
            return rest[following:]
        return [PYTHON_MARKER, *rest]
    if head.startswith(("%", "!")):
        return lines
    body = lines[first:]
    if not body[-1].endswith("\n"):
        body = [*body[:-1], body[-1] + "\n"]
    return [AGENT_MAGIC + "\n", *body]


def rewrite(cell: str) -> str:
    """`rewrite_lines` on a cell's text."""
    return "".join(rewrite_lines(cell.splitlines(keepends=True)))
