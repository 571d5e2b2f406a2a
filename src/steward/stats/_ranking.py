"""ROC AUC and average precision from counts of negatives and positives per score level.

Both depend on the rows only through, for each distinct score in ascending order, how many
negatives and positives have it. With exact tie blocks (``tie_blocks``) they equal scikit-learn's
``roc_auc_score`` and ``average_precision_score``; with score bins they give the same statistic
on a coarser grid, which is what the bootstrap resamples. The functions take any leading axes.

- ROC AUC = P(score of a positive > score of a negative) + 1/2 P(tie): the Mann-Whitney U.
- Average precision = sum over thresholds, from the highest score down, of the recall gained at
  that threshold times the precision there (scikit-learn's step-wise definition, no
  interpolation).
"""

from __future__ import annotations

import numpy as np

from steward.stats._bootstrap import FloatArray, IntArray


def tie_blocks(sorted_scores: FloatArray, labels: IntArray) -> tuple[FloatArray, FloatArray]:
    """Negatives and positives per distinct score; ``sorted_scores`` ascending, labels 0/1."""
    n = sorted_scores.size
    if n == 0:
        return np.zeros(0), np.zeros(0)
    starts = np.flatnonzero(np.concatenate(([True], sorted_scores[1:] != sorted_scores[:-1])))
    size = np.diff(np.append(starts, n)).astype(np.float64)
    positives = np.add.reduceat(labels.astype(np.float64), starts)
    return size - positives, positives


def roc_auc(negatives: FloatArray, positives: FloatArray) -> FloatArray:
    """``(..., levels)`` counts, ascending score -> ROC AUC; NaN without both classes."""
    negatives_below = np.cumsum(negatives, axis=-1) - negatives
    concordant = (positives * (negatives_below + 0.5 * negatives)).sum(axis=-1)
    pairs = positives.sum(axis=-1) * negatives.sum(axis=-1)
    out = np.full(np.shape(pairs), np.nan)
    np.divide(concordant, pairs, out=out, where=pairs > 0)
    return out


def average_precision(negatives: FloatArray, positives: FloatArray) -> FloatArray:
    """``(..., levels)`` counts, ascending score -> average precision; NaN without positives."""
    total_pos = positives.sum(axis=-1, keepdims=True)
    total_neg = negatives.sum(axis=-1, keepdims=True)
    # Rows at or above each level: everything minus what lies strictly below it.
    tp = total_pos - (np.cumsum(positives, axis=-1) - positives)
    fp = total_neg - (np.cumsum(negatives, axis=-1) - negatives)
    precision = np.zeros(np.broadcast(tp, fp).shape)
    np.divide(tp, tp + fp, out=precision, where=positives > 0)
    gained = (positives * precision).sum(axis=-1)
    out = np.full(np.shape(gained), np.nan)
    np.divide(gained, total_pos[..., 0], out=out, where=total_pos[..., 0] > 0)
    return out
