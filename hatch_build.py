"""The wheel's build hook: a wheel always ships the labextension, built, so ``pip install``
needs no node.

A wheel built from a checkout or an sdist where ``extension/agentspace/labextension`` is not
built yet builds it first (``npm ci`` and ``npm run build`` in ``labextension/``, with the
machine's node 20+), and fails with what to install if it cannot. Editable installs
(``make setup``) skip it: ``scripts/labextension.sh`` builds and links the labextension there.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class LabextensionHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        root = Path(self.root)
        if (root / "extension/agentspace/labextension/package.json").exists():
            return
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            raise RuntimeError(
                "Building the agentspace wheel needs its labextension built, and node 20+ with "
                "npm to build it: install Node.js, or run scripts/labextension.sh first."
            )
        source = root / "labextension"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=source, check=True)
        subprocess.run([npm, "run", "build"], cwd=source, check=True)
