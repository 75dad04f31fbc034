"""Tools the agent can call: typed callables with approval policies."""
