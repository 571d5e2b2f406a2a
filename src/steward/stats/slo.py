"""Serving SLOs from request records: error rate, availability, latency percentiles, and the
error budget over a rolling window of per-window counts.

    window = request_slo(latency_ms, ok)                         # one monitor window
    budget = error_budget(requests_per_window, errors_per_window, target=0.999)
    window_metrics.update(window.to_metrics() | budget.to_metrics())

Conventions (docs/monitoring-statistics.md):

- A request is **ok** when the deployment answered it itself. A request answered by a fallback
  (after an error or a timeout) is an **error**, like one that failed outright: the caller got
  an answer, but not the model's. ``error_rate = errors / requests``,
  ``availability = 1 - error_rate``.
- **Latency** percentiles are over every request, ok or not (what callers waited, a fallback's
  detour included), with ``numpy.quantile(method="linear")`` by default: type 7 of Hyndman and
  Fan, interpolating between the two nearest order statistics, as numpy, pandas and R default
  to. Other numpy methods can be chosen (``"higher"`` reports an observed latency, never an
  interpolated one).
- The **error budget** over the windows given (e.g. the last 30 days of hourly windows), for an
  availability ``target``: ``budget = (1 - target) x requests`` bad requests may happen;
  ``remaining = 1 - bad / budget`` (1 untouched, 0 spent, negative overspent; ``1 - target``
  is taken to 12 significant digits, so a budget spent exactly leaves exactly 0) and
  ``burn_rate = (bad / requests) / (1 - target)`` (1 spends the budget exactly over the window,
  14.4 spends a 30-day budget in about two days). Over the last hour's windows the burn rate is
  the fast-burn alert signal; over the budget period, how the period went.
- With **no requests**, error rate, availability, percentiles, remaining budget and burn rate
  are undefined: None, and left out of ``to_metrics()`` (a rule on them stays quiet), never NaN.
  ``slo.requests`` and ``slo.errors`` are always reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

import numpy as np
import numpy.typing as npt

from steward.errors import InvalidInput
from steward.stats._inputs import as_column

__all__ = [
    "QUANTILES",
    "QUANTILE_METHODS",
    "ErrorBudget",
    "QuantileMethod",
    "RequestSlo",
    "error_budget",
    "request_slo",
    "rolling_error_budget",
]

QUANTILES = (0.5, 0.95, 0.99)
# numpy.quantile's methods: the nine of Hyndman and Fan, and numpy's four discontinuous ones.
QuantileMethod = Literal[
    "inverted_cdf", "averaged_inverted_cdf", "closest_observation", "interpolated_inverted_cdf",
    "hazen", "weibull", "linear", "median_unbiased", "normal_unbiased", "lower", "higher",
    "midpoint", "nearest",
]  # fmt: skip
QUANTILE_METHODS: frozenset[str] = frozenset(get_args(QuantileMethod))

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class RequestSlo:
    """One window's requests. Rates and percentiles are None without requests."""

    requests: int
    errors: int
    error_rate: float | None
    availability: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    quantile_method: str = "linear"

    def to_metrics(self) -> dict[str, float]:
        """``slo.requests``, ``slo.errors`` and, with requests, ``slo.error_rate``,
        ``slo.availability``, ``slo.p50_ms``, ``slo.p95_ms``, ``slo.p99_ms``."""
        out = {"slo.requests": float(self.requests), "slo.errors": float(self.errors)}
        for name in ("error_rate", "availability", "p50_ms", "p95_ms", "p99_ms"):
            value = getattr(self, name)
            if value is not None:
                out[f"slo.{name}"] = float(value)
        return out


@dataclass(frozen=True)
class ErrorBudget:
    """The error budget over some windows for an availability target."""

    target: float
    requests: int
    bad: int
    budget: float  # bad requests the target allows: (1 - target) x requests
    remaining: float | None  # 1 - bad / budget; negative once overspent
    burn_rate: float | None  # (bad / requests) / (1 - target)

    def to_metrics(self) -> dict[str, float]:
        """``slo.error_budget_remaining`` and ``slo.burn_rate``, when there were requests."""
        out = {}
        if self.remaining is not None:
            out["slo.error_budget_remaining"] = self.remaining
        if self.burn_rate is not None:
            out["slo.burn_rate"] = self.burn_rate
        return out


# -- one window -------------------------------------------------------------------------------
def request_slo(latency_ms: Any, ok: Any, *, method: str = "linear") -> RequestSlo:
    """Error rate, availability and p50/p95/p99 latency of one window's requests.

    ``latency_ms``: each request's latency in milliseconds (finite, >= 0); ``ok``: whether the
    deployment answered it itself (booleans or 0/1; a fallback answer is not ok).
    """
    latency = _latencies(latency_ms)
    good = _ok(ok, latency.size)
    if method not in QUANTILE_METHODS:
        raise InvalidInput(
            f"'method' must be one of numpy.quantile's methods "
            f"({', '.join(sorted(QUANTILE_METHODS))}). Got {method!r}.",
            field="method",
        )
    requests = int(latency.size)
    errors = requests - int(np.count_nonzero(good))
    if requests == 0:
        return RequestSlo(0, 0, None, None, None, None, None, method)
    chosen = cast(QuantileMethod, method)
    p50, p95, p99 = (float(q) for q in np.quantile(latency, QUANTILES, method=chosen))
    rate = errors / requests
    return RequestSlo(requests, errors, rate, 1.0 - rate, p50, p95, p99, method)


def _latencies(values: Any) -> npt.NDArray[np.float64]:
    arr = as_column(values, "latency_ms")
    if arr.size and arr.dtype.kind not in "iuf":
        raise InvalidInput(
            f"'latency_ms' must be numbers (milliseconds). Got dtype {arr.dtype}.",
            field="latency_ms",
        )
    latency = arr.astype(np.float64, copy=False)
    bad = ~np.isfinite(latency) | (latency < 0)
    if bad.any():
        row = int(np.argmax(bad))
        raise InvalidInput(
            f"'latency_ms' must hold finite, non-negative milliseconds; row {row} is "
            f"{float(latency[row])}. Record the time until the answer (a fallback's included).",
            field="latency_ms",
        )
    return latency


def _ok(values: Any, n: int) -> npt.NDArray[np.bool_]:
    arr = as_column(values, "ok")
    if arr.size != n:
        raise InvalidInput(
            f"'ok' has {arr.size} rows but 'latency_ms' has {n}; pass one flag per request.",
            field="ok",
        )
    if arr.size and (arr.dtype.kind not in "biu" or not np.isin(arr, (0, 1)).all()):
        raise InvalidInput(
            "'ok' must hold booleans (or 0/1): True when the deployment answered the request "
            "itself, False for an error or a fallback answer.",
            field="ok",
        )
    return arr.astype(bool)


# -- error budgets ----------------------------------------------------------------------------
def error_budget(requests: Any, errors: Any, *, target: float) -> ErrorBudget:
    """The budget over the windows whose counts are given (scalars: one window)."""
    counts, bad = _counts(requests, errors)
    return _budget(int(counts.sum()), int(bad.sum()), _target(target))


def rolling_error_budget(
    requests: Any, errors: Any, *, target: float, span: int
) -> list[ErrorBudget]:
    """For each window (in time order), the budget over it and the ``span - 1`` before it
    (fewer at the start): the trend of a rolling budget, from per-window counts."""
    counts, bad = _counts(requests, errors)
    goal = _target(target)
    if isinstance(span, bool) or not isinstance(span, int) or span < 1:
        raise InvalidInput(
            f"'span' must be a positive number of windows. Got {span!r}.", field="span"
        )
    total = _trailing_sums(counts, span)
    spent = _trailing_sums(bad, span)
    return [_budget(t, s, goal) for t, s in zip(total.tolist(), spent.tolist(), strict=True)]


def _trailing_sums(values: IntArray, span: int) -> IntArray:
    cumulative = np.concatenate(([0], np.cumsum(values)))
    ends = np.arange(1, values.size + 1)
    return cumulative[ends] - cumulative[np.maximum(ends - span, 0)]


def _budget(requests: int, bad: int, target: float) -> ErrorBudget:
    if requests == 0:
        return ErrorBudget(target, 0, 0, 0.0, None, None)
    allowed = _unavailability(target) * requests
    return ErrorBudget(
        target=target,
        requests=requests,
        bad=bad,
        budget=allowed,
        remaining=1.0 - bad / allowed,
        burn_rate=(bad / requests) / _unavailability(target),
    )


def _unavailability(target: float) -> float:
    """``1 - target`` to 12 significant digits: 0.001 for 0.999, not 0.0010000000000000009, so
    that a budget spent exactly leaves exactly 0 and a rule ``remaining <= 0`` fires."""
    return float(f"{1.0 - target:.12g}")


def _target(target: float) -> float:
    if isinstance(target, bool) or not isinstance(target, int | float | np.number):
        raise InvalidInput("'target' must be a number between 0 and 1.", field="target")
    value = float(target)
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise InvalidInput(
            f"'target' (the availability objective) must be between 0 and 1, exclusive, "
            f"e.g. 0.999. Got {target}.",
            field="target",
        )
    return value


def _counts(requests: Any, errors: Any) -> tuple[IntArray, IntArray]:
    total = _whole_numbers(requests, "requests")
    bad = _whole_numbers(errors, "errors")
    if bad.shape != total.shape:
        raise InvalidInput(
            f"'errors' has {bad.size} windows but 'requests' has {total.size}; pass one count "
            "per window to each.",
            field="errors",
        )
    over = bad > total
    if over.any():
        window = int(np.argmax(over))
        raise InvalidInput(
            f"Window {window} has more errors ({int(bad[window])}) than requests "
            f"({int(total[window])}).",
            field="errors",
        )
    return total, bad


def _whole_numbers(values: Any, name: str) -> IntArray:
    arr = np.atleast_1d(np.asarray(values))
    if arr.ndim != 1:
        raise InvalidInput(f"'{name}' must be one count per window.", field=name)
    if arr.size and (
        arr.dtype.kind not in "iuf"
        or not np.isfinite(arr).all()
        or (arr < 0).any()
        or (np.mod(arr, 1) != 0).any()
    ):
        raise InvalidInput(f"'{name}' must hold non-negative whole counts.", field=name)
    return arr.astype(np.int64)
