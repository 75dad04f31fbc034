"""Nothing heavy is imported when the server loads the extension or the CLI starts."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("litellm", "docker", "agentspace.engine", "agentspace.session", "ag_ui", "pydantic")

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
        "import sys, agentspace;print('litellm' in sys.modules, 'agentspace.engine' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
