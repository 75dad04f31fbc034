"""The OpenAPI document of the REST API, built from the same pydantic models the handlers use.

Generated rather than hand-written so it cannot drift from the code: request
bodies and responses are the models' JSON schemas. CI runs schemathesis against
a live server with it (no 500s, no responses outside the schema).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from .base import AgentspaceHandler
from .streams import MAX_SEQ

ERRORS = {
    "400": "Malformed request (bad JSON, a bad query or header value, an empty message)",
    "403": "Not authenticated or not authorized; or a path that leaves the workspace",
    "404": "Unknown session, file or process",
    "409": "The session is in the wrong state for this",
    "413": "Request body too large",
    "422": "Request body invalid",
    "429": "Rate limited or queue full",
    "501": "jupyterlab-chat is not installed or not enabled on this server (POST chats)",
    "503": "The session's sandbox is unavailable, or the state database is damaged "
    "(store_damaged: the message says how to repair it)",
}
# Every error is JSON {"error": code, "message": text}; some add fields a client can act on.
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "Stable machine-readable code."},
        "message": {"type": "string", "description": "What went wrong and what to do."},
        "limit": {"type": "integer", "description": "The bound that was crossed (413)."},
        "queued": {"type": "integer", "description": "Messages already waiting (429)."},
        "retry_after": {"type": "integer", "description": "Seconds to wait (429)."},
        "pending": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Tool calls still waiting for a decision (409).",
        },
    },
    "additionalProperties": True,
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds until a message is accepted again (rate limit only).",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}


_INT_OR_NULL: dict[str, Any] = {"type": ["integer", "null"]}
STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["ok", "message", "store", "orphaned_workspaces", "sessions_without_workspace",
                 "sandbox", "models"],
    "properties": {
        "ok": {"type": "boolean"},
        "message": {"type": "string", "description": "What is wrong and what to do."},
        "store": {
            "type": "object",
            "required": ["path", "schema_version", "schema_current", "sessions", "integrity"],
            "properties": {
                "path": {"type": "string"},
                "schema_version": _INT_OR_NULL,
                "schema_current": {"type": "boolean"},
                "sessions": _INT_OR_NULL,
                "integrity": {
                    "type": "object",
                    "required": ["state", "detail", "checked_at"],
                    "properties": {
                        "state": {"enum": ["ok", "damaged", "incomplete", "unchecked"]},
                        "detail": {"type": "string"},
                        "checked_at": {"type": ["number", "null"]},
                    },
                },
            },
        },
        "orphaned_workspaces": {"type": "array", "items": {
            "type": "object",
            "required": ["id", "path", "bytes", "bytes_complete", "notebook"],
            "properties": {
                "id": {"type": "string"},
                "path": {"type": "string"},
                "bytes": {"type": "integer"},
                "bytes_complete": {"type": "boolean"},
                "notebook": {"type": ["string", "null"]},
            },
        }},
        "sessions_without_workspace": {"type": "array", "items": {
            "type": "object",
            "required": ["id", "notebook", "path"],
            "properties": {"id": {"type": "string"}, "notebook": {"type": "string"},
                           "path": {"type": "string"}},
        }},
        "sandbox": {"type": "string", "description": "The sandbox backend in use."},
        "models": {"$ref": "#/components/schemas/ModelChoices"},
    },
}  # fmt: skip


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
    for code in (*errors, *(() if "503" in errors else ("503",))):  # store_damaged: any call
        responses[code] = {"description": ERRORS[code], "content": _json(_ref("Error"))}
        if code == "429":
            responses[code]["headers"] = RETRY_AFTER
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body:
        op["requestBody"] = {"required": True, "content": _json(_ref(body))}
    if params:
        op["parameters"] = params
    return op


def _param(
    name: str, where: str, schema: dict[str, Any], required: bool = True, description: str = ""
) -> dict[str, Any]:
    param = {"name": name, "in": where, "required": required, "schema": schema}
    if description:
        param["description"] = description
    return param


SID = _param("session_id", "path", {"type": "string"})


def _array(key: str, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [key],
        "properties": {key: {"type": "array", "items": item}},
    }


def _object(required: list[str], **properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


STRING: dict[str, Any] = {"type": "string"}
SEQ: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": MAX_SEQ}
DIGITS: dict[str, Any] = {"type": "string", "pattern": "^[0-9]*$"}  # a header: blank is absent
NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}


def _require_discriminators(schemas: dict[str, Any]) -> None:
    """Make each discriminated union's tag required in its variants, as pydantic validates it.

    A tag with a default (``role: Literal["user"] = "user"``) is optional in the model's
    JSON schema, but a discriminated union cannot pick a variant without it: a message
    without ``role`` is a 422. The document says so.
    """

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            tag = node.get("discriminator", {}).get("propertyName")
            if tag:
                for target in node["discriminator"].get("mapping", {}).values():
                    variant = schemas.get(target.rsplit("/", 1)[-1], {})
                    required = variant.setdefault("required", [])
                    if tag in variant.get("properties", {}) and tag not in required:
                        required.append(tag)
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(schemas)


@cache
def document(base_url: str = "/") -> dict[str, Any]:
    from ag_ui.core import RunAgentInput
    from pydantic import BaseModel
    from pydantic.json_schema import models_json_schema

    from agentspace.engine.config import ModelChoices
    from agentspace.engine.kerneltools import ToolListing
    from agentspace.engine.requests import (
        ConfigureSession,
        CreateSession,
        Messages,
        OpenChat,
        SendMessage,
        SetTools,
    )
    from agentspace.engine.session import Receipt
    from agentspace.sandbox.processes import ProcessRecord
    from agentspace.store.approvals import Decision
    from agentspace.store.records import SessionInfo

    from .sessions import MAX_LIMIT

    inputs: list[type[BaseModel]] = [
        CreateSession, SendMessage, Decision, RunAgentInput, ConfigureSession, SetTools, OpenChat,
    ]  # fmt: skip
    outputs: list[type[BaseModel]] = [
        SessionInfo, Receipt, ProcessRecord, ToolListing, Messages, ModelChoices,
    ]  # fmt: skip
    _, defs = models_json_schema(
        [(m, "validation") for m in inputs] + [(m, "serialization") for m in outputs],
        ref_template="#/components/schemas/{model}",
        by_alias=True,
    )
    schemas = defs.get("$defs", {})
    _require_discriminators(schemas)
    # An 'edit' decision carries the new arguments, a 'result' its output, and only a
    # 'result' carries output or is_error (Decision's model validator).
    schemas["Decision"]["allOf"] = [
        {
            "if": {"properties": {"decision": {"const": "edit"}}, "required": ["decision"]},
            "then": {"required": ["arguments"], "properties": {"arguments": {"type": "object"}}},
        },
        {
            "if": {"properties": {"decision": {"const": "result"}}, "required": ["decision"]},
            "then": {"required": ["output"], "properties": {"output": {"type": "string"}}},
            "else": {
                "properties": {"output": {"type": "null"}, "is_error": {"const": False}},
            },
        },
    ]
    schemas["Error"] = ERROR_SCHEMA
    status = _object(["status"], status=STRING)
    sse = {"text/event-stream": {"schema": {"type": "string"}}}
    entry = _object(
        ["path", "kind"],
        path=STRING,
        kind={"enum": ["file", "dir", "symlink", "other"]},
        size={"type": ["integer", "null"]},
        target=NULLABLE_STRING,
    )
    sessions = "/sessions/{session_id}"
    paths: dict[str, Any] = {
        "/status": {
            "get": _op("The store's health (integrity, sessions, orphaned workspaces), the "
                       "sandbox, the models to pick from", ("200", STATUS_SCHEMA),
                       errors=("403",)),
        },
        "/notebooks/links": {
            "get": _op("The notebooks a browser has open and linked (docs/notebook-link.md)",
                       ("200", _array("links", _object(["path", "client", "since"],
                                                       path={"type": "string"},
                                                       client={"type": "string"},
                                                       since={"type": "number"}))),
                       errors=("403",)),
        },
        "/chats": {
            "post": _op("The notebook's agent chat (jupyterlab-chat): its file, made if missing, "
                        "and its session", ("200", _object(["path", "session"], path=STRING,
                                                          session=STRING)),
                        body="OpenChat", errors=("400", "403", "413", "422", "501")),
        },
        "/openapi.json": {
            "get": _op("This document", ("200", {"type": "object"}), errors=("403",)),
        },
        "/sessions": {
            "get": _op("List sessions", ("200", _array("sessions", _ref("SessionInfo"))),
                       errors=("400", "403")),
            "post": _op("Create (or get) the session of a notebook", ("200", _ref("SessionInfo")),
                        body="CreateSession", errors=("400", "403", "413", "422")),
        },
        sessions: {
            "get": _op("A session", ("200", _ref("SessionInfo")), params=[SID]),
            "patch": _op("Change the session's model or tool policies",
                         ("200", _ref("SessionInfo")), body="ConfigureSession", params=[SID],
                         errors=("400", "403", "404", "409", "413", "422")),
            "delete": _op("Delete a session (its processes stop)", ("204", None), params=[
                SID, _param("purge", "query", {"type": "boolean"}, False,
                            "Also delete its workspace and history.")]),
        },
        f"{sessions}/messages": {
            "get": _op("The transcript (the last 'limit' messages)", ("200", _ref("Messages")),
                       params=[SID, _param("limit", "query", {"type": "integer", "minimum": 1,
                                           "maximum": MAX_LIMIT}, False,
                                           "Only the newest messages (default: all).")]),
            "post": _op("Send a message (queued)", ("202", _ref("Receipt")), body="SendMessage",
                        params=[SID], errors=("400", "403", "404", "409", "413", "422", "429")),
        },
        f"{sessions}/events": {
            "get": _op("AG-UI events (SSE): replay after N, then live", ("200", {}), params=[
                SID,
                _param("after", "query", SEQ, False, "Replay the events after this number."),
                _param("Last-Event-ID", "header", DIGITS, False,
                       "What an EventSource sends on reconnect; wins over 'after'."),
            ], content=sse),
        },
        f"{sessions}/stop": {
            "post": _op("Stop the run in flight", ("200", status), params=[SID]),
        },
        f"{sessions}/resume": {
            "post": _op("Resume after stop, failure or restart", ("200", _object(
                ["status", "running"], status=STRING, running={"type": "boolean"})),
                params=[SID], errors=("400", "403", "404", "409")),
        },
        f"{sessions}/approvals/{{tool_call_id}}": {
            "post": _op("Decide a pending tool call", ("200", _object(
                ["pending", "status"], pending={"type": "array", "items": STRING}, status=STRING)),
                body="Decision", params=[SID, _param("tool_call_id", "path", STRING)],
                errors=("400", "403", "404", "409", "413", "422")),
        },
        f"{sessions}/tools": {
            "get": _op("The tools offered to the model (sandbox and kernel)",
                       ("200", _ref("ToolListing")), params=[SID]),
            "put": _op("Set the kernel's tools (replaces them) and which built-ins are offered",
                       ("200", _ref("ToolListing")), body="SetTools", params=[SID],
                       errors=("400", "403", "404", "413", "422")),
        },
        f"{sessions}/agui": {
            "post": _op("AG-UI run: RunAgentInput in, this run's events out (SSE)", ("200", {}),
                        body="RunAgentInput", params=[SID], content=sse,
                        errors=("400", "403", "404", "409", "413", "422", "429")),
        },
        f"{sessions}/files": {
            "get": _op("List a workspace folder", ("200", _object(
                ["path", "entries", "truncated"], path=STRING,
                entries={"type": "array", "items": entry}, truncated={"type": "boolean"})),
                params=[
                    SID,
                    _param("path", "query", STRING, False, "The folder (default: the root)."),
                    _param("recursive", "query", {"type": "boolean"}, False,
                           "List the whole tree (at most 1000 entries)."),
                ]),
        },
        f"{sessions}/files/{{path}}": {
            "get": _op("A workspace file's content", ("200", {}), params=[
                SID, _param("path", "path", STRING)],
                content={"*/*": {"schema": {"type": "string", "format": "binary"}}}),
            "put": {**_op("Write a workspace file", ("200", _object(
                ["path", "size"], path=STRING, size={"type": "integer"})), params=[
                SID, _param("path", "path", STRING)], errors=("400", "403", "404", "413")),
                "requestBody": {"content": {"application/octet-stream": {
                    "schema": {"type": "string", "format": "binary"}}}}},
        },
        f"{sessions}/processes": {
            "get": _op("Background processes", ("200", _array("processes", _ref("ProcessRecord"))),
                       params=[SID], errors=("400", "403", "404", "503")),
        },
        f"{sessions}/processes/{{name}}/output": {
            "get": _op("A process's last output lines", ("200", _object(
                ["name", "output"], name=STRING, output=STRING)), params=[
                SID, _param("name", "path", STRING),
                _param("tail", "query", {"type": "integer", "minimum": 1, "maximum": 100000},
                       False, "How many lines (default 100).")],
                errors=("400", "403", "404", "503")),
        },
        f"{sessions}/processes/{{name}}/stop": {
            "post": _op("Stop a background process", ("200", _ref("ProcessRecord")), params=[
                SID, _param("name", "path", STRING)], errors=("400", "403", "404", "503")),
        },
        f"{sessions}/processes/{{name}}/restart": {
            "post": _op("Start a background process again with its command (stopped first if "
                        "it runs)", ("200", _ref("ProcessRecord")), params=[
                SID, _param("name", "path", STRING)], errors=("400", "403", "404", "503")),
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
                "token": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "'token <the server's token>'",
                }
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
