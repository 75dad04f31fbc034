"""Where a notebook's chat file lives, and which notebook a chat file is for (cheap to import:
the server's chat events are filtered with it before anything else is loaded)."""

from __future__ import annotations

import posixpath

SUFFIX = ".ipynb"


def chat_path(chat_dir: str, notebook: str) -> str:
    """Where the chat of ``notebook`` (a session key, relative to the root) lives."""
    stem = notebook[: -len(SUFFIX)] if notebook.endswith(SUFFIX) else notebook
    return posixpath.join(chat_dir.strip("/"), f"{stem}.chat")


def notebook_of(chat_dir: str, path: str) -> str | None:
    """The notebook a chat path is for (None: not one of ours)."""
    prefix = chat_dir.strip("/") + "/"
    if not path.startswith(prefix) or not path.endswith(".chat"):
        return None
    return path[len(prefix) : -len(".chat")] + SUFFIX
