"""Multiclass score metrics of one population, with bootstrap replicates from resampled chunks.

- ROC AUC: one-vs-rest per class, macro average (scikit-learn ``multi_class="ovr"``);
- PR AUC: average precision per class (one-vs-rest), macro average;
- log loss: mean of -log p(true class), p clipped to [eps, 1 - eps];
- Brier: mean squared distance between the probability vector and the one-hot truth
  (scikit-learn's multiclass ``brier_score_loss``: summed over classes, not halved);
- ECE and the reliability diagram on the top-label confidence (largest probability) against
  whether its class (the argmax) is the true one; ECE's replicates are bias-corrected
  (``_calibration.debiased``).

Classes where a one-vs-rest metric is undefined (absent from y_true) are left out of the macro
average, with a note. The macro average needs the classes resampled jointly, which compact cells
cannot give for k probability columns, so the replicates resample row chunks
(``_bootstrap.ChunkResamples``): per chunk, binned per-class histograms and loss sums, combined per
resample by one matrix product. ROC AUC and average precision use ``CELL_BINS`` quantile bins of
each class's probability, shifted by the exact-minus-binned difference as in the binary case.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from steward.stats._binary import CELL_BINS, ReliabilitySums
from steward.stats._bootstrap import (
    ChunkResamples,
    FloatArray,
    IntArray,
    Replicated,
    bincount,
    finite_or_none,
)
from steward.stats._calibration import bin_index, debiased, ece
from steward.stats._classification import excluded_note, nan_mean
from steward.stats._ranking import average_precision, roc_auc, tie_blocks

_EPS = float(np.finfo(np.float64).eps)


def score_metrics(
    y: IntArray,
    proba: FloatArray,
    classes: list[str],
    rng: np.random.Generator,
    resamples: int,
    reliability_bins: int,
) -> tuple[dict[str, Replicated], ReliabilitySums]:
    n, k = proba.shape
    rows = np.arange(n)
    p_true = proba[rows, y]
    log_loss = -np.log(np.clip(p_true, _EPS, 1.0 - _EPS))
    brier = (proba**2).sum(axis=1) - 2.0 * p_true + 1.0
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y).astype(np.float64)
    reliability = bin_index(confidence, reliability_bins)
    sums = ReliabilitySums(
        bincount(reliability, None, reliability_bins),
        bincount(reliability, confidence, reliability_bins),
        bincount(reliability, correct, reliability_bins),
    )
    ranked = [_ranked(proba[:, c], y == c) for c in range(k)]
    auc = np.array([float(roc_auc(*r.exact)) for r in ranked])
    ap = np.array([float(average_precision(*r.exact)) for r in ranked])
    values = {
        "roc_auc": float(nan_mean(auc)),
        "pr_auc": float(nan_mean(ap)),
        "log_loss": float(log_loss.mean()),
        "brier": float(brier.mean()),
        "ece": float(ece(sums.sum_predicted, sums.sum_outcome, n)),
    }
    notes = {}
    for name, per_class, why in (
        ("roc_auc", auc, "absent from y_true, or the only class in it"),
        ("pr_auc", ap, "absent from y_true"),
    ):
        left_out = [classes[c] for c in np.flatnonzero(~np.isfinite(per_class))]
        if left_out:
            notes[name] = excluded_note(left_out, k, why)
    replicates: dict[str, FloatArray] = {}
    if resamples:
        draws = ChunkResamples.draw(rng, n, resamples)
        resampled_n = draws.totals()
        replicates["log_loss"] = draws.totals(log_loss) / resampled_n
        replicates["brier"] = draws.totals(brier) / resampled_n
        predicted = draws.cell_totals(reliability, reliability_bins, confidence)
        outcome = draws.cell_totals(reliability, reliability_bins, correct)
        replicates["ece"] = debiased(ece(predicted, outcome, resampled_n), values["ece"])
        ranking = [r.replicates(draws) for r in ranked]
        replicates["roc_auc"] = nan_mean(np.stack([pair[0] for pair in ranking], axis=-1))
        replicates["pr_auc"] = nan_mean(np.stack([pair[1] for pair in ranking], axis=-1))
    metrics = {
        name: Replicated(finite_or_none(value), replicates.get(name), notes.get(name))
        for name, value in values.items()
    }
    return metrics, sums


class _Ranked:
    """One class's probability column sorted, its exact tie blocks and its score bins."""

    def __init__(self, order: IntArray, sorted_p: FloatArray, is_class: IntArray) -> None:
        self.order, self.is_class = order, is_class
        self.exact = tie_blocks(sorted_p, is_class)
        at = np.linspace(0, sorted_p.size - 1, CELL_BINS + 1)[1:-1].astype(np.intp)
        edges = np.unique(sorted_p[at])
        self.bins = edges.size + 1
        self.bin = np.searchsorted(edges, sorted_p, side="left").astype(np.intp)

    def replicates(self, draws: ChunkResamples) -> tuple[FloatArray, FloatArray]:
        cells = self.is_class * self.bins + self.bin
        full = bincount(cells, None, 2 * self.bins).reshape(2, -1)
        resampled = draws.cell_totals(cells, 2 * self.bins, order=self.order)
        counts = resampled.reshape(resampled.shape[0], 2, -1)
        out = []
        for statistic in (roc_auc, average_precision):
            exact = float(statistic(*self.exact))
            binned = statistic(counts[:, 0], counts[:, 1])
            shifted = binned + (exact - float(statistic(full[0], full[1])))
            out.append(np.clip(shifted, 0.0, 1.0) if np.isfinite(exact) else binned * np.nan)
        return out[0], out[1]


def _ranked(probability: FloatArray, is_class: npt.NDArray[np.bool_]) -> _Ranked:
    order = np.argsort(probability, kind="stable")
    return _Ranked(order, probability[order], is_class[order].astype(np.intp))
