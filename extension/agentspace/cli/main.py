"""``agentspace``: the headless entry point, running the same engine in-process.

People script and debug sessions with it, so it prints either readable text
or, with ``--json``, one ``{"seq": N, "event": {...}}`` object per line (the
event exactly as AG-UI serialises it). Bad input exits 2 with one line on
stderr; a run that ends in RUN_ERROR (or a damaged store) exits 1; a stopped run exits 130.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from agentspace.engine.config import EngineConfig
from agentspace.engine.engine import Engine
from agentspace.engine.session import Session
from agentspace.errors import AgentspaceError, InputError, StoreError
from agentspace.events import Custom, StoredEvent
from agentspace.store.approvals import Decision

if TYPE_CHECKING:
    from agentspace.store.records import UsageTotals

EXIT_OK, EXIT_RUN_ERROR, EXIT_BAD_INPUT, EXIT_STOPPED = 0, 1, 2, 130
DECIDER = f"{getpass.getuser()} (agentspace CLI, pid {os.getpid()})"
"""Who a decision taken here is recorded as: whoever decides second is told."""
PREVIEW_LINES = 40  # of a held call's diff, under its "[approval needed]" line


def preview_text(preview: str, lines: int = PREVIEW_LINES) -> str:
    """A held call's preview for a terminal: indented, bounded, control characters escaped
    (a diff of a file with escape sequences must not drive the terminal)."""
    shown = [
        "".join(ch if ch == "\t" or ch.isprintable() else f"\\x{ord(ch):02x}" for ch in line)
        for line in preview.split("\n")
    ]
    if len(shown) > lines:
        shown = [*shown[:lines], f"… {len(shown) - lines} more lines"]
    return "".join(f"    {line}\n" for line in shown)


class Printer:
    """Renders events as text for people, or as JSON lines for programs."""

    def __init__(self, as_json: bool, out: TextIO | None = None) -> None:
        self.as_json = as_json
        self.out = out or sys.stdout
        self._calls: dict[str, list[str]] = {}
        self._at_line_start = True

    def __call__(self, stored: StoredEvent) -> None:
        if self.as_json:
            self.out.write(stored.to_json_line() + "\n")
            self.out.flush()
            return
        data = json.loads(stored.data)
        kind = stored.type
        if kind == "TEXT_MESSAGE_START":
            prefix = "> " if data.get("role") == "user" else ""
            self._line()
            self._write(prefix)
        elif kind == "TEXT_MESSAGE_CONTENT":
            self._write(data["delta"])
        elif kind == "TEXT_MESSAGE_END":
            self._line()
        elif kind == "TOOL_CALL_START":
            self._calls[data["toolCallId"]] = [data["toolCallName"]]
        elif kind == "TOOL_CALL_ARGS":
            self._calls.setdefault(data["toolCallId"], ["?"]).append(data["delta"])
        elif kind == "TOOL_CALL_END":
            name, *args = self._calls.pop(data["toolCallId"], ["?"])
            self._line()
            self._write(f"[tool {name}] {''.join(args)}  ({data['toolCallId']})\n")
        elif kind == "TOOL_CALL_RESULT":
            content = str(data.get("content", ""))
            short = content if len(content) <= 400 else content[:400] + " ..."
            self._line()
            self._write(f"[result] {short}\n")
        elif kind == "RUN_FINISHED":
            outcome = data.get("outcome") or {}
            if outcome.get("type") == "interrupt":
                for item in outcome["interrupts"]:
                    meta = item.get("metadata") or {}
                    shown = json.dumps(meta.get("arguments"))
                    self._line()
                    self._write(
                        f"[approval needed] {item['toolCallId']} {meta.get('tool')} {shown}\n"
                    )
                    if isinstance(meta.get("preview"), str):
                        self._write(preview_text(meta["preview"]))
            elif outcome.get("type") == "cancelled":
                self._line()
                self._write("[stopped]\n")
        elif kind == "CUSTOM" and data.get("name") == "agentspace.decision":
            value = data.get("value") or {}
            if value.get("auto"):
                self._line()
                self._write(f"[auto-approved: {value.get('rule')}] {value.get('tool_call_id')}\n")
        elif kind == "RUN_ERROR":
            self._line()
            self._write(f"[error {data.get('code')}] {data['message']}\n")
        elif kind == "CUSTOM" and data.get("name") == Custom.WARNING:
            self._line()
            self._write(f"[warning] {(data.get('value') or {}).get('message', '')}\n")
        self.out.flush()

    def _write(self, text: str) -> None:
        if text:
            self.out.write(text)
            self._at_line_start = text.endswith("\n")

    def _line(self) -> None:
        if not self._at_line_start:
            self._write("\n")


async def follow(
    session: Session,
    after: int,
    printer: Printer,
    approve: str = "ask",
    message_id: str | None = None,
) -> int:
    """Print events after ``after`` until the run (that serves ``message_id``) ends."""
    mine = message_id is None
    async for stored in session.subscribe(after):
        printer(stored)
        if not mine:
            mine = stored.type == "TEXT_MESSAGE_START" and f'"{message_id}"' in stored.data
            continue
        if not stored.terminal:
            continue
        event: Any = stored.event
        if stored.type == "RUN_ERROR":
            return EXIT_BAD_INPUT if event.code == "invalid_config" else EXIT_RUN_ERROR
        outcome = event.outcome
        if outcome is None or outcome.type == "success":
            return EXIT_OK
        if outcome.type == "cancelled":
            return EXIT_STOPPED
        if approve == "ask":
            if not printer.as_json:
                ids = " ".join(i.tool_call_id or i.id for i in outcome.interrupts)
                printer.out.write(f"pending: {ids}\n")
            return EXIT_OK
        kind = "approve" if approve == "all" else "reject"
        reason = None if approve == "all" else "rejected by --approve none"
        for item in outcome.interrupts:
            await session.decide(
                item.tool_call_id or item.id, Decision(decision=kind, reason=reason), by=DECIDER
            )
    return EXIT_OK


async def _run(args: argparse.Namespace, engine: Engine) -> int:
    session = await engine.open(args.notebook, args.model)
    after = session.last_seq
    receipt = await session.send(args.prompt)
    return await follow(session, after, Printer(args.json), args.approve, receipt.message_id)


def _cost(usage: UsageTotals) -> str:
    """``$0.0123``, ``unknown`` (no call had a price), or ``$0.0123+2unpriced``."""
    if usage.cost is None:
        return "unknown"
    extra = f"+{usage.unpriced_calls}unpriced" if usage.unpriced_calls else ""
    return f"${usage.cost:.4f}{extra}"


async def _sessions(args: argparse.Namespace, engine: Engine) -> int:
    infos = await engine.list()
    if args.json:
        for info in infos:
            print(info.model_dump_json())
        return EXIT_OK
    for i in infos:
        u = i.usage
        print(
            f"{i.notebook}\t{i.id}\t{i.status}\t{i.effective_model}\t"
            f"tokens={u.total_tokens} cost={_cost(u)}\t{i.workspace}"
        )
    return EXIT_OK


async def _prune(args: argparse.Namespace, engine: Engine) -> int:
    pruned = await engine.prune(args.idle_days, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    for info in pruned:
        print(info.model_dump_json() if args.json else f"{verb}\t{info.notebook}\t{info.id}")
    if not args.json:
        print(f"{len(pruned)} anonymous kernel session(s) idle for {args.idle_days:g} days {verb}")
    return EXIT_OK


async def _events(args: argparse.Namespace, engine: Engine) -> int:
    session = await engine.find(args.key)
    printer = Printer(args.json)
    async for stored in session.past_events(args.after):
        printer(stored)
    return EXIT_OK


async def _approve(args: argparse.Namespace, engine: Engine) -> int:
    session = await engine.find(args.key)
    if args.reject is not None:
        decision = Decision(decision="reject", reason=args.reject or None)
    elif args.args is not None:
        try:
            arguments = json.loads(args.args)
        except ValueError as exc:
            raise InputError(f"--args is not valid JSON ({exc}); pass an object.") from exc
        if not isinstance(arguments, dict):
            raise InputError("--args must be a JSON object of the tool's arguments.")
        decision = Decision(decision="edit", arguments=arguments, remember=args.always)
    else:
        decision = Decision(decision="approve", remember=args.always)
    after = session.last_seq
    remaining = await session.decide(args.call_id, decision, by=DECIDER)
    if remaining:
        print(f"recorded; still pending: {' '.join(remaining)}", file=sys.stderr)
        return EXIT_OK
    if not session.busy:  # the process serving the session (the server) goes on with it
        print("recorded; the run goes on where the session is served", file=sys.stderr)
        return EXIT_OK
    return await follow(session, after, Printer(args.json), "ask")


async def _resume(args: argparse.Namespace, engine: Engine) -> int:
    session = await engine.find(args.key)
    after = session.last_seq
    await session.resume()
    if not session.busy:
        print(f"nothing to resume (status {session.status})", file=sys.stderr)
        return EXIT_OK
    return await follow(session, after, Printer(args.json), "ask")


async def _stop(args: argparse.Namespace, engine: Engine) -> int:
    session = await engine.find(args.key)
    await session.stop()
    print(f"stop requested ({session.notebook})", file=sys.stderr)
    return EXIT_OK


async def _preview(args: argparse.Namespace, engine: Engine) -> int:
    from agentspace.sandbox.forward import Forwarder

    session = await engine.find(args.key)
    try:
        _, probe = await session.connect(args.port)
        probe.close()
    except OSError as exc:
        raise InputError(
            f"Nothing listens on port {args.port} in the sandbox of {session.notebook} ({exc}). "
            "Start the server there first (start_process), in a process that stays up."
        ) from exc
    # The same checked loopback listener as embedded kernels' previews (sandbox/forward.py):
    # a token, a loopback Host, one checked request per connection.
    forwarder = await Forwarder(lambda: session.connect(args.port), args.local_port).start()
    print(
        f"{forwarder.url} -> port {args.port} in the sandbox of {session.notebook}"
        " (Ctrl-C to stop)",
        flush=True,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await forwarder.close()
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", type=Path, help="state directory (default: Jupyter's)")
    p = argparse.ArgumentParser(prog="agentspace", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", parents=[common], help="send one message and stream the run")
    r.add_argument("--notebook", required=True, help="notebook key, e.g. demo.ipynb")
    r.add_argument("--model", help="litellm model string, e.g. scripted/echo")
    r.add_argument("--approve", choices=["ask", "all", "none"], default="ask")
    r.add_argument("--json", action="store_true", help="one JSON event per line")
    r.add_argument("prompt")
    r.set_defaults(fn=_run)
    s = sub.add_parser("sessions", parents=[common], help="list sessions")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=_sessions)
    pr = sub.add_parser(
        "prune",
        parents=[common],
        help="delete the sessions (and workspaces) of kernels that could not name their notebook"
        " (nbclient, papermill: kernels/<id>.ipynb), idle for a while",
    )
    pr.add_argument("--idle-days", type=float, default=7.0, help="idle for this long (default 7)")
    pr.add_argument("--dry-run", action="store_true", help="list them, delete nothing")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(fn=_prune)
    e = sub.add_parser("events", parents=[common], help="print stored events")
    e.add_argument("key", help="notebook key or session id")
    e.add_argument("--after", type=int, default=0)
    e.add_argument("--json", action="store_true")
    e.set_defaults(fn=_events)
    a = sub.add_parser("approve", parents=[common], help="decide a pending tool call")
    a.add_argument("key")
    a.add_argument("call_id")
    group = a.add_mutually_exclusive_group()
    group.add_argument("--reject", metavar="REASON", help="reject, with a reason for the model")
    group.add_argument("--args", metavar="JSON", help="approve with edited arguments")
    a.add_argument("--always", action="store_true", help="always allow this tool in the session")
    a.add_argument("--json", action="store_true")
    a.set_defaults(fn=_approve)
    rs = sub.add_parser("resume", parents=[common], help="continue a stopped or failed session")
    rs.add_argument("key")
    rs.add_argument("--json", action="store_true")
    rs.set_defaults(fn=_resume)
    st = sub.add_parser("stop", parents=[common], help="stop the run in flight")
    st.add_argument("key")
    st.set_defaults(fn=_stop)
    pv = sub.add_parser("preview", parents=[common], help="forward a local port to the sandbox")
    pv.add_argument("key")
    pv.add_argument("port", type=int, help="the port a server listens on inside the sandbox")
    pv.add_argument(
        "--local-port", type=int, default=0, help="the port on 127.0.0.1 (default: any free one)"
    )
    pv.set_defaults(fn=_preview)
    from agentspace.cli.doctor import add_parser as add_doctor

    add_doctor(sub, common)
    return p


async def _main(args: argparse.Namespace) -> int:
    config = EngineConfig(state_dir=args.state_dir) if args.state_dir else EngineConfig()
    if args.command == "doctor":  # on SQLite directly: it must work where an engine cannot
        from agentspace.cli.doctor import run

        return run(args, config.state_dir)
    async with Engine(config) as engine:
        code: int = await args.fn(args, engine)
        return code


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return asyncio.run(_main(args))
    except StoreError as exc:  # the store, not the input (a damaged one says what to do)
        print(f"agentspace: {exc.message}", file=sys.stderr)
        return EXIT_RUN_ERROR
    except AgentspaceError as exc:
        print(f"agentspace: {exc.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_STOPPED


if __name__ == "__main__":
    sys.exit(main())
