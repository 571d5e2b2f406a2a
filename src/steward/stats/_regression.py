"""Regression metrics of one population, with bootstrap replicates from resampled row chunks.

As scikit-learn defines them, with e = y_pred - y_true:

- RMSE = sqrt(mean(e^2)); MAE = mean(|e|);
- MAPE = mean(|e| / |y_true|), a fraction (0.1 = 10%); undefined (None) when a target is 0,
  where scikit-learn would divide by machine epsilon and report an astronomically large number;
- R^2 = 1 - sum(e^2) / sum((y - mean(y))^2); undefined when every target is equal (scikit-learn
  returns 0 or 1 by convention).

Every metric is a function of a few sums, so a resample needs only the chunks' sums, combined by
one matrix product (``_bootstrap.ChunkResamples``); targets are centred first so R^2's
denominator keeps its precision when the targets are large and close together.
"""

from __future__ import annotations

import numpy as np

from steward.stats._bootstrap import ChunkResamples, FloatArray, Replicated, finite_or_none

REGRESSION_NOTES = {
    "mape": "undefined: y_true contains 0, so the percentage error is infinite",
    "r2": "undefined: y_true is constant, so there is no variance to explain",
}


def regression_metrics(
    y: FloatArray, y_pred: FloatArray, rng: np.random.Generator, resamples: int
) -> dict[str, Replicated]:
    n = y.size
    error = y_pred - y
    squared, absolute = error**2, np.abs(error)
    has_zero = bool((y == 0).any())
    relative = np.zeros(n) if has_zero else absolute / np.abs(y)
    centred = y - y.mean()
    constant = bool(np.ptp(y) == 0)
    values = {
        "rmse": float(np.sqrt(squared.mean())),
        "mae": float(absolute.mean()),
        "mape": np.nan if has_zero else float(relative.mean()),
        "r2": np.nan if constant else float(1.0 - squared.sum() / (centred**2).sum()),
    }
    replicates: dict[str, FloatArray] = {}
    if resamples:
        draws = ChunkResamples.draw(rng, n, resamples)
        count, sq, ab, rel, cy, cy2 = (
            draws.totals(column)
            for column in (None, squared, absolute, relative, centred, centred**2)
        )
        variance = cy2 - cy**2 / count  # sum of squared deviations from the resample's mean
        r2 = np.full(resamples, np.nan)
        np.subtract(1.0, sq / np.where(variance > 0, variance, 1.0), out=r2, where=variance > 0)
        replicates = {
            "rmse": np.sqrt(sq / count),
            "mae": ab / count,
            "mape": rel / count,
            "r2": r2,
        }
    return {
        name: Replicated(
            finite_or_none(value),
            replicates.get(name) if np.isfinite(value) else None,
            None if np.isfinite(value) else REGRESSION_NOTES[name],
        )
        for name, value in values.items()
    }
