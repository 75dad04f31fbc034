"""A provider failure, as a person should read it: litellm's exceptions into ``agentspace.errors``.

Why a module of its own: litellm's messages are layered wrappers
(``litellm.RateLimitError: RateLimitError: OpenAIException - b'{"error": ...}'.
Handle with `litellm.RateLimitError`.``), sometimes with a traceback or the
whole conversation (``Received Messages=[...]``) in them. What reaches a user
is the provider's own sentence, cleaned, plus what to do; the stable ``code``
and the fields stay in the error's data. The provider's ``Retry-After`` is
read here too, since it travels on the same exception.
"""

from __future__ import annotations

import ast
import email.utils
import json
import re
import time
from typing import Any, Literal

from agentspace.errors import (
    AgentspaceError,
    ContextWindowError,
    ModelAuthError,
    ModelError,
    ModelNotFoundError,
    ModelUnavailableError,
    RateLimitError,
)

KeysIn = Literal["server", "kernel"]
MAX_DETAIL = 300  # characters of a provider's message kept in ours

# "litellm.RateLimitError: RateLimitError: OpenAIException - ..." and its kin
_WRAPPERS = re.compile(r"^\s*(?:(?:litellm\.\w+|\w*(?:Error|Exception))\s*(?::|-)\s*)+")
_BYTES = re.compile(r"""b(['"])((?:\\.|(?!\1).)*)\1""")
_HANDLE = re.compile(r"\.?\s*Handle with `?litellm\.\w+`?\.?")
_CUT_AT = ("Traceback (most recent call last)", "Received Messages=", "Received Model Group")

# Where each provider's key is read from (litellm's own variable names).
KEY_VARIABLES = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "hosted_vllm": "HOSTED_VLLM_API_KEY",
    "ollama": "OLLAMA_API_KEY",
    "ollama_chat": "OLLAMA_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "groq": "GROQ_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
}


def causes(exc: BaseException) -> list[BaseException]:
    """The exception and everything it wraps (litellm's ``original_exception``, causes)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        original = getattr(current, "original_exception", None)
        todo += [
            original if isinstance(original, BaseException) else None,
            current.__cause__,
            current.__context__,
        ]
    return seen


def clean(text: str) -> str:
    """The provider's own message out of litellm's layers: no wrappers, bytes reprs, hints."""
    for marker in _CUT_AT:
        text = text.split(marker, 1)[0]
    text = _BYTES.sub(_decode_bytes, text)
    text = _HANDLE.sub("", text)
    text = _WRAPPERS.sub("", text).strip()
    found = _json_message(text)
    if found is not None:
        text = found
    text = " ".join(text.split()).rstrip(" .")
    for needle, plain in _PLAIN.items():
        if needle in text:
            text = plain
    if len(text) > MAX_DETAIL:
        text = text[: MAX_DETAIL - 1].rstrip() + "…"
    if text and not text.endswith((".", "!", "?", "…")):
        text += "."
    return text


# Transport errors whose text helps nobody, in words.
_PLAIN = {
    "Response payload is not completed": "The connection closed before the answer was complete",
    "peer closed connection": "The connection closed before the answer was complete",
    "Server disconnected": "The connection closed before the answer was complete",
    "Connection error": "The connection failed or closed before the answer was complete",
}
# What litellm and the SDKs say, before sending anything, when no key was found.
_NO_KEY = re.compile(
    r"Missing credentials|api_key client option must be set|Missing \w+ API Key", re.IGNORECASE
)


def _decode_bytes(match: re.Match[str]) -> str:
    try:
        value = ast.literal_eval(match.group(0))
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else match.group(0)
    except (ValueError, SyntaxError):
        return match.group(2)


def _json_message(text: str) -> str | None:
    """``message`` from a provider's JSON error body (OpenAI, Anthropic, Ollama, vLLM)."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        body = json.loads(text[start:])
    except ValueError:
        return None
    for candidate in (body, body.get("error") if isinstance(body, dict) else None):
        if isinstance(candidate, dict) and isinstance(candidate.get("message"), str):
            return str(candidate["message"])
        if isinstance(candidate, str):
            return candidate
    return None


def retry_after(exc: BaseException) -> float | None:
    """Seconds the provider asked to wait (``Retry-After``/``retry-after-ms``), if it said."""
    for inner in causes(exc):
        headers: Any = getattr(inner, "litellm_response_headers", None)
        response = getattr(inner, "response", None)
        if not headers and response is not None:
            headers = getattr(response, "headers", None)
        if not headers:
            headers = getattr(inner, "headers", None)
        if not headers:
            continue
        try:
            millis = headers.get("retry-after-ms")
            if millis is not None:
                return max(0.0, float(millis) / 1000)
            value = headers.get("retry-after")
        except AttributeError:
            continue
        if value is None:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value) if value else None
            if when is not None:
                return max(0.0, when.timestamp() - time.time())
    return None


def _provider(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else ""


def _where_keys_live(keys_in: KeysIn) -> str:
    if keys_in == "kernel":
        return (
            "in embedded mode keys are read from the kernel's environment: set it where the "
            "kernel starts (or in model_params) and restart the kernel"
        )
    return (
        "keys are read from the Jupyter server's environment or its config "
        "(c.AgentspaceApp.model_params), not from the kernel's: set it where the server "
        "starts and restart the server"
    )


def auth_hint(model: str, detail: str, keys_in: KeysIn, key_sent: bool) -> str:
    """What to do about an authentication failure, per provider and per mode."""
    provider = _provider(model)
    variable = KEY_VARIABLES.get(provider)
    if variable is None:
        import litellm

        try:
            missing = litellm.validate_environment(model).get("missing_keys") or []
        except Exception:
            missing = []
        keys = [k for k in missing if "KEY" in k or "TOKEN" in k]
        variable = " or ".join(keys) if keys else None
    if provider in ("ollama", "ollama_chat"):
        return (
            f"the Ollama server refused the request: {detail} A local Ollama needs no key; "
            "one behind a proxy or on ollama.com does: set OLLAMA_API_KEY (or api_key in "
            f"model_params); {_where_keys_live(keys_in)}"
        )
    if not key_sent:
        name = variable or "the provider's API key variable"
        return f"no API key was found: set {name}; {_where_keys_live(keys_in)}"
    name = f" ({variable})" if variable else ""
    return (
        f"the provider rejected the API key{name}: {detail} Check the key; "
        f"{_where_keys_live(keys_in)}"
    )


def translate(
    exc: BaseException,
    model: str,
    *,
    keys_in: KeysIn = "server",
    key_sent: bool | None = None,
) -> BaseException:
    """Map a litellm/openai exception to ``agentspace.errors``; return others unchanged.

    ``key_sent``: whether the call carried an API key (``None``: look in litellm's
    environment check), so a missing key and a rejected one get different advice.
    """
    chain = causes(exc)
    for inner in chain:
        if isinstance(inner, AgentspaceError):
            return inner  # e.g. a ConfigError from the scripted provider, wrapped by litellm
    import litellm
    import openai

    # litellm wraps stream failures in MidStreamFallbackError; the provider error is inside.
    fallback = litellm.exceptions.MidStreamFallbackError
    real = next((e for e in chain if not isinstance(e, fallback)), exc)
    if not isinstance(real, openai.OpenAIError):
        real = next((e for e in chain if isinstance(e, openai.OpenAIError)), exc)
    raw = str(getattr(real, "message", None) or real)
    detail = clean(raw) or type(real).__name__
    status = getattr(real, "status_code", None)
    data: dict[str, Any] = {"model": model, "status": status}
    if isinstance(real, litellm.ContextWindowExceededError):
        return ContextWindowError(
            f"The conversation is too long for {model}: {detail} Start a new session, or "
            "set limits.context_window to the model's real window so older turns are left out.",
            **data,
        )
    if _NO_KEY.search(raw) and not key_sent:
        hint = auth_hint(model, detail, keys_in, key_sent=False)
        return ModelAuthError(f"{model}: authentication failed; {hint}.", **data)
    if isinstance(real, (litellm.AuthenticationError, litellm.PermissionDeniedError)):
        if key_sent is None:
            key_sent = not _missing_key(model)
        hint = auth_hint(model, detail, keys_in, key_sent)
        return ModelAuthError(f"{model}: authentication failed; {hint}.", **data)
    unknown_model = isinstance(real, (litellm.NotFoundError, litellm.LiteLLMUnknownProvider)) or (
        isinstance(real, litellm.BadRequestError) and "LLM Provider NOT provided" in raw
    )
    if unknown_model:
        return ModelNotFoundError(
            f"Unknown model {model!r}: {detail} Use a litellm model string such as "
            '"openai/gpt-4o-mini" or "scripted/echo", and check the provider has that model.',
            **data,
        )
    if isinstance(real, litellm.RateLimitError):
        wait = retry_after(exc)
        if wait is not None:
            data["retry_after"] = wait
        return RateLimitError(
            f"{model} is rate limited: {detail} Wait a little, then resume.", **data
        )
    transient = (
        litellm.Timeout,
        litellm.APIConnectionError,
        litellm.ServiceUnavailableError,
        litellm.InternalServerError,
        litellm.BadGatewayError,
        openai.APIConnectionError,
        openai.InternalServerError,
    )
    if isinstance(real, transient) or (isinstance(status, int) and status >= 500):
        wait = retry_after(exc)
        if wait is not None:
            data["retry_after"] = wait
        return ModelUnavailableError(
            f"{model} is unavailable: {detail} Check that the provider is up and reachable "
            "from the server, then resume.",
            **data,
        )
    if isinstance(real, openai.OpenAIError):
        return ModelError(f"{model} failed: {detail}", **data)
    return exc


def _missing_key(model: str) -> bool:
    import litellm

    try:
        missing = litellm.validate_environment(model).get("missing_keys") or []
    except Exception:
        return False
    return any("KEY" in k or "TOKEN" in k for k in missing)
