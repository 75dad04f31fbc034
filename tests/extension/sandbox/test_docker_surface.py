"""The docker backend's modules meet through public surfaces only (read from their source).

One ``Container`` per container is used by the sandbox, the execs, the runs and the tree
kill through its public methods: no docker module reaches into another object's private
members (``x._name`` or ``getattr(x, "_name")`` on anything but ``self``), and no module of
agentspace reaches into the docker classes' own. The one exception is the docker SDK's
internals the backend cannot do without, listed here with the reason.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "extension" / "agentspace"
DOCKER = sorted((PACKAGE / "sandbox" / "docker").glob("*.py"))
# (module, attribute): the docker SDK's (and urllib3's) own private members, not agentspace's.
SDK = {
    # docker-py's update() knows no pids or nano-CPU limit: POST /containers/{id}/update
    ("limits.py", "_url"),
    ("limits.py", "_post_json"),
    ("limits.py", "_result"),
    # the exec socket: its plain socket (timeouts, sendall) and the buffer the HTTP headers
    # were read through (it may already hold the first frames)
    ("container.py", "_sock"),
    ("container.py", "_response"),
    ("container.py", "_fp"),
}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def foreign_private(tree: ast.AST) -> Iterator[tuple[int, str, str]]:
    """(line, attribute, code) of each private member used on something other than
    ``self``/``cls``: ``x._name``, and ``getattr``/``setattr``/``hasattr(x, "_name")``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            name, owner = node.attr, node.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            name, owner = node.args[1].value, node.args[0]
        else:
            continue
        if _private(name) and not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
            yield node.lineno, name, ast.unparse(node)


def test_the_docker_modules_use_no_other_objects_private_members() -> None:
    assert {f.name for f in DOCKER} >= {"sandbox.py", "container.py", "exec.py"}
    found, used = [], set()
    for module in DOCKER:
        for line, name, code in foreign_private(ast.parse(module.read_text())):
            if (module.name, name) in SDK:
                used.add((module.name, name))
            else:
                found.append(f"{module.name}:{line}: {code}")
    assert found == []
    assert used == SDK  # an exception no longer needed is dropped from the list


def test_no_module_reaches_into_the_docker_classes_private_members() -> None:
    """By name: a private attribute a docker class sets or defines is used on ``self`` only,
    anywhere in agentspace (a name another class also uses counts too: rename one)."""
    theirs = set()
    for module in DOCKER:
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ClassDef):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef):
                        theirs.add(inner.name)
                    elif isinstance(inner, ast.Attribute) and isinstance(inner.ctx, ast.Store):
                        theirs.add(inner.attr)
    theirs = {name for name in theirs if _private(name)}
    assert "_killers" in theirs  # the scan sees the classes' members
    found = [
        f"{module.relative_to(PACKAGE)}:{line}: {code}"
        for module in sorted(PACKAGE.rglob("*.py"))
        for line, name, code in foreign_private(ast.parse(module.read_text()))
        if name in theirs and not (module in DOCKER and (module.name, name) in SDK)
    ]
    assert found == []
