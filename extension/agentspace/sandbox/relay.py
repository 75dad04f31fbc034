"""The preview relay: reach 127.0.0.1:PORT inside a sandbox that has no network.

A sandbox's network namespace has only loopback, so a web server started in
it is unreachable from the host by design. The relay is a tiny process that
lives in that namespace (entered with nsenter) but keeps the host's
filesystem, so it can listen on a unix socket in a private host folder (mode
0700, not mounted in the sandbox). Each connection starts with one line,
``PORT\\n``; the relay answers ``OK\\n`` (or ``ERR why\\n``) and then copies
bytes both ways. It exits when its stdin closes, i.e. when the server that
started it dies, so it is never orphaned.

Run as ``python -m agentspace.sandbox.relay SOCKET``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys

CHUNK = 1 << 16


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close the other side."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def splice(
    a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    """Copy both ways until both directions end, then close both."""
    try:
        await asyncio.gather(pipe(a[0], b[1]), pipe(b[0], a[1]))
    finally:
        for writer in (a[1], b[1]):
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


_LIVE: set[asyncio.Task[None]] = set()  # asyncio holds connection tasks only weakly


async def _serve(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
    task = asyncio.current_task()
    if task is not None:
        _LIVE.add(task)
        task.add_done_callback(_LIVE.discard)
    try:
        line = await asyncio.wait_for(client_reader.readline(), 10)
        port = int(line.strip())
        if not 0 < port < 65536:
            raise ValueError(port)
    except (ValueError, asyncio.TimeoutError):
        client_writer.write(b"ERR bad request: send 'PORT\\n'\n")
        client_writer.close()
        return
    try:
        upstream = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        client_writer.write(f"ERR {exc.strerror or exc}\n".encode())
        client_writer.close()
        return
    client_writer.write(b"OK\n")
    await splice((client_reader, client_writer), upstream)


async def _main(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    server = await asyncio.start_unix_server(_serve, path)
    os.chmod(path, 0o600)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    stdin_closed = loop.create_future()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def watch() -> None:
        while await reader.read(1024):
            pass
        stdin_closed.set_result(None)

    watcher = asyncio.create_task(watch())
    async with server:
        await stdin_closed
    watcher.cancel()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


async def open_via_relay(
    socket_path: str, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Client side: a stream to ``port`` in the sandbox; ConnectionError if nothing listens."""
    reader, writer = await asyncio.open_unix_connection(socket_path, limit=1 << 20)
    writer.write(f"{port}\n".encode())
    answer = await reader.readline()
    if answer != b"OK\n":
        writer.close()
        why = answer.decode(errors="replace").removeprefix("ERR ").strip() or "relay closed"
        raise ConnectionRefusedError(f"nothing answers on port {port} in the sandbox ({why})")
    return reader, writer


if __name__ == "__main__":
    # An interrupt of the kernel's process group (nbclient, Ctrl-C) reaches the relay
    # too: it ends with the server that started it, never with a traceback.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(sys.argv[1]))
