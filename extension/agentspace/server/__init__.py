"""The Jupyter server extension: the ExtensionApp, its HTTP, SSE and AG-UI handlers, previews,
and the request admission and quiet collections only a server needs (tornado lives only here).

A thin adapter over the engine's application API: it may import the engine and everything
below it; nothing imports it but ``agentspace``'s entry point.
"""
