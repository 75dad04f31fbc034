"""A preview's page in real Chromium: confined to its own prefix on Jupyter's origin.

An app that an agent started in its sandbox serves a page whose script tries what a
prompt-injected agent would: call Jupyter's API with the user's cookies and XSRF token
(fetch, a form, a WebSocket, a redirect from its own server), open or frame JupyterLab and
script into it, claim the whole origin with a service worker. The browser must refuse all of
that and still let the page use its own prefix (fetch, cookies, a WebSocket, a service worker).
A control on JupyterLab's page, in the same browser, shows the same requests do succeed there.
"""

from __future__ import annotations

import base64
import json
import struct
import time
import urllib.request
import zlib
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

from .lab import LabServer

APP = r"""
import base64, hashlib, json, struct, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class App(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        route = self.path.split("?")[0]
        if route == "/":
            page = open("index.html", "rb").read()
            return self.reply(200, page, "text/html", ("Set-Cookie", "app=yes; Path=/"))
        if route == "/whoami":
            seen = {"cookie": self.headers.get("Cookie", "")}
            return self.reply(200, json.dumps(seen).encode(), "application/json")
        if route == "/escape":  # the app knows the public host: it sends the page to Jupyter's API
            where = f"http://{self.headers['X-Forwarded-Host']}/api/contents"
            return self.reply(302, b"", "text/plain", ("Location", where))
        if route == "/dot.png":  # its own image
            return self.reply(200, base64.b64decode(DOT), "image/png")
        if route == "/sw.js":  # and offers its worker the whole origin
            return self.reply(200, b"", "text/javascript", ("Service-Worker-Allowed", "/"))
        if route == "/ws" and "Sec-WebSocket-Key" in self.headers:
            return self.echo_once()
        self.reply(404, b"not the app's", "text/plain")

    def reply(self, status, body, kind, *headers):
        self.send_response(status)
        for name, value in [("Content-Type", kind), ("Content-Length", str(len(body))), *headers]:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def echo_once(self):  # a WebSocket that echoes one short text frame
        key = self.headers["Sec-WebSocket-Key"].encode()
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        size = self.rfile.read(2)[1] & 0x7F
        mask = self.rfile.read(4)
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(size)))
        self.wfile.write(struct.pack("!BB", 0x81, len(data)) + data)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), App).serve_forever()
"""

# The page's script runs its probes when opened with #probe; window.probes is their outcome.
PAGE = r"""<!doctype html><title>preview</title><body><script>
window.hadOpener = window.opener !== null;
const violations = [];
document.addEventListener('securitypolicyviolation', (e) => violations.push(
  `${e.effectiveDirective} ${new URL(e.blockedURI || location.href, location.href).pathname}`));
const xsrf = (document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/) || [])[1] || '';
const api = (path, init = {}) => fetch(path, {credentials: 'include', ...init,
  headers: {'X-XSRFToken': xsrf, 'Content-Type': 'application/json'}});
const file = JSON.stringify({type: 'file', format: 'text', content: 'pwned'});

async function attempt(f) {
  try { return await f(); } catch (e) { return `blocked: ${e.name}`; }
}
const status = (path, init) => attempt(async () => (await api(path, init)).status);
const scope = (options) => attempt(async () =>
  new URL((await navigator.serviceWorker.register('sw.js', options)).scope).pathname);
function until(check, ms = 15000) {  // check()'s first truthy value, polled, with a deadline
  return new Promise((resolve) => {
    const end = Date.now() + ms;
    (function poll() {
      let value;
      try { value = check(); } catch (e) { value = `blocked: ${e.name}`; }
      if (value) return resolve(value);
      if (Date.now() > end) return resolve('timeout');
      setTimeout(poll, 20);
    })();
  });
}
function socket(url, message) {  // 'open' (or the echo of message), else 'error'
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onopen = () => message ? ws.send(message) : resolve('open');
    ws.onmessage = (e) => { resolve(`echo ${e.data}`); ws.close(); };
    ws.onerror = () => resolve('error');
  });
}
function imageRead(src) {  // 'read' if its pixels could be read, else why not
  return new Promise((resolve) => {
    const img = new Image();
    img.onload = () => {
      try {
        const canvas = Object.assign(document.createElement('canvas'), {width: 1, height: 1});
        const context = canvas.getContext('2d');
        context.drawImage(img, 0, 0);
        context.getImageData(0, 0, 1, 1);
        resolve('read');
      } catch (e) { resolve(`blocked: ${e.name}`); }
    };
    img.onerror = () => resolve('blocked');
    img.src = src;
  });
}
function scriptRan(src) {  // 'ran' if the script set window.secret
  return new Promise((resolve) => {
    const script = Object.assign(document.createElement('script'), {src});
    script.onload = () => resolve(window.secret ? 'ran' : 'loaded');
    script.onerror = () => resolve('blocked');
    document.body.append(script);
  });
}
function framed(src) {
  return new Promise((resolve) => {
    const frame = Object.assign(document.createElement('iframe'), {src});
    frame.onload = () => resolve(frame.contentDocument
      ? `scriptable: ${frame.contentDocument.location.pathname}` : 'no document');
    document.body.append(frame);
  });
}
function submitted(action) {
  return new Promise((resolve) => {
    const sink = Object.assign(document.createElement('iframe'), {name: 'sink'});
    document.body.append(sink);
    sink.onload = () => resolve('submitted');
    document.addEventListener('securitypolicyviolation',
      (e) => e.effectiveDirective === 'form-action' && resolve('blocked'));
    const form = Object.assign(document.createElement('form'),
      {method: 'POST', action, target: 'sink'});
    form.innerHTML = `<input name="_xsrf" value="${xsrf}">`;
    document.body.append(form);
    form.submit();
  });
}

async function probe() {
  const r = {xsrfCookieSeen: xsrf !== ''};
  r.apiGet = await status('/api/kernels');
  r.apiPost = await status('/api/kernels', {method: 'POST', body: '{}'});
  r.apiPut = await status('/api/contents/pwned.txt', {method: 'PUT', body: file});
  r.jsonImport = await attempt(async () =>
    typeof (await import('/api/contents', {with: {type: 'json'}})).default);
  r.own = await attempt(async () => {
    const res = await fetch('whoami');
    return {status: res.status, ...(await res.json())};
  });
  r.escape = await attempt(async () => {
    const res = await fetch('escape', {credentials: 'include'});
    return {status: res.status, path: new URL(res.url).pathname};
  });
  r.socket = await socket(new URL('ws', location.href).href.replace(/^http/, 'ws'), 'ping');
  r.apiSocket = await socket(`${location.origin.replace(/^http/, 'ws')}/api/events/subscribe`);
  const popup = window.open('/lab');
  r.popup = popup === null ? 'null' : await until(() => {
    if (popup.closed) return 'severed';  // JupyterLab went to a browsing context group of its own
    try {
      return popup.location.pathname === '/lab' && `scriptable: ${popup.document.title}`;
    } catch (e) {
      return false;  // cross-origin for a moment while Chromium swaps it out: not known yet
    }
  });
  r.frame = await framed('/lab');
  r.form = await submitted('/api/contents/form.txt');
  r.workerEverywhere = await scope({scope: '/'});
  r.workerHere = await scope();
  r.readImage = await imageRead('/files/secret.png');
  r.readScript = await scriptRan('/files/secret.js');
  r.ownImage = await imageRead('dot.png');
  await new Promise((resolve) => setTimeout(resolve));  // the last violation events
  r.violations = violations;
  return r;
}
window.probes = location.hash === '#probe' ? probe() : null;
</script>
"""

# The same requests from JupyterLab's own page (no preview headers): they must work there, or the
# probes above would prove nothing. It also frames the preview, as a notebook's IFrame would.
CONTROL = r"""async (preview) => {
  const xsrf = (document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/) || [])[1] || '';
  const put = await fetch('/api/contents/control.txt', {method: 'PUT', credentials: 'include',
    headers: {'X-XSRFToken': xsrf, 'Content-Type': 'application/json'},
    body: JSON.stringify({type: 'file', format: 'text', content: 'control'})});
  const frame = Object.assign(document.createElement('iframe'), {src: preview});
  const framed = await new Promise((resolve) => {
    frame.onload = () => resolve(frame.contentDocument ? 'scriptable' : 'no document');
    document.body.append(frame);
  });
  frame.remove();
  const image = await new Promise((resolve) => {
    const img = Object.assign(new Image(), {src: '/files/secret.png'});
    img.onload = () => resolve('loaded');
    img.onerror = () => resolve('failed');
  });
  return {put: put.status, framed, image};
}"""


def tiny_png() -> bytes:
    """A valid 1x1 PNG, made here (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    pixels = zlib.compress(b"\x00\xff\x00\x00")  # filter byte, one red pixel
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def put_file(server: LabServer, sid: str, path: str, text: str) -> None:
    request = urllib.request.Request(
        f"{server.url}/agentspace/api/sessions/{sid}/files/{path}", data=text.encode(),
        method="PUT", headers={"Authorization": f"token {server.token}"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def start_app(server: LabServer, tmp_path: Path) -> str:
    """A session whose agent (a scripted model, start_process allowed) starts the app; returns
    the preview's URL once the app answers through it."""
    script = tmp_path / "script.json"
    web = {"command": "python3 app.py 8000", "name": "web"}
    start = {"name": "start_process", "arguments": web}
    script.write_text(json.dumps({"turns": [
        {"text": "Starting the app.", "tool_calls": [start]},
        {"text": "It is up."},
    ]}))  # fmt: skip
    sessions = "/agentspace/api/sessions"
    code, info = server.api(
        "POST", sessions, {"notebook": "isolation.ipynb", "model": f"scripted//{script}"}
    )
    assert code == 200, server.tail()
    sid = info["id"]
    code, _ = server.api("PATCH", f"{sessions}/{sid}", {"policies": {"start_process": "allow"}})
    assert code == 200
    put_file(server, sid, "app.py", f"DOT = {base64.b64encode(tiny_png()).decode()!r}\n{APP}")
    put_file(server, sid, "index.html", PAGE)
    (server.root / "secret.png").write_bytes(tiny_png())  # the user's files on Jupyter's side
    (server.root / "secret.js").write_text("window.secret = 'the user\\'s data';\n")
    code, _ = server.api("POST", f"{sessions}/{sid}/messages", {"text": "start the app"})
    assert code == 202
    url = f"{server.url}/agentspace/preview/{sid}/8000/"
    request = urllib.request.Request(url, headers={"Authorization": f"token {server.token}"})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the app in the sandbox may still be starting
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                if b"window.probes" in response.read():
                    return url
        except OSError:  # a 502 until the app listens
            time.sleep(0.05)  # the poll interval, not a synchronisation
    raise AssertionError(f"the app did not answer through {url}:\n{server.tail()}")


def test_a_preview_cannot_reach_jupyter(page: Page, lab_server: LabServer, tmp_path: Path) -> None:
    preview = start_app(lab_server, tmp_path)
    prefix = preview.removeprefix(lab_server.url).rstrip("/")

    page.goto(f"{lab_server.url}/lab")  # JupyterLab's page; it also sets the _xsrf cookie
    control = page.evaluate(CONTROL, preview)
    assert control == {"put": 201, "framed": "no document", "image": "loaded"}, control
    # JupyterLab opens the preview: the two pages end up in browsing context groups of their own
    with page.context.expect_page() as opened:
        page.evaluate("(url) => { window.previewTab = window.open(url); }", preview)
    tab = opened.value
    tab.wait_for_load_state()
    assert tab.evaluate("window.hadOpener") is False
    page.wait_for_function("window.previewTab.closed")

    page.goto(f"{preview}#probe")
    result: dict[str, Any] = page.evaluate("window.probes")
    blocked = "blocked: TypeError"  # fetch's answer to a CSP refusal
    assert result["xsrfCookieSeen"] is True  # the attack has what it needs, the browser says no
    assert result["apiGet"] == result["apiPost"] == result["apiPut"] == blocked, result
    assert result["jsonImport"] == blocked, result
    assert result["apiSocket"] == "error", result
    assert result["popup"] == "severed", result
    assert result["frame"] == "no document", result
    assert result["form"] == "blocked", result
    assert result["workerEverywhere"] == "blocked: SecurityError", result
    # the redirect to Jupyter's API was kept under the prefix: the app answered, not Jupyter
    assert result["escape"] == {"status": 404, "path": f"{prefix}/api/contents"}, result
    # and the page's own prefix works: fetch with its cookie (not Jupyter's), WebSocket, worker
    assert result["own"]["status"] == 200, result
    assert result["own"]["cookie"] == "app=yes", result
    assert result["socket"] == "echo ping", result
    assert result["workerHere"] == f"{prefix}/", result
    # loads reach the prefix (and https:), not the user's files under Jupyter's /files/
    assert result["readImage"] == result["readScript"] == "blocked", result
    assert result["ownImage"] == "read", result
    for refused in [
        "connect-src /api/kernels",
        "connect-src /api/contents/pwned.txt",
        "connect-src /api/events/subscribe",
        "frame-src /lab",
        "form-action /api/contents/form.txt",
    ]:
        assert refused in result["violations"], (refused, result["violations"])
    assert (lab_server.root / "control.txt").exists()
    assert not (lab_server.root / "pwned.txt").exists()
    assert not (lab_server.root / "form.txt").exists()
