"""Embedded mode's diagnostics: to a log file in the state folder, never into a cell.

In a kernel ``sys.stderr`` is the running cell's output, and so is the process's
file descriptor 2 (ipykernel captures it for C libraries' output): a warning the
engine logs (``models/inline.py`` under load), one of litellm's loggers, or a
``warnings.warn`` raised while litellm imports on the agent's threads would land
as stderr in whatever cell runs, and a saved notebook (or nbval) would keep it.
They go to ``kernel.log`` in the state folder instead (``LOG_NAME``, rotated).
The user's own logging and warnings are left as they are.
"""

from __future__ import annotations

import logging
import logging.handlers
import threading
import warnings
from pathlib import Path
from typing import TextIO

LOG_NAME = "kernel.log"
OURS = ("agentspace", "agentspace_kernel")
LITELLM = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")
"""Loggers of the engine: what they log is about the agent, not the user's code."""
THREADS = ("agentspace", "asyncio")
"""Name prefixes of the engine's threads: the agent loop and its executor's workers."""

_handler: logging.Handler | None = None


class _ToKernelLog(logging.Filter):
    """On a logger whose handlers write to ``sys.stderr`` (litellm adds its own at import):
    hand the record to the kernel log and keep it from those handlers."""

    def __init__(self, handler: logging.Handler) -> None:
        super().__init__()
        self.handler = handler

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= self.handler.level:
            self.handler.handle(record)
        return False


def _engine_source(filename: str) -> bool:
    parts = Path(filename).parts
    return "agentspace" in parts or "litellm" in parts


def keep_out_of_cells(state_dir: Path) -> Path:
    """Route the engine's logs and warnings to ``state_dir/kernel.log`` (once per kernel)."""
    global _handler
    path = state_dir / LOG_NAME
    if _handler is not None:
        return path
    state_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=1_000_000, backupCount=1, encoding="utf-8", delay=True
    )
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    )
    handler.setLevel(logging.WARNING)
    _handler = handler
    for name in OURS:  # their records, and their children's, reach this handler only
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.propagate = False  # no root handler (nor Python's last resort) prints it
    for name in LITELLM:  # litellm adds its own stderr handler when it is imported
        logger = logging.getLogger(name)
        logger.propagate = False
        logger.addFilter(_ToKernelLog(handler))
    shown = warnings.showwarning
    log = logging.getLogger("agentspace.warnings")

    def showwarning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        engine_thread = threading.current_thread().name.startswith(THREADS)
        if file is None and (engine_thread or _engine_source(filename)):
            log.warning("%s", warnings.formatwarning(message, category, filename, lineno, line))
            return
        shown(message, category, filename, lineno, file, line)

    warnings.showwarning = showwarning
    return path
