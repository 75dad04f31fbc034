"""``python -m agentspace_kernel.launch -f CONNECTION_FILE``: the "Agent (Python)" kernel process.

The kernelspec's argv (``kernelspec/kernel.json``): a module, not a console script, so it needs
nothing on PATH (jupyter_client runs a leading ``python`` as its own interpreter). As
ipykernel_launcher does, the working directory (the notebook's folder) leaves ``sys.path`` before
anything is imported, so a user's ``json.py`` there cannot shadow what the kernel imports; the
shell puts it back for user code.
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    if sys.path and (sys.path[0] == "" or Path(sys.path[0]) == Path.cwd()):
        del sys.path[0]

    from agentspace_kernel.agent_kernel.kernel import AgentKernelApp

    AgentKernelApp.launch_instance()
