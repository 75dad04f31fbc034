"""The default model, by one rule for the server and the kernel's embedded mode.

Standard library only: the server extension reads it while loading, and a
notebook should behave the same under JupyterLab and under nbclient.
"""

from __future__ import annotations

import os

DEFAULT_MODEL = "scripted/echo"
DEMO_MODELS = (DEFAULT_MODEL,)  # scripted/<path to a JSON script> plays a script too

# A provider's key in the environment, and models of it to suggest: its default first.
PROVIDER_MODELS = (
    ("OPENAI_API_KEY", ("openai/gpt-4o-mini", "openai/gpt-4o")),
    ("ANTHROPIC_API_KEY", ("anthropic/claude-haiku-4-5", "anthropic/claude-sonnet-4-5")),
    ("GEMINI_API_KEY", ("gemini/gemini-2.5-flash", "gemini/gemini-2.5-pro")),
)
PROVIDER_DEFAULTS = tuple((variable, models[0]) for variable, models in PROVIDER_MODELS)


def default_model() -> str:
    """A provider whose API key is in the environment, else the offline scripted demo model."""
    for variable, model in PROVIDER_DEFAULTS:
        if os.environ.get(variable):
            return model
    return DEFAULT_MODEL


def suggested_models(default: str) -> list[str]:
    """Model strings to pick from: ``default`` (the server's), the scripted demo models, and
    the suggested models of each provider whose API key is in this environment; each once.

    A short list of suggestions, not a catalogue: any litellm model string works, and a key
    set any other way (a litellm config, ``api_key`` in the model parameters) is not seen.
    """
    found = [default, *DEMO_MODELS]
    for variable, models in PROVIDER_MODELS:
        if os.environ.get(variable):
            found.extend(models)
    return list(dict.fromkeys(found))
