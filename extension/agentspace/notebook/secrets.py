"""Secret redaction: values that look like credentials, cut out of text before a model reads it.

Two rules. A value of a known shape anywhere in the text (an OpenAI, Anthropic, GitHub, AWS,
Slack, Google or Hugging Face key, a JWT, a PEM private key) is replaced by
``[redacted: <kind>]``. And the value of an assignment whose NAME looks secret
(``password = "..."``, ``api_key: '...'``, ``GITHUB_TOKEN=...``, ``"auth": "..."``,
``Authorization: Bearer ...``) is replaced, its name, quotes and ``Bearer`` kept.

Speed: every pattern starts at a literal, a key's prefix or a secret word of a name (in the
lowercased text). sre scans for a literal prefix as fast as ``str.find`` (0.3-0.6 ms a MB),
where one regex of alternatives walks every position (15-500 ms a MB); so ``redact`` runs
one prefix scan per pattern, a dozen in all, and builds the text once (1 MB in 6-12 ms on
the project's machine; see tests/extension/notebook/test_secrets.py).

What a name "looks secret" means is ``names.secret_kind``: its word parts, not its letters.
Hex digests, UUIDs and base64 data are never matched: every pattern needs a prefix or a
name, and a key's prefix may not sit inside a word or base64.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from agentspace.notebook.names import WEAK, name_looks_secret, secret_kind

__all__ = ["Redacted", "name_looks_secret", "note", "redact", "redact_mapping", "secret_kind"]


@dataclass(frozen=True)
class Redacted:
    """Text with its secrets replaced, how many were, and their kinds (first seen first)."""

    text: str
    count: int = 0
    kinds: tuple[str, ...] = ()


def note(redacted: Redacted) -> str:
    """The line that tells a reader (and every view) that something was cut out."""
    n = redacted.count
    what = "value that looks like a secret" if n == 1 else "values that look like secrets"
    return (
        f"[agentspace redacted {n} {what} ({', '.join(redacted.kinds)}) "
        "before sending this to the model]"
    )


# -- values --------------------------------------------------------------------------------
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_WORD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
_BEFORE = frozenset(_WORD)  # a key does not start inside a word
_BEFORE_B64 = frozenset(_WORD + "+/-")  # nor, if base64 can hold its shape, inside base64
_E = r"(?![A-Za-z0-9_-])"


@dataclass(frozen=True)
class _Shape:
    """Secrets of known shapes. The regex starts with a literal (sre then scans for it as fast
    as ``str.find``; a leading lookbehind would cost that, so the character before is checked
    here); ``kinds`` name a match by its start (the last one is the default)."""

    regex: re.Pattern[str]
    kinds: tuple[tuple[str, str], ...]
    random: bool = False  # the value must look random (not a CSS class or identifier)
    before: frozenset[str] = _BEFORE  # what may not come just before it

    def kind(self, value: str) -> str:
        return next((k for p, k in self.kinds if value.startswith(p)), self.kinds[-1][1])


def _shape(regex: str, *kinds: tuple[str, str], random: bool = False, b64: bool = False) -> _Shape:
    return _Shape(re.compile(regex), kinds, random, _BEFORE_B64 if b64 else _BEFORE)


# One scan of the text each (0.3-0.6 ms a MB): shapes share a scan where they share a start.
SHAPES = (
    _shape(r"sk-[A-Za-z0-9_-]{20,}", ("sk-ant-", "anthropic key"), ("", "openai key"),
           random=True),
    _shape(r"g(?:h[pousr]_[A-Za-z0-9]{36,255}|ithub_pat_[A-Za-z0-9_]{22,255})" + _E,
           ("", "github token")),
    _shape(r"A(?:[KS]IA[0-9A-Z]{16}|Iza[0-9A-Za-z_-]{35})" + _E,
           ("AIza", "google api key"), ("", "aws access key id"), b64=True),
    _shape(r"xox[abposr]-[A-Za-z0-9-]{10,}", ("", "slack token")),
    _shape(r"hf_[A-Za-z0-9]{30,}" + _E, ("", "hugging face token"), random=True),
    _shape(r"eyJ[A-Za-z0-9_-]{8,}={0,2}\.eyJ[A-Za-z0-9_-]{8,}={0,2}\.[A-Za-z0-9_-]{10,}={0,2}",
           ("", "jwt"), b64=True),
)  # fmt: skip
# Found from the word "key" of its header (no scan of its own).
_PEM = re.compile(
    r"-----BEGIN[A-Z0-9 ]{0,40} PRIVATE KEY( BLOCK)?-----"
    r"(?:[\s\S]{0,20000}?-----END[A-Z0-9 ]{0,40} PRIVATE KEY( BLOCK)?-----|[A-Za-z0-9+/=\s]*)"
)

# An assignment: matched at each secret word of a name (found in the lowercased text), the
# rest of the name before the word found by looking back; then the operator and the value.
# ``Authorization: Bearer ...`` is one too (its scheme stays).
WORDS = ("pass", "secret", "cred", "auth", "token", "key")
_ASSIGN = re.compile(
    r"[A-Za-z0-9_.-]{0,60}[\"']?"
    r"(?:[ \t]*:[ \t]*[A-Za-z_][A-Za-z0-9_.\[\], |]{0,40}?(?=[ \t]*=))?"  # password: str = "."
    r"[ \t]*(?P<op>=|:|=>)[ \t]*"
    r"(?:(?P<sq>[\"'])(?P<qv>(?:(?i:bearer|basic|token)[ \t]+)?(?:(?!(?P=sq))[^\\\n]|\\.){1,500})"
    r"(?P=sq)"
    r"|(?P<uv>(?:(?i:bearer|basic|token)[ \t]+)?[A-Za-z0-9/+_~.@%=!*^:-]{4,500})(?P<after>[(\[]?))"
)
_SCHEME = re.compile(r"(?i:bearer|basic|token)[ \t]+")
_LITERALS = {"none", "null", "true", "false", "undefined", "nil", "required", "optional"}
_PLACEHOLDERS = {
    "changeme", "password", "passwd", "secret", "token", "key", "apikey", "api_key", "xxx",
    "redacted", "hidden", "dummy", "example", "placeholder", "your_api_key", "your-api-key",
}  # fmt: skip
# Each word, then the rest of a name and an operator, checked in C (a word in running text or
# in ``keys()`` never reaches Python); ``key-----`` is a private key's header.
_WORD_SCANS = tuple(
    (
        word,
        re.compile(
            word
            + r"(?:[a-z0-9_.-]{0,60}[\"']?[ \t]*[:=]"
            + ("|-----| block-----)" if word == "key" else ")")
        ),
    )
    for word in WORDS
)
_ANY_WORD = re.compile("|".join(WORDS), re.IGNORECASE)  # the slow path (non-ASCII case)
_Span = tuple[int, int, str]  # start, end, kind


def redact(text: str) -> Redacted:
    """``text`` with every value that looks like a secret replaced by ``[redacted: <kind>]``.

    Each pattern is tried only where its literal is (an sre prefix scan, or ``str.find`` on
    the lowercased text for a name's words), so text with no candidates costs a dozen
    substring scans.
    """
    taken = _Taken()
    for shape in SHAPES:
        for m in shape.regex.finditer(text):
            start = m.start()
            if start and text[start - 1] in shape.before:
                continue  # in the middle of a word, of base64
            value = m.group(0)
            if shape.random and not _random_key(value):
                continue
            taken.add(start, m.end(), shape.kind(value))
    for at, word in _word_positions(text):
        if word[:3] == "key":
            block = _pem(text, at)
            if block is not None:
                taken.add(block.start(), block.end(), "private key")
                continue
        span = _assignment(text, at)
        if span is not None:
            taken.add(*span)
    if not taken.spans:
        return Redacted(text)
    out, last = [], 0
    for start, end, kind in taken.spans:
        out.append(text[last:start])
        out.append(f"[redacted: {kind}]")
        last = end
    out.append(text[last:])
    kinds = tuple(dict.fromkeys(kind for _, _, kind in taken.spans))
    return Redacted("".join(out), len(taken.spans), kinds)


class _Taken:
    """Spans to replace, sorted, none overlapping: the first kept wins (shapes go first)."""

    def __init__(self) -> None:
        self.spans: list[_Span] = []
        self.starts: list[int] = []

    def add(self, start: int, end: int, kind: str) -> None:
        i = bisect.bisect_right(self.starts, start)
        if i and self.spans[i - 1][1] > start:
            return  # the one before reaches into it
        if i < len(self.spans) and self.spans[i][0] < end:
            return  # it reaches into the next one
        self.spans.insert(i, (start, end, kind))
        self.starts.insert(i, start)


def _word_positions(text: str) -> list[tuple[int, str]]:
    low = text.lower()
    if len(low) != len(text):  # a few characters lowercase to two: positions would shift
        return [(m.start(), m.group(0).lower()[:3]) for m in _ANY_WORD.finditer(text)]
    found = [(m.start(), word) for word, regex in _WORD_SCANS for m in regex.finditer(low)]
    found.sort()
    return found


def _pem(text: str, at: int) -> re.Match[str] | None:
    """The private key block whose header's KEY is at ``at``."""
    if text[at - 8 : at] != "PRIVATE ":  # -----BEGIN [RSA |PGP |OPENSSH ]PRIVATE KEY
        return None
    begin = text.rfind("-----BEGIN", max(0, at - 60), at)
    return _PEM.match(text, begin) if begin >= 0 else None


def _random_key(value: str) -> bool:
    """A random key, not a CSS class or an identifier (``sk-toggleable__label-arrow``)."""
    upper = sum(c.isupper() for c in value)
    lower = sum(c.islower() for c in value)
    digits = sum(c.isdigit() for c in value)
    if upper and lower and digits:
        return True
    # hf_ tokens are letters only: random letters are about half capitals
    body = len(value) - 3
    return body >= 30 and upper >= body // 5 and lower >= body // 5


def _assignment(text: str, at: int) -> _Span | None:
    """The value of ``name = value`` whose name has a secret word at ``at``, if it is one."""
    m = _ASSIGN.match(text, at)
    if m is None:
        return None
    quoted = m.group("sq") is not None
    group = "qv" if quoted else "uv"
    begin = at
    while begin > 0 and text[begin - 1] in _NAME_CHARS and at - begin < 80:
        begin -= 1
    name = text[begin : m.start("op")].split(":")[0].strip().strip("\"'").strip()
    kind = secret_kind(name)
    lone = kind is None and name.lower() in WEAK  # token=..., key=...: only a random value
    if kind is None and not lone:
        return None
    value = m.group(group)
    scheme = _SCHEME.match(value)
    start = m.start(group) + (scheme.end() if scheme else 0)
    secret = text[start : m.end(group)]
    if lone:
        if not _lone_value(secret):
            return None
        kind = WEAK[name.lower()]
    elif not _value_is_secret(secret, quoted, scheme is not None, m.group("after")):
        return None
    if scheme is not None:
        kind = "bearer token" if scheme.group(0).lower().startswith("bearer") else "auth"
    return start, m.end(group), kind or "secret"


def _value_is_secret(value: str, quoted: bool, scheme: bool, call: str | None) -> bool:
    """Whether the value of a secret-named assignment is a value, not code or a placeholder."""
    if not value.strip() or value[0] in "$<{%" or _placeholder(value):
        return False
    if scheme:  # Authorization: Bearer <this>
        return len(value) >= 8
    if quoted:
        return len(value) >= 3
    return not call and _random_looking(value)


def _placeholder(value: str) -> bool:
    """``"password"``, ``"xxxx"``, ``"..."``, ``"***"``: a value that stands for one."""
    low = value.lower().strip()
    return low in _PLACEHOLDERS or len(set(low)) == 1 or low.startswith(("your", "<"))


def _random_looking(value: str) -> bool:
    """A bare value that is no name, keyword or placeholder: digits with letters, or symbols."""
    if value.lower() in _LITERALS:
        return False
    has_digit = any(c.isdigit() for c in value)
    if has_digit and any(c.isalpha() for c in value):
        return True
    if has_digit:
        return len(value) >= 6  # a PIN, a numeric password
    return any(c in "/+@%=!*^~" for c in value)  # no digits: a name unless it has symbols


def _lone_value(value: str) -> bool:
    """The value of a bare ``token``/``key``: only a long random string (not "date", a word,
    a timestamp)."""
    letters = sum(c.isalpha() for c in value)
    digits = sum(c.isdigit() for c in value)
    return len(value) >= 16 and letters >= 4 and digits >= 2 and not any(c in " :" for c in value)


def redact_mapping(name: str, value: str) -> Redacted:
    """A name/value pair (a variable, an environment variable): all of it if the name looks
    secret, else whatever in the value looks like a secret."""
    kind = secret_kind(name)
    if kind is not None and value:
        return Redacted(f"[redacted: {kind}]", 1, (kind,))
    return redact(value)


def redacted_text(text: str) -> tuple[str, int]:
    """``text`` with secrets redacted and, if any were, the note line after it; and how many."""
    redacted = redact(text)
    if not redacted.count:
        return text, 0
    return redacted.text.rstrip("\n") + "\n" + note(redacted), redacted.count
