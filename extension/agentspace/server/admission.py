"""Requests to the Jupyter server take turns with the runs (pacing), not all in one loop turn.

Why: when a burst of clients connects at once (200 kernels or browser tabs, a
load test), their request bytes arrive in the same poll of the event loop, and
tornado routes each request and builds its handler in one step as soon as the
headers are read: the whole burst back to back, a stall in which no timer, no
stream and no other request of the server is served (bench/server.py's burst;
bench/RESULTS.md, server section).

How: ``pace(http_server)`` wraps the server's ``start_request`` so that each
request's message delegate awaits ``pacing.checkpoint()`` in ``headers_received``
(tornado awaits what that returns) before routing it. A request into a quiet
server goes on at once (a clock read); in a burst, requests are let in a slice
at a time, first come first served. It applies to every request the server
takes, which is why it is a setting (``c.AgentspaceApp.pace_requests``).

Before that, tornado accepts up to 128 new connections in one loop turn (its
listen backlog, used as the cap), each with the stream and the request task it
starts: a stall of its own (bench/RESULTS.md, server section). ``pace`` lowers
that cap to ``ACCEPTS_PER_TURN``; the listen backlog itself (the kernel's queue)
is not changed.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import tornado.netutil
from tornado import httputil

from agentspace.fairness.pacing import checkpoint, requests_first

ACCEPTS_PER_TURN = 16


class PacedDelegate(httputil.HTTPMessageDelegate):
    """A request's delegate that takes its turn before the request is routed."""

    def __init__(self, inner: httputil.HTTPMessageDelegate) -> None:
        self.inner = inner

    async def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> None:
        requests_first()  # this connection's task: its requests go ahead of bulk work
        await checkpoint()
        result = self.inner.headers_received(start_line, headers)
        if result is not None:
            await result

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return self.inner.data_received(chunk)

    def finish(self) -> None:
        self.inner.finish()

    def on_connection_close(self) -> None:
        self.inner.on_connection_close()


def pace(server: Any) -> bool:
    """Pace the requests of a tornado ``HTTPServer``; False if it has no ``start_request``."""
    start_request = getattr(server, "start_request", None)
    if start_request is None or getattr(start_request, "paced", False):
        return start_request is not None

    def paced(
        server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        return PacedDelegate(start_request(server_conn, request_conn))

    paced.paced = True  # type: ignore[attr-defined]
    server.start_request = paced
    if getattr(tornado.netutil, "_DEFAULT_BACKLOG", 0) > ACCEPTS_PER_TURN:
        # Read by tornado's accept handler on every call (netutil.add_accept_handler).
        tornado.netutil._DEFAULT_BACKLOG = ACCEPTS_PER_TURN
    return True
