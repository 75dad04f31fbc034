"""The preview proxy against real servers in a real bubblewrap sandbox (no network inside).

Three apps run in the session's sandbox: ``python3 -m http.server`` (files, listings,
redirects), a tiny echo app (methods, bodies, headers, streaming, garbage) and a minimal
RFC 6455 echo server (the sandbox's python3 has no websocket library).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError
from tornado.iostream import StreamClosedError

WEB, ECHO, WS = 8765, 8766, 8767

ECHO_APP = r"""
import json, os, select, socket, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

PORT = int(sys.argv[1])


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self):
        with open("requests.log", "a") as log:
            log.write(f"{self.command} {self.path}\n")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        route = self.path.split("?")[0]
        if route == "/stream":
            return self.stream()
        if route == "/garbage":
            self.wfile.write(b"this is not HTTP\r\n\r\n")
            self.close_connection = True
            return
        if route == "/cut":  # promises 100 bytes, sends 10
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
            self.close_connection = True
            return
        if route == "/redirect":
            cookies = [("Set-Cookie", "_xsrf=evil; Path=/"), ("Set-Cookie", "app=1; Path=/")]
            return self.reply(302, b"", [("Location", "/target?x=1"), *cookies])
        if route == "/absolute":
            return self.reply(302, b"", [("Location", f"http://127.0.0.1:{PORT}/abs")])
        if route == "/to":  # a redirect to wherever the query says
            location = parse_qs(self.path.split("?", 1)[1])["url"][0]
            return self.reply(302, b"", [("Location", location)])
        if route == "/lax":  # headers that would undo the confinement, and one that would not
            return self.reply(200, b"lax", [
                ("Content-Security-Policy", "img-src 'self'"),
                ("Cross-Origin-Opener-Policy", "unsafe-none"), ("X-Frame-Options", "SAMEORIGIN"),
                ("Service-Worker-Allowed", "/"), ("Clear-Site-Data", '"cookies"'),
                ("Cross-Origin-Embedder-Policy", "require-corp")])
        data = {"method": self.command, "path": self.path, "headers": self.headers.items(),
                "body": body.decode()}
        self.reply(200, json.dumps(data).encode(), [("Content-Type", "application/json")])

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = answer

    def reply(self, status, data, headers):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.chunk(b"first\n")
        while not os.path.exists("release"):  # the test holds the rest back
            readable, _, _ = select.select([self.connection], [], [], 0.02)
            if readable and not self.connection.recv(1, socket.MSG_PEEK):
                open("disconnected", "w").close()
                self.close_connection = True
                return
        self.chunk(b"last\n")
        self.wfile.write(b"0\r\n\r\n")

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Echo).serve_forever()
"""

WS_APP = r"""
import base64, hashlib, socket, struct, sys, threading

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def send(conn, opcode, data):
    n = len(data)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    conn.sendall(head + data)


def serve(conn):
    with conn, conn.makefile("rb") as reader:
        if request := reader.readline().split():  # a bare probe sends nothing
            talk(conn, reader, request[1].decode())


def talk(conn, reader, path):
    headers = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    if "sec-websocket-key" not in headers:  # a plain HTTP probe
        return
    key = headers["sec-websocket-key"].encode()
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    send(conn, 1, ("hello " + path).encode())
    closing = False
    while len(head := reader.read(2)) == 2:
        opcode, size = head[0] & 0x0F, head[1] & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", reader.read(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", reader.read(8))
        mask = reader.read(4)
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(reader.read(size)))
        if opcode == 8:
            if not closing:
                send(conn, 8, data)
            break
        if data == b"close please":
            send(conn, 8, struct.pack("!H", 4001) + b"bye")
            closing = True
        else:
            send(conn, opcode, data)


server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    threading.Thread(target=serve, args=(server.accept()[0],), daemon=True).start()
"""


@dataclass
class Preview:
    sid: str
    notebook: str
    workspace: Path
    prefix: str  # as the browser sees it, e.g. /a%40b/agentspace/preview/<sid>


async def wait_listening(runtime: Any, port: int) -> None:
    """Poll (bounded) until something accepts on ``port`` in the sandbox."""
    for _ in range(300):
        try:
            reader, writer = await runtime.sandbox.connect(port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        await asyncio.wait_for(reader.read(), 10)  # the app answers and closes first
        writer.close()
        return
    raise AssertionError(f"nothing listens on {port} in the sandbox")


@pytest.fixture
def preview(
    jp_asyncio_loop: asyncio.AbstractEventLoop,
    jp_serverapp: Any,
    api: Callable[..., Any],
    jp_base_url: str,
) -> Preview:
    """A session whose sandbox runs the three apps (pytest-jupyter has no async fixtures)."""
    return jp_asyncio_loop.run_until_complete(start_apps(jp_serverapp, api, jp_base_url))


async def start_apps(jp_serverapp: Any, api: Callable[..., Any], jp_base_url: str) -> Preview:
    status, info = await api("POST", "sessions", body={"notebook": "p.ipynb"})
    assert status == 200, info
    state = jp_serverapp.web_app.settings["agentspace"]
    engine = await state.engine()
    session = await engine.get(info["id"])
    runtime = await engine.workspaces.get(session)
    folder = session.folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hello.txt").write_text("hello from the sandbox\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "inner.txt").write_text("inner\n")
    (folder / "echo.py").write_text(ECHO_APP)
    (folder / "ws.py").write_text(WS_APP)
    await runtime.processes.start(f"python3 -m http.server {WEB} --bind 127.0.0.1", name="web")
    await runtime.processes.start(f"python3 echo.py {ECHO}", name="echo")
    await runtime.processes.start(f"python3 ws.py {WS}", name="ws")
    for port in (WEB, ECHO, WS):
        await wait_listening(runtime, port)
    prefix = f"{jp_base_url}agentspace/preview/{session.id}"
    return Preview(session.id, session.notebook, folder, prefix)


def headers_of(echoed: dict[str, Any]) -> dict[str, str]:
    return {name.lower(): value for name, value in echoed["headers"]}


def confinement(response: Any) -> dict[str, list[str]]:
    """The directives of the preview's own CSP in ``response`` (the one with connect-src),
    after checking the headers that go with it."""
    assert response.headers.get_list("Cross-Origin-Opener-Policy") == ["same-origin"]
    assert response.headers.get_list("X-Frame-Options") == ["DENY"]
    policies = response.headers.get_list("Content-Security-Policy")
    assert any(p.startswith("frame-ancestors 'self'") for p in policies)  # Jupyter's, kept
    ours = [p for p in policies if "connect-src" in p]
    assert len(ours) == 1, policies
    return {d.split()[0]: d.split()[1:] for d in ours[0].split(";")}


def assert_confined(response: Any, prefix: str) -> None:
    """``response`` confines its page to ``prefix`` on the host the client asked for."""
    host = response.request.url.split("/")[2]
    csp = confinement(response)
    pages = [f"http://{host}{prefix}/", f"https://{host}{prefix}/"]
    assert csp["connect-src"] == [*pages, f"ws://{host}{prefix}/", f"wss://{host}{prefix}/"]
    for name in ("form-action", "frame-src", "child-src", "worker-src", "manifest-src", "base-uri"):
        assert csp[name] == pages, (name, csp)
    assert csp["object-src"] == csp["frame-ancestors"] == ["'none'"]


async def test_files_listing_and_redirects(jp_fetch: Any, preview: Preview) -> None:
    response = await jp_fetch("agentspace", "preview", preview.sid, str(WEB), "hello.txt")
    assert response.body == b"hello from the sandbox\n"
    assert response.headers["Content-Type"].startswith("text/plain")

    bare = await jp_fetch(
        "agentspace", "preview", preview.sid, str(WEB), params={"x": "1"},
        follow_redirects=False, raise_error=False,
    )  # fmt: skip
    assert bare.code == 302
    assert bare.headers["Location"] == f"{preview.prefix}/{WEB}/?x=1"  # the query is kept

    listing = await jp_fetch("agentspace", "preview", preview.sid, f"{WEB}/")
    assert b'href="hello.txt"' in listing.body and b'href="sub/"' in listing.body
    # a relative link of the listing, resolved against the listing's URL, reaches the file
    inner = await jp_fetch("agentspace", "preview", preview.sid, str(WEB), "sub", "inner.txt")
    assert inner.body == b"inner\n"

    # http.server redirects /sub to /sub/: the Location must stay under the prefix
    moved = await jp_fetch(
        "agentspace", "preview", preview.sid, str(WEB), "sub", follow_redirects=False,
        raise_error=False,
    )  # fmt: skip
    assert moved.code == 301
    assert moved.headers["Location"] == f"{preview.prefix}/{WEB}/sub/"

    head = await jp_fetch(
        "agentspace", "preview", preview.sid, str(WEB), "hello.txt", method="HEAD"
    )
    assert head.code == 200 and head.body == b""
    assert head.headers["Content-Length"] == str(len(b"hello from the sandbox\n"))

    cached = await jp_fetch(
        "agentspace", "preview", preview.sid, str(WEB), "hello.txt", raise_error=False,
        headers={"If-Modified-Since": response.headers["Last-Modified"]},
    )  # fmt: skip
    assert cached.code == 304 and cached.body == b""


async def test_the_session_info_lists_the_previews_opened(
    api: Callable[..., Any], jp_serverapp: Any, jp_base_url: str, preview: Preview
) -> None:
    _, info = await api("GET", f"sessions/{preview.sid}")
    assert info["previews"] == []  # its workspace is here, no preview opened yet
    _, other = await api("POST", "sessions", body={"notebook": "none.ipynb"})
    assert other["previews"] is None  # no workspace here: only its events would tell
    engine = await jp_serverapp.web_app.settings["agentspace"].engine()
    session = await engine.get(preview.sid)
    url = await session.preview(WEB)  # what open_preview does
    assert url == f"{jp_base_url}agentspace/preview/{preview.sid}/{WEB}/"
    await session.preview(ECHO, announce=False)  # a URL handed to one caller, not opened
    _, info = await api("GET", f"sessions/{preview.sid}")
    assert info["previews"] == [{"port": WEB, "url": url}]
    events = [e async for e in session.past_events() if e.seq <= info["last_seq"]]
    opened = [json.loads(e.data)["value"] for e in events if "agentspace.preview" in e.data]
    assert opened == info["previews"]  # what a view folding the events would have
    _, listing = await api("GET", "sessions")
    (listed,) = [s for s in listing["sessions"] if s["id"] == preview.sid]
    assert listed["previews"] == info["previews"]


async def test_methods_bodies_and_headers(
    jp_fetch: Any, jp_serverapp: Any, preview: Preview
) -> None:
    cookies = '_xsrf=2|abc; username-localhost-8888="secret"; app=keep'
    for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS", "GET"):
        body = f"payload of {method}" if method in ("POST", "PUT", "PATCH") else None
        response = await jp_fetch(
            "agentspace", "preview", preview.sid, str(ECHO), "api", "x",
            method=method, body=body, params={"a": "1", "b": "two words"},
            headers={"Cookie": cookies, "X-Custom": "yes", "Connection": "keep-alive, X-Custom"},
            allow_nonstandard_methods=True,
        )  # fmt: skip
        echoed = json.loads(response.body)
        assert echoed["method"] == method
        assert echoed["path"] == "/api/x?a=1&b=two+words"
        assert echoed["body"] == (body or "")
        headers = headers_of(echoed)
        assert "authorization" not in headers
        assert "x-custom" not in headers  # named in Connection: hop-by-hop
        assert headers["cookie"] == "app=keep"
        assert headers["host"] == f"127.0.0.1:{ECHO}"
        assert headers["connection"] == "close"
        assert headers["x-forwarded-prefix"] == f"{preview.prefix}/{ECHO}"
        assert headers["x-forwarded-proto"] == "http"
        assert headers["x-forwarded-host"].startswith(("localhost:", "127.0.0.1:"))

    # Jupyter's ?token= is a credential: not forwarded; the app's own parameters are
    token = jp_serverapp.identity_provider.token
    response = await jp_fetch(
        "agentspace", "preview", preview.sid, str(ECHO), "q",
        params={"token": token, "keep": "me"}, headers={"Authorization": ""},
    )  # fmt: skip
    assert json.loads(response.body)["path"] == "/q?keep=me"

    head = await jp_fetch("agentspace", "preview", preview.sid, str(ECHO), "h", method="HEAD")
    assert head.code == 200 and head.body == b""


async def test_the_token_does_not_stay_where_the_page_can_read_it(
    jp_fetch: Any, jp_serverapp: Any, preview: Preview
) -> None:
    """A link with ``?token=`` logs the browser in, then the address loses the token (the page
    could read ``location``); a Referer that carries it reaches the app without it."""
    token = jp_serverapp.identity_provider.token
    opened = await jp_fetch(
        "agentspace", "preview", preview.sid, str(ECHO), "page",
        params={"token": token, "keep": "me"},
        headers={"Authorization": "", "Sec-Fetch-Mode": "navigate"},
        follow_redirects=False, raise_error=False,
    )  # fmt: skip
    assert opened.code == 302
    assert opened.headers["Location"] == f"{preview.prefix}/{ECHO}/page?keep=me"
    assert any(c.startswith("username-") for c in opened.headers.get_list("Set-Cookie"))
    assert "/page" not in (preview.workspace / "requests.log").read_text()

    page = f"http://localhost{preview.prefix}/{ECHO}/page?token={token}&keep=me"
    response = await jp_fetch(
        "agentspace", "preview", preview.sid, str(ECHO), "style.css",
        headers={"Referer": page, "Sec-Fetch-Mode": "no-cors"},
    )  # fmt: skip
    referer = headers_of(json.loads(response.body))["referer"]
    assert referer == f"http://localhost{preview.prefix}/{ECHO}/page?keep=me"


async def test_location_and_cookies_from_the_app(jp_fetch: Any, preview: Preview) -> None:
    fetch = {"follow_redirects": False, "raise_error": False}
    response = await jp_fetch("agentspace", "preview", preview.sid, str(ECHO), "redirect", **fetch)
    assert response.code == 302
    assert response.headers["Location"] == f"{preview.prefix}/{ECHO}/target?x=1"
    set_cookies = response.headers.get_list("Set-Cookie")
    assert any(c.startswith("app=1") for c in set_cookies)
    assert not any(c.startswith("_xsrf=evil") for c in set_cookies)
    response = await jp_fetch("agentspace", "preview", preview.sid, str(ECHO), "absolute", **fetch)
    assert response.headers["Location"] == f"{preview.prefix}/{ECHO}/abs"


async def test_every_answer_confines_the_page(jp_fetch: Any, preview: Preview) -> None:
    """The app's pages, its errors, HEAD, its redirects and the proxy's own answers all carry the
    confinement (a 101 carries no page, so it has none)."""
    fetch = {"follow_redirects": False, "raise_error": False}
    web = f"{preview.prefix}/{WEB}"
    for parts, method, code in [
        (("hello.txt",), "GET", 200),
        (("hello.txt",), "HEAD", 200),
        (("missing.txt",), "GET", 404),  # http.server's own error page
        (("sub",), "GET", 301),
        ((), "GET", 302),  # the proxy's redirect of the bare prefix
    ]:
        response = await jp_fetch("agentspace", "preview", preview.sid, str(WEB), *parts,
                                  method=method, **fetch)  # fmt: skip
        assert response.code == code, (parts, method)
        assert_confined(response, web)
    response = await jp_fetch("agentspace", "preview", preview.sid, "8799", "x", **fetch)
    assert response.code == 502  # nothing listens: the proxy's JSON error
    assert_confined(response, f"{preview.prefix}/8799")


async def test_the_app_cannot_loosen_the_confinement(jp_fetch: Any, preview: Preview) -> None:
    """The app's CSP is enforced beside ours; its COOP, X-Frame-Options, Service-Worker-Allowed
    and Clear-Site-Data are dropped; what does not loosen anything (COEP) passes."""
    response = await jp_fetch("agentspace", "preview", preview.sid, str(ECHO), "lax")
    assert response.body == b"lax"
    assert_confined(response, f"{preview.prefix}/{ECHO}")
    assert "img-src 'self'" in response.headers.get_list("Content-Security-Policy")
    assert "Service-Worker-Allowed" not in response.headers
    assert "Clear-Site-Data" not in response.headers
    assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp"


async def test_redirects_to_this_server_stay_under_the_prefix(
    jp_fetch: Any, preview: Preview
) -> None:
    """CSP ignores the path after a redirect: a Location to this server outside the prefix
    would let a fetch the CSP allowed land on Jupyter's API. It is mapped under the prefix."""
    probe = await jp_fetch("agentspace", "preview", preview.sid, str(ECHO), "x")
    host = probe.request.url.split("/")[2]
    here = f"{preview.prefix}/{ECHO}"
    cases = {
        f"http://{host}/api/kernels": f"{here}/api/kernels",
        f"https://{host.upper()}/api/kernels": f"{here}/api/kernels",
        f"//{host}/api/kernels": f"{here}/api/kernels",
        f"/\\{host}/api/kernels": f"{here}/api/kernels",
        "../../../../../api/kernels": f"{here}/api/kernels",
        f"http://{host}{here}/inside?q=1": f"{here}/inside?q=1",  # already under it: kept
        "https://example.com/callback?code=1": "https://example.com/callback?code=1",
    }
    for value, expected in cases.items():
        response = await jp_fetch(
            "agentspace", "preview", preview.sid, str(ECHO), "to", params={"url": value},
            follow_redirects=False, raise_error=False,
        )  # fmt: skip
        assert response.code == 302, value
        assert response.headers["Location"] == expected, value


async def test_response_is_streamed(jp_fetch: Any, preview: Preview) -> None:
    chunks: list[bytes] = []
    first = asyncio.Event()

    def received(data: bytes) -> None:
        chunks.append(data)
        first.set()

    fetching = asyncio.ensure_future(
        jp_fetch("agentspace", "preview", preview.sid, str(ECHO), "stream",
                 streaming_callback=received)
    )  # fmt: skip
    await asyncio.wait_for(first.wait(), 15)
    # the app is still blocked on the release flag, yet its first chunk is here
    assert b"".join(chunks) == b"first\n"
    (preview.workspace / "release").touch()
    response = await asyncio.wait_for(fetching, 15)
    assert response.code == 200
    assert b"".join(chunks) == b"first\nlast\n"


async def test_client_disconnect_closes_the_upstream(
    jp_http_port: int, jp_auth_header: dict[str, str], preview: Preview
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", jp_http_port)
    writer.write(
        f"GET {preview.prefix}/{ECHO}/stream HTTP/1.1\r\nHost: 127.0.0.1:{jp_http_port}\r\n"
        f"Authorization: {jp_auth_header['Authorization']}\r\n\r\n".encode()
    )
    received = b""
    while b"first" not in received:
        data = await asyncio.wait_for(reader.read(4096), 15)
        assert data, received
        received += data
    writer.close()
    marker = preview.workspace / "disconnected"
    for _ in range(200):  # bounded: the app notices its connection closing
        if marker.exists():
            break
        await asyncio.sleep(0.05)
    assert marker.exists()


async def test_errors_are_json(jp_fetch: Any, preview: Preview) -> None:
    async def fetch(*parts: str, **kw: Any) -> tuple[int, dict[str, Any]]:
        response = await jp_fetch("agentspace", "preview", *parts, raise_error=False, **kw)
        assert response.headers["Content-Type"].startswith("application/json"), response.body
        return response.code, json.loads(response.body)

    code, body = await fetch(preview.sid, "8799/")
    assert code == 502
    assert body == {
        "error": "bad_gateway",
        "message": f"Nothing answers on port 8799 in the sandbox of {preview.notebook}: start "
        "the server (bound to 127.0.0.1 or 0.0.0.0) first.",
    }
    code, body = await fetch(preview.sid, str(ECHO), "garbage")
    assert code == 502 and body["error"] == "bad_gateway"
    with pytest.raises((HTTPClientError, StreamClosedError)):  # a cut answer is not complete
        await jp_fetch("agentspace", "preview", preview.sid, str(ECHO), "cut")
    code, body = await fetch("no-such-session", f"{WEB}/")
    assert code == 404 and body["error"] == "not_found"
    for port in ("0", "70000"):
        code, body = await fetch(preview.sid, f"{port}/")
        assert code == 400 and body["error"] == "bad_port"

    # without credentials: 403 for every method, and the app never sees the request
    for method in ("GET", "POST", "OPTIONS"):
        code, body = await fetch(
            preview.sid, str(ECHO), "secret", method=method, headers={"Authorization": ""},
            body=b"x" if method == "POST" else None, follow_redirects=False,
        )  # fmt: skip
        assert code == 403, (method, body)
    log = preview.workspace / "requests.log"
    assert "/secret" not in (log.read_text() if log.exists() else "")


async def login_cookie(jp_fetch: Any, preview: Preview) -> str:
    """Jupyter's login cookie, as a browser gets it from a token-authenticated request."""
    first = await jp_fetch("agentspace", "preview", preview.sid, str(ECHO), "login")
    cookies = first.headers.get_list("Set-Cookie")
    return next(c.split(";")[0] for c in cookies if c.startswith("username-"))


async def test_cookie_authenticated_requests(jp_fetch: Any, preview: Preview) -> None:
    """A browser with Jupyter's login cookie: GET and same-origin POST work, cross-site
    requests are refused, and the app never sees the login cookie."""
    login = await login_cookie(jp_fetch, preview)
    browser = {"Authorization": "", "Cookie": f"{login}; app=keep"}
    response = await jp_fetch("agentspace", "preview", preview.sid, str(ECHO), "page",
                              headers=dict(browser))  # fmt: skip
    assert headers_of(json.loads(response.body))["cookie"] == "app=keep"
    host = response.request.url.split("/")[2]
    same = {**browser, "Origin": f"http://{host}"}
    response = await jp_fetch(
        "agentspace", "preview", preview.sid, str(ECHO), "form", method="POST", body="a=1",
        headers=same,
    )  # fmt: skip
    echoed = json.loads(response.body)
    assert echoed["body"] == "a=1"
    assert headers_of(echoed)["origin"] == f"http://127.0.0.1:{ECHO}"  # as the app sees itself
    with pytest.raises(HTTPClientError) as refused:
        await jp_fetch(
            "agentspace", "preview", preview.sid, str(ECHO), "forged", method="POST", body="a=1",
            headers={**browser, "Origin": "http://evil.example"},
        )  # fmt: skip
    assert refused.value.code in (403, 404)
    assert "/forged" not in (preview.workspace / "requests.log").read_text()


async def test_xsrf_when_required(jp_fetch: Any, jp_serverapp: Any, preview: Preview) -> None:
    """With ``preview_requires_xsrf``, a cookie-authenticated POST needs Jupyter's XSRF token
    (which the app then does not see); a token-authenticated one still does not."""
    jp_serverapp.web_app.settings["agentspace"].app.preview_requires_xsrf = True
    login = await login_cookie(jp_fetch, preview)
    post = {"method": "POST", "body": "a=1", "raise_error": False}
    response = await jp_fetch(
        "agentspace", "preview", preview.sid, str(ECHO), "no-xsrf",
        headers={"Authorization": "", "Cookie": login}, **post,
    )  # fmt: skip
    assert response.code == 403
    response = await jp_fetch(
        "agentspace", "preview", preview.sid, str(ECHO), "with-xsrf",
        headers={"Authorization": "", "Cookie": f"{login}; _xsrf=abcd1234",
                 "X-XSRFToken": "abcd1234"}, **post,
    )  # fmt: skip
    assert response.code == 200
    headers = headers_of(json.loads(response.body))
    assert "x-xsrftoken" not in headers and "cookie" not in headers
    response = await jp_fetch("agentspace", "preview", preview.sid, str(ECHO), "token", **post)
    assert response.code == 200
    assert "/no-xsrf" not in (preview.workspace / "requests.log").read_text()


async def test_websocket(jp_ws_fetch: Any, preview: Preview) -> None:
    ws = await jp_ws_fetch("agentspace", "preview", preview.sid, str(WS), "chat")
    assert await ws.read_message() == "hello /chat"
    await ws.write_message("héllo")
    assert await ws.read_message() == "héllo"
    for size in (10, 1000, 200_000):  # 7-, 16- and 64-bit frame lengths
        blob = os.urandom(size)
        await ws.write_message(blob, binary=True)
        assert await ws.read_message() == blob
    await ws.write_message("close please")
    assert await asyncio.wait_for(ws.read_message(), 10) is None
    assert (ws.close_code, ws.close_reason) == (4001, "bye")

    bare = await jp_ws_fetch("agentspace", "preview", preview.sid, str(WS))
    assert await bare.read_message() == "hello /"
    bare.close(1000)

    with pytest.raises(HTTPClientError) as refused:
        await jp_ws_fetch(
            "agentspace", "preview", preview.sid, str(WS), headers={"Authorization": ""}
        )
    assert refused.value.code == 403


async def test_throughput(jp_fetch: Any, preview: Preview) -> None:
    data = os.urandom(10 << 20)
    (preview.workspace / "big.bin").write_bytes(data)
    timings = []
    for _ in range(3):  # the best of three: the client shares the server's event loop and core
        began = time.perf_counter()
        response = await jp_fetch("agentspace", "preview", preview.sid, str(WEB), "big.bin")
        timings.append(time.perf_counter() - began)
        assert response.body == data
    best = min(timings)
    print(f"\npreview proxy: 10 MiB in {best * 1000:.0f} ms = {10 / best:.0f} MiB/s")
