"""The demo scenario behind ``steward demo``: real models, trained on data scikit-learn ships.

Three models go through the SDK the way a data scientist's scripts would: runs with metric
series, ``log_model`` with lineage and metrics, owners and risk tiers, filled model cards. Then
release gates: every version is evaluated and gated against the demo's policy; one fails its
fairness check, a second user approves the others and they are promoted to production (the
``champion`` alias). Then a champion is loaded back by alias, versions are searched by metric,
the breast cancer champion is deployed with an approved canary and a fallback chain, traffic
goes through the inference gateway in-process, the canary is rolled back, and the ledger is
verified.
"""

from steward.demo._scenario import DemoSummary, demo_settings, run_demo

__all__ = ["DemoSummary", "demo_settings", "run_demo"]
