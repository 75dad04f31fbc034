"""Fair turns on a busy event loop, shared by every layer: pacing, heavy imports off the loop.

Standard library only; it imports nothing of agentspace. The garbage-collection timing and
the request admission only the server needs live in ``agentspace.server``.
"""
