"""Chat benchmark (issue 13): the agent's words streamed into a jupyterlab-chat chat.

Run: ``.venv/bin/python bench/chat.py [--quick]``. Every figure next to a baseline of the
same run.

1. server CPU per streamed token into a chat of 1,000 messages (in process, a real
   ``WsChatModel`` loaded from a 1,000-message ``.chat`` file, one connected client whose
   socket only counts bytes): a reply of N tokens, one every 5 ms (200 tokens/s, a fast
   model), through the bridge (``ChatProjection`` → ``ChatWriter``: ≤ 10 updates a second,
   saves coalesced to one a second, encoded without an indent, written off the loop), CPU
   time of the whole process (``time.process_time``, the save thread included) per token.
   Baseline: what a bot that follows jupyterlab-chat's API naively does, one
   ``update_message(append=True)`` per token (each rewriting the whole file with an indent,
   on the loop). Also the longest the loop was held by one update.
2. model delta → visible in the chat DOM: a real ``jupyter server`` (jupyterlab, jupyterlab-chat,
   agentspace), headless Chromium (Playwright) with the notebook's chat open
   (``/lab/tree/agent-chats/live.chat``); a scripted reply of numbered words (``w001``…), one
   every 20 ms; the page's MutationObserver stamps ``Date.now()`` when each word first shows
   in the chat; latency = that minus the word's TEXT_MESSAGE_CONTENT event timestamp (set by
   the server as the event is appended; same machine, same clock). Baseline: the same events'
   arrival at an SSE client of the session (``time.time()``).
3. server start with jupyterlab-chat enabled, with and without agentspace (bench/server.py's
   start cost with jupyterlab_chat on in both): nothing of the chat bridge loads at start.

Targets: delta → DOM p50 ≤ 150 ms, p99 ≤ 400 ms; start ≤ +0.3 s and ≤ +30 MB.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from pathlib import Path

from harness import API, Results, api, arguments, median, met, pct, ratio, run, scratch

report = Results("chat")
MESSAGES = 1_000


# -- 1. CPU per token ---------------------------------------------------------------------
class CountingSocket:
    """Stands in for a connected client's WebSocket handler: counts what it is sent."""

    def __init__(self) -> None:
        self.frames = 0
        self.bytes = 0

    def write_message(self, text: str) -> None:
        self.frames += 1
        self.bytes += len(text)


def big_chat(root: Path) -> Path:
    path = root / "big.chat"
    words = " ".join(["lorem"] * 70)
    messages = [
        {"id": f"m{i}", "body": f"{i}: {words}", "time": 1.7e9 + i, "sender": "u", "type": "msg"}
        for i in range(MESSAGES)
    ]
    path.write_text(json.dumps({"messages": messages, "users": {}, "metadata": {"id": "c"}}))
    return path


async def stream_tokens(tokens: int, bridge: bool, root: Path) -> dict[str, float]:
    from jupyterlab_chat.models import Message, NewMessage
    from jupyterlab_chat.websocket_model import WsChatModel

    from agentspace.server.chat.projection import ChatProjection
    from agentspace.server.chat.writer import ChatWriter

    model = WsChatModel(path="big.chat", root_dir=root)
    model.load_from_file()
    socket = CountingSocket()
    model.handlers["bench"] = socket  # type: ignore[assignment]
    held: list[float] = []
    writer = ChatWriter(model) if bridge else None
    projection = ChatProjection("s")
    message_id = ""
    if writer is None:
        message_id = model.add_message(NewMessage(body="", sender="bot"))
    else:
        start = {"type": "TEXT_MESSAGE_START", "messageId": "a", "role": "assistant"}
        writer.apply(projection.apply(1, start))
    frames0 = socket.frames
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(tokens):
        t = time.perf_counter()
        if writer is not None:
            event = {"type": "TEXT_MESSAGE_CONTENT", "messageId": "a", "delta": f" w{i}"}
            writer.apply(projection.apply(i + 2, event))
        else:
            model.update_message(
                Message(body=f" w{i}", id=message_id, time=time.time(), sender="bot"), append=True
            )
        held.append(time.perf_counter() - t)
        await asyncio.sleep(0.005)
    streamed = socket.frames - frames0  # updates sent while the tokens came
    stream_wall = time.perf_counter() - wall0
    if writer is not None:
        writer.apply(projection.apply(tokens + 2, {"type": "TEXT_MESSAGE_END", "messageId": "a"}))
        await writer.close()
    cpu = time.process_time() - cpu0
    saved = json.loads((root / "big.chat").read_text())
    body = next(m["body"] for m in saved["messages"] if m["sender"] in ("bot", "agentspace-agent"))
    assert body.strip().endswith(f"w{tokens - 1}"), "the saved chat lacks the end of the reply"
    return {
        "cpu_per_token_ms": cpu / tokens * 1000,
        "frames": socket.frames,
        "updates_per_s": streamed / stream_wall,
        "held_max_ms": max(held) * 1000,
        "held_p50_ms": median(held) * 1000,
    }


async def cpu_per_token(tmp: Path, tokens: int, repeats: int) -> None:
    print(f"1. CPU per streamed token into a chat of {MESSAGES} messages", flush=True)
    ours: list[dict[str, float]] = []
    naive: list[dict[str, float]] = []
    for r in range(repeats):
        for bridge in (True, False) if r % 2 == 0 else (False, True):
            root = tmp / f"cpu{r}{bridge}"
            root.mkdir()
            big_chat(root)
            (ours if bridge else naive).append(await stream_tokens(tokens, bridge, root))
    cpu_ours = median(x["cpu_per_token_ms"] for x in ours)
    cpu_naive = median(x["cpu_per_token_ms"] for x in naive)
    report(
        f"1. server CPU per streamed token, chat of {MESSAGES} messages (200 tokens/s)",
        f"{cpu_ours:.3f} ms",
        f"one update per token {cpu_naive:.2f} ms",
        "reported",
        ratio=ratio(cpu_ours, cpu_naive),
    )
    report(
        "1. chat updates sent per second while streaming",
        f"{median(x['updates_per_s'] for x in ours):.1f}",
        f"one update per token {median(x['updates_per_s'] for x in naive):.0f}",
        "<= ~10",
        met(median(x["updates_per_s"] for x in ours) <= 11),
    )
    report(
        "1. the loop held by one token, max",
        f"{median(x['held_max_ms'] for x in ours):.2f} ms",
        f"one update per token {median(x['held_max_ms'] for x in naive):.1f} ms",
        "reported",
    )


# -- 2. delta -> chat DOM -------------------------------------------------------------------
# Stamps, per word number, when the chat's DOM first showed it.
OBSERVE = """(reply) => {
  const seen = window.__seen = {};  // this reply's: an earlier observer keeps its own
  const word = new RegExp(`r${reply}w(\\\\d{3})`, 'g');
  const note = () => {
    const messages = document.querySelectorAll('.jp-chat-rendered-message');
    const last = messages[messages.length - 1];
    if (!last) return;
    const now = Date.now();
    for (const m of last.textContent.matchAll(word)) {
      if (!(m[1] in seen)) seen[m[1]] = now;
    }
  };
  new MutationObserver(note).observe(document.body,
    {childList: true, subtree: true, characterData: true});
}"""


SHOWN = """() => {
  const m = document.querySelectorAll('.jp-chat-rendered-message');
  return {messages: m.length, seen: Object.keys(window.__seen || {}).length,
          last: m.length ? m[m.length - 1].textContent.slice(-200) : null};
}"""


async def delta_to_dom(tmp: Path, words: int, repeats: int) -> None:
    from playwright.async_api import async_playwright

    from harness import assistant_deltas
    from notebook_live import CHROMIUM, CHROMIUM_ARGS, LabServer, write_script

    print(f"2. model delta -> visible in the chat DOM ({repeats} replies of {words} words)")
    server = LabServer(tmp, "lab", {"agentspace": True, "jupyterlab_chat": True})
    dom: list[float] = []
    sse: list[float] = []
    try:
        server.start()
        async with api(server) as conn, async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            try:
                page = await (await browser.new_context()).new_page()
                page.set_default_timeout(60_000)
                await page.goto(f"{server.url}api/status?token={server.token}")
                turns = [
                    {"text": " ".join(f"r{r}w{i:03d}" for i in range(words)), "delay_ms": 20}
                    for r in range(repeats + 1)
                ]
                model = write_script(tmp, "live", turns)
                status, made = await conn.request(
                    "POST", f"{API}/sessions", {"notebook": "live.ipynb", "model": model}
                )
                sid = made["id"]
                status, chat = await conn.request(
                    "POST", f"{API}/chats", {"notebook": "live.ipynb"}
                )
                assert status == 200, chat
                await page.goto(f"{server.url}lab/tree/{chat['path']}")
                await page.wait_for_selector(
                    ".jp-chat-input-container, .jp-chat-input", timeout=60_000
                )
                for r in range(repeats + 1):
                    await page.evaluate(OBSERVE, r)
                    after = (await conn.request("GET", f"{API}/sessions/{sid}"))[1]["last_seq"]
                    stream = await conn.subscribe(sid, after)
                    await asyncio.wait_for(stream.ready, 30)
                    await conn.send(sid, f"go {r}")
                    await asyncio.wait_for(stream.done, 120)
                    stream.close()
                    arrived: dict[int, float] = {}
                    stamps: dict[int, float] = {}
                    for at, _, event in assistant_deltas(stream.events()):
                        for m in re.finditer(rf"r{r}w(\d{{3}})", event["delta"]):
                            arrived[int(m[1])] = at
                            stamps[int(m[1])] = event["timestamp"] / 1000
                    try:
                        await page.wait_for_function(
                            f"() => Object.keys(window.__seen).length >= {words}", timeout=60_000
                        )
                    except Exception:
                        await page.screenshot(path=str(tmp.parent / "bench-chat-stuck.png"))
                        shown = await page.evaluate(SHOWN)
                        raise RuntimeError(f"the chat never showed every word: {shown}") from None
                    seen = {
                        int(k): v / 1000 for k, v in (await page.evaluate("window.__seen")).items()
                    }
                    if r == 0:
                        continue  # warm-up: the first reply pays for the page's first renders
                    dom += [seen[i] - stamps[i] for i in stamps if i in seen]
                    sse += [arrived[i] - stamps[i] for i in stamps if i in arrived]
                await page.screenshot(path=str(Path("test-artifacts") / "bench-chat.png"))
            finally:
                with contextlib.suppress(Exception):
                    await browser.close()
    finally:
        server.stop()
    p50, p99 = pct(dom, 0.5) * 1000, pct(dom, 0.99) * 1000
    report(
        "2. model delta -> visible in the chat DOM, p50",
        f"{p50:.0f} ms",
        f"SSE arrival p50 {pct(sse, 0.5) * 1000:.1f} ms",
        "<= 150 ms",
        met(p50 <= 150),
    )
    report(
        "2. model delta -> visible in the chat DOM, p99",
        f"{p99:.0f} ms",
        f"SSE arrival p99 {pct(sse, 0.99) * 1000:.1f} ms",
        "<= 400 ms",
        met(p99 <= 400),
    )
    report.note(f"delta -> DOM: {len(dom)} words; max {max(dom) * 1000:.0f} ms")


# -- 3. start ---------------------------------------------------------------------------------
def start_with_chat(tmp: Path, repeats: int) -> None:
    import server as server_bench

    server_bench.start_cost(
        tmp,
        repeats,
        {"jupyterlab_chat": True},
        results=report,
        label="3. start (jupyterlab-chat on)",
    )


async def body(quick: bool) -> None:
    with scratch() as tmp:
        await cpu_per_token(tmp, 200 if quick else 600, 3 if quick else 5)
        await delta_to_dom(tmp, 150 if quick else 300, 2 if quick else 4)
        start_with_chat(tmp, 3 if quick else 5)


if __name__ == "__main__":
    parsed = arguments(__doc__).parse_args()
    run(report, parsed, lambda: body(parsed.quick))
