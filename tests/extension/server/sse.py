"""A minimal SSE client for tests: HTTP/1.0 over asyncio streams (no chunked encoding)."""

from __future__ import annotations

import asyncio
import json
from typing import Any


async def read_sse(
    port: int,
    path: str,
    headers: dict[str, str],
    *,
    method: str = "GET",
    body: bytes = b"",
    until: str | None = "RUN_FINISHED",
    limit: int = 10_000,
    timeout: float = 30,
) -> tuple[int, list[tuple[int | None, dict[str, Any]]]]:
    """Status and ``(id, event)`` pairs until an event of type ``until`` (or the stream ends)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [
        f"{method} {path} HTTP/1.0",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    if body:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    await writer.drain()
    events: list[tuple[int | None, dict[str, Any]]] = []

    async def consume() -> int:
        status = int((await reader.readline()).split()[1])
        while (await reader.readline()).strip():
            pass
        if status != 200:
            return status
        current_id: int | None = None
        while line := await reader.readline():
            text = line.decode().rstrip("\r\n")
            if text.startswith("id: "):
                current_id = int(text[4:])
            elif text.startswith("data: "):
                event = json.loads(text[6:])
                events.append((current_id, event))
                if event.get("type") == until or len(events) >= limit:
                    break
        return status

    try:
        return await asyncio.wait_for(consume(), timeout), events
    finally:
        writer.close()
