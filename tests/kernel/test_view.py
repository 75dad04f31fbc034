"""The view state machine and its renderings, fed AG-UI events directly (no kernel)."""

from __future__ import annotations

from typing import Any

import pytest

from agentspace_kernel.render import TextPrinter, markdown_html, plain
from agentspace_kernel.view import RunView


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
        " · reject: %reject c1 REASON\n"
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
    from agentspace_kernel.render import settled

    assert settled("one\n\ntwo") == len("one\n\n")
    assert settled("one\n\n```\ncode\n\nmore") == len("one\n\n")  # inside an open fence
    assert settled("a\n\n```\nx\n```\n\nb") == len("a\n\n```\nx\n```\n\n")
    assert settled("no break yet") == 0
    text = "para one\n\n- item\n- item\n\nlast line, still streaming"
    cut = settled(text)
    assert markdown_html(text[:cut]) + markdown_html(text[cut:]) == markdown_html(text)


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
