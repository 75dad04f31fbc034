"""A call held for approval carries what it would change: in its interrupt, row and listing."""

from __future__ import annotations

import json
from collections.abc import Callable

from agentspace.engine.config import EngineConfig
from agentspace.engine.engine import Engine
from agentspace.store.approvals import Decision
from agentspace.testing import collect_run, turn

EDIT = {"path": "notes.md", "old_string": "- milk\n", "new_string": "- oat milk\n"}
DIFF = "--- a/notes.md\n+++ b/notes.md\n@@ -1,2 +1,2 @@\n # shopping\n-- milk\n+- oat milk"


async def test_a_held_edit_carries_its_diff_through_a_restart(
    make_config: Callable[..., EngineConfig], script: Callable[..., str]
) -> None:
    model = script(turn("Editing.", ("edit_file", EDIT)), turn("Done."))
    async with Engine(make_config()) as engine:
        session = await engine.session("shop.ipynb", model=model)
        (session.folder / "notes.md").write_text("# shopping\n- milk\n")
        await session.send("oat milk, please")
        events = await collect_run(session, 0)
        (interrupt,) = json.loads(events[-1].data)["outcome"]["interrupts"]
        assert interrupt["metadata"]["preview"] == DIFF
        (pending,) = (await session.info()).pending_calls
        assert pending.preview == DIFF
        assert (session.folder / "notes.md").read_text() == "# shopping\n- milk\n"
        last = session.log.last_seq
    # the file changes before anyone decides: the stored preview is what was asked about
    (session.folder / "notes.md").write_text("# shopping\n- milk\n- eggs\n")
    async with Engine(make_config()) as engine:
        session = await engine.session("shop.ipynb")
        (stored,) = await session.pending()
        assert stored.preview == DIFF
        assert stored.interrupt().metadata["preview"] == DIFF
        (listed,) = (await engine.list())[0].pending_calls
        assert listed.preview == DIFF
        await session.decide(stored.tool_call_id, Decision(decision="approve"))
        await collect_run(session, last)
        assert (session.folder / "notes.md").read_text() == "# shopping\n- oat milk\n- eggs\n"


async def test_a_call_whose_preview_fails_is_held_without_one(
    engine: Engine, script: Callable[..., str]
) -> None:
    missing = {**EDIT, "old_string": "- bread\n"}
    model = script(turn("", ("edit_file", missing), ("shell", {"command": "ls"})), turn("ok"))
    session = await engine.session("none.ipynb", model=model)
    (session.folder / "notes.md").write_text("# shopping\n- milk\n")
    await session.send("go")
    events = await collect_run(session, 0)
    interrupts = json.loads(events[-1].data)["outcome"]["interrupts"]
    assert [i["metadata"]["tool"] for i in interrupts] == ["edit_file", "shell"]
    assert all("preview" not in i["metadata"] for i in interrupts)  # none, and no tool has one
    assert [p.preview for p in (await session.info()).pending_calls] == [None, None]
    first, second = await session.pending()
    await session.decide(first.tool_call_id, Decision(decision="approve"))
    await session.decide(second.tool_call_id, Decision(decision="reject"))
    await session.wait()
    results = [m for m in await session.transcript() if m["role"] == "tool"]
    assert results and "old_string was not found" in results[0]["content"]  # the run says why
