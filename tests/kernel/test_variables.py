"""list_variables' describer on plain namespaces: what it lists, how, and what it costs."""

from __future__ import annotations

import collections
import itertools
import subprocess
import sys
import time
import tracemalloc
import types
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from agentspace_kernel import tools, variables
from agentspace_kernel.values import describe_one, short
from agentspace_kernel.variables import describe, visible

ROOT = Path(__file__).resolve().parents[2]


def lines(text: str) -> dict[str, str]:
    """Each variable's first line, by name."""
    return {
        line.split(":", 1)[0]: line
        for line in text.splitlines()[1:]
        if line and not line.startswith((" ", "["))
    }


def _function() -> Any:
    ns: dict[str, Any] = {}  # defined as in a notebook: annotations are not strings there
    source = "def f(x: int, y: str = 'a') -> int:\n    return x"
    exec(compile(source, "<cell>", "exec", dont_inherit=True), ns)
    return ns["f"]


f = _function()


class Model:
    def __repr__(self) -> str:
        return "Model()"


def test_what_is_left_out_as_who_leaves_it_out() -> None:
    ipython_put = object()
    ns: dict[str, Any] = {
        "_private": 1, "__builtins__": {}, "In": [], "Out": {}, "exit": 1, "quit": 1,
        "get_ipython": f, "np": np, "os": types.ModuleType("os"), "hidden": ipython_put,
        "redefined": 2, "x": 3,
    }  # fmt: skip
    hidden = {"hidden": ipython_put, "redefined": object()}  # the user rebound 'redefined'
    assert visible(ns, hidden) == ["redefined", "x"]
    text = describe(ns, hidden=hidden)
    assert text.splitlines()[0] == (
        "2 variables in the kernel's namespace (modules, _names and IPython's own left out):"
    )
    assert describe({}) == (
        "0 variables in the kernel's namespace (modules, _names and IPython's own left out)."
    )


def test_one_line_each_with_type_size_and_a_short_value() -> None:
    ns = {
        "n": 42, "ratio": 0.5, "name": "hello", "flag": True, "nothing": None,
        "items": list(range(1000)), "pair": (1,), "config": {"a": 1, "b": [1, 2, 3]},
        "counts": collections.Counter("abca"), "queue": collections.deque(range(3)),
        "f": f, "Model": Model, "m": Model(), "big": 10**5000, "blob": b"\x00" * 10,
        "tags": {"x"},
    }  # fmt: skip
    got = lines(describe(ns))
    assert got["n"] == "n: int = 42"
    assert got["ratio"] == "ratio: float = 0.5"
    assert got["name"] == "name: str, len 5, 54 B = 'hello'"
    assert got["flag"] == "flag: bool = True" and got["nothing"] == "nothing: NoneType = None"
    assert got["items"].startswith("items: list, len 1,000, 7.9 KiB = [0, 1, 2, 3, 4, 5, …]")
    assert got["pair"].endswith("= (1,)")
    assert got["config"].endswith("= {'a': 1, 'b': [1, 2, 3]}")
    assert got["counts"].startswith("counts: collections.Counter, len 3")
    assert got["counts"].endswith("= Counter({'a': 2, 'b': 1, 'c': 1})")
    assert got["queue"].endswith("= deque([0, 1, 2])")
    assert got["f"] == "f: function f(x: int, y: str = 'a') -> int"
    assert got["Model"] == "Model: class tests.kernel.test_variables.Model"  # __main__'s: Model
    assert got["m"] == "m: tests.kernel.test_variables.Model = Model()"
    assert got["big"] == "big: int, 2.2 KiB = <int of 16,610 bits>"
    assert got["blob"].endswith(r"= b'\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'")
    assert got["tags"].endswith("= {'x'}")
    assert list(got) == sorted(got, key=str.lower)  # sorted by name, case aside


def test_a_value_is_never_longer_than_its_cap() -> None:
    assert len(short("x" * 10_000)) <= 120
    nested = {i: [{"k": "v" * 500}] * 100 for i in range(1000)}
    assert len(short(nested)) <= 120 and short(nested).startswith("{0: [{")
    assert len(describe_one("s", "y" * 1_000_000)) < 200


def test_a_secret_name_shows_its_type_and_length_only() -> None:
    key = "sk-proj-Ab3dEfGhIjKlMnOpQrStUvWxYz0123456789abcdEFGH"
    ns = {"OPENAI_API_KEY": key, "db_password": "hunter22", "creds": {"u": "p"}, "key": "date"}
    text = describe(ns)
    assert key not in text and "hunter22" not in text and "'p'" not in text
    got = lines(text)
    assert got["OPENAI_API_KEY"] == (
        f"OPENAI_API_KEY: str, len {len(key)} (value hidden: its name looks like a secret)"
    )
    assert got["creds"] == "creds: dict, len 1 (value hidden: its name looks like a secret)"
    assert got["key"] == "key: str, len 4, 53 B = 'date'"  # a loop variable's name
    assert key not in describe(ns, names=["OPENAI_API_KEY"])


def test_a_ten_million_row_frame_is_described_in_milliseconds() -> None:
    n = 10_000_000
    df = pd.DataFrame({"id": np.arange(n), "price": np.arange(n, dtype="float64") / 4})
    df["region"] = pd.Categorical.from_codes(np.arange(n) % 3, ["north", "south", "east"])
    started = time.perf_counter()
    text = describe({"df": df, "n": 1})
    took = time.perf_counter() - started
    assert took < 0.1, took  # the budget is 0.5 s; measured about 5 ms
    assert "df: pandas.DataFrame, 10,000,000 rows × 3 columns, 162.1 MiB" in text
    assert "  columns: id int64, price float64, region category" in text
    assert "  head(3):" in text
    head = text.split("head(3):\n", 1)[1].splitlines()
    assert head[0].split() == ["id", "price", "region"]
    assert head[1].split() == ["0", "0", "0.00", "north"]
    assert len(head) == 4 + 1  # the table, then n's line
    series = describe_one("price", df["price"])
    assert series.startswith("price: pandas.Series, len 10,000,000, float64, name 'price'")
    assert series.endswith("= [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, …]")


def test_describing_copies_nothing_big() -> None:
    df = pd.DataFrame(np.zeros((2_000_000, 4)), columns=list("abcd"))
    strided = np.zeros((4_000, 4_000))[:, ::2]  # no view of it is contiguous
    ns = {"df": df, "strided": strided, "d": dict.fromkeys(range(1_000_000))}
    describe(ns)  # warm up: pandas' formatters import on first use
    tracemalloc.start()
    try:
        describe(ns)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak  # the data is 64 + 64 MB and a million keys


def test_columns_are_capped_and_the_detail_shows_more() -> None:
    wide = pd.DataFrame(np.zeros((5, 120)), columns=[f"c{i}" for i in range(120)])
    brief = describe_one("wide", wide)
    assert ", c49 float64, … 70 more" in brief and "c50" not in brief.split("head")[0]
    detail = describe({"wide": wide}, names=["wide"])
    assert "c119 float64" in detail and "head(5):" in detail


def test_an_index_and_arrays() -> None:
    frame = pd.DataFrame({"v": [1, 2]}, index=pd.Index(["a", "b"], name="key"))
    assert "  index: Index 'key'" in describe_one("frame", frame)
    arr = np.arange(12.0).reshape(3, 4)
    assert describe_one("arr", arr) == (
        "arr: numpy.ndarray, shape (3, 4), float64, 96 B = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, …]"
    )
    assert describe_one("col", arr[:, 1]).endswith("= [1.0, 5.0, 9.0]")


def test_what_has_no_cheap_len_or_size_is_not_asked() -> None:
    class Lazy:
        def __len__(self) -> int:
            raise AssertionError("len() was called")

        def __sizeof__(self) -> int:
            raise AssertionError("sys.getsizeof() was called")

        def __repr__(self) -> str:
            return "Lazy()"

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    got = lines(describe({"lazy": Lazy(), "broken": Broken()}))
    assert got["lazy"].startswith("lazy: tests.") and got["lazy"].endswith("Lazy = Lazy()")
    assert got["broken"].endswith("Broken = <Broken: repr raised RuntimeError>")


def test_names_and_pattern() -> None:
    ns = {"df_a": 1, "df_b": 2, "other": 3, "_x": 4}
    assert list(lines(describe(ns, pattern="df_*"))) == ["df_a", "df_b"]
    assert describe(ns, pattern="zz*").startswith("0 variables matching 'zz*'")
    text = describe(ns, names=["other", "nope", "_x", "other"])
    assert text.splitlines() == [
        "3 variables in detail:",
        "other: int = 3",
        "nope: not defined in the kernel's namespace",
        "_x: int = 4",  # asked for by name: shown though a listing leaves it out
    ]


def test_the_time_budget_ends_the_listing_and_says_what_is_missing() -> None:
    ticks = itertools.count()
    ns = {f"v{i:02d}": i for i in range(20)}
    text = describe(ns, budget=0.5, clock=lambda: next(ticks) * 0.2)
    assert text.splitlines()[1:4] == ["v00: int = 0", "v01: int = 1", "v02: int = 2"]
    assert text.splitlines()[-1] == (
        "[... 17 more variables not described within the 0.5 s budget: call list_variables "
        "with names=[...] (or a pattern) for them: " + ", ".join(f"v{i:02d}" for i in range(3, 20))
        + "]"
    )  # fmt: skip


def test_the_size_cap_ends_the_listing_with_a_marker() -> None:
    ns = {f"s{i:04d}": "x" * 100 for i in range(1000)}
    text = describe(ns)
    assert len(text) <= variables.LIMIT
    last = text.splitlines()[-1]
    assert last.startswith("[... ") and "not shown (the 20,000-character limit)" in last
    assert last.endswith(", …]")
    shown = len(lines(text))
    assert f"[... {1000 - shown} more variables" in last
    assert len(describe(ns, limit=3_000)) <= 3_000


def test_a_thousand_mixed_variables_take_milliseconds() -> None:
    kinds: list[Any] = [1, "text", [1, 2], {"a": 1}, 2.5, f, Model(), np.arange(10), None]
    ns = {f"var{i}": kinds[i % len(kinds)] for i in range(1000)}
    describe(ns)
    started = time.perf_counter()
    describe(ns)
    assert time.perf_counter() - started < 0.25


def test_tools_call_dispatches_list_variables_to_the_describer() -> None:
    text, failed = tools.call("list_variables", {"pattern": "*"})
    assert failed  # no IPython shell in this process
    assert "needs an IPython kernel" in text
    with pytest.raises(ValueError, match="built in"):
        tools.agent_tool(f, name="list_variables")


def test_pandas_and_numpy_are_not_imported_by_describing() -> None:
    code = (
        "import sys\n"
        "from agentspace_kernel.variables import describe\n"
        "print(describe({'x': 1, 'l': [1, 2], 'd': {'a': object()}}))\n"
        "assert 'pandas' not in sys.modules and 'numpy' not in sys.modules, 'imported'\n"
    )
    paths = f"{ROOT / 'extension'}:{ROOT / 'kernel'}"
    done = subprocess.run(
        [sys.executable, "-c", code], env={"PYTHONPATH": paths}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "x: int = 1" in done.stdout
