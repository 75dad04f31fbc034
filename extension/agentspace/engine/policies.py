"""Approval policies: which rule decides whether a call runs, asks or is refused.

One resolution everywhere: a tool-specific rule over ``"*"``, the session's over the
server's, and a server ``deny`` cannot be loosened by a session. The pending calls and
decisions themselves are data in the store (``store.approvals``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import NamedTuple

from agentspace.errors import ConflictError
from agentspace.store.approvals import PendingCall
from agentspace.tools.base import Policy


class Resolved(NamedTuple):
    """A tool's effective policy and the rule it comes from (shown with auto-approved calls)."""

    policy: Policy
    rule: str  # "server: shell", "session: *", "always allow (session)", "default", ...
    default: Policy = "ask"  # the tool's own policy, before any rule

    @property
    def auto(self) -> str | None:
        """The rule that lets a call through that would otherwise ask (or be refused)."""
        return self.rule if self.policy == "allow" and self.default != "allow" else None


ALWAYS = "always allow (session)"


def explain_policy(
    tool: str,
    default: Policy,
    server: dict[str, Policy],
    session: dict[str, Policy],
    remembered: Iterable[str] = (),
) -> Resolved:
    """The one place a tool's policy is decided, for every caller.

    * A tool the server denies (``server[tool]``, else ``server["*"]``) stays denied:
      the server's denials are a ceiling a session cannot lift (``check_session_policies``
      refuses a session rule that tries, so this is never silent).
    * Otherwise the session decides (``session[tool]``, else ``session["*"]``), then the
      server (``server[tool]``, else ``server["*"]``), then the tool's own default:
      tool-specific over ``"*"``, session over server.
    """
    if server_denies(tool, server):
        return Resolved("deny", f"server: {tool if tool in server else '*'}", default)
    if tool in session:
        rule = ALWAYS if tool in remembered and session[tool] == "allow" else f"session: {tool}"
        return Resolved(session[tool], rule, default)
    if "*" in session:
        return Resolved(session["*"], "session: *", default)
    if tool in server:
        return Resolved(server[tool], f"server: {tool}", default)
    if "*" in server:
        return Resolved(server["*"], "server: *", default)
    return Resolved(default, "default", default)


def resolve_policy(
    tool: str,
    default: Policy,
    server: dict[str, Policy],
    session: dict[str, Policy],
) -> Policy:
    """The effective policy (see ``explain_policy``)."""
    return explain_policy(tool, default, server, session).policy


def server_denies(tool: str, server: dict[str, Policy]) -> bool:
    """Whether the server's config denies ``tool`` (its own rule, else its ``"*"``)."""
    return server.get(tool, server.get("*")) == "deny"


def check_session_policies(policies: dict[str, Policy], server: dict[str, Policy]) -> None:
    """Refuse a session rule that would lift a tool the server denies (409, says why).

    A session's ``"*"`` is accepted with any value: it never reaches a tool the
    server denies (the listing of a session's tools shows the effect).
    """
    lifted = sorted(
        t for t, p in policies.items() if t != "*" and p != "deny" and server_denies(t, server)
    )
    if lifted:
        rules = ", ".join(f"{t if t in server else '*'}: deny" for t in lifted)
        raise ConflictError(
            f"The server's policies deny {', '.join(lifted)} ({rules}); a session cannot allow "
            "or ask for a tool the server denies. Leave it out of the session's policies, or "
            "ask the server's admin to change AgentspaceApp.policies.",
            tools=lifted,
        )


_DONE = {
    "approve": "approved",
    "reject": "rejected",
    "edit": "approved with edited arguments",
    "result": "answered with the kernel's result",
}


def decided_text(call: PendingCall) -> str:
    """How a call was decided, for whoever comes second: what, with what, by whom, why."""
    d = call.decision
    if d is None:
        return "decided"
    text = _DONE[d.decision]
    if d.decision == "edit":
        text += f" {json.dumps(d.arguments, ensure_ascii=False)[:500]}"
    if d.decision == "result" and d.is_error:
        text += " (an error)"
    if call.decided_by:
        text += f" by {call.decided_by}"
    if d.reason:
        text += f" (reason: {d.reason[:500]})"
    return text


def rejection_text(name: str, reason: str | None) -> str:
    why = f" Reason: {reason}" if reason else ""
    return f"The user rejected this call to {name}; it did not run.{why}"


DENIED_TEXT = "The tool {name} is denied by policy in this session; it did not run."
