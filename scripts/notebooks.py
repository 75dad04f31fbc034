"""Re-run the example notebooks in place, so their saved outputs are what nbval expects.

Run: ``.venv/bin/python scripts/notebooks.py [NAME ...]`` (default: every notebook in
notebooks/). Each runs offline on the scripted model whose script sits beside it,
in embedded mode (no server), with a throwaway Jupyter data dir so no earlier
session leaks in. Streams are coalesced and no timing is recorded, so a re-run
changes only what really changed. What differs from run to run (times, loopback
preview links with their tokens, session ids) is saved as the placeholder that
nbval's sanitizer (notebooks/nbval.cfg) turns it into, so no stale time or dead
link is shipped. CI checks them with ``pytest --nbval``.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

FOLDER = Path(__file__).resolve().parent.parent / "notebooks"
SANITIZER = FOLDER / "nbval.cfg"


def sanitizers() -> list[tuple[re.Pattern[str], str]]:
    """The (regex, replacement) pairs of notebooks/nbval.cfg, in its order."""
    config = configparser.ConfigParser()
    config.read(SANITIZER, encoding="utf-8")
    return [(re.compile(config[s]["regex"]), config[s]["replace"]) for s in config.sections()]


def sanitize(value: Any, rules: list[tuple[re.Pattern[str], str]]) -> Any:
    """``value`` (an output's text, data or list of lines) with every rule applied."""
    if isinstance(value, str):
        for pattern, replacement in rules:
            value = pattern.sub(replacement, value)
        return value
    if isinstance(value, list):
        return [sanitize(v, rules) for v in value]
    if isinstance(value, dict):
        return {k: sanitize(v, rules) for k, v in value.items()}
    return value


def sanitize_outputs(nb: Any) -> None:
    """Replace what differs per run in every output's text and data (in place)."""
    rules = sanitizers()
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            for key in ("text", "data"):
                if key in output:
                    output[key] = sanitize(output[key], rules)


def main(names: list[str]) -> None:
    data = tempfile.mkdtemp(prefix="agentspace-notebooks-")
    os.environ["JUPYTER_DATA_DIR"] = data
    try:
        run(names)
    finally:  # the kernels' workspaces may be mounted (quota filesystems, as root)
        from agentspace.sandbox.diskleftovers import release_under

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
        sanitize_outputs(nb)
        nbformat.write(nb, path)
        print(f"ran {path.name}")


if __name__ == "__main__":
    main(sys.argv[1:])
