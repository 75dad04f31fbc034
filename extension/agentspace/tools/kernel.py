"""Kernel tools as data: a tool the notebook's kernel runs, as the kernel declares it.

The engine cannot run these (the kernel does); it offers them to the model and holds each
call like an approval (``engine.kerneltools`` has the rules). The spec is stored in the
session record, so it is data here, below the store and the engine.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from agentspace.tools.base import Policy, openai_function

RUN_CELL = "run_cell"
"""The built-in kernel tool: code the user's kernel runs after the user approves it."""
LIST_VARIABLES = "list_variables"
"""The built-in kernel tool that describes the user's namespace (it runs without asking)."""
BUILTIN = (RUN_CELL, LIST_VARIABLES)

STORED = "stored"
"""Validation context key: a spec loaded from the store was checked when it was set."""

NAME_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]{0,63}$"


OBJECT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


class KernelTool(BaseModel):
    """A tool the notebook's kernel runs: its name, manual, JSON Schema and policy."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., pattern=NAME_PATTERN, description="A Python identifier, 1-64 chars.")
    description: str = Field(..., max_length=16_000, description="The model's manual.")
    parameters: dict[str, Any] = Field(
        default_factory=lambda: dict(OBJECT_SCHEMA),
        description="A JSON Schema for an object: the call's arguments.",
        json_schema_extra={"properties": {"type": {"const": "object"}}, "required": ["type"]},
    )
    policy: Policy = Field("allow", description="allow: just run it; ask: approve first; deny.")

    @field_validator("parameters")
    @classmethod
    def _object_schema(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if value.get("type") != "object":
            raise ValueError(
                'parameters must be a JSON Schema for an object: {"type": "object", '
                '"properties": {...}}'
            )
        if info.context and info.context.get(STORED):
            return value  # checked when it was set; a load must not import jsonschema (slow)
        from jsonschema.exceptions import SchemaError
        from jsonschema.validators import validator_for

        try:
            validator_for(value).check_schema(value)
        except SchemaError as exc:
            raise ValueError(f"parameters is not a valid JSON Schema: {exc.message}") from None
        return value

    def openai_schema(self) -> dict[str, Any]:
        """The function description in the OpenAI ``tools`` format (what litellm expects)."""
        return openai_function(self.name, self.description, self.parameters)


RUN_CELL_TOOL = KernelTool.model_construct(  # no validation at import: jsonschema is slow
    name=RUN_CELL,
    description=(
        "Run Python code in the user's notebook kernel, in the user's namespace: their "
        "variables, imports and loaded data are there, and what you define stays there. The "
        "user sees the code as a notebook cell and approves (or edits, or rejects) it before it "
        "runs; the cell's output is the result. Use it to inspect or compute with the "
        "notebook's live objects; use the workspace tools for files and commands. To run a "
        "cell of the notebook as it is, give its cell_id instead of code."
    ),
    parameters={
        "type": "object",
        "properties": {
            "code": {"type": "string", "description": "Python code (one cell)."},
            "cell_id": {
                "type": "string",
                "description": "Run this notebook cell's source (its id, from read_notebook) "
                "instead of code.",
            },
        },
        "additionalProperties": False,
    },
    policy="ask",
)


LIST_VARIABLES_TOOL = KernelTool.model_construct(
    name=LIST_VARIABLES,
    description=(
        "List the variables in the user's notebook kernel: one line each with its name, type, "
        "size and a short value (modules, _private names and IPython's own are left out); "
        "DataFrames, Series and arrays also show their shape, dtypes, columns and first rows. "
        "It only looks: nothing is copied, run or changed, and the user is not asked. Call it "
        "before proposing code that uses the user's data, to get names and columns right. "
        "Pass names=[...] for more detail on some variables (more rows, columns and "
        "characters), or pattern='df_*' (a glob) to list only matching names. Values whose "
        "name looks like a secret are hidden."
    ),
    parameters={
        "type": "object",
        "properties": {
            "names": {
                "type": "array",
                "items": {"type": "string", "maxLength": 200},
                "maxItems": 100,
                "description": "Variables to describe in more detail (others are left out).",
            },
            "pattern": {
                "type": "string",
                "maxLength": 200,
                "description": "A glob on names, e.g. 'df*' or '*_2024' (case-sensitive).",
            },
        },
        "additionalProperties": False,
    },
    policy="allow",
)
