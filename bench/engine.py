"""Engine benchmark (issue 2): throughput, fan-out latency, restore, idle memory.

Run: ``.venv/bin/python bench/engine.py [--quick]``. Every figure is measured in
this one run next to its baseline, and medians are reported because these
machines are noisy. Results go to stdout as a Markdown table; copy them into
bench/RESULTS.md with the date and the machine.

1. throughput: the scripted model (through litellm) streams 20,000 deltas with no
   delay; events committed to SQLite and delivered to a subscriber, per second;
   baseline: the same deltas through a bare ``asyncio.Queue``.
2. latency: 100 sessions streaming at once, 20 deltas/s each; time from the
   model adapter yielding a delta to a subscriber receiving its committed event.
3. restore: 100 sessions x 1,000 events on disk; a fresh process from start to
   the first replayed event; and a late subscriber replaying 10,000 events
   (baseline: a bare SQLite SELECT of the same rows).
4. memory: the memory an idle loaded session holds (tracemalloc, 1,000 sessions).
5. long streams: the process RSS after one stream of 10,000 and of 100,000 chunks
   (each in a fresh process), and chunks/s, for the engine-only path (the script
   straight into the Model port), for litellm through a local OpenAI-compatible
   server (bench/fakeopenai.py, its own process) with our bound on litellm's chunk
   list (models/retention.py), and for the same without it (main's path, switched
   off here only). ``--quick``: 10,000 and 50,000 chunks.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from agentspace.engine.config import EngineConfig
from agentspace.engine.engine import Engine
from agentspace.models.base import StreamPart, TextDelta
from agentspace.models.litellm_model import LiteLLMModel
from agentspace.testing import DirectModel, write_script
from harness import Results, arguments, fake_openai, met, pct, ratio, run, scratch

report = Results("engine")


# -- 1. throughput -------------------------------------------------------------
async def queue_baseline(n: int) -> float:
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    words = [f"w{i} " for i in range(n)]

    async def produce() -> None:
        for w in words:
            queue.put_nowait(w)
            await asyncio.sleep(0)
        queue.put_nowait(None)

    t0 = time.perf_counter()
    task = asyncio.create_task(produce())
    count = 0
    while await queue.get() is not None:
        count += 1
    await task
    return count / (time.perf_counter() - t0)


async def throughput(root: Path, n: int, direct: bool = False) -> float:
    """Events/s from send to the terminal event; ``direct`` skips litellm's stream wrapper."""
    text = "".join(f"w{i} " for i in range(n))
    model = write_script(root / "tp.json", {"text": text, "delay_ms": 0})
    config = EngineConfig(state_dir=root / "tp", model=model)
    async with Engine(config, model=DirectModel() if direct else None) as engine:
        warm = await engine.session("warm.ipynb", model="scripted/echo")
        await warm.send("warm up litellm")
        await warm.wait()
        session = await engine.session("tp.ipynb")
        t0 = time.perf_counter()
        await session.send("go")
        count = 0
        async for stored in session.subscribe(0):
            count += 1
            if stored.terminal:
                break
        return count / (time.perf_counter() - t0)


# -- 2. latency ----------------------------------------------------------------
class TimedModel:
    """The real litellm adapter, noting when each delta leaves it."""

    def __init__(self) -> None:
        self.inner = LiteLLMModel()
        self.sent: dict[str, float] = {}

    async def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], **kw: Any
    ) -> AsyncIterator[StreamPart]:
        async for part in self.inner.stream(messages, tools, **kw):
            if isinstance(part, TextDelta):
                self.sent[part.text] = time.perf_counter()
            yield part


async def latency(root: Path, sessions: int, deltas: int) -> list[float]:
    timed = TimedModel()
    config = EngineConfig(state_dir=root / "lat")
    async with Engine(config, model=timed) as engine:
        lat: list[float] = []

        async def one(i: int) -> None:
            text = "".join(f"s{i}d{j} " for j in range(deltas))
            model = write_script(root / f"lat{i}.json", {"text": text, "delay_ms": 50})
            session = await engine.session(f"lat{i}.ipynb", model=model)
            await session.send("go")
            async for stored in session.subscribe(0):
                now = time.perf_counter()
                if stored.type == "TEXT_MESSAGE_CONTENT":
                    delta = json.loads(stored.data)["delta"]
                    if delta in timed.sent:
                        lat.append((now - timed.sent[delta]) * 1000)
                if stored.terminal:
                    return

        await asyncio.gather(*(one(i) for i in range(sessions)))
        return lat


# -- 3. restore ----------------------------------------------------------------
async def populate(root: Path, sessions: int, events: int) -> str:
    """Sessions with ``events`` events each; returns a notebook key to replay."""
    text = "".join(f"w{i} " for i in range(events - 9))
    model = write_script(root / "pop.json", {"text": text, "delay_ms": 0})
    async with Engine(EngineConfig(state_dir=root / "restore", model=model)) as engine:
        for batch in range(0, sessions, 10):
            started = []
            for i in range(batch, min(sessions, batch + 10)):
                session = await engine.session(f"nb{i}.ipynb")
                await session.send("go")
                started.append(session)
            for session in started:
                await session.wait()
        big = await engine.session(
            "big.ipynb",
            model=write_script(
                root / "big.json", {"text": "".join(f"w{i} " for i in range(10_000)), "delay_ms": 0}
            ),
        )
        await big.send("go")
        await big.wait()
        (count,) = (await engine.store.query("SELECT COUNT(*) FROM events"))[0]
        print(f"  populated {count} events", flush=True)
    return "nb0.ipynb"


CHILD = """
import asyncio, sys, time
from pathlib import Path
from agentspace.engine.config import EngineConfig
from agentspace.engine.engine import Engine
async def main():
    async with Engine(EngineConfig(state_dir=Path(sys.argv[1]))) as engine:
        session = await engine.session(sys.argv[2], create=False)
        async for stored in session.subscribe(0):
            print(time.time(), flush=True)
            break
asyncio.run(main())
"""


def restore_start(root: Path, key: str) -> float:
    t0 = time.time()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(root / "restore"), key],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return (float(out.split()[0]) - t0) * 1000


def python_start() -> float:
    t0 = time.time()
    out = subprocess.run(
        [sys.executable, "-c", "import time; print(time.time())"], capture_output=True, text=True
    ).stdout
    return (float(out) - t0) * 1000


async def replay(root: Path) -> tuple[float, int]:
    async with Engine(EngineConfig(state_dir=root / "restore")) as engine:
        session = await engine.session("big.ipynb", create=False)
        t0 = time.perf_counter()
        count = 0
        async for stored in session.subscribe(0):
            count += 1
            if stored.terminal:
                break
        return (time.perf_counter() - t0) * 1000, count


def sqlite_baseline(root: Path, sid_key: str) -> float:
    conn = sqlite3.connect(root / "restore" / "agentspace.db")
    (sid,) = conn.execute("SELECT id FROM sessions WHERE notebook = ?", (sid_key,)).fetchone()
    t0 = time.perf_counter()
    rows = conn.execute(
        "SELECT seq, type, data FROM events WHERE session_id = ? ORDER BY seq", (sid,)
    ).fetchall()
    assert rows
    return (time.perf_counter() - t0) * 1000


# -- 4. memory -----------------------------------------------------------------
async def idle_memory(root: Path, count: int) -> float:
    config = EngineConfig(state_dir=root / "mem")
    async with Engine(config) as engine:
        for i in range(count):
            await engine.session(f"m{i}.ipynb")
    async with Engine(config) as engine:
        ids = [sid for (sid,) in await engine.store.query("SELECT id FROM sessions")]
        await engine.get(ids[0])
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for sid in ids[1:]:
            await engine.get(sid)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return (after - before) / (len(ids) - 1)


# -- 5. long streams ------------------------------------------------------------
STREAM_MODES = ("engine", "litellm", "litellm-main")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def stream_child(mode: str, n: int, base: str) -> dict[str, float]:
    """One stream of ``n`` chunks in this (fresh) process: RSS before and after, chunks/s."""
    from agentspace.models import litellm_model

    if mode == "litellm-main":
        litellm_model.bound_chunks = lambda response: None  # type: ignore[assignment]
    with scratch() as root:
        direct = mode == "engine"
        text = "".join(f"w{i % 64} " for i in range(n))
        model = write_script(root / "long.json", {"text": text, "delay_ms": 0})
        params = {} if direct else {"api_base": base, "api_key": "sk-fake"}
        config = EngineConfig(state_dir=root / "s", model=model, model_params=params)
        async with Engine(config, model=DirectModel() if direct else None) as engine:
            warm_model = model if direct else "openai/fake-64"
            warm = await engine.session("warm.ipynb", model=warm_model)
            await warm.send("warm up")
            await warm.wait()
            session = await engine.session(
                "long.ipynb", model=model if direct else f"openai/fake-{n}"
            )
            gc.collect()
            before = rss()
            t0 = time.perf_counter()
            await session.send("go")
            async for stored in session.subscribe(0):
                if stored.terminal:
                    assert stored.type == "RUN_FINISHED", stored.data
                    break
            seconds = time.perf_counter() - t0
            gc.collect()
            after = rss()
    return {"before": before, "after": after, "rate": n / seconds}


def stream_sizes(quick: bool) -> tuple[int, int]:
    """The two stream lengths (100,000 chunks take litellm half a minute and more a run)."""
    return (10_000, 50_000) if quick else (10_000, 100_000)


def stream_runs(
    sizes: tuple[int, ...], repeats: int
) -> dict[tuple[str, int], list[dict[str, float]]]:
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    with fake_openai() as base:
        for r in range(repeats):
            for n in sizes:
                modes = STREAM_MODES if r % 2 == 0 else STREAM_MODES[::-1]
                for mode in modes:
                    child = subprocess.run(
                        [sys.executable, __file__, "--stream-child", mode, str(n), base],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    result = json.loads(child.stdout.strip().splitlines()[-1])
                    runs.setdefault((mode, n), []).append(result)
    return runs


def stream_report(runs: dict[tuple[str, int], list[dict[str, float]]]) -> None:
    def med(mode: str, n: int, what: Callable[[dict[str, float]], float]) -> float:
        return statistics.median(what(r) for r in runs[(mode, n)])

    sizes = sorted({n for _, n in runs})
    for mode in STREAM_MODES:
        for n in sizes:
            grown = [(r["after"] - r["before"]) / 2**20 for r in runs[(mode, n)]]
            report(
                f"RSS growth after one {n:,}-chunk stream, {mode}",
                f"{statistics.median(grown):+.1f} MB",
                "runs: " + ", ".join(f"{g:+.0f}" for g in grown) + " MB",
                "engine ±1 MB; litellm bounded",
            )
        small, large = sizes[0], sizes[-1]
        rate_small = med(mode, small, lambda r: r["rate"])
        rate_large = med(mode, large, lambda r: r["rate"])
        report(
            f"chunks/s, {mode}: {large:,} vs {small:,} chunks",
            f"{rate_large:,.0f} ({rate_large / rate_small - 1:+.0%})",
            f"{rate_small:,.0f} at {small:,}",
            "no fall with length",
            ratio=ratio(rate_large, rate_small),
        )


async def main(quick: bool) -> None:
    repeats = 1 if quick else 3
    with scratch() as root:
        print("1. throughput (20,000 deltas)", flush=True)
        n = 20_000
        base = statistics.median([await queue_baseline(n) for _ in range(repeats)])
        engine_only = statistics.median(
            [await throughput(root / f"d{r}", n, direct=True) for r in range(repeats)]
        )
        ours = statistics.median([await throughput(root / f"r{r}", n) for r in range(repeats)])
        for label, value in (
            ("engine: script straight into the Model port", engine_only),
            ("end to end: through litellm (scripted provider)", ours),
        ):
            report(f"events/s, {label}", value, f"queue {base:,.0f}/s", ">= 20,000/s",
                   met(value >= 20_000), ratio=ratio(value, base))  # fmt: skip

        print("2. latency (100 sessions x 20 deltas/s)", flush=True)
        lat = await latency(root, 100, 10 if quick else 40)
        p50, p99 = statistics.median(lat), pct(lat, 0.99)
        report("delta -> subscriber p50", p50, "0", "<= 5 ms", met(p50 <= 5), unit="ms")
        report("delta -> subscriber p99", p99, "0", "<= 50 ms", met(p99 <= 50), unit="ms")

        print("3. restore (100 sessions x 1,000 events)", flush=True)
        key = await populate(root, 10 if quick else 100, 1000)
        py = statistics.median([python_start() for _ in range(repeats + 2)])
        starts = [restore_start(root, key) for _ in range(repeats + 2)]
        start = statistics.median(starts)
        report("process start -> first replayed event", start, f"bare python start {py:.0f} ms",
               "<= 1000 ms", met(start <= 1000), unit="ms", ratio=ratio(start, py))  # fmt: skip
        replays = [await replay(root) for _ in range(repeats + 2)]
        ms = statistics.median(r[0] for r in replays)
        select = sqlite_baseline(root, "big.ipynb")
        report(f"late subscriber replays {replays[0][1]:,} events", ms,
               f"sqlite SELECT {select:.0f} ms", "<= 200 ms", met(ms <= 200), unit="ms",
               ratio=ratio(ms, select))  # fmt: skip

        print("4. memory", flush=True)
        per = await idle_memory(root, 200 if quick else 1000)
        report("idle loaded session", per / 1024, "-", "<= 100 KB", met(per <= 100 * 1024),
               unit="KB")  # fmt: skip

    sizes = stream_sizes(quick)
    print(f"5. long streams ({sizes[0]:,} and {sizes[1]:,} chunks, a fresh process each)",
          flush=True)  # fmt: skip
    stream_report(stream_runs(sizes, repeats))


if __name__ == "__main__":
    parser = arguments(__doc__)
    parser.add_argument("--only-streams", action="store_true", help="run only 5. (long streams)")
    parser.add_argument(
        "--stream-child", nargs=3, metavar=("MODE", "N", "BASE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.stream_child:
        mode, n, base = args.stream_child
        print(json.dumps(asyncio.run(stream_child(mode, int(n), base))))
    elif args.only_streams:
        run(
            report,
            args,
            lambda: stream_report(stream_runs(stream_sizes(args.quick), 1 if args.quick else 3)),
        )
    else:
        run(report, args, lambda: main(args.quick))
