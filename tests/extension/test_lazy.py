"""Nothing heavy is imported when the server loads the extension, the CLI starts, or a stored
session is loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY = (
    "litellm",
    "docker",
    "agentspace.engine.engine",
    "agentspace.engine.session",
    "ag_ui",
    "pydantic",
)

PROBE = """
import sys
import jupyter_server.serverapp  # what the server has anyway
before = set(sys.modules)
import agentspace
from agentspace import _jupyter_server_extension_points
from agentspace.server.routes import routes
_jupyter_server_extension_points()
routes()
heavy = [m for m in {HEAVY!r} if m in sys.modules and m not in before]
print(",".join(heavy))
"""


def test_loading_the_extension_imports_nothing_heavy() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.replace("{HEAVY!r}", repr(HEAVY))],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert out == "", f"imported at server start: {out}"


def test_importing_agentspace_is_light() -> None:
    code = (
        "import sys, agentspace;"
        "print('litellm' in sys.modules, 'agentspace.engine.engine' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_the_models_to_pick_from_are_told_without_litellm() -> None:
    code = (
        "import os, sys; os.environ['OPENAI_API_KEY'] = 'k';"
        "from agentspace.engine.config import model_choices;"
        "print(model_choices('scripted/echo').models[1], 'litellm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["openai/gpt-4o-mini", "False"]


RELOAD = """
import asyncio, sys
from pathlib import Path
from agentspace.engine.config import EngineConfig
from agentspace.engine.engine import Engine

async def main(state, fresh):
    async with Engine(EngineConfig(state_dir=Path(state), model="scripted/echo")) as engine:
        session = await engine.session("tools.ipynb")
        if fresh:
            from agentspace.tools.kernel import KernelTool
            schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
            tool = KernelTool(name="double", description="Double x.", parameters=schema)
            session.set_kernel_tools([tool], run_cell=False)
            await session.store.flush()
        print([t.name for t in session.kernel_tools()], "jsonschema" in sys.modules)

asyncio.run(main(sys.argv[1], sys.argv[2] == "fresh"))
"""


def test_a_session_with_kernel_tools_loads_without_jsonschema(tmp_path: Path) -> None:
    """A stored tool's schema was checked when it was set: loading it back (after a server
    restart, on the event loop) must not import jsonschema, which takes ~1 s."""

    def run(mode: str) -> str:
        state = str(tmp_path / "state")
        args = [sys.executable, "-c", RELOAD, state, mode]
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()

    assert run("fresh") == "['double'] True"  # setting it checks the schema
    assert run("reload") == "['double'] False"
