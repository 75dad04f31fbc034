"""What every benchmark here shares: percentiles and the results table."""

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
