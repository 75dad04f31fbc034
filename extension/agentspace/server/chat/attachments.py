"""What a chat prompt's attachments add to it: the cell it names, selections, small files.

jupyterlab-chat lets a user attach a notebook's cells, a selection, or a file (a path under the
server's root) to a message. A notebook cell attached is the prompt's cell (the engine's
notebook context then sends it with its neighbours); a selection goes with the words as a
fenced block; a text file of at most ``FILE_LIMIT`` characters goes whole (secrets redacted, as
the notebook context is), a bigger or binary one by its name only, with why.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from jupyterlab_chat.models import FileAttachment, Message, NotebookAttachment

from .cards import fence

FILE_LIMIT = 20_000  # characters of an attached file that go with a prompt
Reader = Callable[[str], Awaitable[str | None]]  # a file's text (None: not text, or too big)


async def with_attachments(
    message: Message, known: dict[str, Any], read: Reader | None
) -> tuple[str, str | None]:
    """The prompt's words with what is attached to it, and the cell it names (if any)."""
    from agentspace.notebook.secrets import redacted_text

    text, cell = message.body, None
    for att_id in message.attachments or []:
        attachment = known.get(att_id) if isinstance(att_id, str) else None
        if isinstance(attachment, NotebookAttachment):
            for attached in attachment.cells or []:
                cell = cell or attached.id
                if attached.selection is not None:
                    selected = attached.selection.content
                    text += f"\n\n(selected in cell {attached.id}:)\n{fence(selected)}"
        elif isinstance(attachment, FileAttachment):
            if attachment.selection is not None:
                selected = attachment.selection.content
                text += f"\n\n(selected in {attachment.value}:)\n{fence(selected)}"
                continue
            content = await read(attachment.value) if read is not None else None
            if content is None:
                text += f"\n\n(attached: {attachment.value}, not sent: not a text file of at "
                text += f"most {FILE_LIMIT:,} characters)"
            else:
                shown, _ = redacted_text(content)
                text += f"\n\n(attached: {attachment.value})\n{fence(shown)}"
    return text, cell
