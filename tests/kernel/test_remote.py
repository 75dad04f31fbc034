"""The magics in a kernel started by a real Jupyter server: remote mode, widget views."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentspace.testing import write_script

from .harness import Kernel, Output, Server, jupyter_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with jupyter_server(tmp_path_factory.mktemp("remote")) as srv:
        yield srv


@pytest.fixture(scope="module")
def kernel(server: Server) -> Iterator[Kernel]:
    (server.root / "work").mkdir()
    with server.kernel("work/analysis.ipynb") as k:
        assert not k.run("%load_ext agentspace").errors
        yield k


def writes_then(tmp_path: Path, path: str, content: str, after: str) -> str:
    """A scripted model that asks to write one file, then says ``after``."""
    return write_script(
        tmp_path / f"{path}.json",
        {"text": "Writing.", "tool_calls": [
            {"name": "write_file", "arguments": {"path": path, "content": content}}]},
        {"text": after},
    )  # fmt: skip


def widget_states(out: Output) -> list[dict[str, Any]]:
    return [c["data"]["state"] for c in out.comms if "state" in c.get("data", {})]


def test_status_finds_the_server_and_the_notebook(kernel: Kernel, server: Server) -> None:
    out = kernel.run("%agent status")
    assert f"mode:     remote (connected to the Jupyter server at {server.url}" in out.text
    assert "notebook: work/analysis.ipynb" in out.text
    sessions = server.call("GET", "agentspace/api/sessions")["sessions"]
    assert [s["notebook"] for s in sessions] == ["work/analysis.ipynb"]


def test_a_message_streams_into_a_widget_with_a_text_fallback(kernel: Kernel) -> None:
    out = kernel.run("%%agent --new --model scripted/echo\nhello from the browser")
    assert out.errors == []
    assert out.widgets, "the view is a widget in remote mode"
    html = [s.get("value", "") for s in widget_states(out)]
    assert any("You said: hello from the browser" in v for v in html)
    assert out.plain[-1].startswith("You said: hello from the browser")
    assert "[done]" in out.plain[-1]


def test_the_stop_button_works_while_the_cell_runs(kernel: Kernel, tmp_path: Path) -> None:
    words = " ".join(f"w{i}" for i in range(300))
    slow = write_script(tmp_path / "slow.json", {"text": words, "delay_ms": 30})
    clicked: list[str] = []

    def click_stop_when_text_flows(out: Output, msg: dict[str, Any]) -> None:
        if clicked or msg["msg_type"] != "comm_msg":
            return
        if "w3" not in str(msg["content"]["data"].get("state", {}).get("value", "")):
            return
        for comm_id in out.buttons("Stop")[:1]:
            clicked.append(comm_id)
            kernel.click(comm_id)

    out = kernel.run(f"%%agent --new --model {slow}\ntalk", during=click_stop_when_text_flows)
    assert clicked, "the Stop button was found and clicked"
    assert "[stopped" in out.plain[-1]
    assert "w299" not in out.plain[-1]


def test_the_kernels_interrupt_button_stops_as_cleanly_as_stop(
    kernel: Kernel, tmp_path: Path
) -> None:
    """JupyterLab's interrupt (the server's api/kernels/ID/interrupt): no traceback."""
    words = " ".join(f"w{i}" for i in range(300))
    slow = write_script(tmp_path / "slow.json", {"text": words, "delay_ms": 30})
    interrupted: list[bool] = []

    def interrupt_when_text_flows(out: Output, msg: dict[str, Any]) -> None:
        if interrupted or msg["msg_type"] != "comm_msg":
            return
        if "w3" in str(msg["content"]["data"].get("state", {}).get("value", "")):
            interrupted.append(True)
            kernel.interrupt()

    out = kernel.run(f"%%agent --new --model {slow}\ntalk", during=interrupt_when_text_flows)
    assert interrupted
    assert out.errors == [] and "Traceback" not in out.text
    assert "[stopped: %agent resume continues]" in out.plain[-1]
    assert "w3" in out.plain[-1] and "w299" not in out.plain[-1]
    assert "[done]" in kernel.run("%agent resume").plain[-1]


def test_approvals_over_the_server(kernel: Kernel, server: Server, tmp_path: Path) -> None:
    page = writes_then(tmp_path, "a.txt", "abc", "Written.")
    out = kernel.run(f"%%agent --new --model {page}\nwrite it")
    assert out.next_input is not None and out.next_input.startswith("%%approve call_0_0")
    approved = kernel.run(out.next_input)
    assert "✓ Wrote 3 bytes to a.txt" in approved.plain[-1]
    assert "Written." in approved.plain[-1]
    assert "a.txt" in kernel.run("%agent files").text
    sid = kernel.run("%agent status").text.split("session:")[1].split()[0]
    assert kernel.run("%agent preview 8000").final == f"/agentspace/preview/{sid}/8000/"


def test_approve_clicked_in_the_widget_resumes_into_the_same_view(
    kernel: Kernel, server: Server, tmp_path: Path
) -> None:
    page = writes_then(tmp_path, "b.txt", "abcd", "Clicked and written.")
    out = kernel.run(f"%%agent --new --model {page}\nwrite it")
    approve = out.buttons("Approve")
    assert approve, "the card shows an Approve button"
    kernel.click(approve[0])
    # the resumed run streams into the widget after the cell returned; the last display
    # update carries the final text, so wait for it on the kernel's iopub channel
    final = kernel.wait_for_display("Clicked and written.", timeout=60)
    assert "✓ Wrote 4 bytes to b.txt" in final
    assert "status:   idle" in kernel.run("%agent status").text


def test_a_decision_made_elsewhere_updates_the_widget(
    kernel: Kernel, server: Server, tmp_path: Path
) -> None:
    page = writes_then(tmp_path, "c.txt", "c", "Rejected, fine.")
    out = kernel.run(f"%%agent --new --model {page}\nwrite it")
    assert out.next_input is not None
    sid = server.call("GET", "agentspace/api/sessions")["sessions"][0]["id"]
    server.call(
        "POST", f"agentspace/api/sessions/{sid}/approvals/call_0_0",
        {"decision": "reject", "reason": "from the REST API"},
    )  # fmt: skip
    kernel.wait_for_state(": from the REST API", timeout=60)
    # the widget hands over: static text says where the run went on, and who decided
    final = kernel.wait_for_display("[decided elsewhere", timeout=60)
    assert re.search(r"✗ rejected by \S+: from the REST API", final), final
    again = kernel.run("%reject call_0_0 twice")
    assert "was already decided" in again.text


def test_remote_mode_never_imports_the_engine_or_litellm(kernel: Kernel) -> None:
    kernel.run("%%agent --new --model scripted/echo\nhi")
    code = (
        "import sys\n"
        "heavy = ['litellm', 'jupyter_server', 'agentspace.engine.engine',"
        " 'agentspace.engine.session']\n"
        "print([m for m in heavy if m in sys.modules])"
    )
    assert kernel.run(code).text.strip() == "[]"


def test_run_all_again_does_not_insert_the_cell_twice(
    kernel: Kernel, server: Server, tmp_path: Path
) -> None:
    """A saved notebook that already holds the approvable cell (Run All, a scripted model
    making the same call id) gets no second copy."""
    import json

    notebook = server.root / "work" / "analysis.ipynb"
    cell = {"cell_type": "code", "source": ["%%approve call_0_0\n", "{}"], "metadata": {},
            "outputs": [], "execution_count": None}  # fmt: skip
    notebook.write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4,
                                    "nbformat_minor": 5}))  # fmt: skip
    try:
        model = writes_then(tmp_path, "d.txt", "d", "Done.")
        out = kernel.run(f"%%agent --new --model {model}\nwrite it")
        assert out.widgets and out.errors == []  # the run paused in a widget
        assert out.next_input is None
    finally:
        notebook.unlink()
    again = kernel.run(f"%%agent --new --model {model}\nwrite it")
    assert again.next_input is not None and again.next_input.startswith("%%approve call_0_0")


def test_a_paused_widget_carries_instructions_for_when_it_is_gone(
    kernel: Kernel, tmp_path: Path
) -> None:
    """Reopened after a restart, a widget has no model: the cell keeps a static output
    that says how to decide the call from cells (its CSS hides it while the widget lives)."""
    page = writes_then(tmp_path, "f.txt", "f", "Fallback done.")
    out = kernel.run(f"%%agent --new --model {page}\nwrite it")
    assert out.widgets and out.errors == []
    fallback = next(p for p in out.plain if "waits for a decision" in p)
    assert "%load_ext agentspace" in fallback and "%%approve call_0_0" in fallback
    assert "%reject call_0_0" in fallback
    kernel.click(out.buttons("Approve")[0])
    assert "✓ Wrote 1 bytes to f.txt" in kernel.wait_for_display("Fallback done.", timeout=60)


def test_after_a_click_the_next_call_points_at_no_cell_of_another_call(
    kernel: Kernel, tmp_path: Path
) -> None:
    """A click resumes the run with no cell running, so no cell is inserted for the next
    call: its card says to write one, not to run "the cell below" (which holds call_0_0)."""
    model = write_script(
        tmp_path / "steps.json",
        {"text": "One.", "tool_calls": [
            {"name": "write_file", "arguments": {"path": "g.txt", "content": "g"}}]},
        {"text": "Two.", "tool_calls": [{"name": "shell", "arguments": {"command": "ls"}}]},
        {"text": "Steps done."},
    )  # fmt: skip
    out = kernel.run(f"%%agent --new --model {model}\ntwo steps")
    assert out.next_input is not None and out.next_input.startswith("%%approve call_0_0")
    kernel.click(out.buttons("Approve")[0])
    kernel.wait_for_state("run %%approve call_1_0 in a new cell", timeout=60)
    assert "Steps done." in kernel.run("%%approve call_1_0").final
