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
(``agentspace.notebook.names.secret_kind``) shows its type and length, never its value;
the engine redacts values that look like secrets from the text as well. One value is
described by ``values``.
"""

from __future__ import annotations

import fnmatch
import time
import types
from collections.abc import Callable, Mapping
from typing import Any

from agentspace_kernel.values import BRIEF, FULL, describe_one, type_name

BUDGET = 0.5  # seconds for one listing
LIMIT = 20_000  # characters of text
IPYTHON_OWN = frozenset({"In", "Out", "exit", "quit", "get_ipython"})
MARKER_NAMES = 60  # names listed in the "not shown" line at most
_MISSING = object()


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
