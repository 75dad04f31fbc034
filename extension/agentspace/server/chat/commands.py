"""Slash commands typed in a chat: decide a held call, stop or resume the agent.

For every frontend, ours or not: ``/approve ID``, ``/approve ID always`` (and always allow the
tool in this session), ``/reject ID reason``, ``/edit ID {json arguments}``, ``/stop``,
``/resume``, ``/help``. ``ID`` is a pending call's id, or a unique start of one, or nothing when
exactly one call is pending. A malformed command gets an error that says how to write it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

HELP = (
    "Commands: `/approve ID` (`/approve ID always` also allows the tool for this session), "
    '`/reject ID reason`, `/edit ID {"arg": ...}` (new arguments as a JSON object), '
    "`/stop` (stop the agent, keeping what it wrote), `/resume` (go on after a stop or a "
    "failure, or ask the notebook's kernel again for calls waiting for it), `/help`. "
    "ID is the call's id as its card shows it (a unique start of it is enough)."
)


class CommandError(ValueError):
    """A command that cannot be carried out; the message says how to write it."""


@dataclass
class Command:
    verb: Literal["approve", "reject", "edit", "stop", "resume", "help"]
    call: str | None = None
    reason: str | None = None
    arguments: dict[str, Any] | None = None
    remember: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def parse(text: str) -> Command | None:
    """The command ``text`` is, or None if it is a prompt (not starting with a known ``/verb``)."""
    stripped = text.strip()
    if not stripped.startswith("/"):
        return None
    head, _, rest = stripped[1:].partition(" ")
    verb = head.lower()
    rest = rest.strip()
    if verb in ("stop", "resume", "help"):
        return Command(verb)  # type: ignore[arg-type]
    if verb == "approve":
        call, _, tail = rest.partition(" ")
        if call.lower() == "always" and not tail:
            return Command("approve", None, remember=True)
        if tail.strip() and tail.strip().lower() != "always":
            raise CommandError(f"/approve takes a call id and optionally 'always'. {HELP}")
        return Command("approve", call or None, remember=tail.strip().lower() == "always")
    if verb == "reject":
        call, _, reason = rest.partition(" ")
        return Command("reject", call or None, reason=reason.strip() or None)
    if verb == "edit":
        call, _, raw = rest.partition(" ")
        if call.startswith("{"):  # no id, only the arguments
            call, raw = "", rest
        try:
            arguments = json.loads(raw)
        except ValueError as exc:
            raise CommandError(
                f"/edit needs the new arguments as a JSON object after the id: {exc}."
            ) from None
        if not isinstance(arguments, dict):
            raise CommandError('/edit needs the new arguments as a JSON object, {"name": value}.')
        return Command("edit", call or None, arguments=arguments)
    return None  # "/something else" is a prompt like any other


def resolve(given: str | None, pending: list[str]) -> str:
    """The pending call ``given`` names (its id or a unique start of it)."""
    if not pending:
        raise CommandError("No call is waiting for a decision.")
    if not given:
        if len(pending) == 1:
            return pending[0]
        raise CommandError(f"Several calls are waiting ({', '.join(pending)}): name one.")
    if given in pending:
        return given
    matches = [p for p in pending if p.startswith(given)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise CommandError(f"{given!r} starts several waiting calls ({', '.join(matches)}).")
    raise CommandError(f"No waiting call is {given!r}; waiting: {', '.join(pending)}.")
