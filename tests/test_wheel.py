"""The wheel ships what `pip install` needs without node: the built labextension (with its
install.json), the server config that enables the extension, and the "Agent (Python)"
kernelspec, as shared data."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = "jupyter_agentspace-0.1.0.data/data/"


def test_the_wheel_ships_the_prebuilt_labextension(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(ROOT), "-w", str(tmp_path)]
    subprocess.run(argv, check=True, capture_output=True, timeout=600)
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        lab = DATA + "share/jupyter/labextensions/jupyter-agentspace/"
        package = json.loads(z.read(lab + "package.json"))
        install = json.loads(z.read(lab + "install.json"))
    assert package["name"] == "jupyter-agentspace" and package["jupyterlab"]["_build"]["load"]
    assert lab + package["jupyterlab"]["_build"]["load"] in names  # static/remoteEntry...js
    assert install["packageName"] == "jupyter-agentspace"
    assert DATA + "etc/jupyter/jupyter_server_config.d/agentspace.json" in names
    assert DATA + "share/jupyter/kernels/agentspace/kernel.json" in names
    assert not any(n.startswith("agentspace/labextension/") for n in names)  # not twice
