"""Reference and current binned alike, for the drift report's per-feature histograms."""

from __future__ import annotations

import itertools

import numpy as np

from steward.domain.drift import Histogram
from steward.stats._samples import CategoricalSample, FloatArray, NumericSample

BINS = 30
TOP_CATEGORIES = 20
# The range shown: from the lowest 0.5% point to the highest 99.5% point of either side, so
# that one extreme value does not squeeze the whole distribution into one bar.
_TAIL = 0.005


def histogram(
    ref: NumericSample | CategoricalSample,
    cur: NumericSample | CategoricalSample,
    *,
    bins: int = BINS,
    top: int = TOP_CATEGORIES,
) -> Histogram:
    if isinstance(ref, NumericSample) and isinstance(cur, NumericSample):
        return _numeric(ref, cur, bins)
    if isinstance(ref, CategoricalSample) and isinstance(cur, CategoricalSample):
        return _categorical(ref, cur, top)
    raise TypeError("both sides must be numeric samples or both category counts")


def _quantile(sample: NumericSample, q: float) -> float:
    weights = np.ones(sample.values.size) if sample.weights is None else sample.weights
    cumulative = np.cumsum(weights)
    index = int(np.searchsorted(cumulative, q * cumulative[-1], side="left"))
    return float(sample.values[min(index, sample.values.size - 1)])


def _numeric(ref: NumericSample, cur: NumericSample, bins: int) -> Histogram:
    lo = min(_quantile(ref, _TAIL), _quantile(cur, _TAIL))
    hi = max(_quantile(ref, 1 - _TAIL), _quantile(cur, 1 - _TAIL))
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    # linspace in halves: lo and hi may be far apart enough for hi - lo to overflow
    edges = np.linspace(lo / 2, hi / 2, bins + 1) * 2
    return Histogram(
        labels=[f"{a:.4g} to {b:.4g}" for a, b in itertools.pairwise(edges.tolist())],
        edges=edges.tolist(),
        reference=_shares(ref, edges).tolist(),
        current=_shares(cur, edges).tolist(),
    )


def _shares(sample: NumericSample, edges: FloatArray) -> FloatArray:
    """Shares per bin; values below the first edge count in the first bin, above the last in
    the last."""
    cut = np.searchsorted(sample.values, edges[1:-1], side="left")
    weights = np.ones(sample.values.size) if sample.weights is None else sample.weights
    cumulative = np.concatenate(([0.0], np.cumsum(weights)))
    bounds = np.concatenate(([0], cut, [sample.values.size]))
    counts = np.diff(cumulative[bounds])
    total = cumulative[-1]
    return counts / total if total else counts


def _categorical(ref: CategoricalSample, cur: CategoricalSample, top: int) -> Histogram:
    ref_total, cur_total = max(ref.n, 1), max(cur.n, 1)
    shares: dict[object, list[float]] = {}
    for index, sample, total in ((0, ref, ref_total), (1, cur, cur_total)):
        for key, count in zip(sample.keys, sample.counts.tolist(), strict=True):
            shares.setdefault(key, [0.0, 0.0])[index] += count / total
    ranked = sorted(shares.items(), key=lambda kv: (-max(kv[1]), str(kv[0])))
    shown, rest = ranked[:top], ranked[top:]
    labels = [str(k) for k, _ in shown]
    reference = [v[0] for _, v in shown]
    current = [v[1] for _, v in shown]
    if rest:
        labels.append(f"{len(rest)} others")
        reference.append(sum(v[0] for _, v in rest))
        current.append(sum(v[1] for _, v in rest))
    return Histogram(labels=labels, reference=reference, current=current)
