"""Model adapters: litellm for every provider, a scripted provider for demos and tests.

A model knows no session: it turns a prompt and tool schemas into a stream of parts. It may
import the shared vocabulary (``errors``, ``fairness``) only.
"""
