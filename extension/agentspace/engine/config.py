"""Engine settings: one validated object, built once from traitlets, the CLI or tests.

Why pydantic and not module globals or environment reads: every setting is
named, typed and documented in one place, and the server extension maps its
traitlets (``c.AgentspaceApp.*``) onto this object instead of scattering
``os.environ`` lookups through the engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentspace.engine.defaults import (
    DEFAULT_MODEL,
    PROVIDER_MODELS,
    default_model,
    suggested_models,
)
from agentspace.sandbox.base import SandboxChoice, SandboxPolicy
from agentspace.tools.base import Policy

__all__ = [
    "DEFAULT_MODEL",
    "EngineConfig",
    "Limits",
    "ModelChoices",
    "Policy",
    "default_model",
    "model_choices",
]


def default_state_dir() -> Path:
    """The Jupyter data dir's ``agentspace`` folder (same place the server uses)."""
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "agentspace"


class Limits(BaseModel):
    """Bounds that protect the server and the user's wallet; each is a clear error when crossed."""

    model_config = ConfigDict(extra="forbid")

    max_queue: int = Field(32, ge=1, description="Messages waiting per session.")
    max_message_bytes: int = Field(256_000, ge=1, description="Largest user message, UTF-8 bytes.")
    max_model_calls: int = Field(20, ge=1, description="Model calls in one run.")
    token_budget: int | None = Field(
        None, ge=1, description="Total tokens (input + output) a session may use; None = no cap."
    )
    cost_ceiling: float | None = Field(
        None, ge=0, description="Total USD a session may spend; None = no cap."
    )
    context_window: int | None = Field(
        None, ge=256, description="Override the model's context window (tokens) for trimming."
    )
    max_tool_result_chars: int = Field(
        20_000, ge=100, description="Tool result length sent to the model; the rest is cut."
    )
    model_retries: int = Field(3, ge=0, description="Retries of a transient provider error.")
    retry_backoff: float = Field(0.5, ge=0, description="First retry delay in seconds; doubles.")
    max_retry_after: float = Field(
        30.0, ge=0, description="Longest provider Retry-After (s) waited before a retry."
    )
    first_byte_timeout: float = Field(
        60.0, gt=0, description="Seconds a model call may take to send its first chunk."
    )
    chunk_timeout: float = Field(
        60.0, gt=0, description="Seconds a model stream may go quiet between two chunks."
    )


class EngineConfig(BaseModel):
    """Everything the engine needs to know; per-session values override model and policies."""

    model_config = ConfigDict(extra="forbid")

    state_dir: Path = Field(default_factory=default_state_dir)
    model: str = Field(DEFAULT_MODEL, description="Default litellm model string.")
    model_params: dict[str, Any] = Field(
        default_factory=dict, description="Extra litellm parameters (temperature, api_base...)."
    )
    system_prompt: str = Field(
        "You are an agent working beside a Jupyter notebook. You have a workspace folder "
        "and tools to read, write, edit and list its files. Where you have the notebook tools, "
        "read the notebook (read_notebook) before you change it, and change cells with "
        "edit_cell, insert_cell and delete_cell: the user approves each change. Be concise.",
    )
    attach_context: bool = Field(
        True,
        description="Attach the notebook context to each prompt (its cell, the neighbours, the "
        "last error) where the sender gives it; False never attaches any.",
    )
    policies: dict[str, Policy] = Field(
        default_factory=dict, description="Approval policy per tool name, over tool defaults."
    )
    limits: Limits = Field(default_factory=Limits)
    sandbox: SandboxChoice = Field(
        "auto",
        description="Where commands run: bubblewrap, docker, local (no isolation) or auto "
        "(bubblewrap, else docker; never local unless chosen).",
    )
    sandbox_policy: SandboxPolicy = Field(default_factory=SandboxPolicy)
    docker_host: str | None = Field(None, description="Docker engine URL (default: DOCKER_HOST).")
    preview_url: str | None = Field(
        "/agentspace/preview/{session_id}/{port}/",
        description="URL template of previews ({session_id}, {port}), served by the server; "
        "None: a token-checked forwarder on 127.0.0.1 per port (embedded mode, no server).",
    )

    @field_validator("state_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Workspaces are bind-mounted and shown to people: keep every path absolute.
        return value.expanduser().absolute()


class ModelChoices(BaseModel):
    """Models a view may offer to pick from (``GET status``): suggestions, not a catalogue."""

    default: str = Field(description="The server's default model (for sessions with none).")
    models: list[str] = Field(description="Model strings to pick from, the default first.")
    about: str = Field(description="What the list is, and what it is not.")


def model_choices(default: str) -> ModelChoices:
    """The server's default, the demo models and those of providers with a key here (read
    from the environment now; nothing is imported or asked of a provider)."""
    keys = ", ".join(variable for variable, _ in PROVIDER_MODELS)
    about = (
        "The server's default model, the offline scripted demo model, and two models of each "
        f"provider whose API key is set in the server's environment ({keys}). Suggestions, "
        "not a catalogue: any litellm model string works, and a key given another way (a "
        "litellm config, model parameters) is not seen here."
    )
    return ModelChoices(default=default, models=suggested_models(default), about=about)
