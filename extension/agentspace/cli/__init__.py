"""The ``agentspace`` command: sessions, history, approvals and ``doctor``, over the engine.

It may import the engine and everything below it; nothing imports it.
"""
