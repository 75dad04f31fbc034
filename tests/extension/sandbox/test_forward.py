"""Embedded-mode previews for real: a token-checked forwarder on 127.0.0.1 to a bubblewrap sandbox.

A tiny app in the sandbox logs the head of every request it gets (to ``requests.log`` in the
workspace) and answers with what it saw, or echoes WebSocket messages. The client side uses raw
sockets (to send any Host, Origin or Cookie) and urllib with a cookie jar (a browser's flow).
Waiting is bounded polling on conditions, never a guessed sleep.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from agentspace.sandbox.forward import Forwarder
from agentspace.sandbox.previews import LoopbackPreviews, make_previews
from agentspace.sandbox.workspace import Workspace

from .conftest import serving

MakeWorkspace = Callable[..., Workspace]
Emitted = list[tuple[str, dict[str, Any]]]
PORT = 8770
APP = r"""
import asyncio, base64, hashlib, json, sys
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

async def handle(r, w):
    head = await r.readuntil(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")[:-2]
    with open("requests.log", "a") as log:
        log.write(json.dumps(lines) + "\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if headers.get("upgrade", "").lower() != "websocket":
        body = json.dumps(lines).encode()
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nKeep-Alive: timeout=5\r\n"
                b"Set-Cookie: agentspace_preview_1=tossed\r\nSet-Cookie: app=1\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body)
        await w.drain()
        w.close()
        return
    key = headers["sec-websocket-key"] + GUID
    accept = base64.b64encode(hashlib.sha1(key.encode()).digest()).decode()
    w.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
    while True:
        b0, b1 = await r.readexactly(2)
        size = b1 & 127
        mask = await r.readexactly(4)
        data = bytes(c ^ mask[i % 4] for i, c in enumerate(await r.readexactly(size)))
        if b0 & 15 == 8:
            w.write(bytes([0x88, 0]))
            await w.drain()
            w.close()
            return
        w.write(bytes([0x81, len(data)]) + data)
        await w.drain()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""


async def request(port: int, head: str | bytes, body: bytes = b"") -> tuple[int, list[str], bytes]:
    """Send a request head (``\\n`` line ends; bytes: sent as they are), read the whole answer."""
    if isinstance(head, str):
        head = head.strip().replace("\n", "\r\n").encode() + b"\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + body)
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    top, _, content = answer.partition(b"\r\n\r\n")
    status, *headers = top.decode("latin1").split("\r\n")
    return int(status.split()[1]), headers, content


def requests_seen(ws: Workspace) -> list[list[str]]:
    log = ws.folder / "requests.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
async def app(make_workspace: MakeWorkspace, until: Callable[..., Any]) -> Workspace:
    """A bubblewrap workspace with loopback previews (as embedded mode makes them) and the app."""
    ws = make_workspace("bubblewrap")
    ws.previews = make_previews(None, ws.sandbox)
    (ws.folder / "app.py").write_text(APP)
    await ws.processes.start(f"python3 app.py {PORT}", name="app")
    await until(lambda: serving(ws, PORT), "the app in the sandbox")
    return ws


def token_of(url: str) -> tuple[int, str]:
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1" and parts.path == "/"
    name, _, token = parts.query.partition("=")
    assert name == "agentspace_token" and len(token) >= 40
    return int(parts.port or 0), token


async def test_the_link_redirects_once_then_the_cookie_carries_the_browser(
    app: Workspace, emitted: Emitted
) -> None:
    url = await app.preview(PORT)
    assert ("preview", {"port": PORT, "url": url}) in emitted
    assert await app.preview(PORT) == url  # one forwarder per port, reused
    port, token = token_of(url)

    # the link: a 302 to the same URL without the token, setting the cookie; the app sees nothing
    status, headers, _ = await request(
        port, f"GET /page?a=1&agentspace_token={token}&b=2 HTTP/1.1\nHost: 127.0.0.1:{port}"
    )
    assert status == 302
    assert f"Location: http://127.0.0.1:{port}/page?a=1&b=2" in headers
    cookie = f"agentspace_preview_{port}={token}"
    assert f"Set-Cookie: {cookie}; Path=/; HttpOnly; SameSite=Strict" in headers
    assert requests_seen(app) == []

    # a browser's flow: follow the redirect with a cookie jar, then come back with the cookie
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def get(target: str) -> tuple[int, Any, str]:
        with opener.open(target, timeout=10) as response:
            return response.status, json.loads(response.read()), response.geturl()

    first = await asyncio.to_thread(get, url)
    assert first[0] == 200 and first[2] == f"http://127.0.0.1:{port}/"  # token out of the bar
    second = await asyncio.to_thread(get, f"http://127.0.0.1:{port}/again?x=1")
    assert second[0] == 200
    assert [r[0] for r in requests_seen(app)] == ["GET / HTTP/1.1", "GET /again?x=1 HTTP/1.1"]
    assert [c.name for c in jar] == [f"agentspace_preview_{port}", "app"]  # not the tossed one


async def test_no_token_wrong_token_wrong_host_or_origin_never_reach_the_app(
    app: Workspace,
) -> None:
    port, token = token_of(await app.preview(PORT))
    host = f"Host: 127.0.0.1:{port}"
    refused = [
        f"GET / HTTP/1.1\n{host}",
        f"GET /?agentspace_token=wrong HTTP/1.1\n{host}",
        f"GET / HTTP/1.1\n{host}\nCookie: agentspace_preview_{port}=wrong",
        f"GET / HTTP/1.1\n{host}\nCookie: agentspace_preview_1={token}",  # another port's name
        f"GET /?agentspace_token={token} HTTP/1.1\nHost: evil.example:{port}",  # DNS rebinding
        f"GET /?agentspace_token={token} HTTP/1.1\nHost: 127.0.0.1.evil.example:{port}",
        f"GET /?agentspace_token={token} HTTP/1.1",  # no Host at all
        f"GET /?agentspace_token={token} HTTP/1.1\n{host}\n{host}",
        f"POST /?agentspace_token={token} HTTP/1.1\n{host}\nOrigin: http://127.0.0.1:1",
        f"GET /?agentspace_token={token} HTTP/1.1\n{host}\nOrigin: null",
    ]
    for head in refused:
        status, headers, _ = await request(port, head)
        assert status == 403, head
        assert "Connection: close" in headers
    status, _, _ = await request(port, "not http at all")
    assert status == 400
    for target in ("http://evil.example/", "*"):
        status, _, _ = await request(port, f"GET {target} HTTP/1.1\n{host}")
        assert status == 400, target
    lf = f"GET /a\nSet-Cookie:x?agentspace_token={token} HTTP/1.1\r\n{host}\r\n\r\n"
    status, headers, _ = await request(port, lf.encode())  # a bare LF in the target
    assert status == 400 and not any(h.startswith("Set-Cookie") for h in headers)
    # the app saw none of them: the next accepted request is the first line of its log
    status, _, _ = await request(
        port, f"GET /ok HTTP/1.1\n{host}\nCookie: agentspace_preview_{port}={token}"
    )
    assert status == 200
    assert [r[0] for r in requests_seen(app)] == ["GET /ok HTTP/1.1"]


async def test_a_port_forward_may_show_the_listener_under_another_port(app: Workspace) -> None:
    """``ssh -L 9000:127.0.0.1:<p>`` or VS Code Remote: the browser's Host (and Origin) name
    another port on a loopback name; that is still this machine's loopback, not a rebinding."""
    port, token = token_of(await app.preview(PORT))
    cookie = f"Cookie: agentspace_preview_{port}={token}"
    for host in ("localhost:9000", "127.0.0.1:9000", "[::1]:9000"):
        head = f"POST /form HTTP/1.1\nHost: {host}\nOrigin: http://{host}\n{cookie}"
        status, _, _ = await request(port, head + "\nContent-Length: 0")
        assert status != 403, host
    head = f"POST /form HTTP/1.1\nHost: localhost:9000\nOrigin: http://localhost:9001\n{cookie}"
    status, _, _ = await request(port, head)
    assert status == 403  # the Origin must be the page's own: Host as the browser sent it


async def test_the_app_sees_no_token_and_no_hidden_cookie(app: Workspace) -> None:
    port, token = token_of(await app.preview(PORT))
    cookies = (
        f"theme=dark; agentspace_preview_{port}={token}; agentspace_preview_9999=other; "
        "_xsrf=x; username-127-0-0-1-8888=jupyter"
    )
    status, headers, body = await request(
        port,
        f"POST /form?agentspace_token={token}&q=1 HTTP/1.1\nHost: localhost:{port}\n"
        f"Origin: http://localhost:{port}\nCookie: {cookies}\nCookie: sid=2\n"
        f"Referer: http://localhost:{port}/?agentspace_token={token}\n"
        "Connection: keep-alive\nContent-Length: 5",
        b"hello",
    )
    assert status == 200
    seen = json.loads(body)
    assert seen[0] == "POST /form?q=1 HTTP/1.1"  # a POST is forwarded, the token cut
    assert "Cookie: theme=dark; sid=2" in seen
    assert f"Referer: http://localhost:{port}/" in seen
    assert "Connection: close" in seen and "Connection: keep-alive" not in seen
    assert token not in json.dumps(seen) and "agentspace_preview" not in json.dumps(seen)
    # and the browser is told to close, and cannot be made to drop or replace the cookies
    assert "Connection: close" in headers and not any(h.startswith("Keep-Alive") for h in headers)
    assert [h for h in headers if h.startswith("Set-Cookie")] == ["Set-Cookie: app=1"]


async def test_a_websocket_is_spliced_after_its_checked_handshake(app: Workspace) -> None:
    port, token = token_of(await app.preview(PORT))
    cookie = {"Cookie": f"agentspace_preview_{port}={token}"}
    socket = await websocket_connect(HTTPRequest(f"ws://127.0.0.1:{port}/ws", headers=cookie))
    for text in ("hello", "through the forwarder"):
        await socket.write_message(text)
        assert await asyncio.wait_for(socket.read_message(), 10) == text
    socket.close()

    with pytest.raises(HTTPClientError) as refused:
        await websocket_connect(HTTPRequest(f"ws://127.0.0.1:{port}/ws"))
    assert refused.value.code == 403
    foreign = {**cookie, "Origin": "http://127.0.0.1:1"}  # another local page, same site
    with pytest.raises(HTTPClientError) as refused:
        await websocket_connect(HTTPRequest(f"ws://127.0.0.1:{port}/ws", headers=foreign))
    assert refused.value.code == 403
    assert [r[0] for r in requests_seen(app)] == ["GET /ws HTTP/1.1"]


async def test_closing_the_workspace_closes_listeners_and_connections(app: Workspace) -> None:
    port, token = token_of(await app.preview(PORT))
    cookie = {"Cookie": f"agentspace_preview_{port}={token}"}
    socket = await websocket_connect(HTTPRequest(f"ws://127.0.0.1:{port}/ws", headers=cookie))
    await socket.write_message("open")
    assert await asyncio.wait_for(socket.read_message(), 10) == "open"

    await app.close()
    assert await asyncio.wait_for(socket.read_message(), 10) is None  # cut
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    assert isinstance(app.previews, LoopbackPreviews) and not app.previews.forwarders


async def test_an_app_that_is_gone_is_a_502() -> None:
    async def refuse() -> Any:
        raise ConnectionRefusedError("nothing listens")

    forwarder = await Forwarder(refuse).start()
    try:
        port, token = token_of(forwarder.url)
        status, _, body = await request(
            port, f"GET / HTTP/1.1\nHost: 127.0.0.1:{port}\nCookie: {forwarder.cookie}={token}"
        )
        assert status == 502 and b"nothing listens" in body
    finally:
        await forwarder.close()


async def test_urllib_without_the_token_gets_403() -> None:
    async def unreachable() -> Any:
        raise AssertionError("a refused request must not connect")

    forwarder = await Forwarder(unreachable).start()
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            await asyncio.to_thread(urllib.request.urlopen, f"http://127.0.0.1:{forwarder.port}/")
        assert refused.value.code == 403
    finally:
        await forwarder.close()


async def test_closing_a_forwarder_cuts_a_spliced_connection_the_app_keeps_open() -> None:
    async def echo_after_101(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw\r\nConnection: Upgrade\r\n\r\n"
        )
        while data := await reader.read(100):
            writer.write(data)

    app = await asyncio.start_server(echo_after_101, "127.0.0.1", 0)
    where = app.sockets[0].getsockname()
    forwarder = await Forwarder(lambda: asyncio.open_connection(*where)).start()
    async with app:
        port, token = token_of(forwarder.url)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET /raw HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: Upgrade\r\n"
            f"Upgrade: raw\r\nCookie: {forwarder.cookie}={token}\r\n\r\nping".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101")
        assert await asyncio.wait_for(reader.readexactly(4), 10) == b"ping"
        await forwarder.close()
        assert await asyncio.wait_for(reader.read(), 10) == b""  # cut, though the app stays
        writer.close()
