"""Unified diffs for tool previews: what a held call would change, bounded.

A preview is read by a person deciding a call, in a notebook cell or a card, so it is
capped (lines, bytes, the length of one line) and says how much was left out. Lines
are split on ``\\n`` only, as git does (a form feed or ``\\r`` stays inside its line);
the views make control characters visible.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator

MAX_LINES = 400
MAX_BYTES = 40_000
LINE_CHARS = 1_000  # one line longer than this is cut (a minified file is one line)
MAX_DIFF_INPUT = 2_000_000  # characters on either side beyond which no line diff is tried
NO_NEWLINE = "\\ No newline at end of file"


def _lines(text: str) -> list[str]:
    """``text`` as lines that keep their ``\\n`` (the last one may lack it)."""
    if not text:
        return []
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _shown(line: str) -> str:
    return line if len(line) <= LINE_CHARS else line[:LINE_CHARS] + f"… ({len(line):,} characters)"


def _diff_lines(prefixed: Iterable[str]) -> Iterator[str]:
    """difflib's output (lines keeping their ``\\n``) as display lines without it."""
    for line in prefixed:
        if line.endswith("\n"):
            yield _shown(line[:-1])
        else:  # the last line of a side without a final newline
            yield _shown(line)
            if line[:1] in "+- ":
                yield NO_NEWLINE


def cap(lines: Iterable[str], max_lines: int = MAX_LINES, max_bytes: int = MAX_BYTES) -> str:
    """Lines joined, at most ``max_lines`` and ``max_bytes``, ending with a marker if cut."""
    kept: list[str] = []
    used = 0
    total = 0
    for line in lines:
        total += 1
        if len(kept) == total - 1 and len(kept) < max_lines:
            size = len(line.encode("utf-8")) + 1
            if used + size <= max_bytes:
                kept.append(line)
                used += size
    text = "\n".join(kept)
    if total > len(kept):
        more = total - len(kept)
        text += f"\n… {more:,} more line{'' if more == 1 else 's'} not shown ({total:,} in all)"
    return text


def cap_text(text: str, max_lines: int = MAX_LINES, max_bytes: int = MAX_BYTES) -> str:
    """Any preview text, bounded the same way as a diff."""
    return cap((_shown(line) for line in text.split("\n")), max_lines, max_bytes)


def unified(
    path_label: str,
    old: str | None,
    new: str,
    context: int = 3,
    max_lines: int = MAX_LINES,
    max_bytes: int = MAX_BYTES,
) -> str:
    """A unified diff of ``old`` to ``new`` (``old`` None: a new file), "" if they are equal.

    Headers are ``--- a/PATH`` / ``+++ b/PATH`` (``--- /dev/null`` for a new file), as
    ``git diff`` writes them, so tools that read patches read these.
    """
    if old == new:
        return ""
    before = "/dev/null" if old is None else f"a/{path_label}"
    after = f"b/{path_label}"
    new_lines = _lines(new)
    if old is None or not old:
        if not new_lines:
            return f"--- {before}\n+++ {after}\n(a new, empty file)"
        count = "" if len(new_lines) == 1 else f",{len(new_lines)}"
        header = [f"--- {before}", f"+++ {after}", f"@@ -0,0 +1{count} @@"]
        body = _diff_lines("+" + line for line in new_lines)
        return cap([*header, *body], max_lines, max_bytes)
    if len(old) > MAX_DIFF_INPUT or len(new) > MAX_DIFF_INPUT:
        return (
            f"--- {before}\n+++ {after}\n"
            f"(too large to compare line by line: {len(old):,} characters before, "
            f"{len(new):,} after)"
        )
    diff = difflib.unified_diff(
        _lines(old), new_lines, fromfile=before, tofile=after, n=context, lineterm="\n"
    )
    return cap(_diff_lines(diff), max_lines, max_bytes)
