"""server.admission: a paced tornado server routes each request in its pacing turn.

A real tornado ``HTTPServer`` on a loopback socket and a real HTTP client; the
pacing clock is faked (conftest ``clock``) where a test needs the slice spent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import tornado.netutil
from tornado import httputil, web, websocket
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.httpserver import HTTPServer

from agentspace.fairness.pacing import BUDGET, _gate, checkpoint
from agentspace.server.admission import ACCEPTS_PER_TURN, PacedDelegate, pace

from .conftest import Clock


class Echo(web.RequestHandler):
    def get(self) -> None:
        self.write({"method": "GET", "query": self.get_argument("q", "")})

    def post(self) -> None:
        self.write({"method": "POST", "length": len(self.request.body)})


@web.stream_request_body
class Upload(web.RequestHandler):
    def prepare(self) -> None:
        self.size = 0

    def data_received(self, chunk: bytes) -> None:
        self.size += len(chunk)

    def put(self) -> None:
        self.write({"received": self.size})


class Echoes(websocket.WebSocketHandler):
    def on_message(self, message: str | bytes) -> None:
        self.write_message(message)


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    monkeypatch.setattr(tornado.netutil, "_DEFAULT_BACKLOG", 128)  # pace() lowers it
    app = web.Application([("/echo", Echo), ("/upload", Upload), ("/ws", Echoes)])
    http = HTTPServer(app)
    assert pace(http)
    [sock] = tornado.netutil.bind_sockets(0, "127.0.0.1")
    http.add_sockets([sock])
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    http.stop()
    await http.close_all_connections()


async def fetch(url: str, client: AsyncHTTPClient | None = None, **kwargs: Any) -> Any:
    response = await (client or AsyncHTTPClient()).fetch(url, **kwargs)
    return json.loads(response.body)


async def test_a_paced_server_serves_requests_as_before(server: str) -> None:
    assert await fetch(f"{server}/echo?q=x") == {"method": "GET", "query": "x"}
    body = b"x" * 100_000
    assert await fetch(f"{server}/echo", method="POST", body=body) == {
        "method": "POST",
        "length": 100_000,
    }

    async def chunks(write: Any) -> None:
        for _ in range(10):
            await write(b"y" * 10_000)

    streamed = await fetch(f"{server}/upload", method="PUT", body_producer=chunks)
    assert streamed == {"received": 100_000}
    with pytest.raises(HTTPClientError) as missing:
        await fetch(f"{server}/nowhere")
    assert missing.value.code == 404
    ws = await websocket.websocket_connect(server.replace("http", "ws") + "/ws")
    await ws.write_message("ping")
    assert await ws.read_message() == "ping"
    ws.close()


async def test_a_burst_of_requests_is_answered_when_every_slice_is_spent(
    server: str, clock: Clock
) -> None:
    clock.step = 1.0  # every reading is a second later: each request waits for a turn
    client = AsyncHTTPClient(force_instance=True, max_clients=100)
    try:
        answers = await asyncio.gather(*(fetch(f"{server}/echo?q={i}", client) for i in range(100)))
    finally:
        client.close()
    assert [a["query"] for a in answers] == [str(i) for i in range(100)]


async def test_a_request_is_routed_only_once_its_turn_comes(clock: Clock) -> None:
    routed: list[str] = []

    class Inner(httputil.HTTPMessageDelegate):
        def headers_received(self, start_line: Any, headers: Any) -> None:
            routed.append(start_line.path)

    async def hog() -> None:
        await checkpoint()
        clock.now += BUDGET * 1.5  # this turn's slice is spent

    line = httputil.RequestStartLine("GET", "/x", "HTTP/1.1")
    spent = asyncio.create_task(hog())
    delegate = PacedDelegate(Inner())
    waiting = asyncio.create_task(delegate.headers_received(line, httputil.HTTPHeaders()))
    await asyncio.sleep(0)
    assert routed == [] and _gate().waiters == 1  # queued behind the slice
    await asyncio.gather(spent, waiting)
    assert routed == ["/x"]


def test_pace_caps_accepts_per_turn_once_and_needs_start_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tornado.netutil, "_DEFAULT_BACKLOG", 128)
    http = HTTPServer(web.Application())
    assert pace(http) and pace(http)  # twice: wrapped once
    delegate = http.start_request(None, None)  # type: ignore[arg-type]
    assert isinstance(delegate, PacedDelegate)
    assert not isinstance(delegate.inner, PacedDelegate)
    assert tornado.netutil._DEFAULT_BACKLOG == ACCEPTS_PER_TURN
    assert pace(object()) is False
