"""`make test` runs every step and reports each one before failing (scripts/test.sh).

One failing step must not hide the others: a newcomer whose lint fails still learns whether
the tests pass. The runner calls `$MAKE STEP` per step; a stand-in `make` records the calls.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(tmp_path: Path, *steps: str, failing: str) -> subprocess.CompletedProcess[str]:
    fake = tmp_path / "make"
    fake.write_text(f'#!/bin/sh\necho "$2" >> {tmp_path}/calls\n[ "$2" != "{failing}" ]\n')
    fake.chmod(0o755)
    env = {**os.environ, "MAKE": str(fake), "TEST_SUMMARY": str(tmp_path / "summary.txt")}
    return subprocess.run(
        [str(ROOT / "scripts" / "test.sh"), *steps],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_a_failing_step_does_not_stop_the_next_ones(tmp_path: Path) -> None:
    done = _run(tmp_path, "lint", "unit", "browser", failing="lint")
    assert done.returncode == 1
    assert (tmp_path / "calls").read_text().split() == ["lint", "unit", "browser"]
    summary = done.stdout.split("=== summary", 1)[1]
    assert "lint" in summary and "FAILED" in summary.split("unit")[0]
    assert summary.count("passed") == 2


def test_all_steps_passing_exits_zero(tmp_path: Path) -> None:
    done = _run(tmp_path, "lint", "unit", failing="none")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAILED" not in done.stdout


def test_make_test_runs_every_step_of_the_suite() -> None:
    """The default steps are the Makefile's targets, so none is silently dropped."""
    script = (ROOT / "scripts" / "test.sh").read_text()
    makefile = (ROOT / "Makefile").read_text()
    steps = script.split("STEPS=(", 2)[2].split(")", 1)[0].split()
    assert steps == ["lint", "typecheck", "unit", "js", "server", "notebooks-check", "browser"]
    for step in steps:
        assert f"\n{step}: setup" in makefile, step
