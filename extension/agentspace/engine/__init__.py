"""The engine: sessions as actors, the run, approvals and policies, history, limits.

The application API lives here (``Engine`` and ``Session``); the server, the CLI and the
kernel side are adapters over it. It may import the store, tools, models, the sandbox and the
shared vocabulary (``events``, ``errors``, ``owners``, ``fairness``), never the server or the CLI.
"""
