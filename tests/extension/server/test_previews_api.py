"""REST lists a held call with what it would change: ``pending_calls[].preview``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from agentspace.testing import turn, write_script

from .sse import read_sse

Api = Callable[..., Awaitable[tuple[int, Any]]]
EDIT = {"path": "notes.md", "old_string": "- milk\n", "new_string": "- oat milk\n"}
DIFF = "--- a/notes.md\n+++ b/notes.md\n@@ -1,2 +1,2 @@\n # shopping\n-- milk\n+- oat milk"


async def test_a_held_edit_is_listed_with_its_diff(
    api: Api, tmp_path: Path, jp_http_port: int, jp_auth_header: dict[str, str], jp_base_url: str
) -> None:
    model = write_script(
        tmp_path / "p.json",
        turn("Editing.", ("edit_file", EDIT), ("shell", {"command": "ls"})),
        turn("Done."),
    )
    _, session = await api("POST", "sessions", body={"notebook": "p.ipynb", "model": model})
    sid = session["id"]
    status, _ = await api("PUT", f"sessions/{sid}/files/notes.md", body="# shopping\n- milk\n")
    assert status == 200
    await api("POST", f"sessions/{sid}/messages", body={"text": "oat milk"})
    events = f"{jp_base_url.rstrip('/')}/agentspace/api/sessions/{sid}/events"
    _, got = await read_sse(jp_http_port, events, dict(jp_auth_header))
    edit, shell = got[-1][1]["outcome"]["interrupts"]
    assert edit["metadata"]["preview"] == DIFF and "preview" not in shell["metadata"]

    _, info = await api("GET", f"sessions/{sid}")
    assert [(p["tool"], p["preview"]) for p in info["pending_calls"]] == [
        ("edit_file", DIFF),
        ("shell", None),  # no preview: a view shows its arguments
    ]
    _, listing = await api("GET", "sessions")
    (listed,) = [s for s in listing["sessions"] if s["id"] == sid]
    assert listed["pending_calls"] == info["pending_calls"]
    _, doc = await api("GET", "openapi.json")
    pending = doc["components"]["schemas"]["PendingInfo"]["properties"]["preview"]
    assert "diff" in pending["description"]
