"""Background processes on docker: the container logs them, so they outlive the server.

The server cannot be what reads a background process's output on docker: the
container and its processes keep running while no server is attached, and output
nobody reads is lost (dockerd drops an exec's output once its client has gone). So
``spawn`` runs the command under ``RUN``, a POSIX sh wrapper in a detached
``docker exec`` (no stream, no thread, no connection held by the server):

- stdout and stderr go to one FIFO (so they stay in the order they were written),
  read by a capper in the container, ``keep``: rounds of ``dd bs=B count=N`` with
  ``N * B`` no more than what the cap leaves, the log's size measured between rounds,
  then ``cat >/dev/null``. Plain dd writes each read at once (``head -c`` buffers in
  both busybox and coreutils) and counts reads, not bytes (``iflag=count_bytes``
  counts bytes in busybox only), so this is exact with any dd; one round usually takes
  a whole burst. Past the cap output is read and dropped, never left unread, so the
  process neither blocks on a full pipe nor dies of a closed one, and its log never
  grows past the cap, whether a server is attached or not.
- Only the command carries the ``AGENTSPACE_EXEC`` token the tree kill looks for: a
  stop ends the command and its children, the capper drains what they printed, and
  the wrapper writes ``<token> <exit code>`` to ``<name>.exit`` beside the log (once
  the capper is done, or after 2 s if a daemonized child keeps the pipe, like the
  runner's drain grace), then exits with that code.

The server learns that a process ended from that file (read on the host, polled with
a backoff up to 0.5 s) and from ``exec_inspect`` every few seconds (a wrapper that
died without writing it). It follows a process it started and one an earlier server
started (``adopt``; the handle is ``<token>:<exec id>``) the same way: one path,
exercised by every test. The log is the only copy of the output: nothing is relayed
through the server, so a re-attach has no offset to keep and nothing to duplicate.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from agentspace.errors import SandboxError, SandboxUnavailableError, ToolError
from agentspace.sandbox import paths
from agentspace.sandbox.base import Execution, Vanished
from agentspace.sandbox.docker.kill import KILLER, MARK, kill_tree

if TYPE_CHECKING:
    from agentspace.sandbox.docker.container import Container

POLL = (0.02, 0.5)  # the exit file is looked for after 20 ms, then ever less often up to 0.5 s
PREFIX = f"{MARK}=".encode()
INSPECT = 2.0  # seconds between exec_inspect calls (a wrapper killed before writing its status)
# $1 log, $2 exit file, $3 cap in bytes, $4 token, $5 command. The command runs in the
# foreground: an asynchronous list would start with SIGINT and SIGQUIT ignored.
RUN = r"""log=$1 out=$2 cap=$3 tok=$4 cmd=$5
exec >>"$log" 2>&1 </dev/null
rm -f "$out"
fifo=/tmp/agentspace-$tok.fifo
mkfifo -m 600 "$fifo" || { echo "[agentspace: no FIFO at $fifo: not started]"; exit 125; }
keep() {
  size=$(($(wc -c <"$log"))); end=$((size + cap))
  while [ "$size" -lt "$end" ]; do
    left=$((end - size)); bs=4096
    [ "$left" -lt 65536 ] && bs=$((left / 16 + 1))
    dd bs=$bs count=$((left / bs)) 2>/dev/null || break
    was=$size; size=$(($(wc -c <"$log")))
    [ "$size" -gt "$was" ] || break
  done
  cat >/dev/null
}
keep <"$fifo" & k=$!
AGENTSPACE_EXEC=$tok sh -c "$cmd" >"$fifo" 2>&1
code=$?
rm -f "$fifo"
alive() { { read -r s <"/proc/$1/stat"; } 2>/dev/null && case ${s##*) } in Z*|X*) false; esac; }
n=0; while [ $n -lt 40 ] && alive $k; do sleep 0.05; n=$((n+1)); done
case $out in */*) mkdir -p "${out%/*}"; esac
printf '%s %s\n' "$tok" "$code" >"$out.tmp" && mv -f "$out.tmp" "$out"
exit $code"""


def exit_file(log: str) -> str:
    """Where the wrapper leaves a process's exit status: beside its log, ``<name>.exit``."""
    return log.removesuffix(".log") + ".exit"


async def spawn(container: Container, command: str, log: str, limit: int) -> DockerRun:
    """Start ``command`` under ``RUN`` in a detached exec, logging to ``log``."""
    token = uuid.uuid4().hex[:16]
    argv = ["sh", "-c", RUN, "agentspace-run", log, exit_file(log), str(limit), token, command]
    exec_id, _ = await container.call(partial(container.open_exec, detach=True), argv, {})
    return DockerRun(container, token, exec_id, exit_file(log))


async def adopt(
    container: Container, command: str, log: str, handle: str | None
) -> DockerRun | None:
    """The run behind ``handle``. With none, the process was started by an older version
    that piped its output to a server now gone: nothing can log it or learn its status, so
    stop it (it is restarted on request, logged this time)."""
    if handle is not None:
        token, _, exec_id = handle.partition(":")
        return DockerRun(container, token, exec_id, exit_file(log))
    for token in await container.call(_piped, container, command):
        stop = threading.Event()
        stop.set()  # no exec to wait for: one pass of the killer (which repeats until none)
        await asyncio.to_thread(kill_tree, container, "", token, "KILL", stop)
    return None


def _piped(container: Container, command: str) -> list[str]:
    """The tree-kill tokens of the running execs of ``sh -c command``, read from the host's
    /proc (none when the engine runs on another host: those are left running)."""
    tokens: list[str] = []
    for exec_id in container.exec_ids():
        try:
            info = container.exec_info(exec_id)
            if info is None:
                continue  # ended meanwhile
            config = info["ProcessConfig"]
            if info["Running"] and [config["entrypoint"], *config["arguments"]] == [
                "sh", "-c", command
            ]:  # fmt: skip
                environ = Path(f"/proc/{info['Pid']}/environ").read_bytes().split(b"\0")
                tokens += [v[len(MARK) + 1 :].decode() for v in environ if v.startswith(PREFIX)]
        except (OSError, KeyError, TypeError):
            continue  # ended meanwhile, or not readable from here
    return tokens


class DockerRun(Execution):
    """A spawned process, followed through its exit file: no stream (its log is its output)."""

    def __init__(self, container: Container, token: str, exec_id: str, exit_path: str) -> None:
        self._container, self._token, self._id, self._exit = container, token, exec_id, exit_path
        self.handle = f"{token}:{exec_id}"
        self.stdout, self.stderr = asyncio.StreamReader(), asyncio.StreamReader()
        self.stdout.feed_eof()
        self.stderr.feed_eof()
        self._ended = threading.Event()
        self._killers: list[threading.Thread] = []
        self._delay = POLL[0]
        self._code: int | None = None

    def _status(self) -> int | None:
        """The exit code the wrapper wrote for this run, if it has (read without following
        a link the sandbox planted)."""
        try:
            with paths.open_read(self._container.folder, self._exit) as f:
                token, code = f.read(100).split()
            return int(code) if token.decode() == self._token else None
        except (OSError, ValueError, ToolError):
            return None

    async def wait(self) -> int:
        if self._code is None:
            code = await self._watch()
            self._ended.set()
            for killer in self._killers:  # report the exit after the kills asked for
                await asyncio.to_thread(killer.join)
            self._code = code
        return self._code

    async def _watch(self) -> int:
        """The status the wrapper wrote, or ``Vanished`` if none will come: the wrapper was
        killed (its container stopped, its engine restarted) and nothing of the run is left."""
        inspected = float("-inf")
        while (code := self._status()) is None:
            if time.monotonic() - inspected >= INSPECT:
                inspected = time.monotonic()
                state = await self._state()
                if state != "running":
                    code = self._status()  # the wrapper writes it just before it exits
                    if code is not None:
                        return code
                    if not await self._running():
                        raise Vanished(None if state == "forgotten" else state)
                    # the wrapper alone was killed: follow its command until it ends
            await asyncio.sleep(self._delay)
            self._delay = min(self._delay * 2, POLL[1])
        return code

    async def _state(self) -> int | Literal["running", "forgotten"]:
        try:
            return await self._container.call(self._container.exec_state, self._id)
        except SandboxError:
            return "running"  # the engine is away or failing for now: ask again later

    async def _running(self) -> bool:
        """Whether a process of this run is left (the kill script's probe, signal 0)."""
        try:
            code, _ = await self._container.call(self._container.run, KILLER, "0", self._token)
        except SandboxUnavailableError:
            return True  # cannot tell yet
        except SandboxError:
            return False  # the container is gone, and its processes with it
        return code == 0

    def _signal(self, sig: str) -> None:
        self._delay = POLL[0]  # look for the end soon again
        self._killers.append(self._container.kill(self._id, self._token, sig, self._ended))

    def terminate(self) -> None:
        self._signal("TERM")

    def kill(self) -> None:
        self._signal("KILL")
