"""The example notebooks as shipped: no stale times, dead preview links or session ids.

scripts/notebooks.py saves what differs per run as nbval's placeholders (notebooks/nbval.cfg),
so nothing a reader sees in a saved output is a leftover of the machine that ran it.
"""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def rules() -> dict[str, re.Pattern[str]]:
    config = configparser.ConfigParser()
    config.read(NOTEBOOKS / "nbval.cfg", encoding="utf-8")
    return {s: re.compile(config[s]["regex"]) for s in config.sections()}


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_no_output_holds_what_the_sanitizer_replaces(path: Path) -> None:
    outputs = [o for c in json.loads(path.read_text())["cells"] for o in c.get("outputs", [])]
    text = json.dumps([[o.get("text"), o.get("data")] for o in outputs], ensure_ascii=False)
    for name, pattern in rules().items():
        found = pattern.search(text.replace("\\n", "\n"))
        assert found is None, f"{path.name} ships a stale {name}: {found and found.group()}"
