"""README's first command, `make run`, must name a notebook that exists where jupyter looks.

`jupyter lab --ServerApp.root_dir=DIR FILE` resolves FILE against the working directory
(the repository), not DIR: a bare `welcome.ipynb` fails at start with "No such file".
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_make_run_opens_an_existing_notebook_inside_its_root_dir() -> None:
    recipe = re.search(r"^run:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe is not None, "the Makefile has a run target"
    words = shlex.split(recipe.group(1).replace("$(ROOT_FLAG)", ""))
    root = next(w.split("=", 1)[1] for w in words if w.startswith("--ServerApp.root_dir="))
    notebook = words[-1]
    assert (ROOT / notebook).is_file(), f"{notebook} does not exist from the repository root"
    assert (ROOT / notebook).resolve().is_relative_to((ROOT / root).resolve())
    assert "make run" in (ROOT / "README.md").read_text().split("\n", 8)[3]
