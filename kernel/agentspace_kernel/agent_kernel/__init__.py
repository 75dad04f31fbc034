"""The "Agent (Python)" kernel: IPython where a cell is an ``%%agent`` prompt unless it says not."""
