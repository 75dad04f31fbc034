"""The bubblewrap backend: namespace holders started ahead, commands entering them."""
