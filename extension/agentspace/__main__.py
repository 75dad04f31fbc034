"""``python -m agentspace`` is the ``agentspace`` command."""

import sys

from .cli import main

sys.exit(main())
