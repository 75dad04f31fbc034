"""The magics in a real kernel with no server: embedded mode, text output."""

from __future__ import annotations

import http.cookiejar
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentspace.testing import write_script

from .harness import Kernel, Output, embedded_kernel


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    with embedded_kernel(tmp_path_factory.mktemp("embedded")) as k:
        assert not k.run("%load_ext agentspace").errors
        yield k


@pytest.fixture
def page_script(tmp_path: Path) -> str:
    return write_script(
        tmp_path / "page.json",
        {"text": "Writing the page.", "tool_calls": [
            {"name": "write_file", "arguments": {"path": "index.html", "content": "<h1>hi</h1>"}}]},
        {"text": "Done: the page is written."},
    )  # fmt: skip


def test_a_message_streams_the_answer_as_text(kernel: Kernel) -> None:
    out = kernel.run("%%agent --new --model scripted/echo\nhello there")
    assert out.errors == []
    assert out.text.startswith("You said: hello there\n")
    assert "\n[done] · 55 tokens in, 4 out · session cost $0.0000\n" in out.text
    assert out.widgets == []  # no widget frontend here: text only


def test_status_says_embedded_and_why(kernel: Kernel) -> None:
    out = kernel.run("%agent status")
    assert "mode:     embedded (no Jupyter server started this kernel" in out.text
    assert "status:   idle" in out.text


def test_an_approval_pauses_inserts_a_cell_and_the_edited_cell_approves(
    kernel: Kernel, page_script: str
) -> None:
    out = kernel.run(f"%%agent --new --model {page_script}\nmake a page")
    assert "→ write_file" in out.text and "[waiting for a decision]" in out.text
    cell = out.next_input
    assert cell is not None and cell.startswith("%%approve call_0_0\n# write_file")
    json_lines = [ln for ln in cell.split("\n")[1:] if not ln.startswith("#")]
    assert json.loads("\n".join(json_lines)) == {"path": "index.html", "content": "<h1>hi</h1>"}
    assert "# what it would change:\n#   --- /dev/null\n#   +++ b/index.html\n" in cell
    assert "\n#   +<h1>hi</h1>\n" in cell and "    +<h1>hi</h1>\n" in out.text

    edited = cell.replace("index.html", "home.html")
    approved = kernel.run(edited)
    assert approved.errors == []
    assert "✓ Wrote 11 bytes to home.html" in approved.text
    assert "Done: the page is written." in approved.text
    assert "[done]" in approved.text
    assert "home.html" in kernel.run("%agent files").text
    again = kernel.run(edited)
    assert "was already decided" in again.text


def test_reject_with_a_reason_resumes_the_run(kernel: Kernel, page_script: str) -> None:
    kernel.run(f"%%agent --new --model {page_script}\nmake a page")
    out = kernel.run("%reject call_0_0 not today")
    assert "✗ rejected: not today" in out.text
    assert "Done: the page is written." in out.text
    history = kernel.run("%agent history 3").text
    assert "not today" in history


def test_approve_without_an_id_takes_the_only_pending_call(
    kernel: Kernel, page_script: str
) -> None:
    kernel.run(f"%%agent --new --model {page_script}\nmake a page")
    out = kernel.run("%%approve")
    assert "✓ Wrote 11 bytes to index.html" in out.text
    none_left = kernel.run("%%approve")
    assert "Nothing is waiting for approval" in none_left.text


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("%agent bogus", "unknown subcommand 'bogus'. usage: %agent status"),
        ("%agent", "usage: %agent status"),
        ("%agent policy shell sometimes", "%agent policy TOOL allow|ask|deny"),
        ("%agent logs", "%agent logs needs a process name"),
        ("%agent history lots", "N must be a whole number"),
        ("%agent preview 8000", "Nothing is listening on port 8000 in the sandbox"),
        ("%%agent --fast\nhi", "unknown option '--fast'. usage: %%agent"),
        ("%%agent\n   ", "The %%agent cell is empty"),
        ("%reject", "usage: %reject TOOL_CALL_ID"),
        ("%%approve call_0_0\nnot json", "The arguments are not valid JSON"),
    ],
)
def test_bad_input_prints_one_clear_line(kernel: Kernel, line: str, expected: str) -> None:
    out = kernel.run(line)
    assert out.errors == []
    assert expected in out.text
    assert len(out.text.strip().splitlines()) == 1


def test_model_policy_and_usage(kernel: Kernel) -> None:
    kernel.run("%%agent --new --model scripted/echo\nhi")
    assert kernel.run("%agent model").text.strip() == "model: scripted/echo"
    assert kernel.run("%agent policy write_file allow").text.strip() == "write_file: allow"
    usage = kernel.run("%agent usage").text
    assert usage.startswith("model calls: 1 · tokens: 54 in, 3 out · cost: $0.0000")


def test_interrupting_the_kernel_stops_the_run(kernel: Kernel, tmp_path: Path) -> None:
    words = " ".join(f"w{i}" for i in range(200))
    slow = write_script(tmp_path / "slow.json", {"text": words, "delay_ms": 50})
    interrupted: list[bool] = []

    def interrupt_when_text_flows(out: Output, msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream" and "w1" in out.text and not interrupted:
            interrupted.append(True)
            kernel.interrupt()

    out = kernel.run(f"%%agent --new --model {slow}\ntalk", during=interrupt_when_text_flows)
    assert interrupted
    assert out.errors == [], "the interrupt button stops as cleanly as Stop: no traceback"
    assert "Traceback" not in out.text and "CancelledError" not in out.text
    assert "w1" in out.text and "w199" not in out.text  # the partial text is kept
    assert "[stopped: %agent resume continues]" in out.text
    assert "status:   stopped" in kernel.run("%agent status").text
    resumed = kernel.run("%agent resume")
    assert resumed.errors == [] and "[done]" in resumed.text  # the run goes on to its end


def test_load_ext_imports_nothing_heavy(tmp_path: Path) -> None:
    """%load_ext must stay fast: no engine, litellm, server, HTTP client or widgets yet."""
    with embedded_kernel(tmp_path) as k:
        code = (
            "import sys\n%load_ext agentspace\n"
            "heavy = ['litellm', 'jupyter_server', 'httpx', 'agentspace.engine.engine',"
            " 'ipywidgets', 'markdown_it', 'pydantic']\n"
            "print([m for m in heavy if m in sys.modules])"
        )
        assert k.run(code).text.strip() == "[]"


def test_quiet_prints_only_the_answer(kernel: Kernel, page_script: str) -> None:
    kernel.run("%agent policy write_file ask")  # --new keeps policies set earlier
    out = kernel.run(f"%%agent --new --quiet --model {page_script}\nmake a page")
    assert out.text == (
        "Writing the page.\n"
        "‖ write_file: approve: run the cell below (%%approve call_0_0; edit the arguments"
        " first if you like) · reject: %reject call_0_0 REASON · always allow write_file in"
        " this session: %%approve call_0_0 --always\n"
    )


def test_with_autoawait_off_the_magic_still_runs(kernel: Kernel) -> None:
    kernel.run("%autoawait off")
    try:
        out = kernel.run("%%agent --new --model scripted/echo\nsync please")
    finally:
        kernel.run("%autoawait on")
    assert out.errors == []
    assert out.text.startswith("You said: sync please\n[done]")


def test_two_calls_in_one_pause_get_a_cell_each(kernel: Kernel, tmp_path: Path) -> None:
    model = write_script(
        tmp_path / "two.json",
        {"text": "Two files.", "tool_calls": [
            {"name": "write_file", "arguments": {"path": "a.txt", "content": "a"}},
            {"name": "write_file", "arguments": {"path": "b.txt", "content": "b"}}]},
        {"text": "Both written."},
    )  # fmt: skip
    kernel.run("%agent policy write_file ask")
    out = kernel.run(f"%%agent --new --model {model}\ntwo files")
    assert out.next_input is not None and out.next_input.startswith("%%approve call_0_0")
    # one cell is inserted, for the first call: the second's line does not point at it
    assert "run the cell below (%%approve call_0_0" in out.text
    assert "run the cell below (%%approve call_0_1" not in out.text
    assert "run %%approve call_0_1 in a new cell" in out.text
    first = kernel.run(out.next_input)
    assert "still waiting for: call_0_1" in first.text
    assert first.next_input is not None and first.next_input.startswith("%%approve call_0_1")
    second = kernel.run(first.next_input)
    assert "✓ Wrote 1 bytes to b.txt" in second.text
    assert "Both written." in second.text and "[done]" in second.text


def test_a_preview_is_a_working_loopback_url_with_a_token(kernel: Kernel, tmp_path: Path) -> None:
    """No server to proxy it: a forwarder on 127.0.0.1 that checks a token (workspace/forward)."""
    web = "echo served from the sandbox > hello.txt; python3 -m http.server 8781 --bind 127.0.0.1"
    model = write_script(
        tmp_path / "web.json",
        {"text": "Starting it.", "tool_calls": [
            {"name": "start_process", "arguments": {"command": web, "name": "web"}}]},
        {"text": "Started."},
        {"text": "Here.", "tool_calls": [{"name": "open_preview", "arguments": {"port": 8781}}]},
        {"text": "Open it."},
    )  # fmt: skip
    kernel.run("%agent policy start_process allow")
    assert "Started." in kernel.run(f"%%agent --new --model {model}\nserve").text
    deadline = time.monotonic() + 30
    while not (url := kernel.run("%agent preview 8781").final.strip()).startswith("http://"):
        assert time.monotonic() < deadline, f"no preview of the server in the sandbox: {url}"
    assert url.startswith("http://127.0.0.1:") and "?agentspace_token=" in url

    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    with opener.open(url, timeout=10) as listing:  # the token, then the cookie it set
        assert listing.status == 200 and b"hello.txt" in listing.read()
        page = listing.geturl() + "hello.txt"
    assert "agentspace_token" not in page
    with opener.open(page, timeout=10) as hello:
        assert hello.read() == b"served from the sandbox\n"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(page, timeout=10)  # no cookie, no token
    assert refused.value.code == 403

    # the agent's own tool hands out the same forwarder
    out = kernel.run(f"%%agent --model {model}\nshow me")
    assert f"Preview of port 8781: {url}" in out.text


def test_engine_diagnostics_never_reach_a_cell(tmp_path: Path) -> None:
    """In embedded mode the kernel's stderr is the cell: the engine's logs, litellm's and
    warnings raised on the agent's threads go to the kernel's own stderr instead."""
    with embedded_kernel(tmp_path) as k:
        assert not k.run("%load_ext agentspace").errors
        first = k.run("%%agent --new --model scripted/echo\nwarm up")
        assert first.errors == [] and "You said: warm up" in first.text
        # as under load: litellm's set-up step counts as slow, which logs a warning
        k.run("import agentspace.models.inline as inline; inline.SLOW = -1.0")
        out = k.run("%%agent --model scripted/echo\nagain")
        assert out.errors == [] and "You said: again" in out.text
        assert "litellm's set-up" not in out.text, out.text
        noisy = (
            "import logging, warnings\n"
            "from agentspace_kernel import loop\n"
            "async def noise():\n"
            "    logging.getLogger('agentspace.engine.engine').warning('engine-diagnostic')\n"
            "    logging.getLogger('LiteLLM').warning('litellm-diagnostic')\n"
            "    warnings.warn('agent-thread-warning')\n"
            "loop.call(noise())\n"
            "warnings.warn('user-warning')\n"
        )
        shown = k.run(noisy).text
        assert "diagnostic" not in shown and "agent-thread-warning" not in shown, shown
        assert "user-warning" in shown  # the user's own warnings still show
        assert "diagnostic" not in k.run("print(1)").text  # nor late, in the next cell
        logged = "".join(p.read_text() for p in tmp_path.rglob("kernel.log"))
        for text in ("litellm's set-up", "engine-diagnostic", "litellm-diagnostic",
                     "agent-thread-warning"):  # fmt: skip
            assert text in logged


def test_status_and_model_name_the_model_the_same_way(tmp_path: Path) -> None:
    """A script beside the notebook is named as typed, by both, not by its absolute path."""
    write_script(tmp_path / "beside.json", {"text": "hi"})
    with embedded_kernel(tmp_path) as k:
        assert not k.run("%load_ext agentspace").errors
        assert k.run("%agent model scripted/beside.json").text == "model: scripted/beside.json\n"
        assert k.run("%agent model").text == "model: scripted/beside.json\n"
        assert "model:    scripted/beside.json\n" in k.run("%agent status").text
        echo = k.run("%%agent --model scripted/echo\nhi").text
        assert "scripted/echo is a demo model" in echo  # and says how to pick a real one


def test_always_allow_is_per_tool_and_what_it_lets_through_is_marked(
    kernel: Kernel, tmp_path: Path
) -> None:
    model = write_script(
        tmp_path / "twice.json",
        {"text": "", "tool_calls": [
            {"name": "write_file", "arguments": {"path": "one.txt", "content": "1"}}]},
        {"text": "", "tool_calls": [
            {"name": "write_file", "arguments": {"path": "two.txt", "content": "2"}}]},
        {"text": "Both written."},
    )  # fmt: skip
    out = kernel.run(f"%%agent --new --model {model}\nwrite twice")
    assert "always allow write_file in this session: %%approve call_0_0 --always" in out.text
    approved = kernel.run("%%approve call_0_0 --always")
    assert approved.errors == []
    assert "✓ Wrote 1 bytes to one.txt" in approved.text  # decided by the user: no mark
    assert "✓ auto-approved (always allow (session)) · Wrote 1 bytes to two.txt" in approved.text
    assert "Both written." in approved.text
    history = kernel.run("%agent history 4").text
    assert "[auto-approved (always allow (session))]: Wrote 1 bytes to two.txt" in history
    again = kernel.run("%%approve call_0_0")
    assert "already decided: approved by this notebook (embedded)" in again.text
