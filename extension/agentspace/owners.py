"""Which process owns a thing: ``pid:start-time`` tokens that a reused pid cannot fake.

Shared vocabulary: the store marks which server holds a session with it, the sandbox which
server made a holder, a mount or a container (so leftovers of a dead one are cleaned up).
Standard library only.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path


@cache
def owner_token() -> str:
    """This process, as ``pid:start-time`` so a reused pid is not mistaken for us."""
    return f"{os.getpid()}:{_start_time(os.getpid())}"


def _start_time(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "0"


def owner_alive(token: str | None) -> bool:
    """Whether the process that wrote ``token`` is still running (on this machine)."""
    if not token:
        return False
    pid_text, _, start = token.partition(":")
    try:
        pid = int(pid_text)
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return _start_time(pid) == start
