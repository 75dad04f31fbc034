"""The extension paces the Jupyter server's requests once the server starts its extensions."""

from __future__ import annotations

from typing import Any

import pytest
import tornado.netutil
from tornado.httpserver import HTTPServer


@pytest.fixture
def http_server(jp_serverapp: Any, monkeypatch: pytest.MonkeyPatch) -> HTTPServer:
    monkeypatch.setattr(tornado.netutil, "_DEFAULT_BACKLOG", 128)
    server = HTTPServer(jp_serverapp.web_app)  # pytest-jupyter serves through its own
    monkeypatch.setattr(type(jp_serverapp), "http_server", server)
    return server


async def test_starting_the_extensions_paces_the_servers_requests(
    jp_serverapp: Any, http_server: HTTPServer
) -> None:
    await jp_serverapp.extension_manager.start_all_extensions()  # what ServerApp does at start
    assert getattr(http_server.start_request, "paced", False)
    assert tornado.netutil._DEFAULT_BACKLOG == 16


async def test_pace_requests_off_leaves_tornado_alone(
    jp_serverapp: Any, http_server: HTTPServer
) -> None:
    ext = jp_serverapp.extension_manager.extension_points["agentspace"].app
    ext.pace_requests = False
    await jp_serverapp.extension_manager.start_all_extensions()
    assert not getattr(http_server.start_request, "paced", False)
    assert tornado.netutil._DEFAULT_BACKLOG == 128
