"""The docker backend: one ``Container`` object per workspace; exec, runs and kill over it.

Part of the sandbox: it may import the sandbox's shared modules and ``errors``, ``owners``;
the docker SDK's errors are translated here, once.
"""
