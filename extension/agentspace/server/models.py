"""Request bodies of the API (pydantic; imported on first request, not at server start)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CreateSession(BaseModel):
    model_config = ConfigDict(extra="forbid")

    notebook: str = Field(..., min_length=1, max_length=4096, description="Path from the root.")
    model: str | None = Field(None, max_length=512, description="litellm model string.")


class SendMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(..., min_length=1, description="The user's message.")
