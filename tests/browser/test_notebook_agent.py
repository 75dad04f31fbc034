"""The agent and the notebook the user sees: it reads the error, proposes a fix as a diff, and
the approved edit lands in the open notebook without a reload while the user types elsewhere."""

from __future__ import annotations

import json
from collections.abc import Callable

from playwright.sync_api import expect

from .lab import LabServer, NotebookPage
from .test_labextension import wait_linked

SCRIPT = {
    "turns": [
        {
            "text": "Cell cell-2 asks for the key 'unit'; let me read it.",
            "tool_calls": [{"name": "read_notebook", "arguments": {"cell_id": "cell-2"}}],
        },
        {
            "text": "The dict's key is 'units', so sales['unit'] raises KeyError. The fix:",
            "tool_calls": [
                {
                    "name": "edit_cell",
                    "arguments": {
                        "cell_id": "cell-2",
                        "old_string": "sales['unit']",
                        "new_string": "sales['units']",
                    },
                }
            ],
        },
        {"text": "Fixed: run the cell again."},
    ]
}


def test_the_agent_fixes_an_error_in_the_open_notebook_while_the_user_types(
    notebook: Callable[..., NotebookPage], lab_server: LabServer
) -> None:
    script = lab_server.root / "fix_script.json"
    script.write_text(json.dumps(SCRIPT))
    sources = ("", "sales = {'units': 3}", "sales['unit']", "%agent fix", "")
    nb = notebook("fixme.ipynb", sources=sources)
    wait_linked(lab_server, "fixme.ipynb", "jupyterlab")
    setup = f"%load_ext agentspace\n%agent model scripted//{script}"
    expect(nb.run_cell(setup, index=0)).to_contain_text("scripted")
    nb.run_cell("sales = {'units': 3}", index=1)
    expect(nb.run_cell("sales['unit']", index=2)).to_contain_text("KeyError")

    view = nb.run_cell("%agent fix", index=3).locator(".agentspace-view")
    card = view.locator(".agentspace-tool", has_text="edit_cell")
    approve = card.get_by_role("button", name="Approve", exact=True)
    expect(approve).to_be_visible(timeout=60_000)
    expect(card).to_contain_text("-sales['unit']")  # the diff of the cell, to approve
    expect(card).to_contain_text("+sales['units']")
    expect(view).to_contain_text("raises KeyError")  # the explanation streamed first
    expect(view).to_contain_text("notebook context attached")

    # the %%approve cell went in below; the user types in the last cell while the edit waits
    expect(nb.cells.nth(4)).to_contain_text("%%approve call_1_0")
    other = nb.cells.nth(5).locator(".jp-InputArea-editor .cm-content")
    other.click()
    nb.page.keyboard.type("typed meanwhile")
    approve.click()

    failing = nb.cells.nth(2).locator(".jp-InputArea-editor .cm-content")
    expect(failing).to_have_text("sales['units']")  # live, no reload
    expect(card).to_contain_text("Edited cell cell-2 in the notebook open in the browser")
    expect(view).to_contain_text("Fixed: run the cell again.")
    expect(other).to_have_text("typed meanwhile")  # nothing of the user's lost
    saved = json.loads((lab_server.root / "fixme.ipynb").read_text())
    assert "".join(saved["cells"][2]["source"]) == "sales['unit']"  # never written under it
    expect(nb.run_cell("sales['units']", index=2)).to_contain_text("3")


def test_after_a_button_decision_the_next_call_gets_its_own_cell(
    notebook: Callable[..., NotebookPage], lab_server: LabServer
) -> None:
    script = lab_server.root / "two_calls.json"
    write = [{"name": "write_file", "arguments": {"path": f"{n}.txt", "content": n}} for n in "ab"]
    turns = [{"text": "First a.", "tool_calls": [write[0]]},
             {"text": "Then b.", "tool_calls": [write[1]]}, {"text": "Both written."}]  # fmt: skip
    script.write_text(json.dumps({"turns": turns}))
    nb = notebook("twocalls.ipynb", sources=("%load_ext agentspace", ""))
    wait_linked(lab_server, "twocalls.ipynb", "jupyterlab")
    nb.run_cell("%load_ext agentspace", index=0)
    view = nb.run_cell(f"%%agent --new --model scripted//{script}\nwrite two", index=1).locator(
        ".agentspace-view"
    )
    first = view.locator(".agentspace-tool", has_text="a.txt")
    expect(first.get_by_role("button", name="Approve", exact=True)).to_be_visible(timeout=60_000)
    expect(nb.cells.nth(2)).to_contain_text("%%approve call_0_0")  # set_next_input's
    first.get_by_role("button", name="Approve", exact=True).click()

    second = view.locator(".agentspace-tool", has_text="b.txt")
    expect(second.get_by_role("button", name="Approve", exact=True)).to_be_visible()
    # no cell ran, yet the paused call has its own cell, right after the first one's
    expect(nb.cells.nth(3)).to_contain_text("%%approve call_1_0")
    sources = nb.cells.locator(".jp-InputArea-editor .cm-content").all_inner_texts()
    assert sum(s.startswith("%%approve call_1_0") for s in sources) == 1, sources
