"""Model adapters: litellm for every provider, a scripted provider for demos and tests."""
