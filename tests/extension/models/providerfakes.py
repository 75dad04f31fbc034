"""Local fakes of model providers' HTTP wire formats, for the tests.

(The benchmarks use ``bench/fakeopenai.py``: a raw socket server built for throughput,
thousands of chunks per reply in its own process, where these record and check each
request.)

Why real HTTP servers and not a litellm ``CustomLLM``: the faults that matter
(a 429 with ``Retry-After``, a stream that stalls or is cut in the middle of a
tool call, a history a provider refuses) live in litellm's and the SDKs' HTTP
clients and request builders, which a custom provider skips. Each fake is an
aiohttp server on 127.0.0.1 that speaks one wire format byte for byte as the
real server does (the chunk shapes below are copied from each server's
streaming output), plays a script of replies, one per request, and records
every request body so a test can check what really reached the provider.

Wire formats: ``openai`` (chat completions SSE), ``anthropic`` (messages SSE),
``ollama`` (``/api/chat`` NDJSON), ``vllm`` (OpenAI-compatible, its own chunk
and error shapes) and ``llamacpp`` (llama.cpp's server: OpenAI-compatible with
``content: null`` deltas, usage and ``timings`` on the finishing chunk).

Each request is checked the way that provider checks it (roles, tool-call ids,
tool-call arguments); a request the real provider would refuse gets that
provider's 400 and its problems are kept in ``Seen.problems``.

Use::

    async with FakeProvider("anthropic") as fake:
        fake.script(Reply(Text("Hello"), Call("write_file", '{"path": "a"}'), Done()))
        litellm.acompletion(model=fake.model, api_base=fake.api_base, api_key="k", ...)
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

Wire = Literal["openai", "anthropic", "ollama", "vllm", "llamacpp"]
WIRES: tuple[Wire, ...] = ("openai", "anthropic", "ollama", "vllm", "llamacpp")

# The litellm model string for each wire format. The OpenAI one is a model whose
# tokenizer litellm has loaded already: litellm counts tokens for cost on the loop, and
# gpt-4o's tokenizer takes seconds to load on a busy machine (a first-call stall of its own).
# llama.cpp's server ignores the model name, so it gets the same one. Every name is one
# litellm's model map knows (tests/extension/models/test_litellm_costs.py holds to that).
MODELS: dict[Wire, str] = {
    "openai": "openai/gpt-3.5-turbo",
    "anthropic": "anthropic/claude-haiku-4-5",
    "ollama": "ollama_chat/llama3.1",
    "vllm": "hosted_vllm/Qwen/Qwen2.5-7B-Instruct",
    "llamacpp": "openai/gpt-3.5-turbo",
}
CREATED = 1_733_000_000


# -- the script ----------------------------------------------------------------
@dataclass(frozen=True)
class Text:
    """Assistant text, streamed in ``pieces`` chunks (split by characters)."""

    text: str
    pieces: int = 3


@dataclass(frozen=True)
class Call:
    """A tool call; ``arguments`` is sent as is (malformed JSON on purpose is fine)."""

    name: str
    arguments: str
    id: str | None = None
    pieces: int = 5  # argument fragments (Ollama sends a call whole, as it does)
    cut_after: int | None = None  # drop the connection after this many fragments


@dataclass(frozen=True)
class Done:
    """The end of a turn: finish reason and usage, then the wire's terminator."""

    input_tokens: int = 11
    output_tokens: int = 7


@dataclass(frozen=True)
class Fail:
    """An HTTP error before any byte of a stream, in the provider's own error shape."""

    status: int
    message: str = ""
    retry_after: float | None = None


@dataclass(frozen=True)
class Stall:
    """Stop sending until the fake closes; ``headers``: after the status line was sent."""

    headers: bool = True


@dataclass(frozen=True)
class Cut:
    """Drop the connection here, halfway through the next chunk's bytes."""


Step = Text | Call | Done | Fail | Stall | Cut


@dataclass(frozen=True)
class Reply:
    """What the fake does for one request, step by step."""

    steps: tuple[Step, ...]

    def __init__(self, *steps: Step) -> None:
        object.__setattr__(self, "steps", steps)


@dataclass
class Seen:
    """One request as the fake received it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    problems: list[str] = field(default_factory=list)


# -- the server ----------------------------------------------------------------
class FakeProvider:
    """One wire format's server on 127.0.0.1; ``script(...)`` sets the replies to play.

    Replies are played in order, one per request; the last one repeats.
    ``stalled`` is set when a ``Stall`` step is reached.
    """

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.requests: list[Seen] = []
        self.stalled = asyncio.Event()
        self._replies: list[Reply] = [Reply(Text("ok"), Done())]
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def model(self) -> str:
        return MODELS[self.wire]

    @property
    def api_base(self) -> str:
        root = f"http://127.0.0.1:{self.port}"
        return root if self.wire in ("anthropic", "ollama") else root + "/v1"

    @property
    def params(self) -> dict[str, Any]:
        """litellm parameters that point a call at this fake."""
        return {"api_base": self.api_base, "api_key": "sk-fake-key"}

    def script(self, *replies: Reply) -> None:
        self._replies = list(replies)
        self.requests.clear()
        self.stalled.clear()

    async def start(self) -> FakeProvider:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/v1/messages", self._handle)
        app.router.add_post("/api/chat", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server: Any = site._server
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeProvider:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- one request ---------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._play(request)
        except ConnectionResetError:  # the client went away (a timeout, a close): fine
            return web.Response(status=499)

    async def _play(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        seen = Seen(request.path, dict(request.headers), body, check(self.wire, body))
        self.requests.append(seen)
        reply = self._replies[min(len(self.requests), len(self._replies)) - 1]
        if seen.problems:
            return self._error(400, "; ".join(seen.problems))
        steps = list(reply.steps)
        if steps and isinstance(steps[0], Fail):
            fail = steps[0]
            return self._error(fail.status, fail.message, fail.retry_after)
        if steps and isinstance(steps[0], Stall) and not steps[0].headers:
            await self._stall()
        response = web.StreamResponse(headers=self._stream_headers())
        await response.prepare(request)
        writer = _Writer(self.wire, body.get("model", "model"))
        chunks = list(writer.chunks(steps))
        for i, item in enumerate(chunks):
            if isinstance(item, Stall):
                await self._stall()
            elif isinstance(item, Cut):
                following = next((c for c in chunks[i + 1 :] if isinstance(c, bytes)), b"{")
                await response.write(following[: max(1, len(following) // 2)])
                assert request.transport is not None
                request.transport.abort()
                return response
            else:
                await response.write(item)
        await response.write_eof()
        return response

    async def _stall(self) -> None:
        self.stalled.set()
        await self._release.wait()

    def _stream_headers(self) -> dict[str, str]:
        if self.wire == "ollama":
            return {"Content-Type": "application/x-ndjson"}
        headers = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
        if self.wire == "anthropic":
            headers["request-id"] = "req_" + secrets.token_hex(12)
        return headers

    def _error(self, status: int, message: str, retry_after: float | None = None) -> web.Response:
        message = message or DEFAULT_MESSAGES.get((self.wire, status)) or f"error {status}"
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}"
        return web.Response(
            status=status,
            body=json.dumps(error_body(self.wire, status, message)).encode(),
            headers=headers,
            content_type="application/json",
        )


DEFAULT_MESSAGES: dict[tuple[str, int], str] = {
    ("openai", 401): "Incorrect API key provided: sk-fake***-key. You can find your API key at "
    "https://platform.openai.com/account/api-keys.",
    ("openai", 429): "Rate limit reached for gpt-3.5-turbo in organization org-fake on tokens per "
    "min (TPM): Limit 200000, Used 199800, Requested 512. Please try again in 93ms.",
    ("openai", 500): "The server had an error while processing your request. Sorry about that!",
    ("anthropic", 401): "invalid x-api-key",
    ("anthropic", 429): "Number of request tokens has exceeded your per-minute rate limit",
    ("anthropic", 500): "Internal server error",
    ("anthropic", 529): "Overloaded",
    ("ollama", 401): "unauthorized",
    ("ollama", 500): "llama runner process has terminated: exit status 2",
    ("vllm", 500): "Internal Server Error",
    ("vllm", 401): "Unauthorized",
    ("llamacpp", 401): "Invalid API Key",
    ("llamacpp", 503): "Loading model",
    ("llamacpp", 500): "Internal Server Error",
}


def error_body(wire: Wire, status: int, message: str) -> dict[str, Any]:
    """The provider's own error JSON for ``status``."""
    if wire == "anthropic":
        kinds = {
            400: "invalid_request_error",
            401: "authentication_error",
            403: "permission_error",
            404: "not_found_error",
            429: "rate_limit_error",
            529: "overloaded_error",
        }
        return {
            "type": "error",
            "error": {"type": kinds.get(status, "api_error"), "message": message},
        }
    if wire == "ollama":
        return {"error": message}
    if wire == "vllm":
        kind = {400: "BadRequestError", 404: "NotFoundError"}.get(status, "InternalServerError")
        return {"object": "error", "message": message, "type": kind, "param": None, "code": status}
    if wire == "llamacpp":
        types = {
            400: "invalid_request_error",
            401: "authentication_error",
            503: "unavailable_error",
        }
        return {
            "error": {"code": status, "message": message, "type": types.get(status, "server_error")}
        }
    kinds = {400: "invalid_request_error", 401: "invalid_request_error", 429: "requests"}
    codes = {401: "invalid_api_key", 429: "rate_limit_exceeded"}
    return {
        "error": {
            "message": message,
            "type": kinds.get(status, "server_error"),
            "param": None,
            "code": codes.get(status),
        }
    }


def _split(text: str, pieces: int) -> list[str]:
    if not text:
        return []
    size = max(1, -(-len(text) // max(1, pieces)))
    return [text[i : i + size] for i in range(0, len(text), size)]


# -- writing a stream, per wire format -------------------------------------------
class _Writer:
    """Turns script steps into the wire's bytes; ``Stall``/``Cut`` pass through as markers."""

    def __init__(self, wire: Wire, model: str) -> None:
        self.wire = wire
        self.model = model
        self.id = "chatcmpl-" + secrets.token_hex(12)
        self.calls = 0
        self.block = 0  # Anthropic content block index
        self.open_block = False
        self.saw_call = False

    def chunks(self, steps: list[Step]) -> Iterator[bytes | Stall | Cut]:
        yield from self._start()
        for step in steps:
            if isinstance(step, (Stall, Cut)):
                yield step
            elif isinstance(step, Text):
                yield from self._text(step)
            elif isinstance(step, Call):
                yield from self._call(step)
            elif isinstance(step, Done):
                yield from self._done(step)

    # SSE / NDJSON framing
    def _sse(self, data: dict[str, Any], event: str | None = None) -> bytes:
        head = f"event: {event}\n" if event else ""
        return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()

    def _openai_chunk(
        self, delta: dict[str, Any], finish: str | None = None, **extra: Any
    ) -> bytes:
        choice: dict[str, Any] = {"index": 0, "delta": delta}
        if self.wire == "llamacpp":
            body: dict[str, Any] = {
                "choices": [{"finish_reason": finish, **choice}],
                "created": CREATED,
                "id": self.id,
                "model": self.model,
                "system_fingerprint": "b4600-a4417ddd",
                "object": "chat.completion.chunk",
            }
        else:
            choice["logprobs"] = None
            choice["finish_reason"] = finish
            if self.wire == "vllm":
                choice["stop_reason"] = None
            body = {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": self.model,
                "choices": [choice],
            }
            if self.wire == "openai":
                body["system_fingerprint"] = "fp_0ba0d124f1"
                body["service_tier"] = "default"
        body.update(extra)
        return self._sse(body)

    def _ollama(self, message: dict[str, Any], **extra: Any) -> bytes:
        body = {
            "model": self.model,
            "created_at": "2026-12-02T10:00:00.000000Z",
            "message": {"role": "assistant", "content": "", **message},
            "done": False,
            **extra,
        }
        return (json.dumps(body, separators=(",", ":")) + "\n").encode()

    def _start(self) -> Iterator[bytes]:
        if self.wire == "anthropic":
            message: dict[str, Any] = {
                "id": "msg_" + secrets.token_hex(12),
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 1},
            }
            yield self._sse({"type": "message_start", "message": message}, "message_start")
            yield self._sse({"type": "ping"}, "ping")
        elif self.wire == "openai":
            yield self._openai_chunk({"role": "assistant", "content": "", "refusal": None})
        elif self.wire == "vllm":
            yield self._openai_chunk({"role": "assistant", "content": ""})
        elif self.wire == "llamacpp":
            yield self._openai_chunk({"role": "assistant", "content": None})

    def _close_block(self) -> Iterator[bytes]:
        if self.open_block:
            stop = {"type": "content_block_stop", "index": self.block}
            yield self._sse(stop, "content_block_stop")
            self.block += 1
            self.open_block = False

    def _text(self, step: Text) -> Iterator[bytes]:
        if self.wire == "anthropic":
            yield from self._close_block()
            start = {
                "type": "content_block_start",
                "index": self.block,
                "content_block": {"type": "text", "text": ""},
            }
            yield self._sse(start, "content_block_start")
            self.open_block = True
            for piece in _split(step.text, step.pieces):
                delta = {"type": "text_delta", "text": piece}
                data = {"type": "content_block_delta", "index": self.block, "delta": delta}
                yield self._sse(data, "content_block_delta")
            return
        for piece in _split(step.text, step.pieces):
            if self.wire == "ollama":
                yield self._ollama({"content": piece})
            else:
                yield self._openai_chunk({"content": piece})

    def _call(self, step: Call) -> Iterator[bytes | Cut]:
        index = self.calls
        self.calls += 1
        self.saw_call = True
        pieces = _split(step.arguments, step.pieces)
        if self.wire == "anthropic":
            yield from self._close_block()
            call_id = step.id or "toolu_01" + secrets.token_hex(11)
            block = {"type": "tool_use", "id": call_id, "name": step.name, "input": {}}
            data = {"type": "content_block_start", "index": self.block, "content_block": block}
            yield self._sse(data, "content_block_start")
            self.open_block = True
            for n, piece in enumerate(pieces):
                if n == step.cut_after:
                    yield Cut()
                delta = {"type": "input_json_delta", "partial_json": piece}
                data = {"type": "content_block_delta", "index": self.block, "delta": delta}
                yield self._sse(data, "content_block_delta")
            return
        if self.wire == "ollama":
            # Ollama sends a call whole, its arguments an object; raw text (a proxy's or
            # an older server's) is sent as a string, which litellm also reads.
            try:
                arguments: Any = json.loads(step.arguments)
            except json.JSONDecodeError:
                arguments = step.arguments
            call = {"function": {"name": step.name, "arguments": arguments}}
            if step.cut_after is not None:
                yield Cut()  # halfway through the call's line
            yield self._ollama({"tool_calls": [call]})
            return
        prefix = {"openai": "call_", "vllm": "chatcmpl-tool-", "llamacpp": ""}[self.wire]
        call_id = step.id or prefix + secrets.token_hex(12)
        function: dict[str, Any] = {"name": step.name}
        if self.wire != "vllm":
            function["arguments"] = ""
        first = {"index": index, "id": call_id, "type": "function", "function": function}
        yield self._openai_chunk({"tool_calls": [first]})
        for n, piece in enumerate(pieces):
            if n == step.cut_after:
                yield Cut()
            fragment: dict[str, Any] = {
                "tool_calls": [{"index": index, "function": {"arguments": piece}}]
            }
            yield self._openai_chunk(fragment)

    def _done(self, step: Done) -> Iterator[bytes]:
        usage = {
            "prompt_tokens": step.input_tokens,
            "completion_tokens": step.output_tokens,
            "total_tokens": step.input_tokens + step.output_tokens,
        }
        if self.wire == "anthropic":
            yield from self._close_block()
            reason = "tool_use" if self.saw_call else "end_turn"
            data = {
                "type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": None},
                "usage": {"input_tokens": step.input_tokens, "output_tokens": step.output_tokens},
            }
            yield self._sse(data, "message_delta")
            yield self._sse({"type": "message_stop"}, "message_stop")
        elif self.wire == "ollama":
            body = {
                "model": self.model,
                "created_at": "2026-12-02T10:00:01.000000Z",
                "message": {"role": "assistant", "content": ""},
                "done_reason": "stop",
                "done": True,
                "total_duration": 812_000_000,
                "load_duration": 12_000_000,
                "prompt_eval_count": step.input_tokens,
                "prompt_eval_duration": 100_000_000,
                "eval_count": step.output_tokens,
                "eval_duration": 700_000_000,
            }
            yield (json.dumps(body, separators=(",", ":")) + "\n").encode()
        else:
            reason = "tool_calls" if self.saw_call else "stop"
            if self.wire == "llamacpp":
                timings = {"prompt_n": step.input_tokens, "predicted_n": step.output_tokens}
                yield self._openai_chunk({}, reason, usage=usage, timings=timings)
            else:
                yield self._openai_chunk({}, reason)
                # usage comes in a chunk of its own, only when asked for
                yield self._sse(
                    {
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": CREATED,
                        "model": self.model,
                        "choices": [],
                        "usage": usage,
                    }
                )
            yield b"data: [DONE]\n\n"


# -- what each provider refuses --------------------------------------------------
def check(wire: Wire, body: dict[str, Any]) -> list[str]:
    """The reasons the real provider would refuse this request body (empty: accepted)."""
    if wire == "anthropic":
        return _check_anthropic(body)
    return _check_openai_like(wire, body)


def _check_openai_like(wire: Wire, body: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return ["messages: a non-empty list is required"]
    owed: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if wire != "ollama" and call_id not in owed:
                problems.append(f"messages[{i}]: tool result for unknown call {call_id!r}")
            owed.discard(call_id)
            continue
        if owed and wire != "ollama":
            problems.append(f"messages[{i}]: tool calls {sorted(owed)} have no result")
            owed = set()
        for call in message.get("tool_calls") or []:
            arguments = (call.get("function") or {}).get("arguments")
            if wire == "ollama":
                if not isinstance(arguments, dict):
                    problems.append(f"messages[{i}]: tool call arguments must be an object")
            else:
                try:
                    parsed = json.loads(arguments or "")
                except (TypeError, ValueError):
                    parsed = None
                if not isinstance(parsed, dict):
                    problems.append(f"messages[{i}]: tool call arguments are not a JSON object")
                owed.add(call.get("id"))
    return problems


def _check_anthropic(body: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return ["messages: at least one message is required"]
    if messages[0].get("role") != "user":
        problems.append("messages: the first message must use the user role")
    owed: set[str] = set()
    for i, message in enumerate(messages):
        if i and message.get("role") == messages[i - 1].get("role"):
            problems.append(f"messages.{i}: roles must alternate between user and assistant")
        content = message.get("content")
        blocks = content if isinstance(content, list) else []
        answered = {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"}
        if owed and not owed <= answered:
            problems.append(
                f"messages.{i}: tool_use ids were found without tool_result blocks "
                f"immediately after: {', '.join(sorted(owed - answered))}"
            )
        owed = set()
        for block in blocks:
            if block.get("type") == "tool_use":
                if not isinstance(block.get("input"), dict):
                    problems.append(
                        f"messages.{i}: tool_use.input: Input should be a valid dictionary"
                    )
                owed.add(block.get("id"))
    return problems


# -- reading a request back ------------------------------------------------------
@dataclass(frozen=True)
class Turn:
    """One message of a request, the same for every wire format (for assertions)."""

    role: str  # system, user, assistant or tool
    text: str = ""
    calls: tuple[tuple[str, Any], ...] = ()  # (name, arguments as sent)
    result_of: str | None = None  # a tool result's call id (None where the wire has none)


def turns(wire: Wire, body: dict[str, Any]) -> list[Turn]:
    """A request's conversation as ``Turn``s, whatever the wire format."""
    out: list[Turn] = []
    if wire == "anthropic":
        system = body.get("system")
        if system:
            text = system if isinstance(system, str) else "".join(b.get("text", "") for b in system)
            out.append(Turn("system", text))
        for message in body.get("messages", []):
            content = message.get("content")
            if isinstance(content, str):
                out.append(Turn(message["role"], content))
                continue
            text = "".join(b.get("text", "") for b in content if b.get("type") == "text")
            calls = tuple((b["name"], b["input"]) for b in content if b.get("type") == "tool_use")
            for block in content:
                if block.get("type") == "tool_result":
                    inner = block.get("content")
                    if isinstance(inner, list):
                        inner = "".join(b.get("text", "") for b in inner)
                    out.append(Turn("tool", str(inner), result_of=block.get("tool_use_id")))
            if text or calls or message["role"] == "assistant":
                out.append(Turn(message["role"], text, calls))
        return out
    for message in body.get("messages", []):
        content = message.get("content") or ""
        if isinstance(content, list):
            content = "".join(b.get("text", "") for b in content if isinstance(b, dict))
        calls = tuple(
            (c["function"]["name"], c["function"].get("arguments"))
            for c in message.get("tool_calls") or []
        )
        out.append(Turn(message["role"], content, calls, message.get("tool_call_id")))
    return out
