"""What every benchmark here shares: percentiles, the results table, findings as they come."""

from __future__ import annotations

import os
import sys
import time


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``; NaN for none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Report:
    """Rows of (measure, result, baseline, target), printed live and as Markdown at the end."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []

    def __call__(self, name: str, value: str, baseline: str, target: str) -> None:
        self.rows.append((name, value, baseline, target))
        print(f"  {name}: {value}  (baseline {baseline}; target {target})", flush=True)

    def table(self) -> None:
        print("\n| measure | result | baseline (same run) | target |\n|---|---|---|---|")
        for row in self.rows:
            print("| " + " | ".join(row) + " |")
        python = sys.version.split()[0]
        print(f"\n{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Python {python}")


# One run's findings, for the benches that print a verdict column and notes
# (server.py, kernel.py): rows of (measure, result, baseline, target, verdict).
RESULTS: list[tuple[str, str, str, str, str]] = []
NOTES: list[str] = []


def report(name: str, value: str, baseline: str, target: str, verdict: str = "") -> None:
    RESULTS.append((name, value, baseline, target, verdict))
    print(f"  {name}: {value}  (baseline {baseline}; target {target}) {verdict}", flush=True)


def note(text: str) -> None:
    NOTES.append(text)
    print(f"  note: {text}", flush=True)


def met(ok: bool) -> str:
    return "met" if ok else "**not met**"
