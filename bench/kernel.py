"""Kernel-side benchmark: ``%load_ext``, delta → widget in remote mode, a notebook of agent cells.

Run: ``.venv/bin/python bench/kernel.py [--quick]``. Each figure next to a baseline
measured in the same run:

1. ``%load_ext agentspace`` timed inside N fresh python3 kernels (jupyter_client;
   ``perf_counter`` around ``run_line_magic``), and the modules it imported
   (``sys.modules`` diff); none of litellm, httpx, agentspace.engine.engine, jupyter_server
   may be among them. Baseline: ``%load_ext autoreload`` the same way, in as many
   fresh kernels (alternated with the others, so both see the same import caches).
2. delta → widget, remote mode: a real ``jupyter server`` (bench/server.py's
   ``Server``: temp root/state/runtime, ``JUPYTER_NO_CONFIG=1``, agentspace on) starts
   a kernel through ``POST api/sessions`` (so discovery finds the server); the kernel
   sets ``agentspace_kernel.magics.cellrun.PROBE`` (event ``timestamp`` ms, ``time.time()``
   right after ``RunWidget.update``) and runs ``%%agent`` cells whose scripted model
   streams 400 deltas 10 ms apart. Latency = drawn - timestamp per delta. Also the
   delta → the widget's ``comm_msg`` reaching this process over iopub (what a
   frontend sees). Baseline: an SSE client in this process reading the same
   session's ``events`` during the same runs (arrival - timestamp): the raw stream.
3. 50 ``%%agent`` cells end to end: a notebook (nbformat, temp dir) of
   ``%load_ext agentspace``, ``%agent model scripted/echo`` and 50 ``%%agent`` cells,
   executed by nbclient (embedded mode: no server, as nbval and papermill run):
   wall time, per-cell median (nbclient's ``record_timing``: iopub busy → idle),
   the first ``%%agent`` cell apart. Baseline: the same notebook shape with
   ``%load_ext autoreload``, ``x = 1`` and 50 ``print`` cells. Then the remote
   variant: the same cells in a kernel the server started, through jupyter_client.

Same machine, same clock: the server stamps events with ``time.time()`` (whole ms,
so 0-1 ms of truncation is in every latency). The machine is shared and has 2 cores:
the load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager

from harness import (
    API,
    Api,
    Results,
    Server,
    arguments,
    assistant_deltas,
    client,
    isolated_env,
    median,
    met,
    pct,
    ratio,
    run,
    scratch,
)

report = Results("kernel")
note = report.note

HEAVY = (
    "litellm",
    "httpx",
    "agentspace.engine.engine",
    "jupyter_server",
    "ipywidgets",
    "markdown_it",
)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.2f} ms" if seconds < 0.01 else f"{seconds * 1000:,.1f} ms"


# -- running cells ---------------------------------------------------------------------
class Cells:
    """Execute cells over jupyter_client; iopub messages stamped with ``time.time()``."""

    def __init__(self, client: AsyncKernelClient) -> None:
        self.client = client

    async def run(self, code: str, timeout: float = 120) -> dict[str, Any]:
        msg_id = self.client.execute(code)
        out: dict[str, Any] = {"text": "", "errors": [], "comms": [], "busy": 0.0, "idle": 0.0}
        sent = time.time()
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            at = time.time()
            kind, content = msg["msg_type"], msg["content"]
            if kind == "comm_msg":
                out["comms"].append((at, content))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if kind == "stream":
                out["text"] += content["text"]
            elif kind == "error":
                out["errors"].append("\n".join(content["traceback"]))
            elif kind == "status" and content["execution_state"] == "busy":
                out["busy"] = at
            elif kind == "status" and content["execution_state"] == "idle":
                out["idle"] = at
                break
        await self.client.get_shell_msg(timeout=30)
        out["wall"] = out["idle"] - sent
        if out["errors"]:
            raise RuntimeError(f"cell failed: {code[:80]!r}\n" + "\n".join(out["errors"]))
        return out

    async def value(self, code: str) -> Any:
        """Run ``code`` that prints one JSON value; return it."""
        text = (await self.run(code))["text"]
        return json.loads(text.strip().splitlines()[-1])


@contextlib.asynccontextmanager
async def ready(client: Any) -> AsyncIterator[Cells]:
    """A kernel client's channels open and the kernel answering, closed again after."""
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        yield Cells(client)
    finally:
        client.stop_channels()


@contextlib.asynccontextmanager
async def local_kernel(tmp: Path) -> AsyncIterator[Cells]:
    """A python3 kernel started here by jupyter_client (no server: embedded mode)."""
    manager = AsyncKernelManager(kernel_name="python3")
    await manager.start_kernel(env=isolated_env(tmp), cwd=str(tmp))
    try:
        async with ready(manager.client()) as cells:
            yield cells
    finally:
        await manager.shutdown_kernel(now=True)


# -- 1. %load_ext --------------------------------------------------------------------
LOAD = """\
import sys, time, json
_ip = get_ipython()
_before = set(sys.modules)
_t = time.perf_counter()
_ip.run_line_magic("load_ext", {name!r})
_dt = time.perf_counter() - _t
_new = sorted(set(sys.modules) - _before)
print(json.dumps({{"s": _dt, "new": _new, "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


async def load_ext(tmp: Path, kernels: int) -> None:
    print(f"\n1. %load_ext in {kernels} fresh kernels each", flush=True)
    times: dict[str, list[float]] = {"agentspace": [], "autoreload": []}
    modules: dict[str, list[str]] = {}
    heavy: set[str] = set()
    for i in range(kernels):
        for name in ("agentspace", "autoreload") if i % 2 == 0 else ("autoreload", "agentspace"):
            async with local_kernel(tmp / f"load{i}-{name}") as cells:
                result = await cells.value(LOAD.format(name=name, heavy=HEAVY))
            times[name].append(result["s"])
            modules[name] = result["new"]
            if name == "agentspace":
                heavy.update(result["heavy"])
    ours, base = median(times["agentspace"]), median(times["autoreload"])
    report(
        f"1. `%load_ext agentspace` inside a fresh kernel, median of {kernels}",
        f"{ms(ours)} (range {ms(min(times['agentspace']))}–{ms(max(times['agentspace']))})",
        f"`%load_ext autoreload` {ms(base)}",
        "≤ 300 ms",
        met(ours <= 0.3),
        ratio=ratio(ours, base),
    )
    top = sorted({m.split(".")[0] for m in modules["agentspace"]})
    report(
        "1. modules `%load_ext agentspace` imports",
        f"{len(modules['agentspace'])} ({', '.join(top)})",
        f"autoreload {len(modules['autoreload'])}",
        "none of " + ", ".join(HEAVY[:4]),
        met(not heavy & set(HEAVY[:4])) + (f": {sorted(heavy)} loaded" if heavy else ""),
    )


# -- 2. delta -> widget, remote mode ----------------------------------------------------
@contextlib.asynccontextmanager
async def server_kernel(server: Server, conn: Api, notebook: str) -> AsyncIterator[Cells]:
    """A kernel the server starts for ``notebook``, as JupyterLab does when it opens one."""
    body = {"path": notebook, "name": Path(notebook).name, "type": "notebook"}
    status, session = await conn.request(
        "POST", "api/sessions", {**body, "kernel": {"name": "python3"}}
    )
    if status not in (200, 201):
        raise RuntimeError(f"POST api/sessions -> {status} {session!r}")
    client = AsyncKernelClient()
    client.load_connection_file(
        str(server.dir / "runtime" / f"kernel-{session['kernel']['id']}.json")
    )
    try:
        async with ready(client) as cells:
            yield cells
    finally:
        with contextlib.suppress(Exception):
            await conn.request("DELETE", f"api/sessions/{session['id']}")


SESSION_ID = (
    "print(__import__('json').dumps("
    "__import__('agentspace_kernel.magics.magics').magics.magics._magics.client().session_id))"
)
DRAWN = re.compile(r"\bd(\d+)\b")


async def delta_to_widget(server: Server, conn: Api, tmp: Path, runs: int, deltas: int) -> None:
    print(
        f"\n2. delta -> widget, remote mode: {runs} run(s) of {deltas} deltas 10 ms apart",
        flush=True,
    )
    text = "".join(f"d{j} " for j in range(deltas))
    turns = [{"text": "warm up: *markdown* and `code`", "delay_ms": 0}]
    turns += [{"text": text, "delay_ms": 10} for _ in range(runs)]
    script = tmp / "deltas.json"
    script.write_text(json.dumps({"turns": turns}))
    kernel_lat: list[float] = []
    comm_lat: list[float] = []
    sse_lat: list[float] = []
    first_cell: dict[str, float] = {}
    first_delta: list[float] = []  # each run's first delta (its stream was opened just before)
    # the server's first run imports litellm (~2 s): pay it here, not in the kernel's first cell
    t = time.perf_counter()
    sid = await conn.new_session("bench/warm.ipynb", "scripted/echo")
    sse = await conn.subscribe(sid)
    await asyncio.wait_for(sse.ready, 30)
    await conn.send(sid, "warm up")
    await asyncio.wait_for(sse.done, 60)
    sse.close()
    note(
        "2. the server's first run (litellm import), paid before the kernel starts:"
        f" {ms(time.perf_counter() - t)}"
    )
    async with server_kernel(server, conn, "bench/deltas.ipynb") as cells:
        mode = await cells.run("%load_ext agentspace\n%agent status")
        if "mode:     remote" not in mode["text"]:
            raise RuntimeError(f"the kernel is not in remote mode:\n{mode['text']}")
        # warm up: connect, import httpx/ipywidgets/markdown-it, create the widget once
        warm = await cells.run(f"%%agent --new --model scripted/{script}\nwarm up")
        if not warm["comms"]:
            raise RuntimeError("no widget messages: is the view a widget?")
        first_cell = {"wall": warm["wall"]}
        sid = await cells.value(SESSION_ID)
        for r in range(runs):
            _, info = await conn.request("GET", f"{API}/sessions/{sid}")
            sse = await conn.subscribe(sid, after=int(info["last_seq"]))
            await asyncio.wait_for(sse.ready, 30)
            await cells.run("import agentspace_kernel.magics.cellrun as _c; _c.PROBE = []")
            out = await cells.run(f"%%agent\ngo {r}")
            probe = await cells.value("print(__import__('json').dumps(_c.PROBE)); _c.PROBE = None")
            await asyncio.wait_for(sse.done, 30)
            sse.close()
            stream = assistant_deltas(sse.events())
            if len(stream) != deltas or "".join(e["delta"] for _, _, e in stream) != text:
                raise RuntimeError(f"the SSE baseline saw {len(stream)} of {deltas} deltas")
            sse_lat += [(at - e["timestamp"] / 1000) * 1000 for at, _, e in stream]
            # PROBE also holds the user's message ("go r"): the assistant's are the last ones
            probe = probe[-deltas:]
            if len(probe) != deltas:
                raise RuntimeError(f"PROBE recorded {len(probe)} of {deltas} deltas")
            kernel_lat += [drawn * 1000 - ts for ts, drawn in probe]
            first_delta.append(probe[0][1] * 1000 - probe[0][0])
            # the widget's HTML updates as a frontend receives them: delta j is shown
            # by the first comm_msg whose HTML contains "d<j>"
            shown = 0
            stamps = [e["timestamp"] for _, _, e in stream]
            for at, content in out["comms"]:
                value = str(content.get("data", {}).get("state", {}).get("value", ""))
                found = [int(n) for n in DRAWN.findall(value)]
                top = max(found, default=-1)
                while shown <= top and shown < deltas:
                    comm_lat.append(at * 1000 - stamps[shown])
                    shown += 1
            if shown != deltas:
                raise RuntimeError(f"the widget's comm messages showed {shown} of {deltas} deltas")
    base50 = pct(sse_lat, 0.5)
    k50, k99 = pct(kernel_lat, 0.5), pct(kernel_lat, 0.99)
    report(
        f"2. model delta → widget updated in the kernel, remote mode,"
        f" {len(kernel_lat)} deltas, p50",
        f"{k50:.2f} ms (+{k50 - base50:.2f} ms over the raw stream)",
        f"SSE client, same session and runs: {base50:.2f} ms",
        "≤ 20 ms",
        met(k50 <= 20),
    )
    report(
        "2. same, p99 / max; each run's first delta",
        f"{k99:.2f} / {max(kernel_lat):.2f} ms; "
        + ", ".join(f"{v:.1f}" for v in first_delta)
        + " ms",
        f"SSE {pct(sse_lat, 0.99):.2f} / {max(sse_lat):.2f} ms",
        "reported",
    )
    report(
        "2. model delta → the widget's `comm_msg` received by a client on iopub, p50 / p99",
        f"{pct(comm_lat, 0.5):.2f} / {pct(comm_lat, 0.99):.2f} ms",
        f"SSE {base50:.2f} / {pct(sse_lat, 0.99):.2f} ms",
        "reported",
    )
    report(
        "2. first `%%agent` cell in the kernel (connect, imports, widget), execute → idle",
        ms(first_cell["wall"]),
        "—",
        "reported",
    )


async def first_event(server: Server, conn: Api, repeats: int) -> None:
    """Diagnostic: a run's first event on a stream opened after the POST (as a cell does),
    through httpx on a kept-alive connection (the kernel's client) vs a new connection."""
    sid = await conn.new_session("bench/first.ipynb", "scripted/echo")
    http = client(server, base_url=f"{server.url}{API}/")
    pooled: list[float] = []
    fresh: list[float] = []
    try:
        for i in range(repeats + 1):
            for how in ("kept", "fresh"):
                info = (await http.get(f"sessions/{sid}")).json()
                await http.post(f"sessions/{sid}/messages", json={"text": f"hi {i}"})
                t, t_wall = time.perf_counter(), time.time()
                if how == "kept":
                    first = 0.0
                    headers = {
                        "Accept": "text/event-stream",
                        "Last-Event-ID": str(info["last_seq"]),
                    }
                    async with http.stream("GET", f"sessions/{sid}/events", headers=headers) as r:
                        async for line in r.aiter_lines():
                            first = first or (
                                time.perf_counter() - t if line.startswith("id:") else 0
                            )
                            if "RUN_FINISHED" in line:
                                break
                    if i:
                        pooled.append(first)
                else:
                    sse = await conn.subscribe(sid, after=int(info["last_seq"]))
                    await asyncio.wait_for(sse.done, 30)
                    sse.close()
                    at = sse.events()[0][0]
                    if i:
                        fresh.append(at - t_wall)
    finally:
        await http.aclose()
    report(
        "2. diagnostic: run's first event on an SSE stream opened after the POST, httpx on a"
        f" kept-alive connection (the kernel's client), median of {repeats}",
        ms(median(pooled)),
        f"the SSE client on a new connection {ms(median(fresh))}",
        "—",
        ratio=ratio(median(pooled), median(fresh)),
    )


def render_cost() -> None:
    """Diagnostic: the widget redraws a text block's whole markdown on every batch."""
    from agentspace_kernel.view.render import markdown_html

    def took(text: str, repeats: int = 20) -> float:
        markdown_html(text)
        t = time.perf_counter()
        for _ in range(repeats):
            markdown_html(text)
        return (time.perf_counter() - t) / repeats

    short = "".join(f"d{j} " for j in range(400))
    long = ("Some words of an answer, with `code` and *emphasis* here.\n\n") * 300
    report(
        "2. diagnostic: `markdown_html` of the whole text, per widget update: the bench's"
        f" 400 deltas ({len(short):,} chars, one paragraph)",
        ms(took(short)),
        f"{len(long):,} chars in 300 paragraphs: {ms(took(long))}",
        "—",
    )


def import_cost() -> None:
    """Diagnostic: what embedded mode's engine start imports, in fresh interpreters."""
    import subprocess

    code = "import time; t = time.perf_counter(); import {m}; print(time.perf_counter() - t)"
    took = {}
    for module in ("agentspace.engine.engine", "jsonschema.validators"):
        out = subprocess.run(
            [sys.executable, "-c", code.format(m=module)],
            capture_output=True,
            text=True,
            check=True,
        )
        took[module] = float(out.stdout.strip())
    report(
        "3. diagnostic: `import agentspace.engine.engine` in a fresh interpreter",
        ms(took["agentspace.engine.engine"]),
        f"`import jsonschema.validators` alone {ms(took['jsonschema.validators'])}",
        "—",
    )


# -- 3. a notebook of agent cells --------------------------------------------------------
def build(path: Path, setup: list[str], cells: list[str]) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(src) for src in [*setup, *cells]]
    nbformat.write(nb, path)


def cell_seconds(cell: Any) -> float:
    meta = cell["metadata"]["execution"]
    start = datetime.fromisoformat(meta["iopub.status.busy"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(meta["iopub.status.idle"].replace("Z", "+00:00"))
    return (end - start).total_seconds()


def run_notebook(path: Path, tmp: Path) -> dict[str, Any]:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, kernel_name="python3", record_timing=True, timeout=300,
        resources={"metadata": {"path": str(path.parent)}},
    )  # fmt: skip
    t0 = time.perf_counter()
    client.execute(env=isolated_env(tmp))
    wall = time.perf_counter() - t0
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        raise RuntimeError(f"{path.name}: {errors[0]}")
    return {"wall": wall, "cells": [cell_seconds(c) for c in nb.cells], "nb": nb}


PROMPTS = [f"cell {i}: summarise the data in one line" for i in range(50)]


def notebook_cells(tmp: Path, n: int) -> None:
    print(f"\n3. a notebook of {n} %%agent cells, nbclient (embedded mode)", flush=True)
    agent, base = tmp / "agent" / "agent.ipynb", tmp / "base" / "base.ipynb"
    for p in (agent, base):
        p.parent.mkdir(parents=True)
    setup = ["%load_ext agentspace", "%agent model scripted/echo"]
    build(agent, setup, [f"%%agent\n{p}" for p in PROMPTS[:n]])
    build(base, ["%load_ext autoreload", "x = 1"], [f"print({p!r})" for p in PROMPTS[:n]])
    b = run_notebook(base, tmp / "base")
    a = run_notebook(agent, tmp / "agent")
    text = "".join(o.get("text", "") for o in a["nb"].cells[-1].get("outputs", []))
    if f"You said: {PROMPTS[n - 1]}" not in text:
        raise RuntimeError(f"the last cell's output is not the echo: {text!r}")
    agent_cells, base_cells = a["cells"][2:], b["cells"][2:]
    rest = median(agent_cells[1:])
    report(
        f"3. notebook of {n} `%%agent` cells (scripted/echo), nbclient, embedded: total wall",
        a["wall"],
        f"{n} `print` cells {b['wall']:.2f} s",
        unit="s",
        ratio=ratio(a["wall"], b["wall"]),
    )
    report(
        "3. same, per `%%agent` cell after the first, median (p90)",
        f"{ms(rest)} ({ms(pct(agent_cells[1:], 0.9))})",
        f"`print` cell {ms(median(base_cells))}",
        "reported",
    )
    report(
        "3. same: `%load_ext agentspace` / `%agent model` (engine start)"
        " / first `%%agent` (litellm)",
        f"{ms(a['cells'][0])} / {ms(a['cells'][1])} / {ms(agent_cells[0])}",
        f"`%load_ext autoreload` {ms(b['cells'][0])}",
        "reported",
    )
    note(
        "3. kernel start + shutdown etc. outside the cells:"
        f" agent {a['wall'] - sum(a['cells']):.2f} s,"
        f" baseline {b['wall'] - sum(b['cells']):.2f} s"
    )


async def remote_cells(server: Server, conn: Api, n: int) -> None:
    print(
        f"\n3b. {n} %%agent cells in a kernel the server started (remote mode, widgets)", flush=True
    )
    async with server_kernel(server, conn, "bench/cells.ipynb") as cells:
        setup = [await cells.run(c) for c in ("%load_ext agentspace", "%agent model scripted/echo")]
        outs = [await cells.run(f"%%agent\n{p}") for p in PROMPTS[:n]]
    async with server_kernel(server, conn, "bench/prints.ipynb") as cells:
        await cells.run("%load_ext autoreload")
        base = [await cells.run(f"print({p!r})") for p in PROMPTS[:n]]
    walls = [o["wall"] for o in outs]
    total, base_total = sum(walls) + sum(s["wall"] for s in setup), sum(b["wall"] for b in base)
    report(
        f"3b. {n} `%%agent` cells, remote mode (widget view), execute → idle: sum",
        total,
        f"{n} `print` cells {base_total:.2f} s",
        unit="s",
        ratio=ratio(total, base_total),
    )
    report(
        "3b. same, per cell after the first, median (p90); first cell",
        f"{ms(median(walls[1:]))} ({ms(pct(walls[1:], 0.9))}); {ms(walls[0])}",
        f"`print` cell {ms(median([b['wall'] for b in base]))}",
        "reported",
    )


# -- main ------------------------------------------------------------------------------
async def main_async(args: argparse.Namespace, tmp: Path) -> None:
    await load_ext(tmp / "load", 3 if args.quick else 7)
    notebook_cells(tmp / "nb", 20 if args.quick else 50)
    import_cost()
    render_cost()
    server = Server(tmp, "server", {"agentspace": True})
    print(f"\nstarting jupyter server: {server.start():.2f} s", flush=True)
    conn = Api(server)
    try:
        await delta_to_widget(server, conn, tmp, 1 if args.quick else 3, 400)
        await first_event(server, conn, 5 if args.quick else 15)
        await remote_cells(server, conn, 20 if args.quick else 50)
    finally:
        await conn.aclose()
        problems = server.problems()
        server.stop()
        if problems:
            note(f"server log: {len(problems)} warning/error line(s), first: {problems[0][:200]}")


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args()

    async def body() -> None:
        with scratch("agentspace-bench-kernel-", keep=args.keep) as tmp:
            await main_async(args, tmp)

    run(report, args, body)


if __name__ == "__main__":
    main()
