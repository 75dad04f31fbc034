"""Slash commands: what each means, and the errors that say how to write them."""

from __future__ import annotations

import pytest

from agentspace.server.chat.commands import Command, CommandError, parse, resolve


def test_commands_parse() -> None:
    assert parse("explain this cell") is None
    assert parse("/unknown thing") is None  # a prompt like any other
    assert parse("/approve call_1") == Command("approve", "call_1")
    assert parse("/approve call_1 always") == Command("approve", "call_1", remember=True)
    assert parse("/approve") == Command("approve", None)
    assert parse("/reject call_1 not that file") == Command(
        "reject", "call_1", reason="not that file"
    )
    assert parse('/edit call_1 {"path": "b.txt"}') == Command(
        "edit", "call_1", arguments={"path": "b.txt"}
    )
    assert parse('/edit {"path": "b"}') == Command("edit", None, arguments={"path": "b"})
    assert parse(" /STOP ") == Command("stop")


@pytest.mark.parametrize(
    "text, says",
    [
        ("/edit call_1 {nope", "JSON object"),
        ("/edit call_1 [1]", "JSON object"),
        ("/approve a b", "'always'"),
    ],
)
def test_malformed_commands_say_how(text: str, says: str) -> None:
    with pytest.raises(CommandError, match=says):
        parse(text)


def test_a_call_is_named_by_its_id_or_a_unique_start_or_alone() -> None:
    pending = ["call_abc1", "call_abd2"]
    assert resolve("call_abc1", pending) == "call_abc1"
    assert resolve("call_abd", pending) == "call_abd2"
    assert resolve(None, ["call_x"]) == "call_x"
    with pytest.raises(CommandError, match="starts several"):
        resolve("call_ab", pending)
    with pytest.raises(CommandError, match="name one"):
        resolve(None, pending)
    with pytest.raises(CommandError, match="No call is waiting"):
        resolve("call_abc1", [])
    with pytest.raises(CommandError, match="No waiting call"):
        resolve("zzz", pending)
