"""Remote mode: the server extension's REST API and SSE stream, over one httpx client.

The token comes from the server's runtime file (``discovery``) and is sent as
``Authorization: token ...``, exactly like any other Jupyter API client; the
kernel never sees a provider API key. The event stream reconnects with
``Last-Event-ID`` after a dropped connection (a server restart), so a cell
that follows a run loses nothing and sees nothing twice.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx

from agentspace_kernel.client.discovery import Location, ServerInfo

from ..errors import ClientError
from .base import AgentClient, Event

RECONNECT_FOR = 30.0  # seconds of failed reconnects before the stream gives up


class RemoteClient(AgentClient):
    mode = "remote"

    def __init__(self, location: Location, server: ServerInfo) -> None:
        super().__init__(location)
        self.server = server
        base = server.url if server.url.endswith("/") else server.url + "/"
        self.base_url = base
        transport = httpx.AsyncHTTPTransport(uds=server.sock) if server.sock else None
        # the server shows prompts sent with this header as the notebook kernel's (the chat)
        headers = {"X-Agentspace-Client": "kernel"}
        if server.token:
            headers["Authorization"] = f"token {server.token}"
        self.http = httpx.AsyncClient(
            base_url=base + "agentspace/api/",
            headers=headers,
            timeout=httpx.Timeout(30.0, read=None),
            transport=transport,
        )

    # -- plumbing -------------------------------------------------------------
    async def _call(self, method: str, url: str, body: Any = None, **params: Any) -> Any:
        try:
            response = await self.http.request(
                method, url, json=body, params={k: v for k, v in params.items() if v is not None}
            )
        except httpx.HTTPError as exc:
            raise ClientError(
                f"Cannot reach the Jupyter server at {self.server.url}: {exc}. Is it still"
                " running? Restart the kernel after restarting the server.",
                code="unreachable",
            ) from exc
        if response.status_code >= 400:
            raise _error(response)
        if response.status_code == 204 or not response.content:
            return {}
        return response.json()

    def _session(self, suffix: str = "") -> str:
        if not self.session_id:
            raise ClientError("No session yet: run an %%agent cell first.", code="no_session")
        return f"sessions/{self.session_id}{suffix}"

    # -- the session ----------------------------------------------------------
    async def open(self, model: str | None = None) -> dict[str, Any]:
        info: dict[str, Any] = await self._call(
            "POST", "sessions", {"notebook": self.notebook, "model": model or None}
        )
        self.session_id = info["id"]
        return info

    async def info(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", self._session())
        return result

    async def send(self, text: str, context: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"text": text}
        if context is not None:
            body["context"] = context
        result: dict[str, Any] = await self._call("POST", self._session("/messages"), body)
        return result

    async def events(self, after: int = 0) -> AsyncIterator[tuple[int, Event]]:
        last, failing_since = after, 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                async for seq, event in self._stream(last):
                    last, failing_since = seq, 0.0
                    yield seq, event
            except (httpx.HTTPError, ConnectionError) as exc:
                failing_since = failing_since or loop.time()
                if loop.time() - failing_since > RECONNECT_FOR:
                    raise ClientError(
                        f"Lost the event stream from {self.server.url} ({exc}) and could not"
                        f" reconnect for {RECONNECT_FOR:.0f} s. `%agent status` shows where"
                        " the session is; `%agent resume` continues it.",
                        code="unreachable",
                    ) from exc
                await asyncio.sleep(0.5)

    async def _stream(self, after: int) -> AsyncIterator[tuple[int, Event]]:
        headers = {"Accept": "text/event-stream", "Last-Event-ID": str(after)}
        async with self.http.stream("GET", self._session("/events"), headers=headers) as response:
            if response.status_code >= 400:
                await response.aread()
                raise _error(response)
            seq, data = 0, list[str]()
            async for line in response.aiter_lines():
                if not line:
                    if data:
                        yield seq, json.loads("\n".join(data))
                    seq, data = 0, list[str]()
                elif line.startswith("id:"):
                    seq = int(line[3:].strip())
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
        raise httpx.RemoteProtocolError("the event stream ended")

    async def stop(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", self._session("/stop"))
        return result

    async def resume(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", self._session("/resume"))
        return result

    async def decide(self, tool_call_id: str, decision: dict[str, Any]) -> dict[str, Any]:
        path = self._session(f"/approvals/{quote(tool_call_id, safe='')}")
        result: dict[str, Any] = await self._call("POST", path, decision)
        return result

    async def history(self, limit: int) -> list[dict[str, Any]]:
        result = await self._call("GET", self._session("/messages"), limit=limit)
        return list(result.get("messages", []))

    async def configure(
        self, *, model: str | None = None, policies: dict[str, str] | None = None
    ) -> dict[str, Any]:
        body = {k: v for k, v in {"model": model, "policies": policies}.items() if v is not None}
        result: dict[str, Any] = await self._call("PATCH", self._session(), body)
        return result

    async def set_kernel_tools(
        self, tools: list[dict[str, Any]], run_cell: bool, list_variables: bool = False
    ) -> None:
        body: dict[str, Any] = {"tools": tools, "run_cell": run_cell}
        if list_variables:
            body["list_variables"] = True
        try:
            await self._call("PUT", self._session("/tools"), body)
        except ClientError as exc:
            if not list_variables or "list_variables" not in str(exc):
                raise
            # a server older than this kernel: it offers run_cell and our tools, not that one
            body.pop("list_variables")
            await self._call("PUT", self._session("/tools"), body)

    async def reset(self) -> dict[str, Any]:
        if not self.session_id:
            return await self.open()
        old = await self.info()
        await self._call("DELETE", self._session(), purge="true")
        self.session_id = ""
        await self.open(old.get("model"))
        if old.get("policies"):
            return await self.configure(policies=old["policies"])
        return await self.info()

    # -- the workspace --------------------------------------------------------
    async def files(self, path: str = ".") -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", self._session("/files"), path=path)
        return result

    async def processes(self) -> list[dict[str, Any]]:
        result = await self._call("GET", self._session("/processes"))
        return list(result.get("processes", []))

    async def output(self, name: str, tail: int = 100) -> str:
        path = self._session(f"/processes/{quote(name, safe='')}/output")
        result = await self._call("GET", path, tail=tail)
        return str(result.get("output", ""))

    async def preview_url(self, port: int) -> str:
        from urllib.parse import urlsplit

        prefix = urlsplit(self.base_url).path  # the browser is on the same origin
        return f"{prefix}agentspace/preview/{self.session_id}/{port}/"

    async def close(self) -> None:
        await self.http.aclose()


def _error(response: httpx.Response) -> ClientError:
    try:
        body = response.json()
        code, message = str(body.get("error", "error")), str(body.get("message", ""))
        extra = {k: v for k, v in body.items() if k not in ("error", "message")}
    except ValueError:
        code, message, extra = "http_error", response.text[:300], {}
    if response.status_code == 404 and code != "not_found" and not message:
        message = "The server has no agentspace extension: is jupyter-agentspace installed there?"
    return ClientError(
        message or f"HTTP {response.status_code}", code, response.status_code, **extra
    )
