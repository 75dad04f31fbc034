"""Re-run the example notebooks in place, so their saved outputs are what nbval expects.

Run: ``.venv/bin/python scripts/notebooks.py [NAME ...]`` (default: every notebook in
notebooks/). Each runs offline on the scripted model whose script sits beside it,
in embedded mode (no server), with a throwaway Jupyter data dir so no earlier
session leaks in. Streams are coalesced and no timing is recorded, so a re-run
changes only what really changed. CI checks them with ``pytest --nbval``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

FOLDER = Path(__file__).resolve().parent.parent / "notebooks"


def main(names: list[str]) -> None:
    data = tempfile.mkdtemp(prefix="agentspace-notebooks-")
    os.environ["JUPYTER_DATA_DIR"] = data
    try:
        run(names)
    finally:  # the kernels' workspaces may be mounted (quota filesystems, as root)
        from agentspace.workspace.diskleftovers import release_under

        release_under(Path(data))
        shutil.rmtree(data, ignore_errors=True)


def run(names: list[str]) -> None:
    paths = [FOLDER / f"{n.removesuffix('.ipynb')}.ipynb" for n in names] or sorted(
        FOLDER.glob("*.ipynb")
    )
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(
            nb,
            timeout=180,
            coalesce_streams=True,
            record_timing=False,
            resources={"metadata": {"path": str(FOLDER)}},
        )
        client.execute()
        nbformat.write(nb, path)
        print(f"ran {path.name}")


if __name__ == "__main__":
    main(sys.argv[1:])
