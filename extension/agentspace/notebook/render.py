"""A notebook as compact text a model reads: cells in order, ids, sources, outputs in brief.

Why not the ``.ipynb`` JSON: a 500-cell notebook with outputs is megabytes of JSON whose bulk
(base64 images, HTML tables, ANSI colour codes, metadata) tells a model nothing. Here each
cell is a header line (position, type, id, execution count) and its source in a fence; outputs
keep their text (head and tail when long), ``text/plain`` reprs, errors as the exception and
a traceback stripped of ANSI codes, and images only as a description. The text is bounded as a
whole and says how to read the rest (``start``/``end``, ``cell_id``).
"""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agentspace.notebook.document import source_of

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")
OUTPUT_CHARS = 2_000
"""Per output: longer text keeps its head and tail."""
SOURCE_CHARS = 12_000
TRACEBACK_CHARS = 3_000
TOTAL_CHARS = 60_000
"""The whole rendering; beyond it the cells that did not fit are named, not shown."""
ATTACHABLE = ("image/png", "image/jpeg", "image/gif", "image/webp")
MAX_IMAGES = 4
MAX_IMAGE_CHARS = 2_000_000
"""Images attached to one reading (for a model that takes images), and their base64 in all."""


@dataclass
class Images:
    """The images a reading attaches (``{"mime", "data", "label"}``), within their bounds."""

    items: list[dict[str, str]] = field(default_factory=list)
    chars: int = 0

    def take(self, mime: str, data: str, label: str) -> int | None:
        """Attach one; its number, or None when the bounds are reached."""
        if len(self.items) >= MAX_IMAGES or self.chars + len(data) > MAX_IMAGE_CHARS:
            return None
        self.items.append({"mime": mime, "data": data, "label": label})
        self.chars += len(data)
        return len(self.items)


def strip_ansi(text: str) -> str:
    """Text without terminal colour and cursor codes (IPython colours its tracebacks)."""
    return ANSI.sub("", text)


def head_tail(text: str, limit: int, what: str = "characters") -> str:
    """``text`` in about ``limit`` characters: its head and tail around a marker."""
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    tail = limit - head
    cut = len(text) - head - tail
    return f"{text[:head]}\n[... {cut} {what} cut ...]\n{text[-tail:]}"


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _png_size(data: str) -> tuple[int, int] | None:
    try:
        raw = base64.b64decode(data[:64] + "=" * (-len(data[:64]) % 4), validate=False)
    except ValueError:
        return None
    if raw[:8] != b"\x89PNG\r\n\x1a\n" or len(raw) < 24:
        return None
    width, height = struct.unpack(">II", raw[16:24])
    return width, height


def describe_image(mime: str, data: Any, attached: int | None = None) -> str:
    """An image output in words: its type, size in pixels where the header says, its bytes."""
    text = _text(data)
    size = _png_size(text) if mime == "image/png" else None
    dims = f", {size[0]}x{size[1]} px" if size else ""
    kb = max(1, len(text) * 3 // 4 // 1024)
    shown = f"attached as image {attached}" if attached else "not shown as text"
    return f"[{mime} image{dims}, {kb} kB: {shown}]"


def _image(mime: str, data: Any, images: Images | None, label: str) -> str:
    number = None
    if images is not None and mime in ATTACHABLE:
        number = images.take(mime, _text(data).replace("\n", ""), label)
    return describe_image(mime, data, number)


def render_output(output: dict[str, Any], images: Images | None = None, label: str = "") -> str:
    """One output in brief (stream, result, display, error); with ``images``, its images
    are attached there (``label`` says whose they are) and the text says which number."""
    kind = output.get("output_type")
    if kind == "stream":
        name = output.get("name", "stdout")
        return f"{name}: " + head_tail(strip_ansi(_text(output.get("text", ""))), OUTPUT_CHARS)
    if kind == "error":
        lines = [strip_ansi(_text(x)) for x in output.get("traceback", [])]
        trace = head_tail("\n".join(lines), TRACEBACK_CHARS)
        head = f"error: {output.get('ename', 'Error')}: {strip_ansi(str(output.get('evalue', '')))}"
        return head + ("\n" + trace if trace.strip() else "")
    data = output.get("data") or {}
    what = "result" if kind == "execute_result" else "display"
    pictures = [m for m in data if m.startswith("image/") and m != "image/svg+xml"]
    parts = []
    if "text/plain" in data:
        parts.append(head_tail(strip_ansi(_text(data["text/plain"])), OUTPUT_CHARS))
    elif "text/markdown" in data:
        parts.append(head_tail(_text(data["text/markdown"]), OUTPUT_CHARS))
    parts.extend(_image(m, data[m], images, label) for m in pictures)
    rich = [m for m in data if m not in ("text/plain", "text/markdown") and m not in pictures]
    if rich and not parts:
        parts.append("[" + ", ".join(rich) + " output: not shown as text]")
    return f"{what}: " + "\n".join(parts) if parts else f"{what}: (empty)"


def render_cell(
    index: int, cell: dict[str, Any], *, outputs: bool = True, images: Images | None = None
) -> str:
    """A cell as a header line, its fenced source and (for code) its outputs."""
    kind = cell.get("cell_type", "code")
    header = f"## Cell {index} · {kind} · id {cell.get('id', '?')}"
    if kind == "code":
        count = cell.get("execution_count")
        header += f" · [{count if count is not None else ' '}]"
    source = head_tail(source_of(cell), SOURCE_CHARS)
    fence = "```python" if kind == "code" else "```" + ("markdown" if kind == "markdown" else "")
    body = [header, f"{fence}\n{source}\n```" if source else "(empty)"]
    cell_outputs = cell.get("outputs") or []
    if kind == "code" and outputs and cell_outputs:
        label = f"cell {index} (id {cell.get('id', '?')})"
        shown = [render_output(o, images, label) for o in cell_outputs]
        body.append("Outputs:\n" + "\n".join(shown))
    return "\n".join(body)


@dataclass
class Rendering:
    """The text, which cells it showed (what the agent has now seen), the images attached."""

    text: str
    shown: list[str] = field(default_factory=list)
    images: list[dict[str, str]] = field(default_factory=list)


def render_cells(
    cells: list[dict[str, Any]],
    indices: Iterable[int],
    *,
    heading: str,
    outputs: bool = True,
    limit: int = TOTAL_CHARS,
    images: bool = False,
) -> Rendering:
    """The cells at ``indices`` under ``heading``, within ``limit`` characters in all;
    ``images``: attach image outputs (for a model that takes images) within their bounds."""
    parts = [heading]
    shown: list[str] = []
    used = len(heading)
    order = list(indices)
    attached = Images() if images else None
    for n, i in enumerate(order):
        before = len(attached.items) if attached is not None else 0
        text = render_cell(i, cells[i], outputs=outputs, images=attached)
        if used + len(text) > limit and shown:
            if attached is not None:
                del attached.items[before:]  # not shown: not attached
            rest = order[n:]
            parts.append(
                f"[... cells {rest[0]}-{rest[-1]} not shown: the text would pass {limit} "
                f"characters. Read them with start={rest[0]}, or one with cell_id.]"
            )
            break
        parts.append(text)
        shown.append(str(cells[i].get("id", "")))
        used += len(text) + 2
    return Rendering("\n\n".join(parts), shown, attached.items if attached is not None else [])


def last_error(cells: list[dict[str, Any]]) -> int | None:
    """The index of the last code cell whose outputs hold an error, if any."""
    for i in range(len(cells) - 1, -1, -1):
        cell = cells[i]
        if cell.get("cell_type") == "code" and any(
            o.get("output_type") == "error" for o in cell.get("outputs") or []
        ):
            return i
    return None
