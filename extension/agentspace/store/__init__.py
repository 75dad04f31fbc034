"""The store: SQLite (one writer thread, group commits), the event log, and the records.

Records are data (pydantic shapes and the SQL beside them), not logic. It may import tools'
data types (``tools.base.Policy``, ``tools.kernel.KernelTool``) and the shared vocabulary,
never the engine, the sandbox, models, the server or the CLI.
"""
