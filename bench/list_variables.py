"""list_variables benchmark (issue 12): the kernel's describer on a big, mixed namespace.

Run: ``.venv/bin/python bench/list_variables.py [--quick]``. Every figure is measured in this
one process next to a baseline of the same run.

1. time: ``agentspace_kernel.variables.describe`` over a namespace of 1,000 variables of
   mixed types (ints, floats, strings, lists, dicts, sets, functions, class instances,
   small numpy arrays, small DataFrames, a few secret-named strings) plus one 1 GB
   DataFrame (1.25e8 float64 values in 8 columns; --quick: 125 MB), p50 and p90 of N
   calls. Baselines: IPython's ``%whos`` over the same namespace in an InteractiveShell
   (its table, printed to a buffer), and ``dir()`` + ``type()`` only (a name and a type
   per variable: the least a listing can do).
2. memory: what one call adds: the ``tracemalloc`` peak during it (every Python
   allocation, numpy's and pandas' included), and the RSS before and after.
3. the engine's side: ``agentspace.notebook.secrets.redact`` over the listing's text (the
   text the model reads), and over 1 MB of the project's own source.

Targets: list_variables p50 <= 50 ms; memory added <= 1 MB; redact of 1 MB <= 10 ms.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import ROOT, Results, arguments, median, met, pct, ratio, run

report = Results("list_variables")


def ms(seconds: float) -> float:
    return seconds * 1000


def rss() -> int:
    """This process's resident set size in bytes (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def namespace(quick: bool) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    values = 12_500_000 if quick else 125_000_000  # float64: 100 MB or 1 GB
    rows = values // 8
    t0 = time.perf_counter()
    big = pd.DataFrame({f"c{i}": np.arange(rows, dtype="float64") + i for i in range(8)})
    built = time.perf_counter() - t0
    report.note(
        f"the big DataFrame: {rows:,} rows × 8 float64 columns, "
        f"{big.memory_usage(deep=False).sum() / 2**30:.2f} GiB, built in {built:.1f} s"
    )

    class Point:
        def __init__(self, x: int) -> None:
            self.x = x

        def __repr__(self) -> str:
            return f"Point({self.x})"

    def helper(a: int, b: str = "x") -> str:
        return b * a

    small = pd.DataFrame({"a": range(50), "b": [f"s{i}" for i in range(50)]})
    kinds: list[Callable[[int], Any]] = [
        lambda i: i,
        lambda i: i / 7,
        lambda i: f"text number {i} " * 3,
        lambda i: list(range(i % 50)),
        lambda i: {f"k{j}": j for j in range(i % 20)},
        lambda i: set(range(i % 10)),
        lambda i: (i, str(i)),
        lambda i: helper,
        lambda i: Point(i),
        lambda i: np.arange(i % 100 + 1, dtype="float64"),
        lambda i: small,
        lambda i: small["a"],
        lambda i: None,
        lambda i: b"bytes" * (i % 30),
    ]
    ns: dict[str, Any] = {f"var_{i:04d}": kinds[i % len(kinds)](i) for i in range(990)}
    for i in range(10):  # secret-named: type and length only
        ns[f"SERVICE_{i}_API_KEY"] = f"sk-test-{i:040d}"
    ns["big"] = big
    return ns


def timed(fn: Callable[[], Any], repeats: int) -> list[float]:
    fn()  # warm: pandas' formatters, IPython's magics load on first use
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def main(quick: bool) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    from agentspace.notebook.secrets import redact
    from agentspace_kernel.variables import describe

    ns = namespace(quick)
    repeats = 10 if quick else 30
    shell = InteractiveShell.instance()
    shell.user_ns.update(ns)

    def whos() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            shell.run_line_magic("whos", "")

    def names_and_types() -> list[tuple[str, str]]:
        return [(k, type(v).__name__) for k, v in ns.items() if not k.startswith("_")]

    def listing() -> str:
        return describe(shell.user_ns, hidden=shell.user_ns_hidden)

    text = listing()
    report.note(
        f"the listing: {len(text):,} characters, {text.count(chr(10)) + 1:,} lines; "
        f"last line: {text.splitlines()[-1][:120]}"
    )
    ours = timed(listing, repeats)
    base_whos = timed(whos, repeats)
    base_types = timed(names_and_types, repeats)
    p50, p90 = ms(median(ours)), ms(pct(ours, 0.9))
    w50, t50 = ms(median(base_whos)), ms(median(base_types))
    label = "1 GB" if not quick else "100 MB"
    report(f"list_variables p50, 1,000 variables + a {label} DataFrame", p50,
           f"%whos {w50:.1f} ms", "<= 50 ms", met(p50 <= 50), unit="ms",
           ratio=ratio(p50, w50))  # fmt: skip
    report("list_variables p90", p90, f"%whos p90 {ms(pct(base_whos, 0.9)):.1f} ms",
           "reported", unit="ms", ratio=ratio(p90, ms(pct(base_whos, 0.9))))  # fmt: skip
    report("list_variables p50 vs names and types only", p50, f"dir()+type() {t50:.2f} ms",
           "reported", unit="ms", ratio=ratio(p50, t50))  # fmt: skip
    # The 20,000-character cap stops the listing after some 290 variables; %whos prints all.
    every = timed(lambda: describe(shell.user_ns, hidden=shell.user_ns_hidden,
                                   limit=10**9, budget=60), repeats)  # fmt: skip
    e50 = ms(median(every))
    report("every variable described (no size cap), p50", e50, f"%whos {w50:.1f} ms",
           "reported", unit="ms", ratio=ratio(e50, w50))  # fmt: skip

    before = rss()
    tracemalloc.start()
    try:
        listing()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    after = rss()
    tracemalloc.start()
    try:
        whos()
        _, whos_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    report("list_variables memory added (tracemalloc peak)", peak / 1024,
           f"%whos {whos_peak / 1024:,.0f} KiB", "<= 1 MB", met(peak <= 1024 * 1024),
           unit="KiB", ratio=ratio(peak, whos_peak))  # fmt: skip
    report("list_variables RSS after - before one call", (after - before) / 1024, "-",
           "<= 1 MB", met(after - before <= 1024 * 1024), unit="KiB")  # fmt: skip

    red = timed(lambda: redact(text), repeats)
    report(f"redact the listing ({len(text):,} chars)", ms(median(red)), "-", "reported",
           unit="ms")  # fmt: skip
    source = "".join(p.read_text() for p in sorted((ROOT / "extension").rglob("*.py")))
    mb = (source * (1_000_000 // len(source) + 1))[:1_000_000]
    red_mb = timed(lambda: redact(mb), repeats)
    scan = timed(lambda: mb.find("\0never"), repeats)
    r50 = ms(median(red_mb))
    report("redact 1 MB of source", r50, f"one str.find {ms(median(scan)):.2f} ms",
           "<= 10 ms", met(r50 <= 10), unit="ms",
           ratio=ratio(r50, ms(median(scan))))  # fmt: skip


if __name__ == "__main__":
    args = arguments(__doc__).parse_args()
    os.chdir(Path(__file__).resolve().parent)
    run(report, args, lambda: main(args.quick))
