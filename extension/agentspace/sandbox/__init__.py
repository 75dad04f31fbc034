"""The sandbox: a session's workspace (its folder, processes, previews) and the backends it
runs commands in (bubblewrap, docker, local), with the disk quota.

It knows nothing of sessions or persistence: it may import the shared vocabulary
(``errors``, ``owners``) only.
"""
