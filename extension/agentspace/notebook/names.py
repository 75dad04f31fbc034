"""Which names look secret: ``secret_kind`` judges a name by its word parts.

``api_key``, ``apiKey``, ``db_password``, ``GITHUB_TOKEN``, ``auth`` are secret; ``keyboard``,
``monkey``, ``max_tokens``, ``pad_token``, ``primary_key``, ``auth_resource`` and a lone loop
variable ``key`` are not. Used by redaction (``secrets``: the value of an assignment to such a
name) and by the kernel's ``list_variables`` (such a variable shows its type and length only).
Stdlib only: the kernel side imports it.
"""

from __future__ import annotations

import re

# A word part that makes any name secret, and the kind it gives.
STRONG = {
    "password": "password",
    "passwords": "password",
    "passwd": "password",
    "passphrase": "password",
    "secret": "secret",
    "secrets": "secret",
    "credential": "credential",
    "credentials": "credential",
    "creds": "credential",
    "apikey": "key",
    "apikeys": "key",
    "secretkey": "key",
    "privatekey": "key",
    "accesskey": "key",
    "apitoken": "token",
    "authtoken": "token",
    "accesstoken": "token",
    "refreshtoken": "token",
    "authkey": "key",
}
# A word part that makes a name secret only as its last word (``api_key``, ``HF_TOKEN``),
# or alone in capitals (``TOKEN = ...``): a lone lowercase ``key`` is a loop variable.
WEAK = {"key": "key", "token": "token"}
# Secret as the last word, alone too (``auth = ("me", "pw")``; not ``auth_resource``).
LAST = {"auth": "auth", "authorization": "auth"}
# Words after the secret word that leave it the secret (``token_value``, ``api_key_str``).
TRAILING = {"value", "str", "string", "raw", "b64", "hex", "bytes", "plain", "plaintext", "env"}
# Words before a weak one that make it data, not a credential.
NOT_SECRET = {
    "primary", "foreign", "sort", "sorting", "cache", "cached", "group", "grouping",
    "partition", "shard", "routing", "dict", "lookup", "join", "index", "idx", "column", "col",
    "row", "map", "hash", "unique", "composite", "natural", "surrogate", "next", "prev",
    "previous", "first", "last", "max", "min", "num", "n", "count", "total", "input", "output",
    "special", "pad", "unk", "eos", "bos", "sep", "cls", "mask", "start", "end", "stop", "new",
    "old", "default", "reasoning", "completion", "prompt", "context", "hot", "dedup", "cursor",
    "page", "pagination", "continuation", "sample", "word", "sub", "byte", "char", "text",
    "image", "vision", "audio", "cache_creation", "key", "dtype", "type", "id", "ids", "name",
}  # fmt: skip
_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def secret_kind(name: str) -> str | None:
    """The kind of secret a name says its value is ("password", "key", ...), or None."""
    words = _WORDS.findall(name)
    if not words:
        return None
    lower = [w.lower() for w in words]
    joined = "_".join(lower)
    if "aws_secret_access_key" in joined:
        return "aws secret key"
    for word in lower:
        kind = STRONG.get(word)
        if kind is not None:
            return kind
        for suffix in ("password", "passwd", "secret", "apikey"):
            if word.endswith(suffix) and len(word) > len(suffix):
                return STRONG.get(suffix, "key")
    while len(lower) > 1 and lower[-1] in TRAILING:
        lower, words = lower[:-1], words[:-1]
    last = lower[-1]
    kind = WEAK.get(last) or LAST.get(last)
    if kind is None:
        return None
    if len(lower) == 1 and last in LAST:
        return kind
    if len(lower) == 1:
        return kind if words[0].isupper() and len(words[0]) > 2 else None
    if lower[-2] in NOT_SECRET:
        return None
    return kind


def name_looks_secret(name: str) -> bool:
    """Whether a variable or environment variable called ``name`` likely holds a secret."""
    return secret_kind(name) is not None
