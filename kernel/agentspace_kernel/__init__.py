"""Kernel side of agentspace: magics, widgets and the client (a later issue fills this in)."""

__all__: list[str] = []
