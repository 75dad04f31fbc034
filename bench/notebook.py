"""The notebook tools: ``read_notebook`` on a 500-cell notebook with outputs.

Run: ``.venv/bin/python bench/notebook.py [--quick]``. A notebook of 500 code cells is written
with the outputs a working notebook has (printed text, reprs, HTML tables, PNG figures,
errors with coloured tracebacks), then ``read_notebook`` reads it whole through the file
adapter (read, parse, ids, render), as the tool runs in an embedded kernel or on a server
with no browser open. Baseline, in the same run: ``json.load`` of the same file, the least
any reader pays. Tokens are estimated as characters / 4 (no tokenizer download here), for
what ``read_notebook`` sends against the raw ``.ipynb`` JSON a naive tool would send.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import time
from pathlib import Path
from typing import Any

from harness import Results, arguments, median, met, pct, ratio, run, scratch

report = Results("notebook")
CELLS = 500


def png(width: int, height: int, size: int) -> str:
    header = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR"
    return base64.b64encode(header + struct.pack(">II", width, height) + os.urandom(size)).decode()


def outputs_for(i: int) -> list[dict[str, Any]]:
    kind = i % 5
    if kind == 0:
        text = "".join(f"epoch {n}: loss={1 / (n + 1):.4f}\n" for n in range(40))
        return [{"output_type": "stream", "name": "stdout", "text": text}]
    if kind == 1:
        rows = "".join(f"<tr><td>{n}</td><td>{n * 1.5}</td></tr>" for n in range(30))
        plain = "\n".join(f"{n:>4} {n * 1.5:>8}" for n in range(30))
        data = {"text/plain": plain, "text/html": f"<table>{rows}</table>"}
        return [{"output_type": "execute_result", "execution_count": i, "metadata": {},
                 "data": data}]  # fmt: skip
    if kind == 2:
        data = {"image/png": png(640, 480, 30_000), "text/plain": "<Figure size 640x480>"}
        return [{"output_type": "display_data", "metadata": {}, "data": data}]
    if kind == 3:
        trace = [f"\x1b[0;31m{'-' * 75}\x1b[0m", "\x1b[0;31mKeyError\x1b[0m Traceback"]
        trace += [f"\x1b[0;32mFile site.py:{n}\x1b[0m in f{n}()" for n in range(20)]
        return [{"output_type": "error", "ename": "KeyError", "evalue": "'col'",
                 "traceback": trace}]  # fmt: skip
    return []


def notebook() -> dict[str, Any]:
    cells = [
        {"id": f"cell-{i}", "cell_type": "code", "metadata": {}, "execution_count": i,
         "source": f"# step {i}\nresult_{i} = compute(data, step={i})\nresult_{i}",
         "outputs": outputs_for(i)}
        for i in range(CELLS)
    ]  # fmt: skip
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}


async def body(quick: bool) -> None:
    from agentspace.notebook.files import FileNotebook
    from agentspace.tools.base import ToolContext
    from agentspace.tools.notebook import read_notebook

    reps = 15 if quick else 60
    with scratch() as tmp:
        path = tmp / "big.ipynb"
        path.write_text(json.dumps(notebook(), indent=1))
        raw = path.read_text()

        async def access(key: str) -> FileNotebook:
            return FileNotebook(path, label=key)

        ctx = ToolContext(folder=tmp, session_id="bench", notebook="big.ipynb", notebooks=access)
        args = read_notebook.parse_arguments({})
        text = (await read_notebook.run(ctx, args)).text  # warm: imports, first parse
        tool_times, load_times = [], []
        for _ in range(reps):
            t0 = time.perf_counter()
            json.loads(Path(path).read_text())
            load_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            text = (await read_notebook.run(ctx, args)).text
            tool_times.append(time.perf_counter() - t0)
        one = read_notebook.parse_arguments({"cell_id": f"cell-{CELLS // 2}"})
        single = []
        for _ in range(reps):
            t0 = time.perf_counter()
            await read_notebook.run(ctx, one)
            single.append(time.perf_counter() - t0)
    p50, base = median(tool_times) * 1000, median(load_times) * 1000
    report(f"read_notebook, {CELLS} cells with outputs, p50", round(p50, 1), unit="ms",
           baseline=f"json.load of the file {base:.1f} ms", ratio=ratio(p50, base),
           target="≤ 50 ms", verdict=met(p50 <= 50))  # fmt: skip
    report("read_notebook, p90", round(pct(tool_times, 0.9) * 1000, 1), unit="ms")
    report("read_notebook of one cell (by id), p50", round(median(single) * 1000, 1), unit="ms",
           target="≤ 50 ms", verdict=met(median(single) * 1000 <= 50))  # fmt: skip
    tokens, raw_tokens = len(text) // 4, len(raw) // 4
    report("tokens read_notebook sends (chars/4)", tokens,
           baseline=f"the .ipynb JSON: {raw_tokens} tokens", ratio=ratio(tokens, raw_tokens),
           target="bounded (60,000 chars), says how to read on")  # fmt: skip
    report.note(
        f"file {len(raw) / 1e6:.1f} MB; the rendering showed "
        f"{text.count('## Cell ')} of {CELLS} cells within its bound"
    )


if __name__ == "__main__":
    parsed = arguments(__doc__).parse_args()
    run(report, parsed, lambda: body(parsed.quick))
