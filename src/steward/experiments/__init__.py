"""Experiments: metrics defined once, experiments read on a deployment's split or canary, and
the outcome events their metrics are computed from.

``steward.experiments.service`` is the public module (``ExperimentService``, ``design``); the
outcome log itself is ``steward.store.outcome_log``. docs/experiments.md gives every convention.
"""
