"""Prometheus metrics of one gateway: a registry per app, so two apps in a process never mix.

Label children are cached per (deployment, version): ``Counter.labels`` takes a lock and
hashes its labels on every call, which the hot path should not pay for twice.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# Latency buckets in seconds: sub-millisecond to a few seconds (the model call dominates).
_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip

CONTENT_TYPE = CONTENT_TYPE_LATEST


class GatewayMetrics:
    """The gateway's counters, histograms and gauges, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "steward_requests", "Requests answered, by deployment and answering version.",
            ["deployment", "version"], registry=r,
        )  # fmt: skip
        self.errors = Counter(
            "steward_request_errors",
            "Requests refused or failed, by deployment and kind "
            "(invalid_input, not_found, payload_too_large, unavailable, internal).",
            ["deployment", "kind"], registry=r,
        )  # fmt: skip
        self.fallbacks = Counter(
            "steward_fallbacks", "Answers given by a fallback, by deployment, reason and source.",
            ["deployment", "reason", "source"], registry=r,
        )  # fmt: skip
        self.shadow = Counter(
            "steward_shadow_calls", "Shadow calls by deployment, version and outcome.",
            ["deployment", "version", "outcome"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "steward_request_latency_seconds",
            "Time from request to answer, by deployment and answering version.",
            ["deployment", "version"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.model_load = Gauge(
            "steward_model_load_seconds",
            "Seconds the last load (and warm-up) of a version took.",
            ["deployment", "version"], registry=r,
        )  # fmt: skip
        self.revision = Gauge(
            "steward_deployment_revision", "The deployment revision being served.",
            ["deployment"], registry=r,
        )  # fmt: skip
        self.load_failed = Gauge(
            "steward_deployment_load_failed",
            "The newest revision of a deployment when it failed to load (the served one keeps "
            "answering), 0 once a revision loads.",
            ["deployment"], registry=r,
        )  # fmt: skip
        self.log_queue = Gauge(
            "steward_prediction_log_queue_depth",
            "Prediction-log records accepted and not yet written.", registry=r,
        )  # fmt: skip
        self.log_dropped = Gauge(
            "steward_prediction_log_dropped",
            "Prediction-log records dropped (queue full, write error, closed), since start.",
            ["reason"], registry=r,
        )  # fmt: skip
        self.canary_rollbacks = Counter(
            "steward_canary_rollbacks",
            "Canaries this server rolled back on an SLO breach, by deployment and canary version.",
            ["deployment", "version"], registry=r,
        )  # fmt: skip
        self._answered: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def answered(self, deployment: str, version: int, seconds: float) -> None:
        """Count one answered request and observe its latency."""
        key = (deployment, version)
        children = self._answered.get(key)
        if children is None:
            labels = (deployment, str(version))
            children = (self.requests.labels(*labels), self.latency.labels(*labels))
            self._answered[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def error(self, deployment: str, kind: str) -> None:
        self.errors.labels(deployment, kind).inc()

    def fallback(self, deployment: str, reason: str, source: str) -> None:
        self.fallbacks.labels(deployment, reason, source).inc()

    def watch_log(self, depth: Callable[[], float], dropped: Callable[[str], float]) -> None:
        """Read the prediction log's queue depth and drops when scraped."""
        self.log_queue.set_function(depth)
        for reason in ("queue_full", "write_error", "closed"):
            self.log_dropped.labels(reason).set_function(_bind(dropped, reason))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _bind(read: Callable[[str], float], reason: str) -> Callable[[], float]:
    return lambda: read(reason)
