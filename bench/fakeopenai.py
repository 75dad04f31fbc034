"""A minimal OpenAI-compatible chat server (SSE) for benchmarks: no network, no keys.

``POST /v1/chat/completions`` streams ``chunks`` one-word content deltas, then a
finished chunk and a usage chunk, as the OpenAI API does with ``stream=True``.
The chunk count comes from the model name: ``fake-<n>`` (``openai/fake-20000``
through litellm); any other name streams 3 chunks. A name with ``tool`` in it
(``fake-tool``) first calls ``list_files``, and answers once the request holds
the tool's result. Run it in its own process
(``python bench/fakeopenai.py PORT``) so that what a benchmark measures in its
own process is the client's work only; ``serve_in_thread`` is for quick checks.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import threading

FRAME = 64  # chunks per socket write: a slow fake would make the client look fast


def _chunk(model: str, delta: dict[str, object], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def chunk_count(model: str) -> int:
    found = re.search(r"fake-(\d+)", model)
    return int(found.group(1)) if found else 3


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
        request = json.loads(await reader.readexactly(length))
        model = str(request.get("model", "fake"))
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
        )
        n = chunk_count(model)
        writer.write(_chunk(model, {"role": "assistant", "content": ""}))
        answered = any(m.get("role") == "tool" for m in request.get("messages", []))
        if "tool" in model and not answered:  # ``fake-tool``: call list_files, then answer
            call = {
                "index": 0,
                "id": "call_fake",
                "type": "function",
                "function": {"name": "list_files", "arguments": "{}"},
            }
            writer.write(_chunk(model, {"tool_calls": [call]}))
            writer.write(_chunk(model, {}, "tool_calls"))
            n = 0
        # distinct words: litellm ends a stream that repeats one chunk many times
        words = [_chunk(model, {"content": f"w{i} "}) for i in range(FRAME)]
        frame = b"".join(words)
        for start in range(0, n, FRAME):
            count = min(FRAME, n - start)
            writer.write(frame if count == FRAME else b"".join(words[:count]))
            await writer.drain()
        if n or "tool" not in model or answered:
            writer.write(_chunk(model, {}, "stop"))
        usage = {"prompt_tokens": 10, "completion_tokens": n, "total_tokens": 10 + n}
        body = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
            "choices": [],
            "usage": usage,
        }
        writer.write(b"data: " + json.dumps(body).encode() + b"\n\ndata: [DONE]\n\n")
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def serve(port: int = 0) -> asyncio.Server:
    return await asyncio.start_server(_handle, "127.0.0.1", port)


def serve_in_thread() -> int:
    """Start the fake on a free port in a daemon thread; its port."""
    ready: list[int] = []
    started = threading.Event()

    def run() -> None:
        async def main() -> None:
            server = await serve()
            ready.append(server.sockets[0].getsockname()[1])
            started.set()
            await server.serve_forever()

        asyncio.run(main())

    threading.Thread(target=run, daemon=True).start()
    started.wait()
    return ready[0]


async def _main(port: int) -> None:
    server = await serve(port)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
