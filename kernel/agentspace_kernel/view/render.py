"""Plain-text and HTML renderings of a ``RunView``.

The plain text is what frontends without widgets show (nbconvert, nbval, a
console) and what a saved notebook keeps: deterministic for a scripted model
(no ids that change, no times), printed incrementally so a console streams it.
The HTML is the widget's: markdown rendered by markdown-it with raw HTML off,
so model output cannot inject markup or script (``javascript:`` links are
refused by markdown-it's link validation).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from agentspace_kernel.view.state import RunView, TextBlock, ToolBlock

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

RESULT_LINES = 12
STATUS_STYLE = "margin:2px 0;white-space:pre-wrap;word-break:normal;overflow-wrap:break-word"
"""A status line wraps between words (JupyterLab's output ``pre`` breaks anywhere)."""
DEMO_MODEL = "scripted/echo"
DEMO_NOTE = (
    "scripted/echo is a demo model: it repeats your message. For a real one, set a"
    " provider's key (such as OPENAI_API_KEY) where the Jupyter server runs, then"
    " %agent model NAME (for example openai/gpt-4o-mini)."
)
RESULT_CHARS = 1200
ARGS_CHARS = 300
PREVIEW_LINES = 40  # of a held call's diff, in the text view and the %%approve cell
PREVIEW_HTML_LINES = 30  # shown open in a card; the rest is folded under "… N more lines"
PREVIEW_LINE_CHARS = 300  # one line of it, in the text view and the cell
DIFF_STYLE = (
    "margin:2px 0;padding:4px 6px;background:#f6f8fa;border-radius:4px;font-size:0.9em;"
    "white-space:pre;overflow-x:auto"
)
DIFF_COLORS = {
    "+": "color:#116329;background:#dafbe1",
    "-": "color:#82071e;background:#ffebe9",
    "@": "color:#0550ae",
    "h": "font-weight:bold",
}


@cache
def _markdown() -> MarkdownIt:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def markdown_html(text: str) -> str:
    """Markdown to HTML with raw HTML escaped: safe to show model output."""
    return _markdown().render(text)


def settled(text: str) -> int:
    """Where the finished part of streaming markdown ends: after its last blank line
    outside a code fence. What is before it will not render differently as text is
    added, so a view draws it once and redraws only the rest."""
    end, fenced, offset = 0, False, 0
    for line in text.splitlines(keepends=True):
        offset += len(line)
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and not line.strip() and offset < len(text):
            end = offset
    return end


def clip(text: str, lines: int = RESULT_LINES, chars: int = RESULT_CHARS) -> str:
    """The head of ``text``, saying how much was left out."""
    kept = text.splitlines()
    cut = len(kept) > lines or len(text) > chars
    head = "\n".join(kept[:lines])[:chars]
    if cut:
        head += f"\n… ({len(text)} characters in all)"
    return head


def arguments_text(block: ToolBlock, chars: int = ARGS_CHARS) -> str:
    args = block.parsed_arguments
    text = json.dumps(args, ensure_ascii=False) if not isinstance(args, str) else args
    return text if len(text) <= chars else text[:chars] + "…"


def visible(line: str) -> str:
    """A line of a preview with control characters shown, not obeyed.

    A ``\r`` would overwrite the line in a stream output, and any character Python's
    ``splitlines`` breaks on would end a ``#`` comment line of an ``%%approve`` cell.
    """
    out = []
    for ch in line:
        code = ord(ch)
        if ch == "\t":
            out.append(ch)
        elif code < 0x20:
            out.append(chr(0x2400 + code))  # the Control Pictures block: ␍ ␌ ␀
        elif code == 0x7F:
            out.append("\u2421")
        elif code in (0x85, 0x2028, 0x2029) or 0x80 <= code < 0xA0:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def preview_lines(block: ToolBlock, lines: int = PREVIEW_LINES) -> list[str]:
    """The call's preview as display lines (at most ``lines``, then how many more); [] if none."""
    if block.preview is None:
        return []
    shown = []
    for line in block.preview.split("\n"):
        line = visible(line)
        cut = len(line) > PREVIEW_LINE_CHARS
        shown.append(line[:PREVIEW_LINE_CHARS] + ("…" if cut else ""))
    if len(shown) > lines:
        more = len(shown) - lines
        shown = [*shown[:lines], f"… {more} more line{'' if more == 1 else 's'}"]
    return shown


def _diff_kind(line: str, in_hunk: bool) -> str:
    if line.startswith("@@"):
        return "@"
    if not in_hunk and line.startswith(("--- ", "+++ ")):
        return "h"
    if line[:1] in ("+", "-") and in_hunk:
        return line[0]
    return ""


def _diff_rows(lines: list[str], in_hunk: bool) -> tuple[str, bool]:
    rows = []
    for line in lines:
        kind = _diff_kind(line, in_hunk)
        in_hunk = in_hunk or kind == "@"
        text = escape(visible(line))
        style = DIFF_COLORS.get(kind)
        rows.append(f"<span style='{style}'>{text}</span>" if style else text)
    return "\n".join(rows), in_hunk


def preview_html(block: ToolBlock, lines: int = PREVIEW_HTML_LINES) -> str:
    """The preview as a ``<pre>``: added lines green, removed red, everything escaped;
    beyond ``lines`` the rest is folded under a "… N more lines" summary. "" if none."""
    if block.preview is None:
        return ""
    every = block.preview.split("\n")
    head, in_hunk = _diff_rows(every[:lines], False)
    out = f"<pre class='agentspace-diff' style='{DIFF_STYLE}'>{head}</pre>"
    rest = every[lines:]
    if rest:
        body, _ = _diff_rows(rest, in_hunk)
        more = f"… {len(rest)} more line{'' if len(rest) == 1 else 's'}"
        out += (
            f"<details class='agentspace-diff-more'><summary>{more}</summary>"
            f"<pre class='agentspace-diff' style='{DIFF_STYLE}'>{body}</pre></details>"
        )
    return out


def head_arguments(block: ToolBlock) -> str:
    """The arguments a card's head shows: short when the diff below says what they do."""
    return arguments_text(block, ARGS_CHARS if block.preview is not None else 2000)


def waiting_hint(block: ToolBlock, below: bool = True) -> str:
    """What the user does about a waiting call (the same words in every view).

    ``below``: the kernel inserts (or the notebook holds) this call's own cell under the
    one that ran. Otherwise (a second call of the same pause, a run resumed by a click)
    the words name the cell to write, never a cell below that holds another call.
    """
    if block.kernel_tool and block.name == "run_cell":
        where = "the cell below" if below else "a new cell"
        return f"run {where} (%%agent_run {block.id}) to approve, or %reject {block.id} REASON"
    if block.kernel_tool:
        return "waiting for the kernel: it runs when a cell runs (%agent resume)"
    if not below:
        return (
            f"approve: run %%approve {block.id} in a new cell (the arguments as JSON under it,"
            f" to edit them) · reject: %reject {block.id} REASON"
        )
    return (
        f"approve: run the cell below (%%approve {block.id}; edit the arguments first if you"
        f" like) · reject: %reject {block.id} REASON · always allow {block.name} in this"
        f" session: %%approve {block.id} --always"
    )


DECIDED = {"approve": "approved", "edit": "edited", "result": "answered", "reject": "rejected"}


def always_label(block: ToolBlock) -> str:
    """The 'always allow' control says what it allows, and for how long."""
    return f"Always allow {block.name} in this session"


def auto_label(block: ToolBlock) -> str:
    """'auto-approved (always allow (session))' for a call no one was asked about, else ''."""
    decision = block.decision or {}
    return f"auto-approved ({decision.get('rule')})" if decision.get("auto") else ""


def status_line(block: ToolBlock, below: bool = True) -> str:
    decision = block.decision or {}
    auto = auto_label(block)
    # who decided, when someone did elsewhere (the chat, the side panel, another browser)
    elsewhere = decision.get("by") and not decision.get("auto") and not block.decided_here
    by = f" by {decision['by']}" if elsewhere else ""
    if block.status == "awaiting_approval" or block.status == "waiting_kernel":
        return "‖ " + waiting_hint(block, below)
    if block.status == "rejected":
        reason = decision.get("reason")
        return f"✗ rejected{by}" + (f": {reason}" if reason else "")
    if block.status in ("done", "error") and block.result is not None:
        mark = "✓" if block.status == "done" else "✗"
        done = DECIDED.get(str(decision.get("decision")), "decided")
        lead = f"{mark} {auto} ·" if auto else f"{mark} {done}{by} ·" if by else mark
        return lead + " " + clip(block.result).replace("\n", "\n  ")
    if auto:
        return f"… {auto}, running"
    if decision:
        done = DECIDED.get(str(decision.get("decision")), "decided")
        return f"… {done}{by}, running"
    return "… running"


def spend_text(usage: Mapping[str, Any]) -> str:
    """A session's cost as the user reads it: an unknown price is never shown as $0."""
    cost, unpriced = usage.get("cost"), int(usage.get("unpriced_calls") or 0)
    if cost is None:
        return "unknown (no price is known for this model)"
    text = f"${float(cost):.4f}"
    if unpriced:
        calls = "call" if unpriced == 1 else "calls"
        text += f" plus {unpriced} {calls} at an unknown price"
    return text


def footer(view: RunView) -> str:
    usage = ""
    if view.usage:
        tokens_in, tokens_out = view.usage.get("inputTokens", 0), view.usage.get("outputTokens", 0)
        usage = f" · {tokens_in} tokens in, {tokens_out} out"
    if view.spend is not None:
        usage += f" · session cost {spend_text(view.spend)}"
    usage += "".join(f"\n⚠ {warning}" for warning in view.warnings)
    if view.attached and view.state != "waiting":
        usage += f"\n📎 {view.attached}"
    if view.state == "failed":
        return f"[error: {view.error}]{usage}"
    if view.state == "paused":
        return f"[waiting for a decision]{usage}"
    if view.state == "moved":
        return f"[decided elsewhere: the run goes on where it was decided]{usage}"
    if view.state == "stopped":
        return f"[stopped: %agent resume continues]{usage}"
    if view.state == "finished":
        note = f"\n{DEMO_NOTE}" if view.model == DEMO_MODEL else ""
        return f"[done]{usage}{note}"
    if view.queued:
        return f"[queued: position {view.queued}]"
    return "[running]"


ERROR_BOX = (
    "<div class='agentspace-error' role='alert' style='border:1px solid #cf222e;"
    "background:#ffebe9;color:#82071e;border-radius:6px;padding:6px 10px;margin:4px 0;"
    "white-space:pre-wrap'><b>The run failed.</b> {message}</div>"
)


def footer_html(view: RunView) -> str:
    """The footer as HTML: a failed run's message in an error box, not as bracketed text."""
    if view.state != "failed":
        return f"<span>{_lines(footer(view))}</span>"
    box = ERROR_BOX.format(message=escape(view.error or "the run failed"))
    rest = footer(view).removeprefix(f"[error: {view.error}]").strip(" ·")
    return box + (f"<span>{_lines(rest)}</span>" if rest else "")


def _lines(text: str) -> str:
    return escape(text).replace("\n", "<br>")


def plain(view: RunView) -> str:
    """The whole view as text (what a saved notebook keeps)."""
    printer = TextPrinter()
    return printer.update(view, final=True)


def plain_quiet(view: RunView) -> str:
    """``--quiet``: the answer's text, and what waits for the user, without tool details."""
    lines = [view.text] if view.text else []
    lines += [f"‖ {b.name}: {waiting_hint(b, view.cell_below(b))}" for b in view.pending]
    if view.state == "failed":
        lines.append(f"[error: {view.error}]")
    return "\n".join(lines) + "\n" if lines else ""


class TextPrinter:
    """Turns view changes into text to append, for a live console or stream output.

    Text blocks stream as they grow; a tool call prints once its arguments are
    complete, and again when its status changes.
    """

    def __init__(self) -> None:
        self.printed: dict[str, Any] = {}  # block id -> chars printed (text) or last status line
        self.previewed: set[str] = set()  # calls whose preview (a diff) is printed
        self.open_text: str | None = None
        self.footed = 0  # how many of the view's endings have their footer printed

    def update(self, view: RunView, final: bool = False) -> str:
        out: list[str] = []
        for block in view.blocks:
            if isinstance(block, TextBlock):
                done = int(self.printed.get(block.id, 0))
                if len(block.text) > done:
                    if self.open_text != block.id:
                        out.append(self._break())
                        self.open_text = block.id
                    out.append(block.text[done:])
                    self.printed[block.id] = len(block.text)
            elif block.status != "streaming":
                seen = self.printed.get(block.id)
                if seen is None:
                    out.append(self._break())
                    out.append(f"→ {block.name} {arguments_text(block)}\n")
                    self.printed[block.id] = ""
                # "running" is not printed: whether it shows would depend on timing
                quiet = block.status == "called" or view.answers(block)
                line = "" if quiet else status_line(block, view.cell_below(block))
                if line and seen != line:
                    if block.id not in self.previewed and block.preview is not None:
                        out.append("".join(f"    {ln}\n" for ln in preview_lines(block)))
                        self.previewed.add(block.id)
                    out.append(f"  {line}\n")
                    self.printed[block.id] = line
        if not view.ended or (self.footed >= view.endings and not final):
            pass
        elif view.state == "paused" and not view.needs_user:
            self.footed = view.endings  # this cell answers the kernel calls itself: no pause
        else:
            out.append(self._break())
            out.append(footer(view) + "\n")
            self.footed = view.endings
        return "".join(out)

    def _break(self) -> str:
        if self.open_text is not None:
            self.open_text = None
            return "\n"
        return ""


def escape(text: str) -> str:
    return html.escape(text, quote=True)


def static_html(view: RunView) -> str:
    """The finished view as plain HTML: what a saved notebook keeps in place of the widget.

    A widget needs its live kernel (a reopened notebook would say "model not found"), so
    a cell whose run has ended swaps its widget for this: the same markdown (raw HTML
    refused), tool cards with their results, the footer and preview links.
    """
    parts: list[str] = []
    for block in view.blocks:
        if isinstance(block, TextBlock):
            parts.append(markdown_html(block.text))
            continue
        parts.append(
            "<div class='agentspace-tool' style='border:1px solid #d0d7de;padding:4px 8px;"
            "margin:4px 0'>"
            f"<b>{escape(block.name)}</b> <code>{escape(head_arguments(block))}</code>"
            f"{preview_html(block)}"
            f"<pre style='{STATUS_STYLE}'>{escape(status_line(block, view.cell_below(block)))}"
            "</pre></div>"
        )
    links = " ".join(
        f"<a href='{escape(url)}' target='_blank' rel='noopener'>preview :{port}</a>"
        for port, url in sorted(view.previews.items())
        if url.startswith("/")
    )
    parts.append(f"<p>{footer_html(view)} {links}</p>")
    return "<div class='agentspace-view'>" + "".join(parts) + "</div>"
