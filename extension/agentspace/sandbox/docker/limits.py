"""A docker container's limits and cgroup files: what the policy asks, what the host has.

Kept apart from the container (``container.py``): pure mappings from a
``SandboxPolicy``'s limits to docker's HostConfig fields, the in-place update docker-py
lacks, and where the container's cgroup event files are when the engine runs on this host.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FILES = {"memory": ("memory.oom_control", "memory.events"), "pids": ("pids.events",) * 2}


def host_limits(limits: dict[str, Any]) -> dict[str, int]:
    """The policy's limits as HostConfig fields (None, no limit, is left out)."""
    memory = limits["mem_limit"]
    mib = int(memory[:-1]) << 20 if memory else None
    fields = {
        "Memory": mib,
        "MemorySwap": mib,
        "PidsLimit": limits["pids_limit"],
        "NanoCpus": limits["nano_cpus"],
    }
    return {k: v for k, v in fields.items() if v is not None}


def outdated(host: dict[str, Any], limits: dict[str, Any]) -> bool:
    """Whether a container's HostConfig differs from the limits the policy asks for."""
    return any((host.get(k) or 0) != v for k, v in host_limits(limits).items())


def update_limits(client: Any, container_id: str, limits: dict[str, Any]) -> None:
    """POST /containers/{id}/update: docker-py's ``update`` knows no pids or nano-CPU limit.

    A limit cannot be lifted in place: a policy's None leaves the container's as it is.
    """
    api = client.api
    url = api._url("/containers/{0}/update", container_id)
    api._result(api._post_json(url, data=host_limits(limits)), True)


def cgroup_files(pid: int, container_id: str) -> dict[str, Path]:
    """The container's cgroup event files on this host; none when the engine runs elsewhere."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return {}
    found: dict[str, Path] = {}
    for _, controllers, path in (line.split(":", 2) for line in lines):
        for name, (v1, v2) in FILES.items():
            if container_id not in path:  # another pid namespace's process, not ours
                continue
            if name in controllers.split(","):
                file = Path("/sys/fs/cgroup", controllers, path.lstrip("/"), v1)
            elif not controllers:  # the unified (v2) hierarchy
                file = Path("/sys/fs/cgroup", path.lstrip("/"), v2)
            else:
                continue
            if file.exists():
                found.setdefault(name, file)  # v1 lines come first: prefer them
    return found
