"""The docker backend: one ``Container`` object per workspace; exec, runs and kill over it."""
