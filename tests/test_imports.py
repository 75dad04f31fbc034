"""Dependencies run one way, read from the source with ``ast`` (nothing is imported).

Server, CLI and kernel side → engine → store, tools, models, sandbox → the shared
vocabulary (events, errors, owners, fairness). Every import counts, module-level and
function-local (a local import that dodges a cycle is still the cycle); only imports under
``if TYPE_CHECKING:`` (annotations) are left out. Each package's ``__init__`` docstring says
the same in words.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"agentspace": ROOT / "extension", "agentspace_kernel": ROOT / "kernel"}

SHARED = {"events", "errors", "owners", "fairness"}
LOWER = {"store", "tools", "models", "sandbox", "notebook", "shared"}
# part -> the parts it may import (itself always). Within the middle layer: the store keeps
# tools' data (a policy, a kernel tool's spec) and the tools act on the sandbox's workspace.
ALLOWED: dict[str, set[str]] = {
    "agentspace:shared": set(),
    "agentspace:sandbox": {"shared"},
    "agentspace:models": {"shared"},
    "agentspace:notebook": {"shared"},
    "agentspace:tools": {"sandbox", "notebook", "shared"},
    "agentspace:store": {"tools", "shared"},
    "agentspace:engine": LOWER,
    "agentspace:server": {"engine", *LOWER},
    "agentspace:cli": {"engine", *LOWER},
    "agentspace:testing": {"engine", *LOWER},
    "agentspace:root": {"server", "cli", "engine", "testing", *LOWER},
    # the kernel side: its shared modules, the client, the view, the magics on top
    "agentspace_kernel:shared": set(),
    "agentspace_kernel:client": {"shared"},
    "agentspace_kernel:view": {"shared"},
    "agentspace_kernel:agent_kernel": {"shared"},
    "agentspace_kernel:magics": {"client", "view", "shared"},
    "agentspace_kernel:root": {"magics", "client", "view", "agent_kernel", "shared"},
}
KERNEL_SHARED = {"loop", "errors", "tools", "ran", "variables", "values"}
# Across the two packages: the kernel reaches the engine only through its embedded client,
# and the extension reaches the kernel side only to hand ``%load_ext agentspace`` over;
# list_variables (a shared module) asks the notebook part which names look secret (stdlib).
ACROSS = {
    ("agentspace_kernel:client", "agentspace:engine"),
    ("agentspace_kernel:client", "agentspace:shared"),
    ("agentspace_kernel:client", "agentspace:store"),
    ("agentspace_kernel:client", "agentspace:tools"),
    ("agentspace_kernel:client", "agentspace:notebook"),
    ("agentspace:root", "agentspace_kernel:root"),
    ("agentspace_kernel:shared", "agentspace:notebook"),
}


def modules() -> dict[str, Path]:
    found = {}
    for package, base in SOURCES.items():
        for path in (base / package).rglob("*.py"):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def part(module: str) -> str:
    package, _, rest = module.partition(".")
    first = rest.split(".")[0] if rest else ""
    shared = SHARED if package == "agentspace" else KERNEL_SHARED
    if first in ("", "__main__", "launch"):
        name = "root"
    elif first in shared:
        name = "shared"
    else:
        name = first
    return f"{package}:{name}"


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements anywhere, except under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child
            stack.append(child)


def imports_of(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The agentspace modules ``module`` imports at run time."""
    tree = ast.parse(path.read_text())
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            subs = [f"{target}.{alias.name}" for alias in node.names]
            targets = [s for s in subs if s in known] or [target]
            if len(targets) < len(subs):  # names that are not modules come from ``target``
                targets.append(target)
        for name in targets:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: imports_of(m, p, known) for m, p in known.items()}


def test_the_walk_sees_the_imports_it_should(graph: dict[str, set[str]]) -> None:
    assert "agentspace.store.database" in graph["agentspace.engine.engine"]
    assert "agentspace.engine.engine" in graph["agentspace.server.app"]  # a local import
    assert "agentspace.engine.session" not in graph["agentspace.server.base"]  # TYPE_CHECKING
    assert part("agentspace.fairness.pacing") == "agentspace:shared"
    assert part("agentspace_kernel.magics.cellrun") == "agentspace_kernel:magics"


def test_no_part_imports_a_part_above_it(graph: dict[str, set[str]]) -> None:
    wrong = []
    for module, targets in sorted(graph.items()):
        mine = part(module)
        for target in sorted(targets):
            theirs = part(target)
            package, _, name = theirs.partition(":")
            if theirs == mine:
                continue
            if package == mine.partition(":")[0]:
                if name in ALLOWED[mine]:
                    continue
            elif (mine, theirs) in ACROSS:
                continue
            wrong.append(f"{module} ({mine}) imports {target} ({theirs})")
    assert wrong == []


def test_there_is_no_import_cycle(graph: dict[str, set[str]]) -> None:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_every_package_says_what_it_is_and_what_it_may_import() -> None:
    missing = []
    for module, path in modules().items():
        if path.name != "__init__.py" or "." not in module:
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if len(doc) < 40 or "import" not in doc:
            missing.append(module)
    assert missing == []
