"""Run code the agent proposed in the user's kernel; show its outputs, keep a copy for the agent.

The code runs through IPython itself (``run_cell_async``), so it behaves like
any cell: the user's namespace, magics, rich displays, the usual traceback.
What it printed, displayed (as text/plain), returned and raised is captured
on the side and becomes the tool result, cut beyond a limit with a note.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import traceback
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

MAX_OUTPUT = 20_000
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class Tee:
    """A stream that writes through to ``target`` and keeps a copy."""

    def __init__(self, target: TextIO, copy: list[str]) -> None:
        self.target, self.copy = target, copy

    def write(self, text: str) -> int:
        self.copy.append(text)
        return self.target.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


@contextlib.contextmanager
def captured(shell: InteractiveShell, copy: list[str]) -> Iterator[None]:
    """Tee stdout, stderr and displays (text/plain) into ``copy`` while they still show."""
    publisher = shell.display_pub
    publish = publisher.publish

    def publish_and_copy(data: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if "text/plain" in data:
            copy.append(str(data["text/plain"]) + "\n")
        return publish(data, *args, **kwargs)

    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = Tee(out, copy), Tee(err, copy)
    publisher.publish = publish_and_copy  # type: ignore[method-assign]
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err
        publisher.publish = publish  # type: ignore[method-assign]


def describe(error: BaseException) -> str:
    """The exception as the agent needs it: the user's frames, then the error line.

    IPython's own frames are left out, and a cell's temporary file name becomes
    "cell", so the text says the same thing every time the cell runs.
    """
    import IPython

    internal = os.path.dirname(IPython.__file__)
    lines = ["Traceback (most recent call last):"]
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename.startswith(internal):
            continue
        where = "cell" if "ipykernel_" in frame.filename else frame.filename
        lines.append(
            f"  {where}, line {frame.lineno}, in {frame.name}: {(frame.line or '').strip()}"
        )
    lines += traceback.format_exception_only(type(error), error)
    return "\n".join(line.rstrip("\n") for line in lines) + "\n"


async def run_code(shell: InteractiveShell, code: str) -> tuple[str, bool]:
    """Run ``code`` as a cell; (what it output, for the agent; whether it failed)."""
    copy: list[str] = []
    with captured(shell, copy):
        try:
            transformed = shell.transform_cell(code)
            preprocessing: Any = None
        except Exception:  # a syntax error in a magic's line: IPython reports it
            transformed, preprocessing = code, sys.exc_info()
        result = await shell.run_cell_async(
            code,
            store_history=False,
            transformed_cell=transformed,
            preprocessing_exc_tuple=preprocessing,
        )
    if result.result is not None:
        formatted = shell.display_formatter.format(result.result)[0]
        copy.append(f"Out: {formatted.get('text/plain', repr(result.result))}\n")
    error = result.error_before_exec or result.error_in_exec
    if error is not None:
        copy.append(describe(error))
    text = ANSI.sub("", "".join(copy)).strip() or "(no output)"
    if len(text) > MAX_OUTPUT:
        text = text[:MAX_OUTPUT] + f"\n… (output cut: {len(text)} characters in all)"
    return text, error is not None
