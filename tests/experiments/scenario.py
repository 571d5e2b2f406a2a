"""The data the analysis tests share, reused from ``test_analysis``: model ``churn`` (v1 in
production, v2 gated and approved) behind ``churn-ab``, a 50/50 split by ``user_id``; metrics
``converted`` (any purchase), ``revenue`` (sum of purchases) and ``latency`` (mean); experiment
``checkout`` on it (primary converted, secondary revenue, guardrail latency, lower is better,
5% tolerated, 10,000 planned units); traffic and purchases written straight to the logs.

    template = build_template(tmp / "template")      # once per module: trains and gates
    services = open_home(template, tmp / "home")      # a copy, with churn-ab and the metrics
    create(services); traffic(services, 4_000, rates={1: 0.10, 2: 0.14})
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.experiments.test_analysis import SPLIT, START, _create, _spec, _traffic
from tests.serving.test_gateway import Store

from steward.settings import Settings
from steward.wiring import Services

create = _create  # create(services, **fields): experiment "checkout" on churn-ab
traffic = _traffic  # traffic(services, units, rates=, latency=, drop=, seed=)
DEPLOYMENT, EXPERIMENT = "churn-ab", "checkout"
__all__ = ["DEPLOYMENT", "EXPERIMENT", "SPLIT", "START", "build_template", "copy_home", "create",
           "open_home", "prepare", "traffic"]  # fmt: skip


def build_template(home: Path) -> Path:
    """A home with the registry of ``Store`` (churn v1 in production, v2 approved), the
    deployment and the metrics; copy it with ``open_home`` (building it takes seconds)."""
    made = Store(home)
    made.client.close()
    services = Services.from_settings(Settings(url=None, home=home))
    try:
        prepare(services)
    finally:
        services.close()
    return home


def prepare(services: Services) -> None:
    """``churn-ab`` (50/50 by user_id) and the metrics converted, revenue and latency."""
    services.deployments.deploy(
        "me", DEPLOYMENT, _spec(split=SPLIT, experiment=DEPLOYMENT, unit_key="user_id")
    )
    for name, source, event, aggregation in (
        ("converted", "outcome", "purchase", "any"),
        ("revenue", "outcome", "purchase", "sum"),
        ("latency", "latency", None, "mean"),
    ):
        services.experiments.define_metric(
            "me", name, {"source": source, "event": event, "aggregation": aggregation}
        )


def copy_home(template: Path, home: Path) -> Path:
    shutil.copytree(template, home)
    return home


def open_home(template: Path, home: Path) -> Services:
    """Services on a fresh copy of ``template`` at ``home``; the caller closes them."""
    return Services.from_settings(Settings(url=None, home=copy_home(template, home)))
