"""The OpenAPI document of the REST API, built from the same pydantic models the handlers use.

Generated rather than hand-written so it cannot drift from the code: request
bodies and responses are the models' JSON schemas. CI runs schemathesis against
a live server with it (no 500s, no responses outside the schema).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from ag_ui.core import RunAgentInput
from jupyter_server.auth.decorator import authorized
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from tornado import web

from ..approvals import Decision
from ..records import SessionInfo
from ..session import Receipt
from ..workspace.processes import ProcessRecord
from .base import AgentspaceHandler
from .sessions import CreateSession, SendMessage

ERRORS = {
    "400": "Malformed request",
    "403": "Not authenticated or not authorized",
    "404": "Unknown session, file or process",
    "409": "The session is in the wrong state for this",
    "413": "Request body too large",
    "422": "Request body invalid",
    "429": "Rate limited or queue full",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _op(
    summary: str,
    ok: tuple[str, dict[str, Any] | None],
    *,
    body: str | None = None,
    params: list[dict[str, Any]] | None = None,
    errors: tuple[str, ...] = ("400", "403", "404"),
    content: dict[str, Any] | None = None,
) -> dict[str, Any]:
    status, schema = ok
    responses: dict[str, Any] = {
        status: {"description": "OK", **({"content": content or _json(schema)} if schema else {})}
    }
    for code in errors:
        responses[code] = {"description": ERRORS[code], "content": _json(_ref("Error"))}
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body:
        op["requestBody"] = {"required": True, "content": _json(_ref(body))}
    if params:
        op["parameters"] = params
    return op


def _param(name: str, where: str, schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "schema": schema}


SID = _param("session_id", "path", {"type": "string"})


def _array(key: str, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [key],
        "properties": {key: {"type": "array", "items": item}},
    }


@cache
def document(base_url: str = "/") -> dict[str, Any]:
    models: list[type[BaseModel]] = [
        CreateSession, SendMessage, Decision, SessionInfo, Receipt, ProcessRecord, RunAgentInput,
    ]  # fmt: skip
    _, defs = models_json_schema(
        [(m, "validation" if m in (CreateSession, SendMessage, Decision) else "serialization")
         for m in models],
        ref_template="#/components/schemas/{model}",
        by_alias=True,
    )  # fmt: skip
    schemas = defs.get("$defs", {})
    schemas["Error"] = {
        "type": "object",
        "required": ["error", "message"],
        "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
    }
    status = {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string"}},
    }
    sse = {"text/event-stream": {"schema": {"type": "string"}}}
    sessions = "/sessions/{session_id}"
    paths: dict[str, Any] = {
        "/sessions": {
            "get": _op("List sessions", ("200", _array("sessions", _ref("SessionInfo"))),
                       errors=("403",)),
            "post": _op("Create (or get) the session of a notebook", ("200", _ref("SessionInfo")),
                        body="CreateSession", errors=("400", "403", "413", "422")),
        },
        sessions: {
            "get": _op("A session", ("200", _ref("SessionInfo")), params=[SID]),
            "delete": _op("Delete a session (its processes stop)", ("204", None), params=[
                SID, _param("purge", "query", {"type": "boolean"}, False)]),
        },
        f"{sessions}/messages": {
            "post": _op("Send a message (queued)", ("202", _ref("Receipt")), body="SendMessage",
                        params=[SID], errors=("400", "403", "404", "409", "413", "422", "429")),
        },
        f"{sessions}/events": {
            "get": _op("AG-UI events (SSE): replay after N, then live", ("200", {}), params=[
                SID, _param("after", "query", {"type": "integer", "minimum": 0}, False)],
                content=sse),
        },
        f"{sessions}/stop": {
            "post": _op("Stop the run in flight", ("200", status), params=[SID]),
        },
        f"{sessions}/resume": {
            "post": _op("Resume after stop, failure or restart", ("200", status), params=[SID],
                        errors=("400", "403", "404", "409")),
        },
        f"{sessions}/approvals/{{tool_call_id}}": {
            "post": _op("Decide a pending tool call", ("200", {
                "type": "object", "required": ["pending", "status"], "properties": {
                    "pending": {"type": "array", "items": {"type": "string"}},
                    "status": {"type": "string"}}}),
                body="Decision", params=[SID, _param("tool_call_id", "path", {"type": "string"})],
                errors=("400", "403", "404", "409", "413", "422")),
        },
        f"{sessions}/agui": {
            "post": _op("AG-UI run: RunAgentInput in, this run's events out (SSE)", ("200", {}),
                        body="RunAgentInput", params=[SID], content=sse,
                        errors=("400", "403", "404", "409", "413", "422", "429")),
        },
        f"{sessions}/files": {
            "get": _op("List a workspace folder", ("200", {"type": "object"}), params=[
                SID, _param("path", "query", {"type": "string"}, False),
                _param("recursive", "query", {"type": "boolean"}, False)]),
        },
        f"{sessions}/files/{{path}}": {
            "get": _op("A workspace file's content", ("200", {}), params=[
                SID, _param("path", "path", {"type": "string"})],
                content={"*/*": {"schema": {"type": "string", "format": "binary"}}}),
            "put": {**_op("Write a workspace file", ("200", {"type": "object"}), params=[
                SID, _param("path", "path", {"type": "string"})], errors=("400", "403", "404",
                "413")), "requestBody": {"content": {"application/octet-stream": {
                    "schema": {"type": "string", "format": "binary"}}}}},
        },
        f"{sessions}/processes": {
            "get": _op("Background processes", ("200", _array("processes", _ref("ProcessRecord"))),
                       params=[SID]),
        },
        f"{sessions}/processes/{{name}}/output": {
            "get": _op("A process's last output lines", ("200", {"type": "object"}), params=[
                SID, _param("name", "path", {"type": "string"}),
                _param("tail", "query", {"type": "integer", "minimum": 1, "maximum": 100000},
                       False)]),
        },
        f"{sessions}/processes/{{name}}/stop": {
            "post": _op("Stop a background process", ("200", _ref("ProcessRecord")), params=[
                SID, _param("name", "path", {"type": "string"})]),
        },
    }  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {"title": "agentspace", "version": "1", "description": __doc__.split("\n")[0]},
        "servers": [{"url": f"{base_url.rstrip('/')}/agentspace/api"}],
        "security": [{"token": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "Authorization"}
            },
        },
    }


class OpenApiHandler(AgentspaceHandler):
    auth_resource = "agentspace:api"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(document(self.base_url)))
