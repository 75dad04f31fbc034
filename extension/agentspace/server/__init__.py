"""HTTP, SSE and AG-UI handlers of the Jupyter server extension (tornado lives only here)."""
