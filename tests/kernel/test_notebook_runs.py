"""A shipped notebook run the way JupyterLab runs it: Run All, save, Restart & Run All.

The kernel is started by a real Jupyter server for the notebook's file (as when JupyterLab
opens it); each code cell runs in order, and a ``set_next_input`` payload is applied as
JupyterLab applies it: a new cell right below the one that ran. The notebook is then saved
and run again from the saved file in a fresh kernel.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .harness import Server, jupyter_server

NOTEBOOKS = Path(__file__).parents[2] / "notebooks"


def run_all(server: Server, name: str) -> list[str]:
    """Run every code cell of the saved notebook in a new kernel, inserting the cells its
    payloads ask for, save it, and return the texts of the payloads applied."""
    path = server.root / name
    nb = json.loads(path.read_text())
    inserted: list[str] = []
    with server.kernel(name) as kernel:
        i = 0
        while i < len(nb["cells"]):
            cell = nb["cells"][i]
            if cell["cell_type"] == "code":
                out = kernel.run("".join(cell["source"]))
                assert out.errors == [], out.errors
                if out.next_input is not None:  # JupyterLab: a new cell right below
                    inserted.append(out.next_input)
                    new: dict[str, Any] = {
                        "cell_type": "code", "metadata": {}, "outputs": [],
                        "execution_count": None, "source": out.next_input,
                    }  # fmt: skip
                    nb["cells"].insert(i + 1, new)
                    path.write_text(json.dumps(nb))  # the user saves
                    i += 1  # Run All queued the cells it had: the new one does not run now
            i += 1
        path.write_text(json.dumps(nb))
        files = kernel.run("%agent files").text
    return [*inserted, files]


def test_approvals_notebook_run_twice_never_approves_the_rm_it_rejects(tmp_path: Path) -> None:
    with jupyter_server(tmp_path) as server:
        for name in ("approvals.ipynb", "approvals.json"):
            shutil.copy(NOTEBOOKS / name, server.root / name)
        *inserted, files = run_all(server, "approvals.ipynb")
        # every call already has its cell in the notebook (the %reject holds call_2_0)
        assert inserted == []
        assert "data.csv" in files
        *inserted, files = run_all(server, "approvals.ipynb")  # Restart & Run All
        assert inserted == []
        assert "data.csv" in files, "the rm the notebook rejects ran"
        sources = ["".join(c["source"]) for c in json.loads(
            (server.root / "approvals.ipynb").read_text())["cells"]]  # fmt: skip
        assert not any(s.startswith("%%approve call_2_0") for s in sources)
