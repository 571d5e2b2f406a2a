"""Binary score metrics (ROC AUC, PR AUC, log loss, Brier, ECE) of one population of rows, with
their bootstrap replicates drawn over compact cells.

Point estimates are exact. For the intervals, each row is put in a cell (its class, the bin of its
score) and a resample is a multinomial draw of the cells' counts (``resample_cells``): no pass
over the rows per resample. The bins are up to ``CELL_BINS`` equal-count bins of this
population's scores (about 16 rows each, at least ``MIN_CELL_BINS``), merged from a fine grid
(``ScoreGrid``) that nests the reliability bins, so:

- ECE is exact per resample up to the spread of scores inside a cell (each cell's mean is used),
  then bias-corrected (``_calibration.debiased``);
- ROC AUC and average precision are computed on the binned scores (pairs inside a bin count as
  ties) and shifted by the exact-minus-binned difference on the full data, so the replicates
  centre where the exact statistic does; binning changes their spread by well under 1%;
- log loss and Brier use each cell's mean loss, plus a normal term for the spread inside cells
  (the variance of a sum of draws from a cell is count x within-cell variance), which keeps the
  intervals' width right where a cell's losses differ (e.g. the extreme-score tails).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from steward.stats._bootstrap import FloatArray, IntArray, Replicated, bincount, resample_cells
from steward.stats._calibration import bin_edges, debiased, ece
from steward.stats._ranking import average_precision, roc_auc, tie_blocks

SCORE_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece")
FINE_BINS = 2048
CELL_BINS = 128
MIN_CELL_BINS = 32
# Extra edges near 0 and 1 keep the rows whose log loss explodes in cells of their own.
_TAILS = 10.0 ** -np.arange(2.0, 16.0)
_EPS = float(np.finfo(np.float64).eps)  # log loss clipping, as scikit-learn for float64


@dataclass(frozen=True)
class ScoreGrid:
    """Fine bins over the positive-class probability, shared by every population of a call."""

    inner_edges: FloatArray  # ascending; bin j holds inner_edges[j-1] < p <= inner_edges[j]
    reliability_of_fine: IntArray  # the reliability bin each fine bin lies in
    reliability_bins: int

    @property
    def size(self) -> int:
        return self.inner_edges.size + 1


@dataclass(frozen=True)
class ScoredRows:
    """Rows in ascending score order, with the per-row values the score metrics need."""

    y: IntArray  # 1 = positive class
    p: FloatArray  # probability of the positive class
    log_loss: FloatArray
    brier: FloatArray
    fine: IntArray  # fine bin of p

    def take(self, rows: IntArray) -> ScoredRows:
        """A subset; ascending ``rows`` keep the score order."""
        return ScoredRows(
            self.y[rows], self.p[rows], self.log_loss[rows], self.brier[rows], self.fine[rows]
        )


@dataclass(frozen=True)
class ReliabilitySums:
    count: FloatArray
    sum_predicted: FloatArray
    sum_outcome: FloatArray


def make_grid(sorted_p: FloatArray, reliability_bins: int) -> ScoreGrid:
    """Quantile edges of the scores, plus the reliability edges and the tail edges."""
    at = np.linspace(0, sorted_p.size - 1, FINE_BINS + 1)[1:-1].astype(np.intp)
    reliability_inner = bin_edges(reliability_bins)[1:-1]
    inner = np.unique(np.concatenate((sorted_p[at], reliability_inner, _TAILS, 1.0 - _TAILS)))
    # Rows of fine bin j have p > its lower edge and no reliability edge lies inside the bin,
    # so its reliability bin is the number of reliability edges at or below that lower edge.
    lower = np.concatenate(([-np.inf], inner))
    of_fine = np.searchsorted(reliability_inner, lower, side="right").astype(np.intp)
    return ScoreGrid(inner, of_fine, reliability_bins)


def scored_rows(y: IntArray, sorted_p: FloatArray, grid: ScoreGrid) -> ScoredRows:
    """Per-row log loss (clipped to [eps, 1 - eps] as scikit-learn) and squared error."""
    y_float = y.astype(np.float64)
    p_true = np.where(y == 1, sorted_p, 1.0 - sorted_p)
    log_loss = -np.log(np.clip(p_true, _EPS, 1.0 - _EPS))
    brier = (y_float - sorted_p) ** 2
    fine = np.searchsorted(grid.inner_edges, sorted_p, side="left").astype(np.intp)
    return ScoredRows(y, sorted_p, log_loss, brier, fine)


@dataclass(frozen=True)
class _Histograms:
    """Per (class, fine bin): rows, and sums of p, loss and squared loss."""

    count: FloatArray  # (2, fine bins)
    p: FloatArray
    log_loss: FloatArray
    log_loss_sq: FloatArray
    brier: FloatArray
    brier_sq: FloatArray

    def merged(self, starts: IntArray) -> _Histograms:
        merged = [np.add.reduceat(getattr(self, f.name), starts, axis=1) for f in fields(self)]
        return _Histograms(*merged)


def _histograms(rows: ScoredRows, grid: ScoreGrid) -> _Histograms:
    size = 2 * grid.size
    key = rows.y * grid.size + rows.fine

    def by_cell(weights: FloatArray | None = None) -> FloatArray:
        return bincount(key, weights, size).reshape(2, -1)

    return _Histograms(
        by_cell(),
        by_cell(rows.p),
        by_cell(rows.log_loss),
        by_cell(rows.log_loss**2),
        by_cell(rows.brier),
        by_cell(rows.brier**2),
    )


def score_metrics(
    rows: ScoredRows, grid: ScoreGrid, rng: np.random.Generator, resamples: int
) -> tuple[dict[str, Replicated], ReliabilitySums]:
    n = rows.y.size
    negatives, positives = tie_blocks(rows.p, rows.y)
    hist = _histograms(rows, grid)
    bins = grid.reliability_bins
    of_fine = grid.reliability_of_fine
    sums = ReliabilitySums(
        bincount(of_fine, hist.count.sum(axis=0), bins),
        bincount(of_fine, hist.p.sum(axis=0), bins),
        bincount(of_fine, hist.count[1], bins),
    )
    values = {
        "roc_auc": float(roc_auc(negatives, positives)),
        "pr_auc": float(average_precision(negatives, positives)),
        "log_loss": float(hist.log_loss.sum() / n),
        "brier": float(hist.brier.sum() / n),
        "ece": float(ece(sums.sum_predicted, sums.sum_outcome, n)),
    }
    replicates = _replicates(hist, grid, values, rng, resamples, n) if resamples else {}
    notes = {}
    if not np.isfinite(values["roc_auc"]):
        notes["roc_auc"] = "undefined: y_true holds only one class"
    if not np.isfinite(values["pr_auc"]):
        notes["pr_auc"] = "undefined: no row of y_true is the positive class"
    metrics = {
        name: Replicated(
            value if np.isfinite(value) else None, replicates.get(name), notes.get(name)
        )
        for name, value in values.items()
    }
    return metrics, sums


def _merge_starts(total: FloatArray, reliability_of_fine: IntArray, bins: int) -> IntArray:
    """First fine bin of each merged bin: equal-count cuts, and a cut at each reliability edge."""
    cumulative = np.cumsum(total)
    targets = cumulative[-1] * np.arange(1, bins) / bins
    cuts = np.searchsorted(cumulative, targets, side="left") + 1
    reliability_cuts = np.flatnonzero(np.diff(reliability_of_fine)) + 1
    starts = np.unique(np.concatenate(([0], cuts, reliability_cuts)))
    return starts[starts < total.size].astype(np.intp)


def _replicates(
    hist: _Histograms,
    grid: ScoreGrid,
    exact: dict[str, float],
    rng: np.random.Generator,
    resamples: int,
    n: int,
) -> dict[str, FloatArray]:
    # Small populations get fewer bins (about 16 rows each): the same accuracy, fewer draws.
    bins = int(np.clip(n // 16, MIN_CELL_BINS, CELL_BINS))
    starts = _merge_starts(hist.count.sum(axis=0), grid.reliability_of_fine, bins)
    cells = hist.merged(starts)
    draws = resample_cells(rng, cells.count, resamples)  # (resamples, 2, bins)
    flat = draws.reshape(resamples, -1)
    out = {}
    for name, statistic in (("roc_auc", roc_auc), ("pr_auc", average_precision)):
        if np.isfinite(exact[name]):
            shift = exact[name] - float(statistic(cells.count[0], cells.count[1]))
            out[name] = np.clip(statistic(draws[:, 0], draws[:, 1]) + shift, 0.0, 1.0)
    filled = np.maximum(cells.count, 1.0)
    for name, total, total_sq in (
        ("log_loss", cells.log_loss, cells.log_loss_sq),
        ("brier", cells.brier, cells.brier_sq),
    ):
        mean = total / filled
        spread = np.maximum(total_sq / filled - mean**2, 0.0)
        noise = np.sqrt(flat @ spread.ravel()) * rng.standard_normal(resamples)
        out[name] = (flat @ mean.ravel() + noise) / n
    # ECE: per reliability bin, sum over cells of count x (mean p - outcome).
    gap = cells.p / filled - np.array([[0.0], [1.0]])
    to_bin = np.zeros((2, starts.size, grid.reliability_bins))
    reliability = grid.reliability_of_fine[starts]
    to_bin[:, np.arange(starts.size), reliability] = gap
    gaps = flat @ to_bin.reshape(-1, grid.reliability_bins)
    out["ece"] = debiased(ece(gaps, 0.0, n), exact["ece"])
    return out
