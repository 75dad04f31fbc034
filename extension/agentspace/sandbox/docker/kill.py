"""The docker backend's tree kill: every process an exec started, daemons included.

An exec cannot get a cgroup of its own, and a daemon's ``setsid`` leaves its process group, so
each exec carries ``AGENTSPACE_EXEC=<token>`` (inherited across fork, exec and setsid) and
``kill`` signals every process whose ``/proc/PID/environ`` holds it until none is left. (One
that clears its own environment escapes the tree kill, not the container: the boundary.)
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentspace.sandbox.docker.container import Container

MARK = "AGENTSPACE_EXEC"
# $1 signal, $2 token: signal every marked process. KILL stops them all first (so none can
# react, exit 0 or fork in between) and repeats until none is left (one may have forked while
# we looked). Exit 0 if something was signalled, 1 if nothing was found (signal 0: a probe).
KILLER = r"""m="AGENTSPACE_EXEC=$2"; hit=1
for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do
  p=; for f in $(grep -lzxF "$m" /proc/[0-9]*/environ 2>/dev/null); do
    f=${f#/proc/}; p="$p ${f%/environ}"; done
  [ -n "$p" ] || exit $hit
  [ "$1" = KILL ] && kill -s STOP $p 2>/dev/null
  kill -s "$1" $p 2>/dev/null; hit=0; [ "$1" = KILL ] || exit 0
done"""


def kill_tree(
    container: Container, exec_id: str, token: str, sig: str, ended: threading.Event
) -> None:
    """Signal ``token``'s processes until TERM reached one, or KILL left none and the exec
    ended; ``ended`` (the exec is known to have ended) stops early. Synchronous: the
    container runs it in a thread it waits for (``Container.kill``)."""
    import docker.errors

    def done(exec_id: str) -> bool:
        info = container.exec_info(exec_id)
        return info is None or info["ExitCode"] is not None  # None: the engine forgot it

    for _ in range(100):  # ~5 s at most: a fork bomb can starve our own exec for a while
        try:
            hit = container.run(KILLER, sig, token)[0] == 0
            if ended.is_set() or (hit and sig == "TERM") or (not hit and done(exec_id)):
                return
        except docker.errors.NotFound:
            return  # the container is gone, and its processes with it
        except Exception:
            pass  # e.g. the pids limit leaves no room for our exec yet: try again
        ended.wait(0.05)
