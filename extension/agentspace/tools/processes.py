"""Tools that run things in the session's sandbox: shell, background processes, previews.

Everything that executes or stops something asks for approval by default;
looking (listing processes, reading their output, opening a preview of a server
already running) is allowed.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

from agentspace.sandbox.workspace import LOG_DIR, Workspace

from ..errors import ToolError
from .base import Tool, ToolContext, ToolOutput, tool

MAX_SCAN = 5000  # files compared before/after a command to report what it changed


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ShellArgs(_Args):
    command: str = Field(
        ..., min_length=1, max_length=100_000, description="Shell command (sh -c) to run."
    )
    timeout: float | None = Field(
        None, gt=0, description="Seconds before the command is killed (default: the server's)."
    )


class StartArgs(_Args):
    command: str = Field(..., min_length=1, max_length=100_000, description="Command to run.")
    name: str | None = Field(None, description="A name to refer to it (default: from command).")


class NameArgs(_Args):
    name: str = Field(..., description="The process name, as list_processes shows it.")


class OutputArgs(NameArgs):
    tail: int = Field(100, ge=1, le=5000, description="How many of the last lines to show.")


class RestartArgs(_Args):
    names: list[str] | None = Field(
        None, description="Processes to start again (default: all stopped by a restart)."
    )


class NoArgs(_Args):
    pass


class PortArgs(_Args):
    port: int = Field(..., ge=1, le=65535, description="Port the server listens on.")


def _workspace(ctx: ToolContext) -> Workspace:
    if ctx.workspace is None:
        why = ctx.workspace_error or "this session has no sandbox"
        raise ToolError(f"Commands and processes are unavailable: {why}")
    return ctx.workspace


def _scan(root: str) -> dict[str, tuple[int, int]]:
    seen: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, files in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (".agentspace", ".git", "node_modules")]
        for name in files:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            seen[os.path.relpath(path, root)] = (st.st_mtime_ns, st.st_size)
            if len(seen) >= MAX_SCAN:
                return seen
    return seen


@tool(policy="ask")
async def shell(ctx: ToolContext, args: ShellArgs) -> ToolOutput:
    """Run a shell command in the workspace sandbox and return its exit code and output.

    The working directory is /workspace (the session's files). The sandbox has no
    network unless the server allows it. Long-running servers belong in start_process.
    """
    runtime = _workspace(ctx)
    before = _scan(str(runtime.folder))
    result = await runtime.shell(args.command, args.timeout)
    after = _scan(str(runtime.folder))
    changed = sorted(p for p in after.keys() | before.keys() if after.get(p) != before.get(p))
    return ToolOutput(text=result.render(), changed_paths=changed)


@tool(policy="ask")
async def start_process(ctx: ToolContext, args: StartArgs) -> str:
    """Start a long-running command (a server, a watcher) in the background.

    Its output goes to a log file; read it with process_output.
    """
    record = await _workspace(ctx).processes.start(args.command, args.name)
    return f"Started process {record.name!r}; its output is logged to {record.log}."


@tool(policy="allow")
def list_processes(ctx: ToolContext, args: NoArgs) -> str:
    """List the background processes of this session with their status and exit codes."""
    records = _workspace(ctx).processes.listing()
    if not records:
        return "No background processes."
    lines = []
    for r in records:
        code = f" (exit code {r.exit_code})" if r.exit_code is not None else ""
        lines.append(f"{r.name}: {r.status}{code} — {r.command}")
    if any(r.status == "stopped_by_restart" for r in records):
        lines.append("Processes stopped by a server restart can be started with restart_processes.")
    return "\n".join(lines)


@tool(policy="allow")
def process_output(ctx: ToolContext, args: OutputArgs) -> str:
    """The last lines of a background process's output."""
    return _workspace(ctx).processes.output(args.name, args.tail)


@tool(policy="ask")
async def stop_process(ctx: ToolContext, args: NameArgs) -> str:
    """Stop a background process (SIGTERM, then SIGKILL after a grace period)."""
    record = await _workspace(ctx).processes.stop(args.name)
    return f"Process {record.name!r} is {record.status} (exit code {record.exit_code})."


@tool(policy="ask")
async def restart_processes(ctx: ToolContext, args: RestartArgs) -> str:
    """Start again background processes that a server restart stopped (or the named ones)."""
    started = await _workspace(ctx).processes.restart(args.names)
    if not started:
        return "Nothing to restart."
    return "Restarted: " + ", ".join(r.name for r in started)


@tool(policy="allow")
async def open_preview(ctx: ToolContext, args: PortArgs) -> str:
    """The URL where the user can open a web server running in the sandbox on this port."""
    url = await _workspace(ctx).preview(args.port)
    return f"Preview of port {args.port}: {url}"


PROCESS_TOOLS: tuple[Tool, ...] = (
    shell,
    start_process,
    list_processes,
    process_output,
    stop_process,
    restart_processes,
    open_preview,
)
__all__ = ["LOG_DIR", "PROCESS_TOOLS"]
