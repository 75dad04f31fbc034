"""What every benchmark here shares: result rows, statistics, a scratch dir, a real
``jupyter server`` subprocess, and an httpx client for its REST API and SSE streams.

A benchmark makes one ``Results`` and runs its body through ``run``, which gives it
``--quick`` and ``--json PATH`` (the rows as JSON, for bench/run.py) and prints its
rows as one Markdown table at the end (bench/run.py prints all benchmarks' rows as one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_BIN = Path(sys.executable).parent  # the venv running the bench (a worktree may have none)
API = "agentspace/api"


# -- statistics ----------------------------------------------------------------------
def pct(values: Iterable[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``; NaN for none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def median(values: Iterable[float]) -> float:
    """The median of ``values``; NaN for none."""
    values = list(values)
    return statistics.median(values) if values else float("nan")


def ratio(value: float, baseline: float) -> float:
    """``value / baseline``; NaN where the baseline is 0."""
    return value / baseline if baseline else float("nan")


def met(ok: bool) -> str:
    return "met" if ok else "**not met**"


# -- result rows -------------------------------------------------------------------------
@dataclasses.dataclass
class Row:
    """One figure: ``value`` (a number in ``unit``, or text) next to its ``baseline``."""

    benchmark: str
    measure: str
    value: float | str
    unit: str = ""
    baseline: str = "-"
    ratio: float | None = None  # value / baseline where the two compare directly
    target: str = "reported"
    verdict: str = ""

    def result(self) -> str:
        value = self.value
        if isinstance(value, int | float):
            digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
            value = f"{value:,.{digits}f}"
        return f"{value} {self.unit}".strip()

    def cells(self) -> list[str]:
        shown = "" if self.ratio is None else f"{self.ratio:.2f}×"
        return [self.benchmark, self.measure, self.result(), self.baseline, shown, self.target,
                self.verdict]  # fmt: skip


COLUMNS = ("benchmark", "measure", "result", "baseline (same run)", "ratio", "target", "verdict")


def markdown(rows: Iterable[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row.cells()) + " |")
    return "\n".join(lines)


def load_rows(path: Path) -> list[Row]:
    return [Row(**row) for row in json.loads(path.read_text())["rows"]]


def machine(started: float, load0: tuple[float, float, float]) -> str:
    """Date, cores, Python, the load average at the start and now, and the time taken."""
    load1 = os.getloadavg()
    return (
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Python {sys.version.split()[0]};"
        f" load average (1/5/15 min) {load0[0]:.2f}/{load0[1]:.2f}/{load0[2]:.2f} at the start,"
        f" {load1[0]:.2f}/{load1[1]:.2f}/{load1[2]:.2f} at the end;"
        f" {time.perf_counter() - started:.0f} s in all"
    )


class Results:
    """One benchmark's rows and notes, printed as they come and as a table at the end."""

    def __init__(self, benchmark: str) -> None:
        self.benchmark = benchmark
        self.rows: list[Row] = []
        self.notes: list[str] = []

    def __call__(
        self,
        measure: str,
        value: float | str,
        baseline: str = "-",
        target: str = "reported",
        verdict: str = "",
        *,
        unit: str = "",
        ratio: float | None = None,
    ) -> Row:
        row = Row(self.benchmark, measure, value, unit, baseline, ratio, target, verdict)
        self.rows.append(row)
        print(f"  {measure}: {row.result()}  (baseline {baseline}; target {target}) {verdict}",
              flush=True)  # fmt: skip
        return row

    def skip(self, measure: str, reason: str) -> Row:
        return self(measure, f"skipped: {reason}", verdict="skipped")

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def dump(self, path: Path) -> None:
        rows = [dataclasses.asdict(row) for row in self.rows]
        path.write_text(json.dumps({"rows": rows, "notes": self.notes}, indent=1))


def arguments(doc: str) -> argparse.ArgumentParser:
    """A parser with the flags every benchmark takes: ``--quick`` and ``--json PATH``."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the rows here")
    return parser


def run(results: Results, args: argparse.Namespace, body: Callable[[], Any]) -> None:
    """Run ``body`` (a coroutine function or a plain one), then print the rows, the notes
    and the machine's load; and write ``--json``, even when the body failed part way."""
    started, load0 = time.perf_counter(), os.getloadavg()
    try:
        out = body()
        if asyncio.iscoroutine(out):
            asyncio.run(out)
    finally:
        print("\n" + markdown(results.rows))
        for text in results.notes:
            print(f"- {text}")
        print("\n" + machine(started, load0), flush=True)
        if getattr(args, "json", None):
            results.dump(args.json)


@contextlib.contextmanager
def scratch(prefix: str = "agentspace-bench-", keep: bool = False) -> Iterator[Path]:
    """A temp dir, removed after with every workspace image mounted below it (as root the
    engine puts each workspace on its own loop-mounted filesystem)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        from agentspace.sandbox import diskleftovers

        with contextlib.suppress(Exception):
            diskleftovers.release_under(path)
        if keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def fake_openai() -> Iterator[str]:
    """bench/fakeopenai.py in its own process; yields its api_base."""
    proc = subprocess.Popen(
        [sys.executable, str(BENCH / "fakeopenai.py"), "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        yield f"http://127.0.0.1:{int(proc.stdout.readline())}/v1"
    finally:
        proc.terminate()
        proc.wait(5)


# -- a jupyter server --------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def isolated_env(folder: Path) -> dict[str, str]:
    """This environment, with Jupyter's and IPython's dirs in ``folder``: no user config,
    extensions or startup files, and no hint of an outer Jupyter or agentspace session."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER_", "JPY_"))}
    env.pop("AGENTSPACE_MODE", None)
    for name in ("data", "runtime", "config", "ipython"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    env.update(
        JUPYTER_DATA_DIR=str(folder / "data"),
        JUPYTER_RUNTIME_DIR=str(folder / "runtime"),
        JUPYTER_CONFIG_DIR=str(folder / "config"),
        IPYTHONDIR=str(folder / "ipython"),
        JUPYTER_NO_CONFIG="1",  # only the config file given: no user or venv extensions
    )
    return env


class Server:
    """One ``jupyter server`` subprocess on 127.0.0.1 with its own temp dirs, token and
    config file (agentspace on ``scripted/echo``, no rate limit)."""

    def __init__(
        self,
        tmp: Path,
        name: str,
        extensions: dict[str, bool],
        *,
        traits: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        prefix: list[str] | None = None,
    ) -> None:
        self.dir = tmp / name
        self.dir.mkdir(parents=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.token = os.urandom(16).hex()
        self.extensions = extensions
        self.traits = dict(traits or {})  # more AgentspaceApp settings for this server
        self.extra_env = dict(env or {})
        self.prefix = list(prefix or [])  # e.g. taskset: it execs the server (same pid)
        self.site: Path | None = None  # a folder with a sitecustomize.py for the server
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.dir / "server.log"

    def config(self) -> Path:
        (self.dir / "root").mkdir()
        config = {
            "ServerApp": {
                "jpserver_extensions": self.extensions,
                "ip": "127.0.0.1",
                "port": self.port,
                "port_retries": 0,
                "open_browser": False,
                "root_dir": str(self.dir / "root"),
                "base_url": "/",
            },
            "IdentityProvider": {"token": self.token},
            "AgentspaceApp": {
                "state_dir": str(self.dir / "state"),
                "model": "scripted/echo",
                "messages_per_minute": 0,
                "max_queue": 10_000,
                **self.traits,
            },
        }
        path = self.dir / "jupyter_server_config.json"
        path.write_text(json.dumps(config, indent=1))
        return path

    def env(self) -> dict[str, str]:
        env = isolated_env(self.dir)
        # This checkout's code, even where the venv has another checkout installed editable.
        paths = [str(BENCH), str(ROOT / "extension"), str(ROOT / "kernel"), env.get("PYTHONPATH")]
        if self.site is not None:
            paths.insert(0, str(self.site))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
        return {**env, **self.extra_env}

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def start(self, timeout: float = 60.0) -> float:
        """Spawn and wait for the first answered ``GET api/status``; seconds taken."""
        cmd = [*self.prefix, str(VENV_BIN / "jupyter"), "server", f"--config={self.config()}"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        log = self.log_path.open("wb")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env(), cwd=self.dir
        )
        log.close()
        with httpx.Client(base_url=self.url, headers=self.headers(), timeout=2) as client:
            while time.perf_counter() - t0 < timeout:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"jupyter server exited ({self.proc.returncode}):\n{self.tail()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if client.get("api/status").status_code == 200:
                        return time.perf_counter() - t0
                time.sleep(0.005)
        raise RuntimeError(f"jupyter server not ready in {timeout} s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def problems(self) -> list[str]:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [
            line
            for line in text.splitlines()
            if "Traceback" in line or " ERROR " in line or "[E " in line or "[W " in line
        ]

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# -- httpx clients -----------------------------------------------------------------------
SSL = ssl.create_default_context()  # made once: an httpx client would load certifi each time
UNLIMITED = httpx.Limits(max_connections=None, max_keepalive_connections=None)


def client(server: Server, **kw: Any) -> httpx.AsyncClient:
    """An httpx client for ``server`` (token auth, no pool limit, no read timeout: streams)."""
    kw.setdefault("base_url", server.url)
    kw.setdefault("timeout", httpx.Timeout(60.0, read=None))
    kw["headers"] = {**server.headers(), **kw.get("headers", {})}
    return httpx.AsyncClient(limits=UNLIMITED, verify=SSL, **kw)


class Api:
    """The server's REST API on one keep-alive connection (for sequential calls), requests
    on a new connection each, and SSE streams (each on its own connection)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.http = client(server)
        self.fresh = client(server, headers={"Connection": "close"})
        self.connects = 0  # TCP connections self.http opened

    async def _trace(self, name: str, info: dict[str, Any]) -> None:
        if name == "connection.connect_tcp.complete":
            self.connects += 1

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, the JSON body or the bytes) on the keep-alive connection."""
        r = await self.http.request(method, path, json=body, extensions={"trace": self._trace})
        if "json" in r.headers.get("content-type", "") and r.content:
            return r.status_code, r.json()
        return r.status_code, r.content

    async def one_shot(self, method: str, path: str, body: Any = None) -> tuple[int, float]:
        """One request on a connection of its own; (status, ``time.time()`` when sent)."""
        sent = time.time()
        r = await self.fresh.request(method, path, json=body)
        return r.status_code, sent

    async def new_session(self, notebook: str, model: str) -> str:
        body = {"notebook": notebook, "model": model}
        status, info = await self.request("POST", f"{API}/sessions", body)
        if status != 200:
            raise RuntimeError(f"POST sessions -> {status} {info!r}")
        return str(info["id"])

    async def send(self, session_id: str, text: str) -> None:
        path = f"{API}/sessions/{session_id}/messages"
        status, data = await self.request("POST", path, {"text": text})
        if status != 202:
            raise RuntimeError(f"POST messages -> {status} {data!r}")

    async def subscribe(
        self, session_id: str, after: int = 0, until: bytes = b'"RUN_FINISHED"'
    ) -> Sse:
        """A session's event stream from ``after``, read until ``until`` arrives (and on)."""
        path = f"{API}/sessions/{session_id}/events?after={after}"
        return Sse(self.fresh, path, until)

    async def wait_idle(self, ids: list[str], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        pending = set(ids)
        while pending:
            for sid in list(pending):
                _, info = await self.request("GET", f"{API}/sessions/{sid}")
                if info["status"] == "idle" and not info["queued"]:
                    pending.discard(sid)
            if pending:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{len(pending)} sessions still busy after {timeout} s")
                await asyncio.sleep(0.002)

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.fresh.aclose()


@contextlib.asynccontextmanager
async def api(server: Server) -> AsyncIterator[Api]:
    conn = Api(server)
    try:
        yield conn
    finally:
        await conn.aclose()


class Sse:
    """An SSE stream read by a task that only stamps and keeps the bytes as they arrive
    (``time.time()``); ``ready`` once the server's opening comment came, ``done`` once
    ``until`` did; parsed by ``events`` after the run."""

    def __init__(self, http: httpx.AsyncClient, path: str, until: bytes) -> None:
        self.until = until
        self.chunks: list[tuple[float, bytes]] = []
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self.task = asyncio.create_task(self._read(http, path))

    async def _read(self, http: httpx.AsyncClient, path: str) -> None:
        tail = b""
        error: Exception = ConnectionError("SSE stream closed")
        try:
            headers = {"Accept": "text/event-stream"}
            async with http.stream("GET", path, headers=headers) as response:
                if response.status_code != 200:
                    raise ConnectionError(f"GET {path} -> {response.status_code}")
                async for data in response.aiter_raw():
                    self.chunks.append((time.time(), data))
                    window = tail + data
                    if not self.ready.done() and b": agentspace" in window:
                        self.ready.set_result(None)
                    if not self.done.done() and self.until in window:
                        self.done.set_result(None)
                    tail = window[-len(self.until) :]
            error = ConnectionError(f"SSE stream closed: {self.head()!r}")
        except httpx.HTTPError as exc:
            error = ConnectionError(f"SSE stream failed: {exc!r}")
        finally:
            for fut in (self.ready, self.done):
                if not fut.done():
                    fut.set_exception(error)
                    fut.exception()  # retrieved here: whoever awaits it still gets it

    def head(self) -> bytes:
        return b"".join(c for _, c in self.chunks)[:300]

    def close(self) -> None:
        self.task.cancel()

    def events(self) -> list[tuple[float, int | None, dict[str, Any]]]:
        """(arrival time, id, event) for each event, in order."""
        out: list[tuple[float, int | None, dict[str, Any]]] = []
        buf = b""
        for at, data in self.chunks:
            buf += data
            while b"\n\n" in buf:
                block, buf = buf.split(b"\n\n", 1)
                seq: int | None = None
                for line in block.decode().split("\n"):
                    if line.startswith("id: "):
                        seq = int(line[4:])
                    elif line.startswith("data: "):
                        out.append((at, seq, json.loads(line[6:])))
        return out


def assistant_deltas(
    events: list[tuple[float, int | None, dict[str, Any]]],
) -> list[tuple[float, int, dict[str, Any]]]:
    """The assistant's TEXT_MESSAGE_CONTENT events (the user's message is streamed too)."""
    ids: set[str] = set()
    out = []
    for at, seq, event in events:
        kind = event.get("type")
        if kind == "TEXT_MESSAGE_START" and event.get("role", "assistant") == "assistant":
            ids.add(event["messageId"])
        elif kind == "TEXT_MESSAGE_CONTENT" and event["messageId"] in ids and seq is not None:
            out.append((at, seq, event))
    return out
