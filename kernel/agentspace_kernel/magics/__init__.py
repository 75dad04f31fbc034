"""The magics (``%%agent``, ``%agent …``, ``%%approve``, ``%reject``) and what a cell runs.

They may import the view, the client and the kernel side's shared modules (``loop``,
``errors``, ``tools``); never ``agentspace``'s engine at module level (``%load_ext`` stays fast).
"""
