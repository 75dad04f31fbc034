"""One value described for ``list_variables``: its type, size, shape and a short repr.

Cheap by construction (see ``variables``): nothing copied but a few rows or items, shallow
sizes, ``len`` only of the builtin containers, pandas and numpy looked up in ``sys.modules``
and never imported; a name that looks like a secret shows its type and length only.
"""

from __future__ import annotations

import inspect
import sys
import types
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Any


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
    from agentspace.notebook.names import secret_kind

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
