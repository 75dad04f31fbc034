"""litellm's pydantic notices never reach users: a server log, a test run, a notebook cell.

pydantic warns once per litellm TypedDict with ``ReadOnly`` items, in a singular form ("Item
'x' on TypedDict class ...") and a plural one ("Items 'x', 'y' on ..."); litellm's first call
with tools builds dozens of those schemas. Run in a fresh interpreter, so nothing this test
session imported earlier has already paid (and hidden) them.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

from agentspace.models.litellm_model import TYPEDDICT_NOTICE

PROBE = textwrap.dedent(
    """
    import asyncio, warnings
    from agentspace.models import litellm_model
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        litellm_model.load_litellm()
        asyncio.run(litellm_model._warm_call())
    assert litellm_model.warmed
    for w in caught:
        if "TypedDict" in str(w.message):
            print("LEAKED", w.message)
    """
)


def test_the_pattern_covers_both_forms() -> None:
    notices = [
        "Item 'index' on TypedDict class 'A' is using the `ReadOnly` qualifier.",
        "Items 'a', 'b', 'c' on TypedDict class 'B' are using the `ReadOnly` qualifier.",
        "Something else on TypedDict class 'C'",
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", TYPEDDICT_NOTICE, UserWarning)
        for notice in notices:
            warnings.warn(notice, UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["Something else on TypedDict class 'C'"]


def test_no_typeddict_notice_escapes_litellm_first_call_with_tools() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "LEAKED" not in done.stdout, done.stdout
    assert "TypedDict" not in done.stderr, done.stderr[-2000:]
