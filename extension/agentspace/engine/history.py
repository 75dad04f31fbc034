"""Fit a transcript into a model's context window.

The transcript in the store is complete; what the model is sent is a view of
it: the system prompt, then the newest turns that fit, cut only at a user
message so no tool result loses the call it answers; long tool results are
truncated with a visible marker (the full text stays in the store).

Tokens are estimated (about four characters a token, plus per-message
overhead) rather than counted with a tokenizer: a tokenizer costs an import and
time on every call, the estimate errs on the safe side, and the reserve for
the answer absorbs the rest.
"""

from __future__ import annotations

import json
from typing import Any

from agentspace.errors import ContextWindowError

WIRE_KEYS = ("role", "content", "tool_calls", "tool_call_id", "name")
TRUNCATION_MARKER = "\n[... {cut} more characters truncated; the full result is kept in the store]"


IMAGE_TOKENS = 1_000
DEFAULT_WINDOW = 128_000  # tokens, for a model whose window litellm does not know
"""What one attached image is counted as (providers charge roughly this for a figure)."""


def estimate_tokens(message: dict[str, Any]) -> int:
    content = message.get("content")
    if isinstance(content, list) and any(p.get("type") == "image_url" for p in content):
        text = sum(len(str(p.get("text", ""))) for p in content)
        pictures = sum(1 for p in content if p.get("type") == "image_url")
        return text // 4 + IMAGE_TOKENS * pictures + 4
    return len(json.dumps(message, ensure_ascii=False)) // 4 + 4


def images_message(images: list[tuple[str, dict[str, str]]]) -> dict[str, Any]:
    """The images tool results attached (read_notebook's figures), as one user message after
    the turn's tool results: tool messages carry text only at most providers."""
    parts: list[dict[str, Any]] = []
    for n, (call_id, image) in enumerate(images, 1):
        label = f"Image {n} of tool call {call_id}: {image.get('label', '')}".rstrip(": ")
        parts.append({"type": "text", "text": label})
        url = f"data:{image['mime']};base64,{image['data']}"
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return {"role": "user", "content": parts}


def wire_messages(transcript: list[dict[str, Any]], max_tool_chars: int) -> list[dict[str, Any]]:
    """The transcript as providers take it: ``to_wire`` each, and after each run of tool
    results the images they attached."""
    wire: list[dict[str, Any]] = []
    images: list[tuple[str, dict[str, str]]] = []
    for message in transcript:
        if images and message.get("role") != "tool":
            wire.append(images_message(images))
            images = []
        wire.append(to_wire(message, max_tool_chars))
        if message.get("role") == "tool" and message.get("images"):
            images += [(str(message.get("tool_call_id")), i) for i in message["images"]]
    if images:
        wire.append(images_message(images))
    return wire


def arguments_object(raw: Any) -> dict[str, Any] | None:
    """A tool call's arguments as a JSON object, or ``None`` when they are not one.

    Empty arguments are an empty object (providers send ``""`` for a call without any).
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        data = json.loads(raw)
    except (TypeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _wire_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool calls every provider accepts: arguments always a JSON object's text.

    A model can stream arguments that are not JSON (cut, or simply wrong). Sent
    back as they are, Anthropic and Ollama refuse the whole history (litellm
    fails to build the request), so every later call of the session fails. The
    call's result already tells the model what was wrong with them; the stored
    transcript keeps the raw text.
    """
    wired = []
    for call in calls:
        function = call.get("function") or {}
        raw = function.get("arguments")
        if isinstance(raw, str) and arguments_object(raw) is not None and raw.strip():
            wired.append(call)
            continue
        fixed = arguments_object(raw)
        text = json.dumps(fixed if fixed is not None else {}, ensure_ascii=False)
        wired.append({**call, "function": {**function, "arguments": text}})
    return wired


def to_wire(message: dict[str, Any], max_tool_chars: int) -> dict[str, Any]:
    """The provider-facing form: known keys only, tool-call arguments always JSON objects,
    long tool results truncated."""
    wire = {k: message[k] for k in WIRE_KEYS if k in message and message[k] is not None}
    if message.get("context") and wire.get("role") == "user":  # engine.context: what it saw
        wire["content"] = f"{message['context']}\n\n{wire.get('content') or ''}"
    if wire.get("tool_calls"):
        wire["tool_calls"] = _wire_calls(wire["tool_calls"])
    if wire.get("role") == "assistant" and "content" not in wire:
        wire["content"] = None if wire.get("tool_calls") else ""
    content = wire.get("content")
    if wire.get("role") == "tool" and isinstance(content, str) and len(content) > max_tool_chars:
        wire["content"] = content[:max_tool_chars] + TRUNCATION_MARKER.format(
            cut=len(content) - max_tool_chars
        )
    return wire


def build_prompt(
    system: str,
    transcript: list[dict[str, Any]],
    *,
    window: int,
    max_tool_chars: int,
) -> list[dict[str, Any]]:
    """System prompt plus the newest whole turns that fit in ``window`` tokens."""
    reserve = min(4096, window // 4)  # room for the answer
    wire = wire_messages(transcript, max_tool_chars)
    budget = window - reserve - estimate_tokens({"role": "system", "content": system}) - 40
    total = 0
    start = len(wire)
    keep_from = len(wire)
    for i in range(len(wire) - 1, -1, -1):
        total += estimate_tokens(wire[i])
        if total > budget:
            break
        start = i
        if wire[i].get("role") == "user":
            keep_from = i
    if start == 0:
        keep_from = 0
    if keep_from == len(wire) and wire:
        raise ContextWindowError(
            f"The newest turn alone needs about {total} tokens, more than the model's context "
            f"window of {window} allows. Send a shorter message, or use a model with a larger "
            "window (or raise limits.context_window if the model's real window is larger).",
            window=window,
        )
    kept = wire[keep_from:]
    prompt_system = system
    if keep_from:
        prompt_system += (
            f"\n\n[{keep_from} earlier messages of this conversation were left out to fit "
            "the context window.]"
        )
    return [{"role": "system", "content": prompt_system}, *kept]
