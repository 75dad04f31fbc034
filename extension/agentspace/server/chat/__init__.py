"""The chat bridge: a notebook's session in jupyterlab-chat, as one conversation of every view.

Each notebook's session has one chat (a ``.chat`` file under ``AgentspaceApp.chat_dir``): the
session's events become chat messages (``projection``: words as markdown, each tool call a card
of its own, ``cards``), written with batching and coalesced saves (``writer``); a message typed
in the chat becomes a prompt, or a decision (``commands``: ``/approve`` and friends). The store
is the truth: a chat is rebuilt from the session's events whenever it opens (``mirror``).

An adapter over the engine's application API like the REST handlers: it may import the engine
and the shared vocabulary, and ``jupyterlab_chat`` (imported on the first chat, never at the
server's start). Nothing below the server imports it.
"""
