"""The default model, by one rule for the server and the kernel's embedded mode.

Standard library only: the server extension reads it while loading, and a
notebook should behave the same under JupyterLab and under nbclient.
"""

from __future__ import annotations

import os

DEFAULT_MODEL = "scripted/echo"

PROVIDER_DEFAULTS = (
    ("OPENAI_API_KEY", "openai/gpt-4o-mini"),
    ("ANTHROPIC_API_KEY", "anthropic/claude-haiku-4-5"),
    ("GEMINI_API_KEY", "gemini/gemini-2.5-flash"),
)


def default_model() -> str:
    """A provider whose API key is in the environment, else the offline scripted demo model."""
    for variable, model in PROVIDER_DEFAULTS:
        if os.environ.get(variable):
            return model
    return DEFAULT_MODEL
