"""The notebook the agent sits beside: its document, how it is read and how it is edited.

Pure data and rules (``document``: cells, ids, the three checked edits; ``render``: the
compact text a model reads; ``secrets``: redaction) and the port (``port``: read, set, insert,
delete) that the server (a linked browser, the contents API) and the embedded kernel (the file,
the kernel's own history) implement. A middle-layer part: it imports only the shared
vocabulary (events, errors); tools and the engine import it.
"""
