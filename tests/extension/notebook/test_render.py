"""The compact rendering a model reads: bounded, ANSI-free, images described."""

from __future__ import annotations

import base64
import struct
from typing import Any

from agentspace.notebook.render import (
    OUTPUT_CHARS,
    last_error,
    render_cell,
    render_cells,
    render_output,
    strip_ansi,
)


def png(width: int, height: int) -> str:
    header = (
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", width, height)
    )
    return base64.b64encode(header + b"\x00" * 2000).decode()


def error_output() -> dict[str, Any]:
    return {
        "output_type": "error",
        "ename": "ZeroDivisionError",
        "evalue": "division by zero",
        "traceback": ["\x1b[0;31m---------\x1b[0m", "\x1b[0;32mCell In[3], line 1\x1b[0m", "1/0"],
    }


def test_an_error_keeps_its_traceback_without_colour_codes() -> None:
    text = render_output(error_output())
    assert text.startswith("error: ZeroDivisionError: division by zero")
    assert "Cell In[3], line 1" in text and "\x1b" not in text


def test_long_text_keeps_head_and_tail_with_a_marker() -> None:
    text = render_output({"output_type": "stream", "name": "stdout", "text": "a" * 10_000 + "END"})
    assert len(text) < OUTPUT_CHARS + 100 and text.endswith("END") and "characters cut" in text


def test_images_are_described_not_dumped() -> None:
    data = {"image/png": png(640, 480), "text/plain": "<Figure size 640x480 with 1 Axes>"}
    text = render_output({"output_type": "display_data", "data": data, "metadata": {}})
    assert "640x480 px" in text and "<Figure" in text and png(640, 480)[:40] not in text
    html = render_output({"output_type": "display_data", "data": {"text/html": "<b>x</b>"}})
    assert "text/html output: not shown" in html


def test_a_cell_shows_position_type_id_and_count() -> None:
    cell = {
        "id": "ab12",
        "cell_type": "code",
        "source": "1/0",
        "execution_count": 3,
        "outputs": [error_output()],
    }
    text = render_cell(7, cell)
    assert text.splitlines()[0] == "## Cell 7 · code · id ab12 · [3]"
    assert "```python\n1/0\n```" in text and "Outputs:" in text
    assert "Outputs" not in render_cell(7, cell, outputs=False)


def test_the_whole_is_bounded_and_says_how_to_read_on() -> None:
    cells = [
        {"id": f"c{i}", "cell_type": "code", "source": "x" * 500, "outputs": []} for i in range(100)
    ]
    r = render_cells(cells, range(100), heading="# nb", limit=5_000)
    assert len(r.text) < 6_000 and "start=" in r.text
    assert r.shown == [f"c{i}" for i in range(len(r.shown))] and 0 < len(r.shown) < 100


def test_last_error_finds_the_last_failing_code_cell() -> None:
    ok = {"cell_type": "code", "outputs": []}
    bad = {"cell_type": "code", "outputs": [error_output()]}
    assert last_error([bad, ok, bad, ok]) == 2
    assert last_error([ok]) is None
    assert "\x1b" not in strip_ansi("\x1b[1;31mred\x1b[0m")


def test_images_are_attached_within_bounds_when_the_model_takes_them() -> None:
    figure = {"output_type": "display_data", "metadata": {},
              "data": {"image/png": png(320, 200), "text/plain": "<Figure>"}}  # fmt: skip
    cells = [{"id": f"c{i}", "cell_type": "code", "source": "plot()", "outputs": [figure]}
             for i in range(6)]  # fmt: skip
    r = render_cells(cells, range(6), heading="# nb", images=True)
    assert len(r.images) == 4  # MAX_IMAGES
    assert r.images[0]["mime"] == "image/png" and r.images[0]["label"] == "cell 0 (id c0)"
    assert "attached as image 1" in r.text and "attached as image 4" in r.text
    assert r.text.count("not shown as text") == 2  # the rest are described only
    assert render_cells(cells, range(6), heading="# nb").images == []
