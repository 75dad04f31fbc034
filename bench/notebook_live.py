"""Live notebook benchmark (issue 12): the agent's notebook tools on a notebook open in a real
JupyterLab, in real headless Chromium, linked by the labextension.

Run: ``.venv/bin/python bench/notebook_live.py [--quick]``. One ``jupyter server`` process
(agentspace + jupyterlab, bench/harness.py's isolated dirs; the labextension as the venv has
it linked) and one headless ``/usr/bin/chromium`` driven by Playwright's async API, in the same
asyncio loop as the httpx client of the REST API and the SSE streams. Every figure is measured
next to a baseline of the same run.

1. approved edit to visible: ``live.ipynb`` (one cell, ``value = "v0"``) open and linked; a
   session on it whose scripted model proposes, turn after turn, ``edit_cell`` of that cell
   (``"v{i}"`` -> ``"v{i+1}"``). Each round: wait until the call is pending (``GET
   sessions/{id}``), let things settle (100 ms, a person takes longer), t0 = ``time.time()``,
   ``POST approvals/{tool_call_id} {"decision": "approve"}``, and the page's MutationObserver
   (installed on the cell's CodeMirror content beforehand) stamps ``Date.now()`` when the
   editor's text becomes the new value (and again at the next animation frame: painted).
   Same machine, same clock. Baselines: the approve POST's own round trip, and the arrival
   of the call's TOOL_CALL_RESULT on the session's SSE stream. The file is checked unchanged
   at the end (edits land in the open document, the user saves it).
2. read_notebook through the browser link: ``big.ipynb`` (bench/notebook.py's 500 cells with
   outputs, written through the contents API) open and linked; a session whose scripted
   model calls ``read_notebook`` (all cells, outputs in brief) once per turn, policy allow, so
   the run goes on by itself. The read's time: the TOOL_CALL_END -> TOOL_CALL_RESULT event
   timestamps (the server's clock, set as each event is appended). Baseline: the same
   session over ``big-file.ipynb``, the same notebook not open anywhere (read from the file
   through the contents manager). The first read of each is reported apart (warm-up).
   Playwright's DevTools connection gets every WebSocket frame the page sends (4.5 MB a
   read), which slows the reply's way to the server, so the reads are made again with a
   headless chromium started with no automation attached (``big-plain.ipynb``, the same
   notebook, opened by URL with the token): that is the headline figure. For the page under
   Playwright, the read's parts: the request reaching the page, the page building the reply
   (``toJSON`` + ``JSON.stringify``), ``send()`` itself, and the reply's way back to the
   result event (WS_LOG's stamps and the server's event timestamps: one clock).

Targets: edit to visible p50 <= 200 ms; read_notebook p50 <= 50 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

from harness import (
    API,
    BENCH,
    Api,
    Results,
    Server,
    api,
    arguments,
    median,
    met,
    pct,
    ratio,
    run,
    scratch,
)
from notebook import CELLS, notebook

report = Results("notebook_live")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [  # as tests/browser/lab.py starts it
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
KERNEL_IDLE = re.compile(r"^(?!No Kernel).+ \| Idle$")  # the status bar, as lab.py
LIVE, BIG, BIG_FILE, BIG_PLAIN = "live.ipynb", "big.ipynb", "big-file.ipynb", "big-plain.ipynb"

# Stamps, per distinct text of the watched editor, when the DOM first showed it and the next
# animation frame after that (the browser paints then).
OBSERVE = """(el) => {
  window.__seen = {}; window.__painted = {};
  const note = () => {
    const text = el.textContent;
    if (text in window.__seen) return;
    window.__seen[text] = Date.now();
    requestAnimationFrame(() => { window.__painted[text] = Date.now(); });
  };
  note();
  new MutationObserver(note).observe(el, {childList: true, subtree: true, characterData: true});
}"""


# In every page, before JupyterLab's code: each message on a notebook link socket logged as
# [direction, epoch ms, length, head]: "in" stamped when the message event was made (the
# socket got it), "out" when send was called (the reply built: toJSON and stringify done),
# "sent" when send returned.
WS_LOG = """(() => {
  const log = window.__wslog = [];
  const send = WebSocket.prototype.send;
  const watched = new WeakSet();
  WebSocket.prototype.send = function (data) {
    const link = String(this.url).includes('notebooks/link');
    if (link && !watched.has(this)) {
      watched.add(this);
      this.addEventListener('message', (e) => log.push(
        ['in', performance.timeOrigin + e.timeStamp, e.data.length, e.data.slice(0, 40)]));
    }
    if (link) log.push(['out', Date.now(), data.length, String(data).slice(0, 40)]);
    const result = send.call(this, data);
    if (link) log.push(['sent', Date.now(), data.length, '']);
    return result;
  };
})()"""


class LabServer(Server):
    """harness.Server with JupyterLab too: ``/lab`` serves the notebooks to the browser."""

    def config(self) -> Path:
        path = super().config()
        config = json.loads(path.read_text())
        config["ServerApp"]["jpserver_extensions"]["jupyterlab"] = True
        config["LabApp"] = {"news_url": None}
        path.write_text(json.dumps(config, indent=1))
        return path

    def env(self) -> dict[str, str]:
        env = super().env()
        # bench/ holds a notebook.py, which would shadow the notebook package in the server.
        paths = env["PYTHONPATH"].split(os.pathsep)
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p != str(BENCH))
        return env


def write_script(tmp: Path, name: str, turns: list[dict[str, Any]]) -> str:
    path = tmp / f"{name}.json"
    path.write_text(json.dumps({"turns": turns}))
    return f"scripted/{path}"


async def put_notebook(conn: Api, name: str, content: dict[str, Any]) -> None:
    body = {"type": "notebook", "content": content}
    status, data = await conn.request("PUT", f"api/contents/{name}", body)
    if status not in (200, 201):
        raise RuntimeError(f"PUT api/contents/{name} -> {status} {data!r}")


def small_notebook() -> dict[str, Any]:
    cell = {"id": "cell-0", "cell_type": "code", "source": 'value = "v0"', "metadata": {},
            "outputs": [], "execution_count": None}  # fmt: skip
    kernel = {"kernelspec": {"name": "python3", "display_name": "Python 3"}}
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": kernel, "cells": [cell]}


def with_kernel(nb: dict[str, Any]) -> dict[str, Any]:
    return {**nb, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}}}


async def open_linked(page: Any, server: Server, conn: Api, name: str) -> float:
    """Open ``name`` in JupyterLab, wait for its kernel Idle and its link; seconds taken."""
    t0 = time.perf_counter()
    await page.goto(f"{server.url}lab/tree/{name}?reset")
    status = page.locator("#jp-main-statusbar").get_by_text(KERNEL_IDLE)
    await status.wait_for(state="visible", timeout=120_000)
    deadline = time.monotonic() + 60
    while True:
        _, body = await conn.request("GET", f"{API}/notebooks/links")
        if any(link["path"] == name for link in body["links"]):
            return time.perf_counter() - t0
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} was not linked: {body!r}\n{server.tail()}")
        await asyncio.sleep(0.05)


async def pending(conn: Api, sid: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        _, info = await conn.request("GET", f"{API}/sessions/{sid}")
        if info["pending_calls"]:
            return dict(info["pending_calls"][0])
        if time.monotonic() > deadline:
            raise RuntimeError(f"no pending call after {timeout} s: {info!r}")
        await asyncio.sleep(0.01)


# -- 1. an approved edit, to visible ---------------------------------------------------
async def edit_to_visible(page: Any, server: Server, conn: Api, tmp: Path, rounds: int) -> None:
    print(f"1. approved edit_cell to visible in the page, {rounds} rounds", flush=True)
    await put_notebook(conn, LIVE, small_notebook())
    opened = await open_linked(page, server, conn, LIVE)
    report.note(f"{LIVE} opened, kernel Idle and linked in {opened:.1f} s")
    editor = page.locator(".jp-NotebookPanel:visible .jp-Cell").first.locator(".cm-content")
    await editor.evaluate(OBSERVE)
    turns = [
        {"tool_calls": [{"name": "edit_cell", "arguments": {
            "cell_id": "cell-0", "old_string": f'"v{i}"', "new_string": f'"v{i + 1}"'}}]}
        for i in range(rounds)
    ] + [{"text": "done"}]  # fmt: skip
    sid = await conn.new_session(LIVE, write_script(tmp, "edits", turns))
    sse = await conn.subscribe(sid)
    await asyncio.wait_for(sse.ready, 30)
    await conn.send(sid, "go")
    t0s: dict[str, float] = {}
    answered: dict[str, float] = {}
    visible: list[float] = []
    painted: list[float] = []
    post: list[float] = []
    ids: list[str] = []
    for i in range(rounds):
        call = await pending(conn, sid)
        if call["tool"] != "edit_cell" or call["arguments"]["new_string"] != f'"v{i + 1}"':
            raise RuntimeError(f"round {i}: unexpected pending call {call!r}")
        await asyncio.sleep(0.1)  # settle: the run's end written, the page idle
        call_id = call["tool_call_id"]
        text = f'value = "v{i + 1}"'
        t0 = time.time()
        status, body = await conn.request(
            "POST", f"{API}/sessions/{sid}/approvals/{call_id}", {"decision": "approve"}
        )
        t1 = time.time()
        if status != 200:
            raise RuntimeError(f"approve -> {status} {body!r}")
        await page.wait_for_function(
            "(t) => window.__painted[t] !== undefined", arg=text, timeout=30_000
        )
        seen = await page.evaluate("(t) => [window.__seen[t], window.__painted[t]]", text)
        t0s[call_id], answered[call_id] = t0, t1
        ids.append(call_id)
        visible.append(seen[0] - t0 * 1000)
        painted.append(seen[1] - t0 * 1000)
        post.append((t1 - t0) * 1000)
    await conn.wait_idle([sid])
    sse.close()
    results: dict[str, float] = {}
    for at, _, event in sse.events():
        if event.get("type") == "TOOL_CALL_RESULT" and event.get("toolCallId") in t0s:
            results.setdefault(event["toolCallId"], at)
    sse_ms = [(results[c] - t0s[c]) * 1000 for c in ids if c in results]
    if len(sse_ms) != rounds:
        raise RuntimeError(f"{rounds - len(sse_ms)} TOOL_CALL_RESULT events missing")
    _, saved = await conn.request("GET", f"api/contents/{LIVE}?content=1")
    on_disk = saved["content"]["cells"][0]["source"]
    shown = await editor.text_content()

    p50, base_post, base_sse = median(visible), median(post), median(sse_ms)
    report("1. approved edit_cell → visible in the page (DOM), p50", round(p50, 1), unit="ms",
           baseline=f"TOOL_CALL_RESULT on SSE {base_sse:.1f} ms; approve POST {base_post:.1f} ms",
           ratio=ratio(p50, base_sse), target="≤ 200 ms", verdict=met(p50 <= 200))  # fmt: skip
    report("1. approved edit_cell → visible, p90", round(pct(visible, 0.9), 1), unit="ms",
           baseline=f"TOOL_CALL_RESULT on SSE p90 {pct(sse_ms, 0.9):.1f} ms; "
           f"approve POST p90 {pct(post, 0.9):.1f} ms")  # fmt: skip
    report("1. approved edit_cell → next animation frame (painted), p50", round(median(painted), 1),
           unit="ms", baseline=f"DOM p50 {p50:.1f} ms")  # fmt: skip
    report.note(
        f"edit rounds: visible ms {[round(v) for v in visible]}; approve POST ms "
        f"{[round(v) for v in post]}; TOOL_CALL_RESULT ms {[round(v) for v in sse_ms]}"
    )
    ok = on_disk == 'value = "v0"' and shown == f'value = "v{rounds}"'
    report("1. the file after the edits", f"source {on_disk!r}", baseline=f"the page: {shown!r}",
           target='unchanged ("v0"); the page shows the last edit',
           verdict=met(ok))  # fmt: skip


# -- 2. read_notebook through the link ------------------------------------------------------
async def reads(conn: Api, tmp: Path, name: str, count: int) -> list[dict[str, Any]]:
    """``count`` read_notebook calls in one run on ``name``: for each, its TOOL_CALL_END and
    TOOL_CALL_RESULT timestamps (server ms since the epoch), ``ms`` between and the text."""
    turns = [{"tool_calls": [{"name": "read_notebook", "arguments": {}}]} for _ in range(count)]
    model = write_script(tmp, f"reads-{name}-{time.time_ns()}", [*turns, {"text": "ok"}])
    sid = await conn.new_session(name, model)
    sse = await conn.subscribe(sid)
    await asyncio.wait_for(sse.ready, 30)
    await conn.send(sid, "go")
    deadline = time.monotonic() + 600
    while True:  # idle, or failed (a RUN_ERROR: raised below)
        _, info = await conn.request("GET", f"{API}/sessions/{sid}")
        if info["status"] != "running" and not info["queued"]:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the read run on {name} still going after 600 s: {info!r}")
        await asyncio.sleep(0.05)
    deadline = time.monotonic() + 30  # the stream's last events follow
    while not any(b'"RUN_FINISHED"' in c or b'"RUN_ERROR"' in c for _, c in sse.chunks[-3:]):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the read run on {name} did not end on its stream")
        await asyncio.sleep(0.05)
    sse.close()
    ends: dict[str, float] = {}
    out: list[dict[str, Any]] = []
    for _, _, event in sse.events():
        kind = event.get("type")
        if kind == "TOOL_CALL_END":
            ends[event["toolCallId"]] = event["timestamp"]
        elif kind == "TOOL_CALL_RESULT":
            end, result = ends[event["toolCallId"]], event["timestamp"]
            out.append({"end": end, "result": result, "ms": result - end,
                        "text": event.get("content", "")})  # fmt: skip
        elif kind == "RUN_ERROR":
            raise RuntimeError(f"the read run failed: {event!r}")
    if len(out) != count:
        raise RuntimeError(f"{count} reads asked, {len(out)} results")
    return out


def check_origin(done: list[dict[str, Any]], origin: str) -> None:
    where = {"browser": "open in the browser", "file": "the saved notebook file"}[origin]
    wrong = [d["text"][:120] for d in done if where not in d["text"].split("\n", 1)[0]]
    if wrong or any("did not answer" in d["text"] for d in done):
        raise RuntimeError(f"reads not from the {origin}: {wrong[:2]}")


def ms_list(values: list[float]) -> list[int]:
    return [round(v) for v in values]


async def phases(page: Any, done: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Where each linked read's time went, from the page's socket log (WS_LOG) and the server's
    event timestamps (one clock): the request reaching the browser, the browser building the
    reply (toJSON + JSON.stringify), send() itself, and the reply to the result event
    (transfer, json.loads, rendering, redaction, the event)."""
    log = await page.evaluate("window.__wslog")
    ins = [e for e in log if e[0] == "in" and '"op": "read"' in e[3]]
    outs = [(e, log[i + 1]) for i, e in enumerate(log) if e[0] == "out" and e[2] > 100_000]
    if len(ins) != len(done) or len(outs) != len(done):
        raise RuntimeError(f"{len(done)} reads, {len(ins)} requests, {len(outs)} replies logged")
    parts: dict[str, list[float]] = {"to browser": [], "browser": [], "send": [], "back": []}
    for d, got, (out, sent) in zip(done, ins, outs, strict=True):
        parts["to browser"].append(got[1] - d["end"])
        parts["browser"].append(out[1] - got[1])
        parts["send"].append(sent[1] - out[1])
        parts["back"].append(d["result"] - sent[1])
    parts["reply MB"] = [outs[0][0][2] / 1e6]
    return parts


async def plain_chromium(server: Server, conn: Api, tmp: Path, name: str) -> Any:
    """A headless chromium with no automation attached (no DevTools protocol), on ``name``."""
    url = f"{server.url}lab/tree/{name}?reset&token={server.token}"
    profile = tmp / "chromium-profile"
    cmd = [CHROMIUM, *CHROMIUM_ARGS, f"--user-data-dir={profile}", "--window-size=1280,800", url]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    return proc


async def stop_process(proc: Any) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


async def wait_links(conn: Api, name: str, linked: bool, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        _, body = await conn.request("GET", f"{API}/notebooks/links")
        if any(link["path"] == name for link in body["links"]) == linked:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} still {'un' if linked else ''}linked: {body!r}")
        await asyncio.sleep(0.05)


async def kernels_idle(conn: Api, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        _, kernels = await conn.request("GET", "api/kernels")
        if kernels and all(k["execution_state"] == "idle" for k in kernels):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"kernels not idle: {kernels!r}")
        await asyncio.sleep(0.1)


async def read_through_link(page: Any, server: Server, conn: Api, tmp: Path, count: int) -> None:
    print(f"2. read_notebook of {CELLS} cells with outputs, {count} reads each", flush=True)
    big = with_kernel(notebook())
    t0 = time.perf_counter()
    await put_notebook(conn, BIG, big)
    await put_notebook(conn, BIG_FILE, big)
    await put_notebook(conn, BIG_PLAIN, big)
    put = time.perf_counter() - t0
    size = len(json.dumps(big)) / 1e6
    opened = await open_linked(page, server, conn, BIG)
    report.note(
        f"{BIG} ({size:.1f} MB as JSON) written twice through the contents API in {put:.1f} s; "
        f"opened, kernel Idle and linked in {opened:.1f} s"
    )
    linked = await reads(conn, tmp, BIG, count + 1)
    check_origin(linked, "browser")
    parts = await phases(page, linked)
    filed = await reads(conn, tmp, BIG_FILE, count + 1)
    check_origin(filed, "file")
    # The same reads with a browser no automation is attached to: Playwright's DevTools
    # connection sees every WebSocket frame (4.5 MB a read) and might cost the page time.
    await page.goto("about:blank")
    await wait_links(conn, BIG, linked=False)
    proc = await plain_chromium(server, conn, tmp, BIG_PLAIN)
    try:
        await wait_links(conn, BIG_PLAIN, linked=True)
        await kernels_idle(conn)
        await asyncio.sleep(2)  # the page's own start settles
        plain = await reads(conn, tmp, BIG_PLAIN, count + 1)
        check_origin(plain, "browser")
    finally:
        await stop_process(proc)

    link_ms, file_ms, plain_ms = ([d["ms"] for d in x] for x in (linked, filed, plain))
    p50, base, plain50 = median(link_ms[1:]), median(file_ms[1:]), median(plain_ms[1:])
    report(f"2. read_notebook through the browser link, {CELLS} cells, p50 (chromium, no "
           "automation attached)", round(plain50, 1), unit="ms",
           baseline=f"the same over the file (not open) {base:.1f} ms",
           ratio=ratio(plain50, base), target="≤ 50 ms", verdict=met(plain50 <= 50))  # fmt: skip
    report("2. read_notebook through the link, p90 (no automation)",
           round(pct(plain_ms[1:], 0.9), 1), unit="ms",
           baseline=f"over the file p90 {pct(file_ms[1:], 0.9):.1f} ms")  # fmt: skip
    report("2. read_notebook through the link, p50, Playwright attached (DevTools gets every "
           "frame)", round(p50, 1), unit="ms", baseline=f"no automation {plain50:.1f} ms",
           ratio=ratio(p50, plain50))  # fmt: skip
    report("2. read_notebook, the first read (warm-up)", round(plain_ms[0], 1), unit="ms",
           baseline=f"over the file {file_ms[0]:.1f} ms; Playwright attached "
           f"{link_ms[0]:.1f} ms")  # fmt: skip
    shares = ", ".join(f"{k} {median(v[1:]):.0f} ms" for k, v in parts.items() if k != "reply MB")
    report("2. a linked read's time (Playwright attached), p50 of each part", shares,
           baseline=f"reply {parts['reply MB'][0]:.1f} MB")  # fmt: skip
    report.note(
        f"reads ms, link (no automation): {ms_list(plain_ms)}; file: {ms_list(file_ms)}; link, "
        f"Playwright attached: {ms_list(link_ms)}; the result {len(linked[-1]['text']):,} "
        f"chars (link) / {len(filed[-1]['text']):,} (file)"
    )
    for k, v in parts.items():
        if k != "reply MB":
            report.note(f"linked reads, {k}: {ms_list(v)} ms")


async def body(quick: bool) -> None:
    from playwright.async_api import async_playwright

    rounds = 10 if quick else 30
    # One run of 31 reads of ~15k tokens each: past the default limits of a run.
    traits = {"max_model_calls": 10_000, "context_window": 10_000_000}
    with scratch() as tmp:
        server = LabServer(tmp, "lab", {"agentspace": True}, traits=traits)
        try:
            started = server.start()
            report.note(f"jupyter server with jupyterlab up in {started:.1f} s")
            async with api(server) as conn, async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
                )
                try:
                    context = await browser.new_context(viewport={"width": 1280, "height": 800})
                    await context.add_init_script(WS_LOG)
                    page = await context.new_page()
                    page.set_default_timeout(60_000)
                    await page.goto(f"{server.url}api/status?token={server.token}")  # the cookie
                    await edit_to_visible(page, server, conn, tmp, rounds)
                    await read_through_link(page, server, conn, tmp, rounds)
                finally:
                    with contextlib.suppress(Exception):
                        await browser.close()
            problems = server.problems()
            if problems:
                report.note(f"server log: {len(problems)} warnings/errors, e.g. {problems[:3]}")
        finally:
            server.stop()


if __name__ == "__main__":
    parsed = arguments(__doc__).parse_args()
    run(report, parsed, lambda: body(parsed.quick))
