"""The "Agent (Python)" kernel: IPython where a cell is an ``%%agent`` prompt unless it says not.

It may import the kernel side's shared modules only; the magics come in through IPython's
extension loading, by name.
"""
