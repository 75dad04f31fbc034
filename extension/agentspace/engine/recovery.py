"""Crash recovery: close the runs a dead process left open.

A run with RUN_STARTED and no terminal event was being served by a process
that died (kill -9, OOM, power). Its events up to the crash were committed, so
the partial assistant text can be rebuilt from its TEXT_MESSAGE_CONTENT events;
tool calls left without a result are answered with a note that they may or may
not have run. The run ends with RUN_ERROR code ``interrupted`` and the session
waits for ``resume``.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from ag_ui.core import RunErrorEvent, TextMessageEndEvent

from agentspace.engine.run import Run
from agentspace.store import records

if TYPE_CHECKING:
    from agentspace.engine.session import Session

INTERRUPTED_TEXT = (
    "Interrupted: the process stopped while this call was pending or running; "
    "it may or may not have taken effect. Check before repeating it."
)


async def close_dead_run(session: Session, run_id: str, first_seq: int, owner: str | None) -> None:
    """Close a run a dead process left open, keeping its partial text."""
    s = session
    run = Run(session)
    run.run_id = run_id
    await s.store.flush()
    run.transcript = await s.store.read(lambda c: records.transcript(c, s.id))
    open_text: dict[str, list[str]] = {}
    after = first_seq - 1
    async for stored in s.log.stored(after):
        if stored.type.startswith("TEXT_MESSAGE_"):
            data = json.loads(stored.data)
            mid = data["messageId"]
            if stored.type == "TEXT_MESSAGE_START" and data.get("role") == "assistant":
                open_text[mid] = []
            elif stored.type == "TEXT_MESSAGE_CONTENT" and mid in open_text:
                open_text[mid].append(data["delta"])
            elif stored.type == "TEXT_MESSAGE_END":
                open_text.pop(mid, None)
    for mid, parts in open_text.items():
        run.emit(TextMessageEndEvent(message_id=mid))
        run.append({"role": "assistant", "content": "".join(parts), "id": mid})
    for call in run.unresolved():
        run.result(call["id"], INTERRUPTED_TEXT)
    pid = (owner or "?").split(":")[0]
    message = (
        f"The run was interrupted: the process serving it (pid {pid}) stopped. The text "
        "streamed so far is kept; use resume to continue."
    )
    run.emit(RunErrorEvent(message=message, code="interrupted"))
    s.store.write(records.END_RUN, (time.time(), "interrupted", "{}", s.id, run_id))
    s.set_status("interrupted", message)
    s.store.write("UPDATE sessions SET owner = NULL WHERE id = ?", (s.id,))
    await s.store.flush()
