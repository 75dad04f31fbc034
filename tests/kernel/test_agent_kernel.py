"""The Agent (Python) kernel for real: started by jupyter_client from its shipped kernelspec."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

import agentspace
import agentspace_kernel

SPEC_DIR = Path(agentspace_kernel.__file__ or "").parent / "kernelspec"
# A stand-in for the agentspace extension: %%agent echoes its line and cell.
FAKE_EXTENSION = """
def load_ipython_extension(ip):
    def agent(line, cell):
        print(f"AGENT[{line}]: {cell}", end="")
    ip.register_magic_function(agent, "cell", "agent")
"""


@dataclass
class Result:
    reply: dict[str, Any]
    stdout: str = ""
    stderr: str = ""
    errors: list[dict[str, Any]] = field(default_factory=list)


class Kernel:
    """A running kernel and a client; `run` executes like a notebook cell and collects output."""

    def __init__(self, km: KernelManager) -> None:
        self.km = km
        self.client: BlockingKernelClient = km.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def run(self, code: str, **kwargs: Any) -> Result:
        result = Result(reply={})

        def hook(msg: dict[str, Any]) -> None:
            if msg["msg_type"] == "stream":
                name = msg["content"]["name"]
                setattr(result, name, getattr(result, name) + msg["content"]["text"])
            elif msg["msg_type"] == "error":
                result.errors.append(msg["content"])

        result.reply = self.client.execute_interactive(
            code, timeout=60, output_hook=hook, **kwargs
        )["content"]
        return result

    def stop(self) -> None:
        self.client.stop_channels()
        self.km.shutdown_kernel(now=True)


def start_kernel(tmp: Path, *extra: str, pythonpath: tuple[str, ...] = ()) -> Kernel:
    """Start "agentspace" from a kernelspec folder as a wheel installs it (argv[0] "python")."""
    shutil.copytree(SPEC_DIR, tmp / "kernels" / "agentspace")
    ksm = KernelSpecManager(kernel_dirs=[str(tmp / "kernels")])
    assert ksm.get_kernel_spec("agentspace").argv[0] == "python"
    km = KernelManager(kernel_name="agentspace", kernel_spec_manager=ksm)
    assert km.format_kernel_cmd()[0] == sys.executable  # jupyter_client swaps "python"
    # This checkout's packages first, so the kernel runs the code under test.
    here = [str(Path(m.__file__ or "").parent.parent) for m in (agentspace, agentspace_kernel)]
    path = [*pythonpath, *here, *filter(None, [os.environ.get("PYTHONPATH")])]
    km.start_kernel(
        extra_arguments=list(extra),
        env={**os.environ, "PYTHONPATH": os.pathsep.join(path)},
        cwd=str(tmp),
    )
    return Kernel(km)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    """The kernel with an extension that does not exist: %%agent cells say why they cannot run."""
    k = start_kernel(tmp_path_factory.mktemp("k"), "--AgentKernel.agent_extension=no_such_ext_x")
    yield k
    k.stop()


@pytest.fixture(scope="module")
def agent_kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    """The kernel with a stand-in agent extension that echoes the prompt."""
    tmp = tmp_path_factory.mktemp("ext")
    (tmp / "fake_agent_ext.py").write_text(FAKE_EXTENSION)
    k = start_kernel(tmp, "--AgentKernel.agent_extension=fake_agent_ext", pythonpath=(str(tmp),))
    yield k
    k.stop()


def test_it_runs_the_code_under_test(kernel: Kernel) -> None:
    out = kernel.run(
        "%%python\nimport agentspace_kernel.agent_kernel.kernel as m\nprint(m.__file__)"
    )
    assert out.stdout.strip() == str(SPEC_DIR.parent / "agent_kernel/kernel.py")
    info = kernel.client.kernel_info(reply=True, timeout=30)["content"]
    assert info["implementation"] == "agentspace"
    assert info["language_info"]["name"] == "python"


def test_python_cells_share_the_namespace(kernel: Kernel) -> None:
    assert kernel.run("%%python\nx = 1").reply["status"] == "ok"
    assert kernel.run("\n%%python  \nprint(x + 1)").stdout == "2\n"


def test_history_keeps_the_cell_as_typed(kernel: Kernel) -> None:
    cell = "%%python\nprint(repr(get_ipython().history_manager.input_hist_raw[-1]))"
    assert kernel.run(cell).stdout == repr(cell) + "\n"


def test_tracebacks_number_lines_as_in_the_cell(kernel: Kernel) -> None:
    out = kernel.run("%%python\na = 1\nraise ValueError('line three')")
    assert out.reply["status"] == "error" and out.errors[0]["ename"] == "ValueError"
    assert any("line 3" in line for line in out.errors[0]["traceback"])


def test_magics_and_shell_escapes_are_unchanged(kernel: Kernel) -> None:
    assert kernel.run("%time y = 5").reply["status"] == "ok"
    assert kernel.run("%%python\nprint(y)").stdout == "5\n"
    assert kernel.run("!echo from-the-shell").stdout.strip() == "from-the-shell"
    assert "per loop" in kernel.run("%%python\n%%timeit -n1 -r1\ny + 1").stdout


def test_frontend_requests_stay_python(kernel: Kernel) -> None:
    assert kernel.run("z = 41", silent=True).reply["status"] == "ok"
    assert kernel.run("z += 1", store_history=False).reply["status"] == "ok"
    assert kernel.run("%%python\nprint(z)").stdout == "42\n"


def test_a_prompt_without_the_agent_extension_says_why(kernel: Kernel) -> None:
    out = kernel.run("# just a comment: still a prompt")
    assert out.reply["status"] == "error" and out.reply["ename"] == "UsageError"
    message = out.reply["evalue"]
    assert out.stderr == f"UsageError: {message}\n"  # what the cell's output shows
    assert "%%agent magic is unavailable" in message
    assert "no_such_ext_x" in message and "%%python" in message
    assert kernel.run("%%python\nprint('still usable')").stdout == "still usable\n"


def test_a_prompt_goes_to_the_agent_magic(agent_kernel: Kernel) -> None:
    out = agent_kernel.run("\nsummarise   this\nnotebook")
    assert out.reply["status"] == "ok", out.errors
    assert out.stdout == "AGENT[]: summarise   this\nnotebook\n"
    raw = agent_kernel.run("%%python\nprint(get_ipython().history_manager.input_hist_raw[-2])")
    assert raw.stdout == "\nsummarise   this\nnotebook\n"


def test_the_real_agent_answers_a_prompt_cell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The installed kernel with the real extension (embedded mode, the echo model)."""
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))  # a throwaway state dir
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    k = start_kernel(tmp_path)
    try:
        out = k.run("hello from the Agent kernel")
        assert out.reply["status"] == "ok", out.errors
        assert out.stdout.startswith("You said: hello from the Agent kernel\n[done]")
        assert k.run("%%python\nprint(6 * 7)").stdout == "42\n"
    finally:
        k.stop()
