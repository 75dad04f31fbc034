"""How the kernel finds its server and notebook (pure functions, a temporary runtime dir)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentspace_kernel.client.discovery import locate, notebook_key, server_for_pid


def write_info(folder: Path, pid: int, **info: object) -> None:
    base = {"url": "http://127.0.0.1:8888/lab-base/", "token": "t0k", "root_dir": "/srv/nb"}
    (folder / f"jpserver-{pid}.json").write_text(json.dumps({**base, "pid": pid, **info}))


def test_the_parent_servers_runtime_file_is_read(tmp_path: Path) -> None:
    write_info(tmp_path, 4242)
    server = server_for_pid(4242, [tmp_path])
    assert server is not None
    assert (server.url, server.token, server.root_dir) == (
        "http://127.0.0.1:8888/lab-base/",
        "t0k",
        "/srv/nb",
    )
    assert server_for_pid(4243, [tmp_path]) is None


def test_jupyterhub_token_is_used_when_the_file_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-token")
    write_info(tmp_path, 7, token="")
    server = server_for_pid(7, [tmp_path])
    assert server is not None and server.token == "hub-token"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("/srv/nb/work/a.ipynb", "work/a.ipynb"),  # the server knew the file name
        ("work/a.ipynb", "work/a.ipynb"),  # the API path
        ("/elsewhere/a.ipynb", "elsewhere/a.ipynb"),  # outside the root: kept whole
        ("", ""),
    ],
)
def test_notebook_key_is_relative_to_the_server_root(name: str, expected: str) -> None:
    assert notebook_key(name, "/srv/nb", "/srv/nb/work") == expected


def test_password_only_servers_fall_back_to_embedded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("JPY_SESSION_NAME", "/srv/nb/a.ipynb")
    write_info(tmp_path, os.getppid(), token="", password=True)
    where = locate({}, "k1")
    assert where.server is None and "password login only" in where.why
    write_info(tmp_path, os.getppid(), token="", password=False)  # auth switched off
    where = locate({}, "k1")
    assert where.server is not None and where.notebook == "a.ipynb"


def test_without_a_server_the_key_is_the_notebook_file_or_the_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.delenv("AGENTSPACE_NOTEBOOK", raising=False)
    assert locate({}, "k1").notebook == "kernels/k1.ipynb"
    vscode = locate({"__vsc_ipynb_file__": "/home/me/x.ipynb"}, "k1")
    assert vscode.server is None and vscode.notebook == "home/me/x.ipynb"
    monkeypatch.setenv("AGENTSPACE_MODE", "embedded")
    assert "AGENTSPACE_MODE=embedded" in locate({}, "k1").why
