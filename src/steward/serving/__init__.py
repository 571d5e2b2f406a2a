"""Serving: deployments, traffic policies, fallbacks, the inference gateway and its prediction log."""
