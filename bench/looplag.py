"""A bench-only Jupyter server extension that measures how late the event loop runs.

A task sleeps 5 ms in a loop and records how much later than asked it woke up
(the overshoot): whatever held the loop (a long callback, a synchronous import,
a big JSON dump) shows up as one large overshoot. ``GET {base_url}looplag``
returns the figures as JSON (max, p50, p99, the worst few with their wall-clock
time, the count over 20 ms, garbage-collector pauses, and the CPU time of every
other thread of the process, in the window and inside each of the worst stalls:
a stall whose loop-thread CPU is well under its wall time either lost the GIL
to those threads or lost the CPU to something else); ``POST {base_url}looplag``
starts a new window (body ``{"freeze": true}``: call ``gc.freeze()`` first, to
show what the collector's full passes cost).

Enable with ``--ServerApp.jpserver_extensions="{'looplag': True}"`` (or in a config
file) with this directory on ``PYTHONPATH``. Used by bench/server.py.

With ``LOOPLAG_STACKS=1`` in the server's environment (diagnosis only: it
costs time) two more things are recorded, so ``GET`` can say what held the loop:

* ``callbacks``: every loop callback is timed (``asyncio.Handle._run`` wrapped);
  per task coroutine or callback name, how many ran, their total and max time,
  and how many took over 5 ms. A stall made of one slow callback and one made of
  many ready callbacks run back to back look different here.
* ``stall_stacks``: a watchdog thread samples the loop thread's Python stack
  every 2 ms while the loop is more than 15 ms late (innermost frames last).
  It needs the GIL, so a long C call (a full garbage collection) shows few samples.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import resource
import sys
import threading
import time
from array import array
from collections import Counter
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

INTERVAL = 0.005
MAX_SAMPLES = 2_000_000
WORST = 8
STALL = 0.015  # the watchdog samples stacks once the loop is this late


class Probe:
    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self.task: asyncio.Task[None] | None = None
        self.beat = time.perf_counter()
        self.loop_thread = 0
        self.busy = 0.0  # seconds spent in timed callbacks (LOOPLAG_STACKS only)
        self.ran = 0  # callbacks run (LOOPLAG_STACKS only)
        self.gc_time = 0.0  # seconds in garbage collection
        self.clocks: list[tuple[str, int]] = []  # (name, CPU clock id) of the other threads
        self.clocks_for = -1  # the thread count self.clocks was made for
        self.reset()

    def reset(self) -> None:
        self.samples = array("d")
        # (lag s, wall time it ended, loop-thread CPU s, callbacks s, callbacks run, gc s,
        #  top callbacks, other threads' CPU s by name, loop-thread (slept, preempted) counts)
        self.worst: list[
            tuple[
                float, float, float, float, int, float, list[Any], dict[str, float], tuple[int, int]
            ]
        ] = []
        self.window: dict[str, list[float]] = {}  # name -> [count, s] since the last wake
        self.stacks: Counter[str] = Counter()
        self.callbacks: dict[str, list[float]] = {}  # name -> [count, total s, max s, over 5 ms]
        self.gc_pauses: list[tuple[float, int, int, float]] = []  # (s, generation, freed, at)
        self.started = time.time()
        self.threads0 = self.thread_cpu()  # per-thread CPU at the start of the window

    def thread_cpu(self) -> dict[str, float]:
        """CPU seconds of every thread but the loop's, by name (one clock read each)."""
        if threading.active_count() != self.clocks_for:
            clocks = []
            for thread in threading.enumerate():
                if thread.ident is None or thread.ident == self.loop_thread:
                    continue
                with contextlib.suppress(OSError):
                    clocks.append((thread.name, time.pthread_getcpuclockid(thread.ident)))
            self.clocks, self.clocks_for = clocks, threading.active_count()
        out: dict[str, float] = {}
        for name, clock in self.clocks:
            try:
                out[name] = time.clock_gettime(clock)
            except OSError:  # the thread ended: look again next time
                self.clocks_for = -1
        return out

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        """gc.callbacks hook: time every collection (they hold the GIL throughout)."""
        if phase == "start":
            self._gc_start = time.perf_counter()
        elif len(self.gc_pauses) < 100_000:
            pause = time.perf_counter() - self._gc_start
            self.gc_time += pause
            self.gc_pauses.append((pause, info["generation"], info["collected"], time.time()))

    def watch(self) -> None:
        """Watchdog thread: sample the loop thread's stack while the loop is late."""
        while True:
            time.sleep(0.002)
            if time.perf_counter() - self.beat < self.interval + STALL:
                continue
            frame = sys._current_frames().get(self.loop_thread)
            frames = []
            while frame is not None and len(frames) < 60:
                code = frame.f_code
                where = code.co_filename.rsplit("site-packages/", 1)[-1]
                frames.append(f"{code.co_name} ({where}:{frame.f_lineno})")
                frame = frame.f_back
            self.stacks[";".join(reversed(frames))] += 1

    def time_callbacks(self) -> None:
        """Wrap ``asyncio.Handle._run`` to time every callback the loop runs."""
        original = asyncio.events.Handle._run
        clock = time.perf_counter
        probe = self

        def _run(handle: asyncio.Handle) -> None:
            name = _describe(handle)  # before: a task's step resumes where it awaited
            t0 = clock()
            try:
                original(handle)
            finally:
                spent = clock() - t0
                probe.busy += spent
                probe.ran += 1
                mine = probe.window.get(name)
                if mine is None:
                    mine = probe.window[name] = [0, 0.0]
                mine[0] += 1
                mine[1] += spent
                entry = probe.callbacks.get(name)
                if entry is None:
                    entry = probe.callbacks[name] = [0, 0.0, 0.0, 0]
                entry[0] += 1
                entry[1] += spent
                if spent > entry[2]:
                    entry[2] = spent
                if spent > 0.005:
                    entry[3] += 1

        asyncio.events.Handle._run = _run  # type: ignore[method-assign]

    async def run(self) -> None:
        clock = time.perf_counter
        interval = self.interval
        self.loop_thread = threading.get_ident()
        self._gc_start = time.perf_counter()
        if self.on_gc not in gc.callbacks:
            gc.callbacks.append(self.on_gc)
        if os.environ.get("LOOPLAG_STACKS"):
            threading.Thread(target=self.watch, name="looplag-watchdog", daemon=True).start()
            self.time_callbacks()
        cpu = time.thread_time
        self.clocks_for = -1
        while True:
            t0 = self.beat = clock()
            c0, b0, n0, g0 = cpu(), self.busy, self.ran, self.gc_time
            others0 = self.thread_cpu()
            u0 = resource.getrusage(resource.RUSAGE_THREAD)
            await asyncio.sleep(interval)
            lag = clock() - t0 - interval
            samples = self.samples
            if len(samples) < MAX_SAMPLES:
                samples.append(lag)
            worst = self.worst
            if len(worst) < WORST or lag > worst[-1][0]:
                used = cpu() - c0
                top = sorted(self.window.items(), key=lambda kv: kv[1][1], reverse=True)[:6]
                others = _spent(others0, self.thread_cpu())
                u1 = resource.getrusage(resource.RUSAGE_THREAD)
                switches = (u1.ru_nvcsw - u0.ru_nvcsw, u1.ru_nivcsw - u0.ru_nivcsw)
                worst.append(
                    (
                        lag,
                        time.time(),
                        used,
                        self.busy - b0,
                        self.ran - n0,
                        self.gc_time - g0,
                        top,
                        others,
                        switches,
                    )
                )
                worst.sort(key=lambda w: w[0], reverse=True)
                del worst[WORST:]
            self.window = {}

    def stats(self) -> dict[str, Any]:
        ordered = sorted(self.samples)
        n = len(ordered)

        def pct(q: float) -> float:
            return ordered[min(n - 1, int(q * n))] * 1000 if n else 0.0

        agentspace = sys.modules.get("agentspace")
        litellm_model = sys.modules.get("agentspace.models.litellm_model")
        tiktoken = sys.modules.get("tiktoken.registry")
        return {
            "agentspace": getattr(agentspace, "__file__", None),  # which checkout is measured
            "warmed": bool(getattr(litellm_model, "warmed", False)),  # the preload's call ran
            "encodings": sorted(getattr(tiktoken, "ENCODINGS", {})),  # tokenizers loaded
            "samples": n,
            "window_s": time.time() - self.started,
            "interval_ms": self.interval * 1000,
            "max_ms": ordered[-1] * 1000 if n else 0.0,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "p999_ms": pct(0.999),
            "over_20ms": sum(1 for v in ordered if v > 0.020),
            "worst": [
                {
                    "lag_ms": lag * 1000,
                    "at": at,
                    "loop_cpu_ms": used * 1000,
                    "callbacks_ms": busy * 1000,
                    "callbacks": ran,
                    "gc_ms": gcs * 1000,
                    "top": [[name, int(c), s * 1000] for name, (c, s) in top],
                    "threads_cpu_ms": {name: s * 1000 for name, s in others.items()},
                    "slept": switches[0],  # the loop thread blocked (a futex: the GIL, a syscall)
                    "preempted": switches[1],  # it was runnable, another task had the CPU
                }
                for lag, at, used, busy, ran, gcs, top, others, switches in self.worst
            ],
            "threads_cpu_ms": {
                name: s * 1000 for name, s in _spent(self.threads0, self.thread_cpu()).items()
            },
            "gc": {
                f"gen{g}": {
                    "count": sum(1 for p in self.gc_pauses if p[1] == g),
                    "total_ms": sum(p[0] for p in self.gc_pauses if p[1] == g) * 1000,
                    "max_ms": max((p[0] for p in self.gc_pauses if p[1] == g), default=0) * 1000,
                }
                for g in (0, 1, 2)
            },
            "gc_pauses_over_5ms": [
                {"ms": p * 1000, "generation": g, "collected": n, "at": at}
                for p, g, n, at in self.gc_pauses
                if p > 0.005
            ][:50],
            "callbacks": [
                {"name": name, "count": c, "total_ms": t * 1000, "max_ms": m * 1000, "over_5ms": o}
                for name, (c, t, m, o) in sorted(
                    self.callbacks.items(), key=lambda kv: kv[1][1], reverse=True
                )[:25]
            ],
            "stall_samples": sum(self.stacks.values()),
            "stall_stacks": [[n, stack] for stack, n in self.stacks.most_common(40)],
        }


def _spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per thread name between two ``thread_cpu`` reads (names summed
    without their ``_N`` suffix: a pool's threads count as one), the non-zero ones."""
    out: dict[str, float] = {}
    for name, now in after.items():
        spent = now - before.get(name, 0.0)
        if spent > 0:
            group = name.rstrip("0123456789").rstrip("_") or name
            out[group] = out.get(group, 0.0) + spent
    return out


def _describe(handle: asyncio.Handle) -> str:
    """A stable name for a callback: the task's coroutine and where it resumes, or the function.

    A task's step is named with the innermost ``await`` it resumes from (file:line), so
    steps that wake without a pacing checkpoint can be told apart.
    """
    callback = getattr(handle, "_callback", None)
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        return f"task {getattr(coro, '__qualname__', type(coro).__name__)}{_resumes(coro)}"
    if isinstance(owner, asyncio.Future):
        return "future callback"
    func = getattr(callback, "func", callback)  # functools.partial
    return str(getattr(func, "__qualname__", type(func).__name__))


def _resumes(coro: Any) -> str:
    """`` @ file:line`` of the innermost frame of a suspended coroutine's await chain."""
    where = ""
    for _ in range(40):
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        if frame is None:
            break
        where = f" @ {frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno}"
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
        if coro is None:
            break
    return where


def heap() -> dict[str, Any]:
    """Diagnosis: the objects a full collection would walk (tracked, not frozen)."""
    objects = gc.get_objects()
    types = Counter(type(o).__qualname__ for o in objects).most_common(20)
    classes = Counter(o.__module__ for o in objects if isinstance(o, type)).most_common(10)
    return {
        "tracked": len(objects),
        "frozen": gc.get_freeze_count(),
        "types": types,
        "classes_by_module": classes,
    }


PROBE = Probe()


class LoopLagHandler(APIHandler):
    auth_resource = "looplag"

    @web.authenticated
    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        if self.get_argument("heap", None):  # diagnosis: what a full collection walks
            self.finish(json.dumps(heap()))
            return
        self.finish(json.dumps(PROBE.stats()))

    @web.authenticated
    def post(self) -> None:
        """Start a new window; with ``{"freeze": true}`` first ``gc.freeze()`` (diagnostic)."""
        body = json.loads(self.request.body or b"{}")
        reply: dict[str, Any] = {}
        if body.get("freeze"):
            gc.collect()
            gc.freeze()
            reply["frozen"] = gc.get_freeze_count()
        PROBE.reset()
        reply["reset"] = PROBE.started
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(reply))


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "looplag"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    if os.environ.get("LOOPLAG_SWITCH_INTERVAL"):  # diagnosis: the GIL hand-off interval
        sys.setswitchinterval(float(os.environ["LOOPLAG_SWITCH_INTERVAL"]))
    route = url_path_join(serverapp.base_url, "looplag")
    serverapp.web_app.add_handlers(".*$", [(route, LoopLagHandler)])


async def _start_jupyter_server_extension(serverapp: Any) -> None:
    """Called once the server's loop runs: start the probe on it."""
    if PROBE.task is None:
        PROBE.reset()
        PROBE.task = asyncio.create_task(PROBE.run(), name="looplag")
