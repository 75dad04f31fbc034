"""``python -m agentspace`` is the ``agentspace`` command."""

import sys

from agentspace.cli.main import main

sys.exit(main())
