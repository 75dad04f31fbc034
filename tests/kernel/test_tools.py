"""Notebook tools in a real kernel: @agent_tool functions and run_cell (%%agent_run)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentspace.testing import write_script

from .harness import Kernel, embedded_kernel

TOOL = '''
from agentspace_kernel import agent_tool

@agent_tool
def double(n: int) -> int:
    """Twice n."""
    return 2 * n

@agent_tool
def explode(reason: str) -> str:
    """Always fails."""
    raise ValueError(reason)
'''


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    with embedded_kernel(tmp_path_factory.mktemp("tools")) as k:
        assert not k.run("%load_ext agentspace").errors
        assert not k.run(TOOL).errors
        yield k


def test_a_tool_runs_in_the_kernel_while_the_cell_runs(kernel: Kernel, tmp_path: Path) -> None:
    model = write_script(
        tmp_path / "double.json",
        {"text": "Doubling.", "tool_calls": [{"name": "double", "arguments": {"n": 21}}]},
        {"text": "Failing.", "tool_calls": [{"name": "explode", "arguments": {"reason": "boom"}}]},
        {"text": "All done."},
    )  # fmt: skip
    out = kernel.run(f"%%agent --new --model {model}\ndouble 21")
    assert out.errors == []
    assert '→ double {"n": 21}\n  ✓ 42\n' in out.text
    raised = "explode raised ValueError: boom (in explode, line 11: raise ValueError(reason))"
    assert f"✗ Error: {raised}" in out.text
    assert "waiting" not in out.text  # this cell answered the calls itself
    assert "All done.\n[done]" in out.text and out.text.count("[done]") == 1
    history = kernel.run("%agent history 8").text
    assert "tool (call_0_0): 42" in history


def test_bad_arguments_go_back_to_the_model_without_running(kernel: Kernel, tmp_path: Path) -> None:
    model = write_script(
        tmp_path / "bad.json",
        {"text": "Oops.", "tool_calls": [{"name": "double", "arguments": {"n": "many"}}]},
        {"text": "Fixed."},
    )  # fmt: skip
    out = kernel.run(f"%%agent --new --model {model}\ndouble")
    assert "✗ Error:" in out.text and "Fixed." in out.text


def test_run_cell_inserts_a_cell_whose_output_goes_back(kernel: Kernel, tmp_path: Path) -> None:
    kernel.run("numbers = [3, 1, 2]")
    model = write_script(
        tmp_path / "run.json",
        {"text": "Sorting.", "tool_calls": [
            {"name": "run_cell", "arguments": {"code": "print(sorted(numbers))"}}]},
        {"text": "Sorted."},
    )  # fmt: skip
    out = kernel.run(f"%%agent --new --model {model}\nsort my numbers")
    cell = out.next_input
    assert cell is not None and cell.startswith("%%agent_run call_0_0\n")
    assert cell.rstrip().endswith("print(sorted(numbers))")

    edited = cell.replace("print(sorted(numbers))", "print(sorted(numbers, reverse=True))")
    ran = kernel.run(edited)
    assert ran.text.startswith("[3, 2, 1]\n")  # the output shows as in any cell
    assert "✓ [3, 2, 1]" in ran.text and "Sorted." in ran.text
    transcript = kernel.run("%agent history 3").text
    assert "the user edited the arguments" in transcript


def test_run_cell_errors_and_approve_refusal(kernel: Kernel, tmp_path: Path) -> None:
    model = write_script(
        tmp_path / "err.json",
        {"text": "Trying.", "tool_calls": [{"name": "run_cell", "arguments": {"code": "1/0"}}]},
        {"text": "That failed."},
    )  # fmt: skip
    kernel.run(f"%%agent --new --model {model}\ndivide")
    refused = kernel.run("%%approve call_0_0")
    assert "runs in the notebook's kernel" in refused.text
    ran = kernel.run("%%agent_run call_0_0\n1/0")
    assert ran.errors and "ZeroDivisionError" in ran.errors[0]  # the user sees the traceback
    assert "✗ Error: Error:" not in ran.text
    assert "ZeroDivisionError: division by zero" in ran.text and "That failed." in ran.text


def test_calls_made_while_no_cell_runs_wait_for_resume(kernel: Kernel, tmp_path: Path) -> None:
    model = write_script(
        tmp_path / "later.json",
        {"text": "Ready."},
        {"text": "Doubling.", "tool_calls": [{"name": "double", "arguments": {"n": 5}}]},
        {"text": "Ten."},
    )  # fmt: skip
    assert "Ready." in kernel.run(f"%%agent --new --model {model}\nfirst").text
    send = (
        "import agentspace_kernel.magics.magics as m, agentspace_kernel.loop as l\n"
        "c = m._magics.client()\n"
        "l.call(c.send('from elsewhere'))\n"
        "import time\n"
        "for _ in range(200):\n"
        "    if l.call(c.info())['pending_calls']: break\n"
        "    time.sleep(0.05)\n"
        "print(l.call(c.info())['pending_calls'][0]['tool'])"
    )
    assert kernel.run(send).text.strip() == "double"
    out = kernel.run("%agent resume")
    assert "✓ 10" in out.text and "Ten." in out.text


def test_list_variables_is_answered_by_the_running_cell(kernel: Kernel, tmp_path: Path) -> None:
    setup = (
        "import pandas as pd\n"
        "sales = pd.DataFrame({'region': ['north', 'south'], 'units': [3, 4]})\n"
        "GITHUB_TOKEN = 'ghp_' + 'aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6'\n"
        "remote = 'https://' + GITHUB_TOKEN + '@github.com/o/r.git'\n"
    )
    assert not kernel.run(setup).errors
    model = write_script(
        tmp_path / "vars.json",
        {"text": "Looking.", "tool_calls": [{"name": "list_variables", "arguments": {}}]},
        {"text": "Details.", "tool_calls": [
            {"name": "list_variables", "arguments": {"names": ["sales"]}}]},
        {"text": "You have sales."},
    )  # fmt: skip
    out = kernel.run(f"%%agent --new --model {model}\nwhat data do I have?")
    assert out.errors == []
    assert "waiting" not in out.text and "You have sales." in out.text  # no cell to approve
    assert out.next_input is None
    read = (
        "import agentspace_kernel.magics.magics as m, agentspace_kernel.loop as l\n"
        "for message in l.call(m._magics.client().history(12)):\n"
        "    if message['role'] == 'tool':\n"
        "        print(message['content'])"
    )
    history = kernel.run(read).text  # %agent history cuts each message short
    assert "sales: pandas.DataFrame, 2 rows × 2 columns" in history
    assert "columns: region" in history and "units int64" in history
    assert "GITHUB_TOKEN: str, len 40 (value hidden: its name looks like a secret)" in history
    assert "ghp_aB3" not in history  # remote's value went through the engine's redaction
    assert "https://[redacted: github token]@github.com" in history
    assert "[agentspace redacted 1 value that looks like a secret (github token)" in history
    assert "head(2):" in history  # the second call's detail


def test_a_call_runs_at_most_once_whoever_asks_for_it() -> None:
    """The server (a chat's turn) and a %%agent cell may both ask the kernel for one call: the
    second gets the first's result; the function ran once."""
    from agentspace_kernel import agent_tool, tools

    runs: list[int] = []

    @agent_tool(name="count_once")
    def count_once(n: int) -> int:
        """Count a call."""
        runs.append(n)
        return len(runs)

    try:
        first = tools.call_once("s1", "call_a", "count_once", {"n": 1})
        again = tools.call_once("s1", "call_a", "count_once", {"n": 1})
        other = tools.call_once("s1", "call_b", "count_once", {"n": 2})
        elsewhere = tools.call_once("s2", "call_a", "count_once", {"n": 3})  # another session's
        assert first == again == ("1", False) and other == ("2", False)
        assert elsewhere == ("3", False) and runs == [1, 2, 3]
    finally:
        tools.REGISTRY.pop("count_once", None)
        for key in [("s1", "call_a"), ("s1", "call_b"), ("s2", "call_a")]:
            tools.ANSWERED.pop(key, None)
