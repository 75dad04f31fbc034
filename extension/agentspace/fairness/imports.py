"""Heavy imports off the event loop, with the garbage collector paused and the result frozen.

Why: the engine (pydantic, ag-ui) and litellm are slow to import (bench/RESULTS.md,
server section: first use) and are imported on first use, in a running Jupyter
server. On the loop the import is one long stall of every request; in a thread
the loop keeps its turns. And an import allocates a great many long-lived
objects: collections during it pause every thread, and a young collection right
after it walks them all (a long pause, measured in bench/RESULTS.md, server
section: imports off the loop), so the collector waits until the import is done
and the new objects are frozen (``gc.freeze``: collections never walk them
again; what of them later becomes cyclic garbage is never freed: little, and once).
"""

from __future__ import annotations

import asyncio
import gc
import importlib
from collections.abc import Callable


def quietly(load: Callable[[], object]) -> None:
    """Run ``load`` (imports) with the collector paused, then freeze what it left."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        load()
    finally:
        gc.freeze()  # before enabling: a young collection would walk all of it first
        if enabled:
            gc.enable()


def import_quietly(*names: str) -> None:
    """Import modules by name (see ``quietly``)."""
    quietly(lambda: [importlib.import_module(name) for name in names])


async def import_off_loop(*names: str) -> None:
    """``import_quietly`` in a thread, unless they are all imported already."""
    import sys

    if any(name not in sys.modules for name in names):
        await asyncio.to_thread(import_quietly, *names)
