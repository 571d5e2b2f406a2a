"""Monitoring: drift between a reference (raw or profiled) and live data, and the profiles.

``steward.monitoring.drift`` is the public module: ``compare``, ``build_profile``,
``read_profile``. The statistics themselves live in ``steward.stats`` (pure numpy/scipy).
"""
