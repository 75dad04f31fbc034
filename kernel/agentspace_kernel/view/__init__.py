"""What a cell shows of a run: the state folded from events, its renderings, the widget.

It may import the kernel side's shared modules only, not the magics or the client.
"""
