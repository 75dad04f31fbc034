"""How a tool's policy is resolved: one function, one table (approvals.explain_policy)."""

from __future__ import annotations

from typing import Any

import pytest

from agentspace.engine.policies import ALWAYS, check_session_policies, explain_policy
from agentspace.errors import ConflictError

# (server rules, session rules, remembered) -> (policy, rule) for the tool "shell" (default ask)
TABLE: list[tuple[dict[str, Any], dict[str, Any], list[str], str, str]] = [
    ({}, {}, [], "ask", "default"),
    ({"*": "allow"}, {}, [], "allow", "server: *"),
    ({"*": "allow", "shell": "ask"}, {}, [], "ask", "server: shell"),  # tool over "*"
    ({}, {"*": "deny"}, [], "deny", "session: *"),  # a session's "*" is read (it was not)
    ({"shell": "allow"}, {"*": "deny"}, [], "deny", "session: *"),  # session over server
    ({}, {"*": "deny", "shell": "allow"}, [], "allow", "session: shell"),  # tool over "*"
    ({"*": "ask"}, {"*": "allow"}, [], "allow", "session: *"),
    ({"shell": "deny"}, {"*": "allow"}, [], "deny", "server: shell"),  # never lifted by "*"
    ({"*": "deny"}, {"*": "allow"}, [], "deny", "server: *"),
    ({"*": "deny", "shell": "ask"}, {"*": "allow"}, [], "allow", "session: *"),
    ({}, {"shell": "allow"}, ["shell"], "allow", ALWAYS),  # remembered by "always allow"
    ({}, {"shell": "ask"}, ["shell"], "ask", "session: shell"),
]


@pytest.mark.parametrize(("server", "session", "remembered", "policy", "rule"), TABLE)
def test_the_resolution_table(
    server: dict[str, Any], session: dict[str, Any], remembered: list[str], policy: str, rule: str
) -> None:
    resolved = explain_policy("shell", "ask", server, session, remembered)
    assert (resolved.policy, resolved.rule) == (policy, rule)


def test_auto_names_the_rule_only_when_it_lets_through_what_would_ask() -> None:
    assert explain_policy("shell", "ask", {}, {"shell": "allow"}).auto == "session: shell"
    assert explain_policy("read_file", "allow", {"*": "allow"}, {}).auto is None
    assert explain_policy("shell", "ask", {}, {"*": "ask"}).auto is None


@pytest.mark.parametrize(
    ("server", "session"),
    [
        ({"shell": "deny"}, {"shell": "allow"}),
        ({"shell": "deny"}, {"shell": "ask"}),
        ({"*": "deny"}, {"shell": "allow"}),
    ],
)
def test_a_session_rule_that_would_lift_a_server_deny_is_refused(
    server: dict[str, Any], session: dict[str, Any]
) -> None:
    with pytest.raises(ConflictError, match="server's policies deny shell") as caught:
        check_session_policies(session, server)
    assert caught.value.data == {"tools": ["shell"]}
    assert "AgentspaceApp.policies" in caught.value.message


@pytest.mark.parametrize(
    ("server", "session"),
    [
        ({"shell": "deny"}, {"shell": "deny"}),
        ({"shell": "deny"}, {"*": "allow"}),  # accepted; the table shows shell stays denied
        ({"*": "deny", "shell": "ask"}, {"shell": "allow"}),
        ({}, {"*": "deny"}),
    ],
)
def test_other_session_rules_are_accepted(server: dict[str, Any], session: dict[str, Any]) -> None:
    check_session_policies(session, server)
