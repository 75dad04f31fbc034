"""Confine a preview's pages to their own prefix on Jupyter's origin.

Why: a preview's app was written by an AI agent, perhaps a prompt-injected one, and its pages run
on Jupyter's origin, where their script could drive Jupyter's API with the user's cookies (start a
kernel: code on the host, outside the sandbox). Stripping credentials from requests (preview.py)
does not stop that; these response headers do, in the browser:

- a CSP (`policy`) whose ``connect-src``, ``form-action``, ``frame-src``, ``child-src``,
  ``worker-src``, ``manifest-src`` and ``base-uri`` list only the prefix, as host-sources with the
  request's host (for http, https, ws and wss: in CSP3 an ``http:`` source does not match ws: URLs;
  a path ending in ``/`` matches everything under it), ``object-src 'none'`` and
  ``frame-ancestors 'none'``;
- ``Cross-Origin-Opener-Policy: same-origin``: a preview and Jupyter's pages never share a browsing
  context group, so neither holds a scriptable handle on the other (``window.open``, ``opener``);
- ``X-Frame-Options: DENY`` for browsers without ``frame-ancestors``.

``frame-ancestors 'none'``, not ``'self'``: a preview framed by a Jupyter page would be same-origin
with it and could script ``window.parent`` (COOP does not reach into frames). agentspace opens
previews in a new tab, never in a frame.

CSP ignores a URL's path after a redirect, so a redirect from the app to Jupyter's own paths would
pass it: `location` keeps every redirect to this origin under the prefix.

Loads (scripts, styles, images, media, fonts) may come from the prefix, from any ``https:`` URL
(CDNs), inline, or from ``data:``/``blob:`` URLs. Over http (a local Jupyter, the usual case) that
keeps Jupyter's other paths out, so a page cannot read the user's files by loading them (an image
under ``/files/`` drawn on a canvas, a ``.js`` file run and its source read: observed in Chromium
before). Over https the ``https:`` source includes Jupyter's own origin and those reads stay
possible; only a separate origin for previews would close that.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit, urlunsplit

# The app may not weaken or undo the confinement (or reach beyond its prefix) with these:
# Service-Worker-Allowed lets a worker under the prefix claim scope "/" (every Jupyter page),
# Clear-Site-Data would log the user out of Jupyter.
DROPPED = frozenset(
    "cross-origin-opener-policy x-frame-options service-worker-allowed clear-site-data".split()
)
MARKER = "/agentspace/preview/"
# What a CSP host-source can hold: a DNS name or IPv4 address, or a bracketed IPv6 one, a port.
CSP_HOST = re.compile(r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
LOOPBACK = ("127.0.0.1", "localhost", "0.0.0.0")
DEFAULT_PORT = {"http": 80, "https": 443}
# WHATWG URL parsing drops these anywhere in a URL (and C0 controls and spaces at either end).
INVISIBLE = str.maketrans("", "", "\t\n\r")


@dataclass(frozen=True)
class Scope:
    """Where one preview lives, as the browser sees it."""

    host: str  # the request's Host: ``name[:port]`` (Jupyter's Origin check trusts it too)
    scheme: str  # http or https (``request.protocol``: X-Forwarded-Proto with trust_xheaders)
    prefix: str  # ``{base_url}agentspace/preview/{session_id}/{port}``, raw, no final slash
    port: int = 0  # the app's port in the sandbox (0: unknown yet)


def prefix_of(path: str, base_url: str) -> str:
    """The preview prefix cut from a raw request path ("" if there is none): raw, because the
    route's arguments are percent-decoded, which would turn ``%2F`` into a ``/``."""
    at = path.find(MARKER, max(len(base_url) - 1, 0))
    if at < 0:
        return ""
    start = at + len(MARKER)
    parts = path[start:].split("/", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        return ""
    return path[: start + len(parts[0]) + 1 + len(parts[1])]


def headers(scope: Scope) -> dict[str, str]:
    """The headers every answer of the preview carries (beside Jupyter's own CSP)."""
    return {
        "Content-Security-Policy": policy(scope),
        "Cross-Origin-Opener-Policy": "same-origin",
        "X-Frame-Options": "DENY",
    }


def policy(scope: Scope) -> str:
    """The CSP that keeps the page's requests, forms, frames and workers under its prefix.

    An unusable Host (none a browser sends) or prefix gets ``'none'`` everywhere: fail closed.
    """
    ok = CSP_HOST.match(scope.host) is not None and scope.prefix.startswith("/")
    path = quote(scope.prefix, safe="/%:@-._~") + "/"  # no ";" "," or spaces in a source

    def sources(*schemes: str) -> str:
        return " ".join(f"{s}://{scope.host}{path}" for s in schemes) if ok else "'none'"

    pages = sources("http", "https")

    def loads(*extra: str) -> str:
        return " ".join([pages, "https:", *extra, "data:", "blob:"]) if ok else "'none'"

    directives = [
        ("connect-src", sources("http", "https", "ws", "wss")),
        *((name, pages) for name in ("form-action", "frame-src", "child-src", "worker-src")),
        ("manifest-src", pages),
        ("base-uri", pages),
        ("object-src", "'none'"),
        ("frame-ancestors", "'none'"),
        # Loads: the prefix, any https: URL (CDNs), inline code, data: and blob: URLs; not
        # Jupyter's other paths when Jupyter is served over http (see the module docstring).
        ("script-src", loads("'unsafe-inline' 'unsafe-eval'")),
        ("style-src", loads("'unsafe-inline'")),
        *((name, loads()) for name in ("img-src", "media-src", "font-src")),
    ]
    return "; ".join(f"{name} {value}" for name, value in directives)


def location(value: str, scope: Scope, request_path: str) -> str:
    """A redirect from the app, as the browser may follow it: never out of the prefix on this
    origin.

    The app sees itself at the root of ``127.0.0.1:PORT``, so ``/x``, ``http://127.0.0.1:PORT/x``
    and, likewise, a URL of this server outside the prefix (``http://{host}/api/kernels``, a
    relative ``../../api``) are mapped under the prefix rather than refused: an app that knows its
    public host (X-Forwarded-Host) but not the prefix means its own page, and a mapped URL cannot
    reach Jupyter's API. URLs under the prefix stay as they are (an app honouring
    X-Forwarded-Prefix). Other origins pass in the form that was checked, other schemes as they
    are (a fetch does not follow them). The value is read
    as a browser reads it (backslashes are slashes, tabs and newlines vanish, ``%2e`` is a dot,
    hosts are decoded), so that no spelling slips past; a host that cannot be read counts as ours.
    """
    clean = value.translate(INVISIBLE).strip("".join(map(chr, range(33))))
    cut = min((i for i in (clean.find("?"), clean.find("#")) if i >= 0), default=len(clean))
    head, tail = clean[:cut].replace("\\", "/"), clean[cut:]
    if head.startswith("//"):
        head = f"{scope.scheme}:{head}"
    scheme = SCHEME.match(head)
    if scheme is None:
        return under(scope.prefix, joined(request_path, head)) + tail
    url = urlsplit(head)
    if url.scheme not in DEFAULT_PORT:
        return value  # mailto:, data:, ...: no request to this origin with the user's cookies
    rest = head[scheme.end() :]
    if not rest.startswith("//"):  # "http:/x" or "http:x": relative to the page, in a browser
        return under(scope.prefix, joined(request_path, rest)) + tail
    target = url.path or "/"
    if is_app(url.netloc, scope) or is_ours(url.scheme, url.netloc, scope):
        return under(scope.prefix, target) + tail
    return urlunsplit((url.scheme, url.netloc, target, "", "")) + tail


def joined(page: str, reference: str) -> str:
    """A path reference resolved against the page's path (dot segments are left to `under`)."""
    if reference.startswith("/"):
        return reference
    return page.rsplit("/", 1)[0] + "/" + reference if reference else page


def under(prefix: str, path: str) -> str:
    """``path`` without dot segments, under ``prefix`` (kept if it already is)."""
    path = without_dots(path)
    return path if path == prefix or path.startswith(prefix + "/") else prefix + path


def without_dots(path: str) -> str:
    """RFC 3986 dot-segment removal, with ``%2e`` read as ``.`` as browsers do."""
    kept: list[str] = []
    segments = path.split("/")[1:] if path.startswith("/") else path.split("/")
    for i, segment in enumerate(segments):
        dots = segment.lower().replace("%2e", ".")
        if dots in (".", ".."):
            if dots == ".." and kept:
                kept.pop()
            if i == len(segments) - 1:
                kept.append("")  # "a/.." is the folder "a/../", as a browser resolves it
        else:
            kept.append(segment)
    return "/" + "/".join(kept)


def is_app(netloc: str, scope: Scope) -> bool:
    """Whether an absolute URL names the app itself (its loopback address and port)."""
    try:
        url = urlsplit(f"//{netloc}")
        return url.hostname in LOOPBACK and url.port == scope.port
    except ValueError:
        return False


def is_ours(scheme: str, netloc: str, scope: Scope) -> bool:
    """Whether a URL's host and port are this server's as the browser reaches it (as CSP would
    match them: an omitted or default port matches both 80 and 443). Unreadable: ours."""
    try:
        there, here = urlsplit(f"//{netloc}"), urlsplit(f"//{scope.host}")
        port = there.port or DEFAULT_PORT[scheme]
        mine = here.port or DEFAULT_PORT.get(scope.scheme, 80)
    except ValueError:
        return True
    name = canonical_host(there.hostname or "")
    if name is None:
        return True
    ports = {80, 443} if mine in (80, 443) else {mine}
    return name == canonical_host(here.hostname or "") and port in ports


def canonical_host(host: str) -> str | None:
    """A host as a browser serializes it: percent-decoded, IDNA, lowercase, no final dot, IP
    addresses in their usual form (``0x7f.1`` is ``127.0.0.1``); None if it cannot be read."""
    try:
        name = unquote(host, errors="strict")
        if not name.isascii():
            name = name.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    name = name.lower().rstrip(".")
    if ":" in name:  # IPv6 (the brackets are already gone)
        try:
            return str(ipaddress.IPv6Address(name))
        except ValueError:
            return None
    if re.fullmatch(r"[0-9a-fx.]+", name) and re.search(r"[0-9]", name):
        try:  # inet_aton reads the same shorthand forms as browsers do
            return socket.inet_ntoa(socket.inet_aton(name))
        except OSError:
            return name
    return name
