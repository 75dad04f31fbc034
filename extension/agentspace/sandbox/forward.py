"""The loopback preview forwarder: a browser on this machine reaches a port in a sandbox.

Embedded mode has no Jupyter server to proxy previews behind its login, so each
previewed port gets a listener of its own on ``127.0.0.1:<random port>`` (never
another interface) that forwards each connection to ``sandbox.connect(port)``.
A loopback port is open to every process and user on the machine, and to web
pages in the user's browser, so every connection's request head is checked
before a byte reaches the app:

- ``Host`` must be a loopback name (``127.0.0.1``, ``localhost``, ``[::1]``) with
  any port (a DNS-rebinding page sends its own name; a port forward such as
  ``ssh -L`` or VS Code Remote's may show the listener under another port), and
  an ``Origin``, if sent, must be ``http://`` + that Host (other local pages,
  e.g. another session's preview, are same-site: ``SameSite`` alone would let
  their forms and WebSockets through);
- the request carries the forwarder's random token, in the query
  (``?agentspace_token=...``, the link handed out) or in its cookie. A GET with
  the token in the query is answered 302 to the same URL without it, setting
  the cookie (HttpOnly, SameSite=Strict, named after the listening port since
  cookies ignore ports), so the token leaves the address bar. Anything else is
  403 and the app never sees it;
- the app never sees the token: it is cut from the query and the Referer, and
  every forwarder's cookie (and Jupyter's login cookies) from ``Cookie``; nor
  may it set those cookies;
- one request per connection (``Connection: close`` both ways), so a browser
  must open a new, checked, connection for its next request. A WebSocket (any
  ``Upgrade``) is spliced raw once its checked handshake is answered 101.

After the head the bytes are spliced untouched: bodies stream both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from tornado import httputil

from agentspace.sandbox.relay import pipe

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
TOKEN_PARAM = "agentspace_token"
COOKIE_PREFIX = "agentspace_preview_"
MAX_HEAD = 1 << 16  # bytes of request (or response) head
HEAD_TIMEOUT = 30.0  # seconds a client may take to send its request head
CONNECT_TIMEOUT = 10.0  # the first connect may start the sandbox and its relay
# Never shown to the app: every forwarder's cookie (cookies ignore ports), Jupyter's and
# JupyterHub's login cookies (a Jupyter on another loopback port shares this cookie jar).
HIDDEN_COOKIE = re.compile(rf"{COOKIE_PREFIX}\d+$|_xsrf$|username-|jupyterhub-")
TARGET = re.compile(r"/[\x21-\x7e]*")  # origin-form, printable ASCII: nothing to inject
HOP = frozenset("connection keep-alive proxy-connection te trailer upgrade cookie".split())
FORBIDDEN = (
    "This preview needs the link agentspace gave (it carries a token). Run %agent preview PORT "
    "in the notebook for a fresh one.\n"
)


# A loopback name, any port: a DNS-rebinding page sends its own name, and a port forward
# (ssh -L, VS Code Remote) may present the listener under another port number.
LOOPBACK_HOST = re.compile(r"(?:127\.0\.0\.1|localhost|\[::1\])(?::[0-9]{1,5})?")


class Answer(NamedTuple):
    """What the forwarder answers itself; the app never hears of the request."""

    status: int
    text: str
    headers: tuple[tuple[str, str], ...] = ()


class Forwarder:
    """One listener on ``127.0.0.1``: authenticated requests go to ``connect()``'s stream."""

    def __init__(self, connect: Callable[[], Awaitable[Streams]], port: int = 0) -> None:
        self.connect = connect
        self.token = secrets.token_urlsafe(32)
        self.port = port  # 0: any free one
        self._server: asyncio.Server | None = None
        self._live: set[asyncio.Task[Any]] = set()  # asyncio holds these only weakly

    @property
    def cookie(self) -> str:
        return f"{COOKIE_PREFIX}{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/?{TOKEN_PARAM}={self.token}"

    async def start(self) -> Forwarder:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, limit=MAX_HEAD
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        """Stop listening and cut every connection, spliced WebSockets included."""
        if self._server is not None:
            self._server.close()
        for task in list(self._live):
            task.cancel()
        await asyncio.gather(*self._live, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._live.add(task)
        try:
            await self._handle(reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            pass
        finally:
            self._live.discard(task)
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
        except asyncio.LimitOverrunError:
            return await _answer(writer, 431, "The request head is too long.\n")
        check = self.check(head)
        if isinstance(check, Answer):
            return await _answer(writer, *check)
        request, upgrade = check
        try:
            app = await asyncio.wait_for(self.connect(), CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as exc:
            return await _answer(writer, 502, f"Nothing answers on that port ({exc}).\n")
        try:
            app[1].write(request)
            up = asyncio.ensure_future(pipe(reader, app[1]))
            try:
                await _relay_answer(app[0], writer, upgrade)
            finally:
                up.cancel()
                await asyncio.gather(up, return_exceptions=True)
        finally:
            app[1].close()

    def check(self, head: bytes) -> tuple[bytes, bool] | Answer:
        """The request head to send the app and whether it upgrades, or the answer to give
        without reaching the app."""
        try:
            first, _, rest = head.decode("latin1").partition("\r\n")
            start = httputil.parse_request_start_line(first)
            headers = httputil.HTTPHeaders.parse(rest)
        except (ValueError, httputil.HTTPInputError):
            return Answer(400, "Not an HTTP/1 request.\n")
        if not TARGET.fullmatch(start.path):
            return Answer(400, "Only origin-form request targets are forwarded.\n")
        hosts = [h.lower() for h in headers.get_list("Host")]
        if len(hosts) != 1 or not LOOPBACK_HOST.fullmatch(hosts[0]):
            return Answer(403, "Wrong Host: open the preview at 127.0.0.1 or localhost.\n")
        origins = headers.get_list("Origin")
        if origins and {o.lower() for o in origins} != {f"http://{hosts[0]}"}:
            return Answer(403, "Requests from other origins are not forwarded.\n")
        path, _, query = start.path.partition("?")
        query, given = _cut_token(query)
        cookies, jar = _cut_cookies(headers.get_list("Cookie"))
        tokens = [*given, *([jar[self.cookie]] if self.cookie in jar else [])]
        if not any(hmac.compare_digest(t.encode(), self.token.encode()) for t in tokens):
            return Answer(403, FORBIDDEN)
        connection = {t.strip().lower() for t in headers.get("Connection", "").split(",")}
        upgrade = "upgrade" in connection and "Upgrade" in headers
        target = path + (f"?{query}" if query else "")
        if given and start.method in ("GET", "HEAD") and not upgrade:
            cookie = f"{self.cookie}={self.token}; Path=/; HttpOnly; SameSite=Strict"
            location = f"http://{hosts[0]}{target}"
            return Answer(302, "Redirecting.\n", (("Location", location), ("Set-Cookie", cookie)))
        lines = [f"{start.method} {target} {start.version}"]
        for name, value in headers.get_all():
            if name.lower() in HOP or name.lower() in connection:
                continue
            if name == "Referer":
                before, _, after = value.partition("?")
                after = _cut_token(after)[0]
                value = before + (f"?{after}" if after else "")
            lines.append(f"{name}: {value}")
        if cookies:
            lines.append(f"Cookie: {cookies}")
        if upgrade:
            lines += ["Connection: Upgrade", f"Upgrade: {headers['Upgrade']}"]
        else:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin1"), upgrade


def _cut_token(query: str) -> tuple[str, list[str]]:
    """The query without ``agentspace_token`` parameters (bytes otherwise kept), and their
    values."""
    kept, found = [], []
    for part in query.split("&") if query else []:
        name, _, value = part.partition("=")
        if name == TOKEN_PARAM:
            found.append(value)
        else:
            kept.append(part)
    return "&".join(kept), found


def _cut_cookies(values: list[str]) -> tuple[str, dict[str, str]]:
    """The ``Cookie`` value the app may see, and the hidden cookies by name."""
    kept, hidden = [], {}
    for value in values:
        for pair in value.split(";"):
            name, _, content = pair.strip().partition("=")
            if not name:
                continue
            if HIDDEN_COOKIE.match(name):
                hidden[name] = content
            else:
                kept.append(pair.strip())
    return "; ".join(kept), hidden


async def _relay_answer(
    app: asyncio.StreamReader, writer: asyncio.StreamWriter, upgrade: bool
) -> None:
    """The app's answer to the browser: interim (1xx) heads as they are, the final head with
    ``Connection: close`` (a 101 to an upgrade as it is), then the raw rest until the app ends."""
    while True:
        try:
            head = await app.readuntil(b"\r\n\r\n")
            first, _, rest = head.decode("latin1").partition("\r\n")
            start = httputil.parse_response_start_line(first)
            headers = httputil.HTTPHeaders.parse(rest)
        except (
            ValueError,
            httputil.HTTPInputError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            return await _answer(writer, 502, "The app did not answer in HTTP/1.\n")
        if start.code == 101 and upgrade:
            writer.write(head)
            break
        if 100 <= start.code < 200 and start.code != 101:
            writer.write(head)  # 100 Continue, 103 Early Hints: the final head follows
            continue
        lines = [first, *(f"{n}: {v}" for n, v in headers.get_all() if _kept(n, v))]
        writer.write(("\r\n".join([*lines, "Connection: close"]) + "\r\n\r\n").encode("latin1"))
        break
    await pipe(app, writer)


def _kept(name: str, value: str) -> bool:
    """A response header the browser may see: not hop-by-hop, and no ``Set-Cookie`` of a
    hidden cookie (the app may not replace a forwarder's cookie or toss Jupyter's)."""
    if name.lower() in ("connection", "keep-alive", "proxy-connection"):
        return False
    return name.lower() != "set-cookie" or not HIDDEN_COOKIE.match(value.split("=")[0].strip())


async def _answer(
    writer: asyncio.StreamWriter, status: int, text: str, headers: tuple[tuple[str, str], ...] = ()
) -> None:
    body = text.encode()
    lines = [
        f"HTTP/1.1 {status} {httputil.responses.get(status, 'Error')}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Cache-Control: no-store",
        "Connection: close",
        *(f"{k}: {v}" for k, v in headers),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin1") + body)
    with contextlib.suppress(ConnectionError):
        await writer.drain()
