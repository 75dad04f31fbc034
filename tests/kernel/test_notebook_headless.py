"""Headless (nbclient-style, no server): the agent reads and edits the file it was told, with
the conflict check, reads only what the kernel ran where it was told nothing, and sees the
kernel's variables (a 10-million-row DataFrame among them) through list_variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .harness import embedded_kernel


def write_notebook(path: Path, sources: list[str]) -> None:
    cells = [{"id": f"c{i}", "cell_type": "code", "metadata": {}, "source": s, "outputs": [],
              "execution_count": None} for i, s in enumerate(sources)]  # fmt: skip
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                                "cells": cells}))  # fmt: skip


def script(path: Path, *turns: dict[str, Any]) -> str:
    path.write_text(json.dumps({"turns": list(turns)}))
    return f"scripted//{path}"


def sources(path: Path) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"]]


FIX = {"name": "edit_cell",
       "arguments": {"cell_id": "c1", "old_string": "1/0", "new_string": "1/1"}}  # fmt: skip


def test_a_told_file_is_edited_and_a_change_meanwhile_is_refused(tmp_path: Path) -> None:
    nb = tmp_path / "work.ipynb"
    write_notebook(nb, ["x = 1", "1/0"])
    model = script(
        tmp_path / "s.json",
        {"text": "Reading.", "tool_calls": [{"name": "read_notebook", "arguments": {}}]},
        {"text": "The fix:", "tool_calls": [FIX]},
        {"text": "Done."},
        {"text": "Again:", "tool_calls": [FIX]},
        {"text": "It changed; I will read it again."},
    )
    with embedded_kernel(tmp_path) as kernel:
        kernel.run(f"%env AGENTSPACE_NOTEBOOK={nb}")
        kernel.run("%load_ext agentspace")
        assert "ZeroDivisionError" in str(kernel.run("1/0").errors)
        out = kernel.run(f"%%agent --new --model {model}\nfix it")
        assert "read from the saved notebook file" in out.text
        assert "-1/0" in out.text and "+1/1" in out.text  # the diff, held for approval
        assert "the last error" in out.text  # the context it got, said in the view
        done = kernel.run("%%approve call_1_0")
        assert "Edited cell c1 in the notebook file (saved)" in done.text
        assert sources(nb) == ["x = 1", "1/1"]

        write_notebook(nb, ["x = 1", "1/0"])  # back, for a second proposal
        kernel.run("%%agent\nagain")
        write_notebook(nb, ["x = 1", "1 / 0  # the user's"])  # saved meanwhile by someone
        refused = kernel.run("%%approve call_3_0")
        assert "old_string was not found in cell 'c1'" in refused.text
        assert sources(nb) == ["x = 1", "1 / 0  # the user's"]  # nothing lost


def test_an_untold_kernel_reads_what_it_ran_and_edits_nothing(tmp_path: Path) -> None:
    model = script(
        tmp_path / "s.json",
        {"text": "Reading.", "tool_calls": [{"name": "read_notebook", "arguments": {}}]},
        {"text": "Editing.", "tool_calls": [FIX]},
        {"text": "Done."},
    )
    with embedded_kernel(tmp_path) as kernel:
        kernel.run("%load_ext agentspace")
        kernel.run("total = 40 + 2")
        out = kernel.run(f"%%agent --new --model {model}\nwhat did I run?")
        assert "cannot tell which notebook file it runs" in out.text
        assert "total = 40 + 2" in out.text
        refused = kernel.run("%%approve call_1_0")
        assert "Cells cannot be edited" in refused.text


def test_list_variables_on_a_kernel_holding_ten_million_rows(tmp_path: Path) -> None:
    model = script(
        tmp_path / "s.json",
        {"text": "Looking.", "tool_calls": [{"name": "list_variables", "arguments": {}}]},
        {"text": "Seen."},
    )
    with embedded_kernel(tmp_path) as kernel:
        kernel.run("%load_ext agentspace")
        setup = kernel.run(
            "import numpy as np, pandas as pd\n"
            "df = pd.DataFrame({'a': np.arange(10_000_000), 'b': np.zeros(10_000_000)})\n"
            "OPENAI_API_KEY = 'sk-proj-' + 'x' * 40"
        )
        assert setup.errors == []
        out = kernel.run(f"%%agent --new --model {model}\nwhat is in my namespace?")
        assert "df: pandas" in out.text and "10000000" in out.text.replace(",", "")
        assert "x" * 40 not in out.text  # a secret-named variable shows no value
