"""Tools the agent can call: typed callables with approval policies, and kernel tools as data.

They act on the session's workspace (``agentspace.sandbox``) and may import it and the shared
vocabulary (``errors``, ``events``), never the engine, the store, models or the server.
"""
