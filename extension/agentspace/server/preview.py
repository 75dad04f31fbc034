"""The preview proxy: a browser reaches a web server running inside a session's sandbox.

The sandbox has no network: the only way in is ``sandbox.connect(port)``, a byte
stream to 127.0.0.1:PORT inside it, so this handler speaks HTTP/1.1 to the app
itself (one connection per request, ``Connection: close``: no pool to manage) and
streams the answer back as it arrives. After the app's 101 to a WebSocket upgrade
both raw streams are spliced: frames, close codes and extensions pass untouched.

The app is served on Jupyter's origin, so Jupyter's credentials (Authorization,
``?token=``, the login and ``_xsrf`` cookies) are stripped before anything
reaches it, and it may not set those cookies. Requests are authenticated like
every API: without a token or cookie the answer is 403 and the app sees nothing.

Stripping credentials does not stop the app's own pages, which run in the user's
browser on Jupyter's origin, from calling Jupyter's API with the user's cookies.
Every answer therefore carries headers that confine the page to its prefix (a CSP,
COOP, X-Frame-Options) and the app's redirects stay under the prefix: see
isolation.py for what they block and what they do not.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import httputil, web
from tornado.http1connection import HTTP1Connection
from tornado.iostream import IOStream, StreamClosedError

from . import isolation
from .base import AgentspaceHandler, ApiError

CHUNK = 1 << 16
MAX_HEAD = 1 << 16  # bytes of response head accepted from the app
CONNECT_TIMEOUT = 10.0  # the first connect may start the sandbox and its relay
HOP = frozenset(
    "connection keep-alive proxy-authenticate proxy-authorization proxy-connection te trailer "
    "trailers transfer-encoding upgrade".split()
)
# Recomputed or set by the proxy, or Jupyter's credentials: never copied from the browser.
NOT_FORWARDED = frozenset(
    "host authorization content-length expect x-xsrftoken x-forwarded-prefix x-forwarded-proto "
    "x-forwarded-host x-forwarded-for".split()
)
# Cookies of Jupyter servers and JupyterHub (cookies ignore ports: other servers' count too).
JUPYTER_COOKIE = re.compile(r"_xsrf$|username-|jupyterhub-")
# Tornado keeps no reference to a handler's task, and asyncio's stream protocols hold their
# readers weakly: a request waiting on the app would be garbage that GC may destroy mid-flight.
LIVE: set[asyncio.Task[Any] | None] = set()
Reader = asyncio.StreamReader
Head = tuple[httputil.ResponseStartLine, httputil.HTTPHeaders]


class BadUpstream(Exception):
    """The app did not answer in HTTP/1.x that can be relayed (a 502, never a 500)."""


async def read_head(reader: Reader) -> Head:
    """The status line and headers; the status line is checked first so a non-HTTP server
    (one that waits for the client after a banner) fails at once instead of hanging."""
    try:
        line = await reader.readline()
        start = httputil.parse_response_start_line(line.decode("latin1").rstrip("\r\n"))
        if not 100 <= start.code <= 599:
            raise BadUpstream(f"status {start.code}")
        lines, size = [], len(line)
        while (line := await reader.readline()) not in (b"\r\n", b"\n"):
            size += len(line)
            if not line.endswith(b"\n") or size > MAX_HEAD:
                raise BadUpstream("the response head is cut short or too long")
            lines.append(line.decode("latin1"))
        return start, httputil.HTTPHeaders.parse("".join(lines))
    except (ValueError, httputil.HTTPInputError) as exc:  # ValueError: a line over the limit
        raise BadUpstream(str(exc) or type(exc).__name__) from exc


async def read_body(reader: Reader, headers: httputil.HTTPHeaders) -> AsyncIterator[bytes]:
    """The body's bytes as they arrive: chunked, by Content-Length, or until the app closes."""
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        while True:
            try:
                size = int((await reader.readline()).split(b";")[0].strip(), 16)
            except ValueError as exc:
                raise BadUpstream("a bad chunk size") from exc
            if size <= 0:
                break
            async for data in _exactly(reader, size):
                yield data
            if await reader.readline() not in (b"\r\n", b"\n"):
                raise BadUpstream("a chunk without its line end")
        while await reader.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailers: dropped
    elif "Content-Length" in headers:
        async for data in _exactly(reader, int(headers["Content-Length"])):
            yield data
    else:
        while data := await reader.read(CHUNK):
            yield data


async def _exactly(reader: Reader, size: int) -> AsyncIterator[bytes]:
    while size > 0:
        data = await reader.read(min(size, CHUNK))
        if not data:
            raise BadUpstream("the app closed the connection before the end of the body")
        size -= len(data)
        yield data


async def splice(client: IOStream, reader: Reader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes both ways until either side ends (a WebSocket's close ends both)."""

    async def down() -> None:
        while data := await reader.read(CHUNK):
            await client.write(data)

    async def up() -> None:
        while True:
            writer.write(await client.read_bytes(CHUNK, partial=True))
            await writer.drain()

    tasks = [asyncio.ensure_future(down()), asyncio.ensure_future(up())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class PreviewHandler(AgentspaceHandler):
    """``.../agentspace/preview/{session_id}/{port}/...`` → 127.0.0.1:PORT in the sandbox."""

    auth_resource = "agentspace:preview"
    _upstream: asyncio.StreamWriter | None = None
    _gone = False
    port = 0
    prefix = ""  # .../agentspace/preview/{session_id}/{port}, as the browser sees it

    @property
    def content_security_policy(self) -> str:
        """Jupyter's frame-ancestors only: the API's ``default-src 'none'`` breaks every page."""
        csp: str = super(APIHandler, self).content_security_policy
        return csp

    def set_default_headers(self) -> None:
        """Jupyter's headers, then the page's confinement to its prefix: set here (tornado calls
        this again on ``clear()``) so that every answer has it, the app's and our errors alike."""
        super().set_default_headers()
        for name, value in isolation.headers(self.scope).items():
            if name == "Content-Security-Policy":
                self.add_header(name, value)  # a second policy: both are enforced
            else:
                self.set_header(name, value)

    @property
    def scope(self) -> isolation.Scope:
        request = self.request
        prefix = isolation.prefix_of(request.path, self.base_url)
        return isolation.Scope(request.host, request.protocol, prefix, self.port)

    def check_xsrf_cookie(self) -> None:
        """The app's own forms cannot carry Jupyter's ``_xsrf``, so by default the check is
        skipped here (only here); cross-site requests are still refused by APIHandler's Origin
        check, and token-authenticated requests never needed it."""
        if self.state.app.preview_requires_xsrf:
            super().check_xsrf_cookie()

    def on_connection_close(self) -> None:
        """The browser went away: drop the app's connection too, even if it is mid-answer."""
        self._gone = True
        if self._upstream is not None:
            self._upstream.close()
        super().on_connection_close()

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """A 502 is the app's state (not started yet, not HTTP), not a server bug: one line."""
        if isinstance(value, ApiError) and value.status == 502:
            self.log.info("Preview: %s", value.message)
        else:
            super().log_exception(typ, value, tb)

    @web.authenticated
    @authorized
    async def get(self, session_id: str, port: str, path: str | None = None) -> None:
        task = asyncio.current_task()
        LIVE.add(task)
        try:
            await self.proxy(session_id, int(port), path)
        finally:
            LIVE.discard(task)

    head = post = put = patch = delete = get
    options = get  # type: ignore[assignment]  # APIHandler's skips auth for CORS preflights

    async def proxy(self, session_id: str, port: int, path: str | None) -> None:
        if not 0 < port < 65536:
            raise ApiError(400, "bad_port", f"Port {port} is out of range: use 1 to 65535.")
        session = await self.session(session_id)
        self.port, (self.prefix, target) = port, self.split_path()
        upgrade = self.request.headers.get("Upgrade", "").lower() == "websocket"
        if path is None and self.request.method in ("GET", "HEAD") and not upgrade:
            query = f"?{self.request.query}" if self.request.query else ""
            self.redirect(f"{self.prefix}/{query}")  # so that relative links resolve under it
            return
        if self.navigated_with_token():
            # The login cookie is set by now (Jupyter does it for a token-authenticated
            # request); without the token in its address the page cannot read it from
            # ``location`` nor send it out in a Referer.
            self.redirect(self.prefix + target)
            return
        try:
            reader, writer = await asyncio.wait_for(session.connect(port), CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as exc:
            raise ApiError(
                502,
                "bad_gateway",
                f"Nothing answers on port {port} in the sandbox of {session.notebook}: start the "
                "server (bound to 127.0.0.1 or 0.0.0.0) first.",
            ) from exc
        self._upstream = writer
        try:
            writer.write(self.request_head(target, upgrade))
            writer.write(self.request.body or b"")
            with contextlib.suppress(OSError):  # it may answer without reading the body
                await writer.drain()
            try:
                start, headers = await read_head(reader)
                while 100 <= start.code < 200 and start.code != 101:  # interim: 100, 103
                    start, headers = await read_head(reader)
                if start.code == 101 and not upgrade:
                    raise BadUpstream("it switched protocols unasked")
                if not headers.get("Content-Length", "0").isdigit():
                    raise BadUpstream(f"Content-Length {headers['Content-Length']!r}")
            except (BadUpstream, OSError) as exc:
                if self._gone:
                    return
                message = f"The server on port {port} did not answer in HTTP/1.x ({exc})."
                raise ApiError(502, "bad_gateway", message) from exc
            if start.code == 101:
                await self.tunnel((start, headers), reader, writer)
            else:
                await self.relay((start, headers), reader)
        finally:
            writer.close()

    async def relay(self, head: Head, reader: Reader) -> None:
        """Send the status and headers at once, then each piece of the body as it arrives."""
        start, headers = head
        self.set_status(start.code, start.reason or None)  # tornado vets the phrase
        self.clear_header("Content-Type")  # tornado's default; the app's own is copied below
        seen: set[str] = set()
        for name, value in self.response_headers(headers):
            key = name.lower()
            with contextlib.suppress(ValueError):  # a control character: tornado refuses it
                if key in seen or key in ("set-cookie", "content-security-policy"):
                    self.add_header(name, value)  # CSP: the app's applies on top of Jupyter's
                else:
                    self.set_header(name, value)
                seen.add(key)
        try:
            await self.flush()
            if self.request.method != "HEAD" and start.code not in (204, 304):
                async for data in read_body(reader, headers):
                    self.write(data)
                    await self.flush()
        except StreamClosedError:
            return  # the browser left; the caller closes the app's connection
        except (BadUpstream, OSError) as exc:
            if not self._gone:
                self.log.warning("Preview of port %s: the answer broke off: %s", self.port, exc)
                if isinstance(self.request.connection, HTTP1Connection):
                    self.request.connection.close()  # a cut answer must not look complete
            return
        if not self._gone:
            self.finish()

    async def tunnel(self, head: Head, reader: Reader, writer: asyncio.StreamWriter) -> None:
        """A WebSocket the app accepted: pass its 101 on, then the raw streams both ways."""
        lines = [f"HTTP/1.1 101 {head[0].reason or 'Switching Protocols'}"]
        lines += [f"{name}: {value}" for name, value in self.response_headers(head[1], True)]
        client = self.detach()
        try:
            await client.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin1"))
            await splice(client, reader, writer)
        except (StreamClosedError, OSError):
            pass
        finally:
            client.close()

    def split_path(self) -> tuple[str, str]:
        """(prefix as the browser sees it, the app's request target), cut from the raw path."""
        raw = self.request.path
        prefix = isolation.prefix_of(raw, self.base_url)
        query = self.without_token(self.request.query)
        target = (raw[len(prefix) :] or "/") + (f"?{query}" if query else "")
        return prefix, target

    def without_token(self, query: str) -> str:
        """A query string without Jupyter's ``token=`` (a credential: the app must not see it)."""
        return "&".join(p for p in query.split("&") if p and not self.is_token(p))

    def is_token(self, part: str) -> bool:
        token = self.token
        return bool(token) and part.startswith("token=") and unquote(part[6:]) == token

    def navigated_with_token(self) -> bool:
        """A browser opened a page with ``?token=`` in its address (a link that logs in)."""
        request = self.request
        return (
            request.method in ("GET", "HEAD")
            and request.headers.get("Sec-Fetch-Mode") == "navigate"
            and any(self.is_token(p) for p in request.query.split("&"))
        )

    def is_jupyter_cookie(self, name: str) -> bool:
        ours = self.identity_provider.get_cookie_name(self)
        return name == ours or JUPYTER_COOKIE.match(name) is not None

    def request_head(self, target: str, upgrade: bool) -> bytes:
        """The browser's request for the app: its own host, no Jupyter credentials, no hop-by-hop
        headers, and X-Forwarded-* so that the app can build URLs under the prefix."""
        request = self.request
        named = {t.strip().lower() for t in request.headers.get("Connection", "").split(",")}
        lines = [f"{request.method} {target} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        for name, value in request.headers.get_all():
            key = name.lower()
            if key in HOP or key in NOT_FORWARDED or key in named:
                continue
            if key == "cookie":
                value = "; ".join(
                    c.strip()
                    for c in value.split(";")
                    if c.strip() and not self.is_jupyter_cookie(c.split("=", 1)[0].strip())
                )
                if not value:
                    continue
            elif key == "origin" and urlsplit(value).netloc == request.host:
                value = f"http://127.0.0.1:{self.port}"  # same-origin, as the app sees itself
            elif key == "referer":
                url = urlsplit(value)
                value = url._replace(query=self.without_token(url.query)).geturl()
            lines.append(f"{name}: {value}")
        lines += [
            f"X-Forwarded-Prefix: {self.prefix}",
            f"X-Forwarded-Proto: {request.protocol}",
            f"X-Forwarded-Host: {request.host}",
            f"X-Forwarded-For: {request.remote_ip}",
        ]
        lines += ["Connection: Upgrade", "Upgrade: websocket"] if upgrade else ["Connection: close"]
        if request.body or request.method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(request.body or b'')}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin1")

    def response_headers(
        self, headers: httputil.HTTPHeaders, upgrade: bool = False
    ) -> Iterator[tuple[str, str]]:
        """The app's headers for the browser: no hop-by-hop ones (but the upgrade's own), no
        Jupyter cookies, none that would loosen the confinement, redirects kept under the
        prefix."""
        named = {t.strip().lower() for t in headers.get("Connection", "").split(",")}
        chunked = "Transfer-Encoding" in headers
        for name, value in headers.get_all():
            key = name.lower()
            if upgrade and key in ("connection", "upgrade"):
                yield name, value
            elif key in HOP or key in named or (key == "content-length" and (chunked or upgrade)):
                continue
            elif key in isolation.DROPPED:
                continue
            elif key == "set-cookie" and self.is_jupyter_cookie(value.split("=", 1)[0].strip()):
                continue
            else:
                yield name, self.location(value) if key == "location" else value

    def location(self, value: str) -> str:
        """``/x`` (or ``http://127.0.0.1:PORT/x``) from the app means ``{prefix}/x`` here, and
        no redirect leaves the prefix on this origin (`isolation.location` says why)."""
        return isolation.location(value, self.scope, self.request.path)
