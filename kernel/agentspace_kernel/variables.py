"""``list_variables``: the user's namespace, described in compact text for a model.

One line per variable (name, type, size, a short value); DataFrames, Series and arrays get
their shape, dtypes, columns and first rows under it. Left out, as ``%who`` leaves them out:
names starting with ``_``, modules, IPython's own (``In``, ``Out``, ``exit``, ``quit``,
``get_ipython``) and what IPython put there itself (``user_ns_hidden``, where the name still
holds the object IPython put there).

Cheap by construction, whatever the user holds: nothing is copied but a few rows or items,
no ``repr`` of a whole container is made (ours walk a few items), sizes are shallow
(``nbytes``, ``memory_usage(deep=False)``, ``sys.getsizeof`` only where the builtins define
it: pandas' is deep), ``len`` is asked only of the builtin containers, and pandas and numpy
are looked up in ``sys.modules``, never imported. A time budget (``BUDGET``) and a size cap
(``LIMIT``) end the listing early with a line that says what is missing and how to ask for
it (``names=[...]``). A variable whose name looks like a secret
(``agentspace.notebook.secrets.secret_kind``) shows its type and length, never its value;
the engine redacts values that look like secrets from the text as well.
"""

from __future__ import annotations

import fnmatch
import inspect
import sys
import time
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

BUDGET = 0.5  # seconds for one listing
LIMIT = 20_000  # characters of text
IPYTHON_OWN = frozenset({"In", "Out", "exit", "quit", "get_ipython"})
MARKER_NAMES = 60  # names listed in the "not shown" line at most
_MISSING = object()


@dataclass(frozen=True)
class Detail:
    """How much to show of one variable: the listing's, or the ``names=[...]`` detail's."""

    repr_chars: int = 120
    items: int = 6  # of a container
    rows: int = 3  # of a DataFrame's head
    columns: int = 50  # listed with their dtypes
    head_columns: int = 8  # in the head's table
    colwidth: int = 20


BRIEF = Detail()
FULL = Detail(repr_chars=2_000, items=50, rows=10, columns=500, head_columns=30, colwidth=60)


def call(arguments: Any) -> tuple[str, bool]:
    """The kernel's answer to a ``list_variables`` call: (text, is_error)."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return "list_variables needs an IPython kernel: there is no user namespace here.", True
    if not isinstance(arguments, dict):
        return "The arguments of list_variables must be a JSON object.", True
    names, pattern = arguments.get("names"), arguments.get("pattern")
    if names is not None and not (
        isinstance(names, list) and all(isinstance(n, str) for n in names)
    ):
        return "names must be a list of variable names (strings).", True
    if pattern is not None and not isinstance(pattern, str):
        return "pattern must be a string (a glob such as 'df*').", True
    hidden = getattr(shell, "user_ns_hidden", {})
    return describe(shell.user_ns, names=names, pattern=pattern, hidden=hidden), False


def visible(namespace: Mapping[str, Any], hidden: Mapping[str, Any] | None = None) -> list[str]:
    """The names ``list_variables`` lists, sorted (case-insensitively)."""
    hidden = hidden or {}
    found = []
    for name, value in list(namespace.items()):
        if name.startswith("_") or name in IPYTHON_OWN or isinstance(value, types.ModuleType):
            continue
        if hidden.get(name, _MISSING) is value:
            continue
        found.append(name)
    found.sort(key=lambda n: (n.lower(), n))
    return found


def describe(
    namespace: Mapping[str, Any],
    *,
    names: list[str] | None = None,
    pattern: str | None = None,
    hidden: Mapping[str, Any] | None = None,
    budget: float = BUDGET,
    limit: int = LIMIT,
    clock: Callable[[], float] = time.perf_counter,
) -> str:
    """The text ``list_variables`` returns for ``namespace``."""
    started = clock()
    if names:
        chosen = list(dict.fromkeys(names))
        if pattern:
            chosen = [n for n in chosen if fnmatch.fnmatchcase(n, pattern)]
        detail = FULL
        header = f"{len(chosen)} variable{'s' * (len(chosen) != 1)} in detail:"
    else:
        chosen = visible(namespace, hidden)
        if pattern:
            chosen = [n for n in chosen if fnmatch.fnmatchcase(n, pattern)]
        detail = BRIEF
        where = f" matching {pattern!r}" if pattern else ""
        header = (
            f"{len(chosen)} variable{'s' * (len(chosen) != 1)}{where} in the kernel's namespace"
            " (modules, _names and IPython's own left out):"
        )
        if not chosen:
            return header.rstrip(":") + "."
    parts, size = [header], len(header)
    for i, name in enumerate(chosen):
        if i and clock() - started > budget:
            parts.append(_missing(chosen[i:], f"not described within the {budget:g} s budget"))
            break
        value = namespace.get(name, _MISSING)
        if value is _MISSING:
            block = f"{name}: not defined in the kernel's namespace"
        else:
            try:
                block = describe_one(name, value, detail)
            except Exception as exc:  # a property or __len__ that raised: say so, go on
                block = f"{name}: {type_name(value)} (could not be described: {exc!r:.80})"
        if size + len(block) + 1 > limit:
            _end_within(parts, chosen, i, limit)
            break
        parts.append(block)
        size += len(block) + 1
    return "\n".join(parts)


def _end_within(parts: list[str], chosen: list[str], i: int, limit: int) -> None:
    """Close a listing at the size cap: drop described blocks until the marker fits."""
    while True:
        marker = _missing(chosen[i:], f"not shown (the {limit:,}-character limit)")
        if len(parts) == 1 or sum(len(p) + 1 for p in parts) + len(marker) <= limit:
            parts.append(marker)
            return
        parts.pop()
        i -= 1


def _missing(rest: list[str], why: str) -> str:
    listed = ", ".join(rest[:MARKER_NAMES]) + (", …" if len(rest) > MARKER_NAMES else "")
    return (
        f"[... {len(rest)} more variable{'s' * (len(rest) != 1)} {why}: call list_variables "
        f"with names=[...] (or a pattern) for them: {listed}]"
    )


# -- one variable --------------------------------------------------------------------------
def describe_one(name: str, value: Any, detail: Detail = BRIEF) -> str:
    """One variable's line (and, for tables and arrays, the lines under it)."""
    kind = type_name(value)
    if _secret_name(name):
        length = _cheap_len(value)
        sized = f", len {length:,}" if length is not None else ""
        return f"{name}: {kind}{sized} (value hidden: its name looks like a secret)"
    pandas = sys.modules.get("pandas")
    if pandas is not None:
        if isinstance(value, pandas.DataFrame):
            return _frame(name, kind, value, detail)
        if isinstance(value, pandas.Series | pandas.Index):
            return _series(name, kind, value, detail)
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray):
        return _array(name, kind, value, detail)
    if isinstance(value, type):
        return f"{name}: class {_qualified(value)}"
    if callable(value) and isinstance(
        value, types.FunctionType | types.BuiltinFunctionType | types.MethodType
    ):
        return f"{name}: {kind} {_signature(value)}"
    cls = type(value)
    if hasattr(cls, "shape") and hasattr(cls, "dtype"):  # torch, jax, cupy...: no repr
        return _array_like(name, kind, value)
    facts = [kind]
    length = _cheap_len(value)
    if length is not None:
        facts.append(f"len {length:,}")
    size = _shallow_size(value)
    if size is not None and (length is not None or size >= 1024):
        facts.append(human(size))
    return f"{name}: {', '.join(facts)} = {short(value, detail.repr_chars, detail.items)}"


def _frame(name: str, kind: str, df: Any, detail: Detail) -> str:
    rows, cols = df.shape
    memory = int(df.memory_usage(index=True, deep=False).sum())
    lines = [f"{name}: {kind}, {rows:,} rows × {cols:,} columns, {human(memory)}"]
    index = df.index
    if type(index).__name__ != "RangeIndex":
        named = f" {index.name!r}" if index.name is not None else ""
        lines.append(f"  index: {type(index).__name__}{named}, {index.dtype}")
    shown = df.iloc[:0, : detail.columns].dtypes  # zero rows: no copy of the data
    columns = ", ".join(f"{_label(c)} {t}" for c, t in shown.items())
    more = f", … {cols - len(shown):,} more" if cols > len(shown) else ""
    lines.append(f"  columns: {columns}{more}")
    if rows and cols:
        head = df.iloc[: detail.rows, : detail.head_columns]
        table = head.to_string(max_colwidth=detail.colwidth, show_dimensions=False)
        lines.append(f"  head({min(rows, detail.rows)}):")
        lines.extend("    " + line[:400] for line in table.splitlines())
    return "\n".join(lines)


def _series(name: str, kind: str, s: Any, detail: Detail) -> str:
    facts = [kind, f"len {len(s):,}", str(s.dtype)]
    if getattr(s, "name", None) is not None:
        facts.append(f"name {s.name!r:.60}")
    facts.append(human(int(s.memory_usage(deep=False))))
    first = s[: detail.items].tolist() if hasattr(s, "tolist") else []
    shown = _items(first, len(s), detail.repr_chars, detail.items)
    return f"{name}: {', '.join(facts)} = {shown}"


def _array(name: str, kind: str, a: Any, detail: Detail) -> str:
    facts = [kind, f"shape {tuple(a.shape)}", str(a.dtype), human(int(a.nbytes))]
    first = a.flat[: detail.items].tolist()  # a.flat: no copy of the rest, strided or not
    return f"{name}: {', '.join(facts)} = {_items(first, a.size, detail.repr_chars, detail.items)}"


def _array_like(name: str, kind: str, value: Any) -> str:
    facts = [kind]
    for attr in ("shape", "dtype"):
        try:
            facts.append(f"{attr} {tuple(value.shape) if attr == 'shape' else value.dtype}")
        except Exception:
            continue
    nbytes = getattr(type(value), "nbytes", None)
    if nbytes is not None:
        try:
            facts.append(human(int(value.nbytes)))
        except Exception:
            pass
    return f"{name}: {', '.join(facts)}"


# -- pieces ---------------------------------------------------------------------------------
def _secret_name(name: str) -> bool:
    from agentspace.notebook.secrets import secret_kind

    return secret_kind(name) is not None


def type_name(value: Any) -> str:
    """``int``, ``pandas.DataFrame`` (where the package exports it), ``mod.Class``."""
    cls = type(value)
    module = cls.__module__
    if module in ("builtins", "__main__"):
        return cls.__qualname__
    top = module.split(".")[0]
    package = sys.modules.get(top)
    if package is not None and vars(package).get(cls.__name__) is cls:  # no module __getattr__
        return f"{top}.{cls.__name__}"
    return f"{module}.{cls.__qualname__}"


def _qualified(cls: type) -> str:
    return (
        cls.__qualname__
        if cls.__module__ in ("builtins", "__main__")
        else (f"{cls.__module__}.{cls.__qualname__}")
    )


_SIZED = (str, bytes, bytearray, list, tuple, dict, set, frozenset, range, memoryview)
_CHEAP_LEN_MODULES = frozenset({"builtins", "collections", "array"})


def _defined_in(cls: type, method: str) -> str | None:
    """The module of the class in ``cls``'s MRO that defines ``method``."""
    for klass in cls.__mro__:
        if method in vars(klass):
            return klass.__module__
    return None


def _cheap_len(value: Any) -> int | None:
    """``len(value)`` where a builtin (or collections') ``__len__`` answers it in O(1)."""
    if _defined_in(type(value), "__len__") not in _CHEAP_LEN_MODULES:
        return None
    try:
        return len(value)
    except Exception:
        return None


def _shallow_size(value: Any) -> int | None:
    """``sys.getsizeof`` where a builtin ``__sizeof__`` answers it (pandas' is deep: slow)."""
    if _defined_in(type(value), "__sizeof__") != "builtins":
        return None
    try:
        return sys.getsizeof(value)
    except Exception:
        return None


def human(n: int) -> str:
    """Bytes as ``812 B``, ``3.4 KiB``, ``1.0 GiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _label(column: Any) -> str:
    text = column if isinstance(column, str) else repr(column)
    return text if len(text) <= 40 else text[:39] + "…"


def _signature(fn: Any) -> str:
    try:
        return f"{fn.__name__}{inspect.signature(fn)}"[:200]
    except (TypeError, ValueError, AttributeError):
        return getattr(fn, "__name__", "?")


def short(value: Any, limit: int = BRIEF.repr_chars, items: int = BRIEF.items) -> str:
    """A repr of at most ``limit`` characters that never walks more than ``items`` items."""
    text = _short(value, limit, items, 2)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(value: Any, limit: int, items: int, depth: int) -> str:
    if isinstance(value, str):
        cut = value[:limit]
        return repr(cut) + ("…" if len(value) > limit else "")
    if isinstance(value, bytes | bytearray):
        return repr(bytes(value[:limit])) + ("…" if len(value) > limit else "")
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        bits = value.bit_length()
        return repr(value) if bits <= 512 else f"<int of {bits:,} bits>"
    if isinstance(value, float | complex):
        return repr(value)
    inner = max(limit // 3, 20)
    if isinstance(value, dict):
        if depth <= 0:
            return "{…}" if value else "{}"
        pairs = [
            f"{_short(k, inner, items, depth - 1)}: {_short(v, inner, items, depth - 1)}"
            for k, v in islice(dict.items(value), items)
        ]
        body = "{" + ", ".join(pairs) + (", …" if len(value) > items else "") + "}"
        return body if type(value) is dict else f"{type(value).__name__}({body})"
    if isinstance(value, list | tuple | set | frozenset) or type(value).__name__ == "deque":
        return _sequence(value, limit, items, depth)
    if isinstance(value, range):
        return repr(value)
    try:
        text = repr(value)
    except Exception as exc:
        return f"<{type(value).__name__}: repr raised {type(exc).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _sequence(value: Any, limit: int, items: int, depth: int) -> str:
    brackets = (
        "()" if isinstance(value, tuple) else "{}" if isinstance(value, set | frozenset) else "[]"
    )
    open_, close = brackets[0], brackets[1]
    if depth <= 0:
        return open_ + ("…" if len(value) else "") + close
    inner = max(limit // 3, 20)
    shown = [_short(v, inner, items, depth - 1) for v in islice(iter(value), items)]
    more = ", …" if len(value) > items else ""
    trailing = "," if isinstance(value, tuple) and len(value) == 1 else ""
    body = open_ + ", ".join(shown) + trailing + more + close
    if type(value) in (list, tuple, set, frozenset):
        return body
    return f"{type(value).__name__}({body})"


def _items(first: Iterable[Any], total: int, limit: int, items: int) -> str:
    shown = [_short(v, max(limit // 3, 20), items, 1) for v in first]
    text = "[" + ", ".join(shown) + (", …" if total > len(shown) else "") + "]"
    return text if len(text) <= limit else text[: limit - 1] + "…"
