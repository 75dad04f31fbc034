"""Request bodies of the application API (pydantic; imported on first use, not at server start).

REST parses its bodies into them and the embedded client its arguments, through
``engine.validation.parse``, so both refuse the same input with the same words.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentspace.engine.context import PromptContext
from agentspace.tools.base import Policy
from agentspace.tools.kernel import KernelTool


class CreateSession(BaseModel):
    model_config = ConfigDict(extra="forbid")

    notebook: str = Field(..., min_length=1, max_length=4096, description="Path from the root.")
    model: str | None = Field(None, max_length=512, description="litellm model string.")


class OpenChat(BaseModel):
    """POST chats: the notebook whose chat (jupyterlab-chat) to open."""

    model_config = ConfigDict(extra="forbid")

    notebook: str = Field(..., min_length=1, max_length=4096, description="Path from the root.")


class SendMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(..., min_length=1, description="The user's message.")
    context: PromptContext | None = Field(
        None, description="Where in the notebook it was sent from (the context attached to it)."
    )


class ConfigureSession(BaseModel):
    """PATCH sessions/{id}: what to change; absent fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, min_length=1, max_length=512, description="litellm model.")
    policies: dict[str, Policy] | None = Field(
        None,
        max_length=256,
        description="Approval policy per tool name, over the server's and the tool's own.",
    )


class SetTools(BaseModel):
    """PUT sessions/{id}/tools: the kernel's tools (replacing the previous set)."""

    model_config = ConfigDict(extra="forbid")

    tools: list[KernelTool] = Field(..., max_length=100, description="The user's kernel tools.")
    run_cell: bool = Field(
        False, strict=True, description="Offer run_cell (code the user approves)."
    )
    list_variables: bool = Field(
        False,
        strict=True,
        description="Offer list_variables (the kernel describes its namespace; it answers "
        "these calls itself, without asking).",
    )


class Messages(BaseModel):
    messages: list[dict[str, Any]] = Field(
        ..., description="Transcript messages (OpenAI style, as stored), oldest first."
    )
