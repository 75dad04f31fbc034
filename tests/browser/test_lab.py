"""JupyterLab in a real browser: a notebook is opened, typed into and run."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import expect

from .lab import NotebookPage


def test_a_typed_cell_runs_and_prints(notebook: Callable[..., NotebookPage]) -> None:
    nb = notebook("typed.ipynb")
    output = nb.run_cell("print(6*7)", keystrokes=True)
    expect(output).to_have_text("42")
    expect(nb.cells.first.locator(".jp-InputPrompt")).to_have_text("[1]:")


def test_the_agent_kernel_runs_python_cells(notebook: Callable[..., NotebookPage]) -> None:
    nb = notebook("agent.ipynb", kernel="agentspace")
    expect(nb.page.locator("#jp-main-statusbar")).to_contain_text("Agent (Python) | Idle")
    output = nb.run_cell("%%python\nanswer = 6 * 7\nprint(answer)")
    expect(output).to_have_text("42")
    expect(nb.run_cell("!echo shell-$((40 + 2))")).to_have_text("shell-42")
