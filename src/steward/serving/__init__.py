"""Serving: deployments, traffic policies, fallbacks, the gateway and its prediction log."""
