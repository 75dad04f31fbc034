"""The bubblewrap backend: namespace holders started ahead, commands entering them.

Part of the sandbox: it may import the sandbox's shared modules and ``errors``, ``owners``.
"""
