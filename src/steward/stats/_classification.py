"""Label metrics (accuracy, precision, recall, F1) from confusion counts, as scikit-learn defines
them, vectorised over any leading axes (the bootstrap's resample axis).

Undefined is NaN here and None with a note in the report, never a silent 0: precision with no
predicted positive, recall with no actual positive, F1 = 2TP / (2TP + FP + FN) with all three 0
(scikit-learn's ``zero_division``). Multiclass averages are macro over the classes where the
metric is defined, as scikit-learn's ``zero_division=np.nan`` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from steward.stats._bootstrap import FloatArray

LABEL_METRICS = ("accuracy", "precision", "recall", "f1")


def _ratio(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    """numerator / denominator, NaN where the denominator is 0."""
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def binary_label_metrics(counts: FloatArray) -> dict[str, FloatArray]:
    """``counts[..., 4]`` = (TN, FP, FN, TP) -> the label metrics and the rates fairness uses."""
    tn, fp, fn, tp = (counts[..., i] for i in range(4))
    n = tn + fp + fn + tp
    return {
        "accuracy": _ratio(tn + tp, n),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "selection_rate": _ratio(tp + fp, n),
        "true_positive_rate": _ratio(tp, tp + fn),
        "false_positive_rate": _ratio(fp, fp + tn),
    }


def binary_label_notes(counts: FloatArray, positive: str) -> dict[str, str]:
    """Why each undefined label metric is undefined on these (TN, FP, FN, TP) counts."""
    _, fp, fn, tp = (float(c) for c in counts)
    notes = {}
    if tp + fp == 0:
        notes["precision"] = f"undefined: no row is predicted {positive!r} (the positive class)"
    if tp + fn == 0:
        notes["recall"] = f"undefined: no row of y_true is {positive!r} (the positive class)"
    if tp + fp + fn == 0:
        notes["f1"] = f"undefined: neither y_true nor y_pred holds {positive!r}"
    return notes


def macro_label_metrics(confusion: FloatArray) -> dict[str, FloatArray]:
    """``confusion[..., true, predicted]`` counts -> accuracy and macro precision/recall/F1."""
    tp = np.diagonal(confusion, axis1=-2, axis2=-1)
    predicted = confusion.sum(axis=-2)
    actual = confusion.sum(axis=-1)
    n = actual.sum(axis=-1)
    return {
        "accuracy": _ratio(tp.sum(axis=-1), n),
        "precision": nan_mean(_ratio(tp, predicted)),
        "recall": nan_mean(_ratio(tp, actual)),
        "f1": nan_mean(_ratio(2 * tp, predicted + actual)),
    }


def nan_mean(per_class: FloatArray) -> FloatArray:
    """Mean over the last axis of the defined (finite) values; NaN when none is defined."""
    defined = np.isfinite(per_class)
    total = np.where(defined, per_class, 0.0).sum(axis=-1)
    return _ratio(total, defined.sum(axis=-1).astype(np.float64))


def macro_label_notes(confusion: FloatArray, classes: list[Any]) -> dict[str, str]:
    """Which classes a macro average leaves out, and why (no prediction, no true row)."""
    predicted = confusion.sum(axis=0)
    actual = confusion.sum(axis=1)
    never_predicted = [classes[i] for i in np.flatnonzero(predicted == 0)]
    never_true = [classes[i] for i in np.flatnonzero(actual == 0)]
    neither = [classes[i] for i in np.flatnonzero((predicted == 0) & (actual == 0))]
    notes = {}
    for metric, left_out, why in (
        ("precision", never_predicted, "never predicted"),
        ("recall", never_true, "absent from y_true"),
        ("f1", neither, "absent from y_true and y_pred"),
    ):
        if left_out:
            notes[metric] = excluded_note(left_out, len(classes), why)
    return notes


def excluded_note(left_out: list[Any], k: int, why: str) -> str:
    if len(left_out) == k:
        return f"undefined: every class is {why}"
    return (
        f"macro average over the {k - len(left_out)} classes where it is defined; "
        f"left out ({why}): {', '.join(repr(c) for c in left_out)}"
    )
