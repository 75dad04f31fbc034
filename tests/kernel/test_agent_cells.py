"""The Agent (Python) kernel's cell rule, as a pure function (`agent_kernel.cells`)."""

from __future__ import annotations

import pytest

from agentspace_kernel.agent_kernel.cells import rewrite


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("summarise this notebook", "%%agent\nsummarise this notebook\n"),
        ("two\nlines\n", "%%agent\ntwo\nlines\n"),
        ("\n\n  \nafter blank lines", "%%agent\nafter blank lines\n"),
        ("# only a comment\n# and another", "%%agent\n# only a comment\n# and another\n"),
        ("x = 1", "%%agent\nx = 1\n"),  # Python without %%python is a prompt too
        ("  indented prompt\n  more", "%%agent\n  indented prompt\n  more\n"),
        ("what is %time?", "%%agent\nwhat is %time?\n"),
        ("%%agent\nalready", "%%agent\nalready"),
        ("%%python\nprint(1)", "# %%python\nprint(1)"),
        ("%%python   \t\nprint(1)\n", "# %%python\nprint(1)\n"),
        ("\n\n%%python\nx = 1\n", "# %%python\nx = 1\n"),
        ("  %%python\nx = 1\n", "# %%python\nx = 1\n"),
        ("%%python", "# %%python\n"),
        ("%%python\n\n%%timeit\nx = 1\n", "%%timeit\nx = 1\n"),
        ("%%python --bg\nprint(1)\n", "%%python --bg\nprint(1)\n"),  # IPython's script magic
        ("%%python3\nprint(1)\n", "%%python3\nprint(1)\n"),
        ("%time x = 1", "%time x = 1"),
        ("%%bash\necho hi\n", "%%bash\necho hi\n"),
        ("!ls -la", "!ls -la"),
        ("\n  !ls\n", "\n  !ls\n"),
        ("", ""),
        ("   \n\t\n", "   \n\t\n"),
    ],
)
def test_rewrite(cell: str, expected: str) -> None:
    assert rewrite(cell) == expected


def test_python_marker_keeps_the_line_numbers_of_the_cell() -> None:
    cell = "%%python\na = 1\nraise ValueError\n"
    assert rewrite(cell).splitlines()[2] == cell.splitlines()[2]
    compile(rewrite(cell), "<cell>", "exec")  # the marker line is valid Python
