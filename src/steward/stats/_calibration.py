"""Calibration: expected calibration error and the reliability diagram, on equal-width bins.

Bins split [0, 1] into ``bins`` equal parts, right-closed like scikit-learn's
``calibration_curve(strategy="uniform")``: ``[0, 1/b], (1/b, 2/b], ...``. The calibrated quantity
is the positive-class probability for a binary classifier, and the top-label confidence (largest
probability, "is the argmax right") for a multiclass one.

ECE = sum over bins of (rows in bin / n) * |mean predicted - observed frequency|
    = sum over bins of |sum of predicted - sum of outcomes| / n.
"""

from __future__ import annotations

import numpy as np

from steward.domain.evaluation import ReliabilityBin
from steward.stats._bootstrap import FloatArray, IntArray


def bin_edges(bins: int) -> FloatArray:
    return np.linspace(0.0, 1.0, bins + 1)


def bin_index(probability: FloatArray, bins: int) -> IntArray:
    """Each value's bin, as ``calibration_curve`` assigns it (a value on an edge goes left)."""
    return np.searchsorted(bin_edges(bins)[1:-1], probability, side="left").astype(np.intp)


def ece(
    sum_predicted: FloatArray, sum_outcome: FloatArray | float, n: FloatArray | float
) -> FloatArray:
    """``(..., bins)`` sums of predictions and outcomes per bin -> expected calibration error."""
    gap = np.abs(sum_predicted - sum_outcome).sum(axis=-1)
    return np.asarray(gap / n, dtype=np.float64)


def debiased(replicates: FloatArray, exact: float) -> FloatArray:
    """ECE replicates shifted down by twice the bootstrap estimate of ECE's bias, floored at 0.

    Every bin's |gap| picks up sampling noise, so the ECE of a sample overstates the population's,
    and a resample's ECE overstates the sample's by about as much: raw percentile intervals sit
    about two biases too high and rarely cover a well-calibrated model's ECE. Shifting by
    2 x (mean replicate - exact) recentres them (a bias-corrected percentile interval); the
    interval is then widened to include the point estimate, which stays the plain ECE.
    """
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return replicates
    return np.maximum(replicates - 2.0 * (float(finite.mean()) - exact), 0.0)


def reliability(
    count: FloatArray, sum_predicted: FloatArray, sum_outcome: FloatArray
) -> list[ReliabilityBin]:
    """The reliability diagram: every bin, empty ones included (with no means)."""
    edges = bin_edges(count.size)
    out = []
    for i, rows in enumerate(count):
        filled = rows > 0
        out.append(
            ReliabilityBin(
                lower=float(edges[i]),
                upper=float(edges[i + 1]),
                count=int(rows),
                mean_predicted=float(sum_predicted[i] / rows) if filled else None,
                fraction_positive=float(sum_outcome[i] / rows) if filled else None,
            )
        )
    return out
