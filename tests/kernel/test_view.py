"""The view state machine and its renderings, fed AG-UI events directly (no kernel)."""

from __future__ import annotations

from typing import Any

import pytest

from agentspace_kernel.view.render import TextPrinter, markdown_html, plain
from agentspace_kernel.view.state import RunView


def text(mid: str, *deltas: str) -> list[dict[str, Any]]:
    return [
        {"type": "TEXT_MESSAGE_START", "messageId": mid, "role": "assistant"},
        *({"type": "TEXT_MESSAGE_CONTENT", "messageId": mid, "delta": d} for d in deltas),
        {"type": "TEXT_MESSAGE_END", "messageId": mid},
    ]


def call(cid: str, name: str, *args: str) -> list[dict[str, Any]]:
    return [
        {"type": "TOOL_CALL_START", "toolCallId": cid, "toolCallName": name},
        *({"type": "TOOL_CALL_ARGS", "toolCallId": cid, "delta": a} for a in args),
        {"type": "TOOL_CALL_END", "toolCallId": cid},
    ]


PAUSE = {
    "type": "RUN_FINISHED",
    "outcome": {"type": "interrupt", "interrupts": [
        {"id": "c1", "toolCallId": "c1", "reason": "tool_approval",
         "metadata": {"tool": "shell", "arguments": {"command": "ls"}}}]},
    "usage": [{"inputTokens": 10, "outputTokens": 4}],
}  # fmt: skip
RUN = [
    {"type": "RUN_STARTED", "threadId": "t", "runId": "r"},
    *text("m1", "Let me ", "look."),
    *call("c1", "shell", '{"comm', 'and": "ls"}'),
    PAUSE,
]
RESUMED = [
    {"type": "CUSTOM", "name": "agentspace.decision",
     "value": {"tool_call_id": "c1", "decision": "edit", "arguments": {"command": "ls -a"}}},
    {"type": "RUN_STARTED", "threadId": "t", "runId": "r2"},
    {"type": "TOOL_CALL_RESULT", "toolCallId": "c1", "messageId": "x",
     "content": "Note: the user edited the arguments of this call to {...}.\nexit code: 0"},
    *text("m2", "Done."),
    {"type": "RUN_FINISHED", "outcome": {"type": "success"}},
]  # fmt: skip


def test_a_run_folds_into_blocks_and_pauses_on_the_call() -> None:
    view = RunView()
    for e in RUN:
        view.apply(e)
    assert view.state == "paused"
    assert view.text == "Let me look."
    (pending,) = view.pending
    assert (pending.id, pending.name, pending.parsed_arguments) == (
        "c1",
        "shell",
        {"command": "ls"},
    )
    assert view.usage == {"inputTokens": 10, "outputTokens": 4}


def test_an_edit_decision_shows_the_new_arguments_and_the_clean_result() -> None:
    view = RunView()
    for e in RUN + RESUMED:
        view.apply(e)
    block = view.tool("c1")
    assert block is not None and block.status == "done"
    assert block.parsed_arguments == {"command": "ls -a"}
    assert block.result == "exit code: 0"  # the note for the model is not shown
    assert view.state == "finished" and view.text == "Let me look.\n\nDone."


@pytest.mark.parametrize("batch", [1, 2, 3, 100])
def test_streamed_text_does_not_depend_on_how_events_are_batched(batch: int) -> None:
    """A headless run's saved output must be the same however deltas arrived.

    As a cell follows: each run is applied until it ends (or pauses), drawn,
    and the next run (after the decision) is followed by the same view.
    """
    view, printer, out = RunView(kernel_here=True), TextPrinter(), []
    for events in (RUN, RESUMED):
        view.state = "waiting" if view.ended else view.state
        for i in range(0, len(events), batch):
            for e in events[i : i + batch]:
                view.apply(e)
            out.append(printer.update(view))
    assert "".join(out) == (
        "Let me look.\n"
        '→ shell {"command": "ls"}\n'
        "  ‖ approve: run the cell below (%%approve c1; edit the arguments first if you like)"
        " · reject: %reject c1 REASON · always allow shell in this session:"
        " %%approve c1 --always\n"
        "[waiting for a decision] · 10 tokens in, 4 out\n"
        "  ✓ exit code: 0\n"
        "Done.\n"
        "[done] · 10 tokens in, 4 out\n"
    )
    whole = RunView()
    for e in RUN + RESUMED:
        whole.apply(e)
    assert plain(whole).endswith("Done.\n[done] · 10 tokens in, 4 out\n")


def test_an_error_ends_the_view_with_its_message() -> None:
    view = RunView()
    view.apply({"type": "RUN_STARTED"})
    view.apply({"type": "RUN_ERROR", "message": "The API key is missing: set OPENAI_API_KEY."})
    assert view.ended and plain(view).strip() == (
        "[error: The API key is missing: set OPENAI_API_KEY.]"
    )


@pytest.mark.parametrize(
    ("source", "absent"),
    [
        ("<script>alert(1)</script>", "<script"),
        ('<img src=x onerror="alert(1)">', "<img"),
        ("[click](javascript:alert(1))", 'href="javascript:'),
        ("[x](vbscript:msgbox)", 'href="vbscript:'),
    ],
)
def test_model_markdown_cannot_inject_markup(source: str, absent: str) -> None:
    assert absent not in markdown_html(source)


def test_markdown_is_rendered() -> None:
    html = markdown_html("**bold** and `code`\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    assert "<strong>bold</strong>" in html and "<code>code</code>" in html
    assert "<table>" in html


def test_settled_markdown_ends_after_the_last_paragraph_outside_code() -> None:
    from agentspace_kernel.view.render import settled

    assert settled("one\n\ntwo") == len("one\n\n")
    assert settled("one\n\n```\ncode\n\nmore") == len("one\n\n")  # inside an open fence
    assert settled("a\n\n```\nx\n```\n\nb") == len("a\n\n```\nx\n```\n\n")
    assert settled("no break yet") == 0
    text = "para one\n\n- item\n- item\n\nlast line, still streaming"
    cut = settled(text)
    assert markdown_html(text[:cut]) + markdown_html(text[cut:]) == markdown_html(text)


def test_a_failed_run_shows_its_error_in_a_styled_box_in_the_widget_and_saved_html() -> None:
    from agentspace_kernel.view.render import static_html
    from agentspace_kernel.view.widget import RunWidget

    message = "openai/gpt-4o-mini: authentication failed; no API key was found: set <KEY>."
    view = RunView()
    events = [
        {"type": "RUN_STARTED"},
        {"type": "RUN_ERROR", "message": message},
    ]
    changed: list[int] = []
    for e in events:
        changed += view.apply(e)
    widget = RunWidget(decide=lambda *a: None, stop=lambda: None)
    widget.update(view, changed)
    for shown in (widget.footer.value, static_html(view)):
        assert "class='agentspace-error'" in shown and "role='alert'" in shown
        assert "set &lt;KEY&gt;." in shown  # escaped, never markup
        assert "[error:" not in shown


@pytest.mark.parametrize("state", ["paused", "finished", "stopped", "failed", "moved"])
def test_the_footer_has_no_literal_backticks(state: str) -> None:
    from agentspace_kernel.view.render import footer

    view = RunView(state=state, error="the model failed")  # type: ignore[arg-type]
    assert "`" not in footer(view)


def test_the_demo_model_says_so_and_how_to_pick_a_real_one() -> None:
    from agentspace_kernel.view.render import footer

    view = RunView(state="finished", model="scripted/echo")
    assert "scripted/echo is a demo model" in footer(view)
    assert "%agent model" in footer(view) and "OPENAI_API_KEY" in footer(view)
    assert "demo" not in footer(RunView(state="finished", model="openai/gpt-4o-mini"))


def test_an_approval_line_wraps_between_words_not_inside_them() -> None:
    """JupyterLab's output `pre` has word-break: break-all; the status line overrides it."""
    from agentspace_kernel.view.render import static_html

    view = RunView()
    for e in RUN:
        view.apply(e)
    html = static_html(view)
    assert "word-break:normal" in html and "white-space:pre-wrap" in html


AUTO_RUN = [
    {"type": "RUN_STARTED", "threadId": "t", "runId": "r3"},
    *call("c2", "shell", '{"command": "ls"}'),
    {"type": "CUSTOM", "name": "agentspace.decision",
     "value": {"tool_call_id": "c2", "decision": "approve", "auto": True,
               "rule": "always allow (session)"}},
    {"type": "TOOL_CALL_RESULT", "toolCallId": "c2", "messageId": "y", "content": "exit code: 0"},
    {"type": "RUN_FINISHED", "outcome": {"type": "success"}},
]  # fmt: skip


def test_always_allow_names_its_tool_and_auto_approved_calls_say_so_in_every_view() -> None:
    from agentspace_kernel.view.render import static_html
    from agentspace_kernel.view.widget import ToolCard

    view = RunView()
    for e in RUN:
        view.apply(e)
    waiting = view.tool("c1")
    assert waiting is not None
    card = ToolCard(waiting, lambda _id, _d: None)
    labels = [b.description for b in card.buttons]
    assert labels == ["Approve", "Reject", "Edit", "Always allow shell in this session"]
    card.failed("The tool call 'c1' was already decided: approved by alice.", settled=True)
    assert all(b.disabled for b in card.buttons)  # another decision won: nothing to click

    view = RunView()
    for e in AUTO_RUN:
        view.apply(e)
    block = view.tool("c2")
    assert block is not None and block.status == "done"
    marked = "✓ auto-approved (always allow (session)) · exit code: 0"
    assert marked in plain(view)
    assert marked in static_html(view)
    assert marked in ToolCard(block, lambda _id, _d: None).status.value


WARNING = {
    "type": "CUSTOM",
    "name": "agentspace.warning",
    "value": {"code": "cost_ceiling_unenforceable", "message": "The cost ceiling cannot hold."},
}
DONE = {"type": "RUN_FINISHED", "outcome": {"type": "success"}}


@pytest.mark.parametrize(
    ("spend", "shown"),
    [
        ({"cost": None, "unpriced_calls": 2}, "session cost unknown"),
        (
            {"cost": 0.5, "unpriced_calls": 1},
            "session cost $0.5000 plus 1 call at an unknown price",
        ),
        ({"cost": 0.0, "unpriced_calls": 0}, "session cost $0.0000"),
    ],
)
def test_the_footer_never_shows_an_unknown_price_as_zero(spend: dict[str, Any], shown: str) -> None:
    view = RunView()
    for event in [{"type": "RUN_STARTED"}, WARNING, WARNING, *text("m1", "hi"), DONE]:
        view.apply(event, 0)
    view.spend = spend
    out = plain(view)
    assert shown in out
    assert out.count("The cost ceiling cannot hold.") == 1  # once, however often it came
