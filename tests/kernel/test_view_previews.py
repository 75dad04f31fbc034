"""A held call's preview (a diff) in every view: text, saved HTML, the widget, the cell."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from agentspace_kernel.magics.arguments import approve_arguments
from agentspace_kernel.view import render
from agentspace_kernel.view.cells import approval_cell
from agentspace_kernel.view.render import plain, preview_html, static_html
from agentspace_kernel.view.state import RunView

ARGS = {"path": "notes.md", "old_string": "- milk\n", "new_string": "- oat milk\n"}
DIFF = "--- a/notes.md\n+++ b/notes.md\n@@ -1,2 +1,2 @@\n # shopping\n-- milk\n+- oat milk"


def held(preview: str | None, name: str = "edit_file", args: Any = ARGS) -> list[dict[str, Any]]:
    meta: dict[str, Any] = {"tool": name, "arguments": args}
    if preview is not None:
        meta["preview"] = preview
    return [
        {"type": "RUN_STARTED", "threadId": "t", "runId": "r"},
        {"type": "TOOL_CALL_START", "toolCallId": "c1", "toolCallName": name},
        {"type": "TOOL_CALL_ARGS", "toolCallId": "c1", "delta": json.dumps(args)},
        {"type": "TOOL_CALL_END", "toolCallId": "c1"},
        {"type": "RUN_FINISHED", "outcome": {"type": "interrupt", "interrupts": [
            {"id": "c1", "toolCallId": "c1", "reason": "tool_approval", "metadata": meta}]}},
    ]  # fmt: skip


def view_of(events: list[dict[str, Any]]) -> RunView:
    view = RunView()
    for e in events:
        view.apply(e)
    return view


APPROVED = [
    {"type": "CUSTOM", "name": "agentspace.decision",
     "value": {"tool_call_id": "c1", "decision": "approve"}},
    {"type": "RUN_STARTED", "threadId": "t", "runId": "r2"},
    {"type": "TOOL_CALL_RESULT", "toolCallId": "c1", "messageId": "x",
     "content": "Replaced 1 occurrence in notes.md"},
    {"type": "RUN_FINISHED", "outcome": {"type": "success"}},
]  # fmt: skip


def test_the_text_view_shows_the_diff_between_the_call_and_what_to_do() -> None:
    text = plain(view_of(held(DIFF)))
    lines = text.splitlines()
    assert lines[0].startswith('→ edit_file {"path": "notes.md"')  # the arguments still show
    assert lines[1:7] == ["    " + ln for ln in DIFF.split("\n")]
    assert lines[7].startswith("  ‖ approve: run the cell below (%%approve c1")


def test_a_tool_without_a_preview_shows_its_arguments_only() -> None:
    view = view_of(held(None, "shell", {"command": "ls"}))
    assert plain(view).splitlines()[:2] == [
        '→ shell {"command": "ls"}',
        "  ‖ approve: run the cell below (%%approve c1; edit the arguments first if you like)"
        " · reject: %reject c1 REASON · always allow shell in this session: %%approve c1"
        " --always",
    ]
    block = view.pending[0]
    assert preview_html(block) == "" and "agentspace-diff" not in static_html(view)
    assert "what it would change" not in approval_cell(block)


def test_a_long_diff_is_bounded_in_the_text_view_and_the_cell() -> None:
    diff = "--- /dev/null\n+++ b/big.txt\n@@ -0,0 +1,100 @@\n" + "\n".join(
        f"+{i}" for i in range(100)
    )
    view = view_of(held(diff, "write_file", {"path": "big.txt", "content": "..."}))
    shown = [ln for ln in plain(view).splitlines() if ln.startswith("    ")]
    assert len(shown) == render.PREVIEW_LINES + 1
    assert shown[-1] == "    … 63 more lines"
    cell = approval_cell(view.pending[0])
    assert cell.count("\n#   ") == render.PREVIEW_LINES + 1 and "#   … 63 more lines" in cell


def test_the_html_colours_added_and_removed_lines_and_escapes_everything() -> None:
    hostile = (
        "--- a/x.html\n+++ b/x.html\n@@ -1 +1 @@\n"
        "-<p>old</p>\n+<script>alert(1)</script><img src=x onerror=alert(2)>"
    )
    view = view_of(held(hostile))
    for shown in (static_html(view), preview_html(view.pending[0])):
        assert "<script" not in shown and "<img" not in shown and "<p>old" not in shown
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown
        added = re.search(r"<span style='([^']*)'>\+&lt;script", shown)
        removed = re.search(r"<span style='([^']*)'>-&lt;p&gt;", shown)
        assert added and "#dafbe1" in added.group(1)  # green
        assert removed and "#ffebe9" in removed.group(1)  # red
        assert "<span style='font-weight:bold'>--- a/x.html</span>" in shown  # a header
    pre = re.search(r"<pre class='agentspace-diff'[^>]*>(.*?)</pre>", static_html(view), re.S)
    assert pre is not None
    assert html.unescape(re.sub(r"<[^>]+>", "", pre.group(1))) == hostile


def test_a_diff_beyond_thirty_lines_is_folded_with_how_many_more() -> None:
    diff = "--- a/f\n+++ b/f\n@@ -1,50 +1,50 @@\n" + "\n".join(f"-{i}\n+{i}!" for i in range(25))
    shown = preview_html(view_of(held(diff)).pending[0])
    opened, folded = shown.split("<details", 1)
    assert opened.count("\n") == render.PREVIEW_HTML_LINES - 1
    assert "<summary>… 23 more lines</summary>" in folded
    assert "#dafbe1" in folded  # still coloured: the rest is inside the hunk


def test_control_characters_are_shown_not_obeyed() -> None:
    diff = "--- a/w.txt\n+++ b/w.txt\n@@ -1 +1 @@\n-a\r\n+b\x1b[31m\u2028c\x0cd"
    view = view_of(held(diff))
    text = plain(view)
    assert "\r" not in text and "\x1b" not in text and "\u2028" not in text
    assert "    -a␍\n" in text and "    +b␛[31m\\u2028c␌d\n" in text
    assert "\x1b" not in static_html(view)


def test_the_approve_cell_has_the_diff_as_comments_and_still_parses() -> None:
    diff = DIFF + '\n+{"not": "json"}\u2028oops\r'  # nothing in a preview breaks the cell
    cell = approval_cell(view_of(held(diff)).pending[0])
    head, _json = cell.split("\n{", 1)
    assert head.splitlines() == [
        "%%approve c1",
        "# edit_file — edit the arguments below, then run this cell to approve",
        "# what it would change:",
        *("#   " + ln for ln in DIFF.split("\n")),
        '#   +{"not": "json"}\\u2028oops␍',
    ]
    body = cell.split("\n", 1)[1]  # the magic's line is not the cell's body
    assert approve_arguments(body) == ARGS


def test_the_widget_card_shows_the_diff_while_waiting_and_drops_it_once_decided() -> None:
    from agentspace_kernel.view.widget import RunWidget, ToolCard

    view = view_of(held(DIFF))
    block = view.pending[0]
    card = ToolCard(block, lambda _id, _d: None)
    assert card.diff.value == preview_html(block) and "#ffebe9" in card.diff.value
    assert card.diff in card.children and card.controls in card.children
    assert "notes.md" in card.head.value  # the arguments still show, shorter
    widget = RunWidget(decide=lambda *a: None, stop=lambda: None)
    widget.update(view, list(range(len(view.blocks))))
    for e in APPROVED:
        widget.update(view, view.apply(e))
    done = widget.card("c1")
    assert done is not None and done.diff.value == "" and done.controls not in done.children
    assert "agentspace-diff" not in static_html(view)
    assert "--- a/notes.md" not in plain(view)  # a fresh print of the finished view


def test_an_edited_call_drops_the_diff_of_its_old_arguments() -> None:
    view = view_of(held(DIFF))
    view.apply(
        {"type": "CUSTOM", "name": "agentspace.decision",
         "value": {"tool_call_id": "c1", "decision": "edit",
                   "arguments": {**ARGS, "new_string": "- soy milk\n"}}}
    )  # fmt: skip
    block = view.tool("c1")
    assert block is not None and block.preview is None


def test_calls_listed_as_pending_keep_their_preview() -> None:
    view = RunView()
    view.seed_pending(
        [{"tool_call_id": "c9", "tool": "edit_file", "arguments": ARGS,
          "reason": "tool_approval", "needs_approval": True, "preview": DIFF},
         {"tool_call_id": "c8", "tool": "shell", "arguments": {"command": "ls"},
          "reason": "tool_approval", "needs_approval": True, "preview": None}]
    )  # fmt: skip
    first, second = view.pending
    assert first.preview == DIFF and second.preview is None
    assert "    +- oat milk" in plain(view)
