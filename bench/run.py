"""Run every benchmark in its quick mode and print all their rows as one table.

Run: ``.venv/bin/python bench/run.py`` (``make bench``). Each benchmark runs in a
process of its own (``bench/NAME.py --quick --json ...``) with this checkout's
extension/ and kernel/ first on ``PYTHONPATH``, its output in a log file; one that
fails or runs out of time still gives the rows it made, and a row saying so.
``--only engine,server`` picks some; ``--full`` drops ``--quick``; ``-v`` shows
each benchmark's own output as it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness import BENCH, ROOT, Row, load_rows, machine, markdown

BENCHMARKS = (
    "engine",
    "workspace",
    "server",
    "kernel",
    "notebook",
    "list_variables",
    "notebook_live",
    "chat",
)


def run_one(name: str, args: argparse.Namespace, logs: Path) -> list[Row]:
    out, log = logs / f"{name}.json", logs / f"{name}.log"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(BENCH / f"{name}.py"), "--json", str(out)]
    if not args.full:
        cmd.append("--quick")
    paths = [str(ROOT / "extension"), str(ROOT / "kernel"), os.environ.get("PYTHONPATH")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}
    print(f"{name}: {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    with log.open("wb") as sink:
        proc = subprocess.Popen(  # a process group of its own: servers, kernels, sandboxes
            cmd, stdout=subprocess.PIPE if args.verbose else sink, stderr=subprocess.STDOUT,
            env=env, cwd=ROOT, start_new_session=True,
        )  # fmt: skip
        if args.verbose:
            assert proc.stdout is not None
            for line in proc.stdout:
                sink.write(line)
                sys.stdout.buffer.write(line)
                sys.stdout.flush()
        try:
            code: int | str = proc.wait(max(1.0, args.timeout - (time.perf_counter() - t0)))
        except subprocess.TimeoutExpired:
            stop(proc)
            code = f"timed out after {args.timeout:.0f} s"
    seconds = time.perf_counter() - t0
    rows = load_rows(out) if out.exists() else []
    if code != 0:
        lines = log.read_text(errors="replace").strip().splitlines()
        last = lines[-1] if lines else "no output"
        why = f"exit {code}" if isinstance(code, int) else code
        rows.append(Row(name, "the benchmark's run", f"failed: {why}: {last[:200]}",
                        baseline=f"log: {log}", target="runs to the end",
                        verdict="**failed**"))  # fmt: skip
    print(f"{name}: {len(rows)} rows in {seconds:.0f} s (exit {code})", flush=True)
    return rows


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Interrupt a benchmark (its cleanup runs: servers stopped, scratch dirs and their
    mounts released), then kill whatever is left of its process group."""
    proc.send_signal(signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated: " + ", ".join(BENCHMARKS))
    parser.add_argument("--full", action="store_true", help="the full runs, not --quick")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per benchmark")
    parser.add_argument("--logs", type=Path, default=ROOT / "test-artifacts" / "bench")
    parser.add_argument("-v", "--verbose", action="store_true", help="show each one's output")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"no such benchmark: {', '.join(sorted(unknown))}")
    args.logs.mkdir(parents=True, exist_ok=True)
    started, load0 = time.perf_counter(), os.getloadavg()
    rows = [row for name in names for row in run_one(name, args, args.logs)]
    print("\n" + markdown(rows))
    print(f"\n{machine(started, load0)}; logs in {args.logs}")
    if any(row.verdict == "**failed**" for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
