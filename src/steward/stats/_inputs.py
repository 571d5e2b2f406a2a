"""Checking and encoding what callers pass: labels to class indices, scores to probabilities.

Every rejection is an :class:`~steward.errors.InvalidInput` naming the argument and saying what
to pass instead. Labels are encoded without sorting the rows where possible (integer labels
through a lookup table, text through pandas' hash table), since a 1M-row evaluation should not
spend its time here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from steward.domain.evaluation import Task
from steward.errors import InvalidInput
from steward.stats._bootstrap import FloatArray, IntArray

MAX_RESAMPLES = 10_000
# Probability rows may be float32 softmax outputs; anything further from 1 is not a
# probability vector (logits, one-hot of another class order, a missing column).
ROW_SUM_TOLERANCE = 1e-3
# Integer labels spanning at most this many values are encoded through a lookup table.
_LOOKUP_SPAN = 1 << 20


@dataclass(frozen=True)
class ClassifierInput:
    task: Task
    classes: list[Any]  # label values, in the order of the score columns
    y: IntArray  # class index per row; binary: 1 = the positive class
    y_pred: IntArray
    proba: FloatArray | None  # binary: (n,) positive-class probability; multiclass: (n, k)
    positive: int | None  # binary: index of the positive class in ``classes``


@dataclass(frozen=True)
class RegressorInput:
    y: FloatArray
    y_pred: FloatArray


def check_options(
    confidence: float, resamples: int, seed: int, reliability_bins: int | None = None
) -> None:
    if isinstance(confidence, bool) or not isinstance(confidence, int | float | np.number):
        raise InvalidInput("'confidence' must be a number between 0 and 1.", field="confidence")
    if not 0.0 < float(confidence) < 1.0:
        raise InvalidInput(
            f"'confidence' must be between 0 and 1 (e.g. 0.95). Got {confidence}.",
            field="confidence",
        )
    if not _is_int(resamples) or not (resamples == 0 or 10 <= resamples <= MAX_RESAMPLES):
        raise InvalidInput(
            f"'resamples' must be 0 (no intervals) or an integer from 10 to {MAX_RESAMPLES:,}. "
            f"Got {resamples!r}.",
            field="resamples",
        )
    if not _is_int(seed) or seed < 0:
        raise InvalidInput(f"'seed' must be a non-negative integer. Got {seed!r}.", field="seed")
    if reliability_bins is not None and (
        not _is_int(reliability_bins) or not 1 <= reliability_bins <= 1000
    ):
        raise InvalidInput(
            f"'reliability_bins' must be an integer from 1 to 1000. Got {reliability_bins!r}.",
            field="reliability_bins",
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def as_column(values: Any, field: str) -> npt.NDArray[Any]:
    """A 1-D array (an ``(n, 1)`` column is accepted and flattened)."""
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"'{field}' must be a 1-D array-like: {exc}", field=field) from exc
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InvalidInput(
            f"'{field}' must be 1-D (one value per row). Got shape {arr.shape}.", field=field
        )
    return arr


def check_lengths(n: int, other: int, field: str) -> None:
    if other != n:
        raise InvalidInput(
            f"'{field}' has {other} rows but 'y_true' has {n}; pass one value per row.",
            field=field,
        )


def check_min_rows(n: int) -> None:
    if n < 2:
        raise InvalidInput(
            f"At least 2 rows are needed to evaluate a model. Got {n}.", field="y_true"
        )


def factorize(values: npt.NDArray[Any], field: str) -> tuple[list[Any], IntArray, bool]:
    """Distinct values (Python objects) and each row's index; missing rows get the last index.

    Returns ``(uniques, codes, has_missing)``; when ``has_missing``, code ``len(uniques)`` marks
    the missing rows.
    """
    kind = values.dtype.kind
    if kind in "biu":
        uniques, codes = _factorize_ints(values)
        return uniques, codes, False
    if kind == "f":
        missing = np.isnan(values)
        if missing.any():
            present, inverse = np.unique(values[~missing], return_inverse=True)
            codes = np.full(values.size, present.size, dtype=np.intp)
            codes[~missing] = inverse
            return present.tolist(), codes, True
        present, inverse = np.unique(values, return_inverse=True)
        return present.tolist(), inverse.astype(np.intp), False
    return _factorize_objects(values, field)


def _factorize_ints(values: npt.NDArray[Any]) -> tuple[list[Any], IntArray]:
    ints = values.astype(np.int64, copy=False)
    low, high = int(ints.min()), int(ints.max())
    if high - low < _LOOKUP_SPAN:
        present = np.flatnonzero(np.bincount(ints - low)) + low
        lookup = np.zeros(high - low + 1, dtype=np.intp)
        lookup[present - low] = np.arange(present.size)
        uniques = present.astype(values.dtype).tolist()
        return uniques, lookup[ints - low]
    present, inverse = np.unique(values, return_inverse=True)
    return present.tolist(), inverse.astype(np.intp)


def _factorize_objects(values: npt.NDArray[Any], field: str) -> tuple[list[Any], IntArray, bool]:
    """Text and mixed labels, hashed without sorting the rows."""
    # pandas' C hash table is ~10x faster than a dict loop on 1M rows. It is imported here, not
    # at the top, so numeric evaluations (and ``import steward.stats``) do not load pandas; a
    # caller passing object or text columns has almost always loaded it already.
    import pandas as pd

    try:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    except TypeError as exc:  # unhashable: a list or dict where a label should be
        raise InvalidInput(
            f"'{field}' must hold scalar values (numbers, text, booleans): {exc}", field=field
        ) from exc
    codes = codes.astype(np.intp, copy=False)
    missing = codes < 0
    has_missing = bool(missing.any())
    if has_missing:
        codes[missing] = len(uniques)
    return np.asarray(uniques).tolist(), codes, has_missing


def encode_labels(
    y_true: Any, y_pred: Any, classes: Sequence[Any] | None, positive_class: Any
) -> tuple[list[Any], IntArray, IntArray]:
    """Class list (given, or the sorted labels seen) and both label columns as class indices."""
    true_arr = as_column(y_true, "y_true")
    check_min_rows(true_arr.size)
    pred_arr = as_column(y_pred, "y_pred")
    check_lengths(true_arr.size, pred_arr.size, "y_pred")
    true_uniques, true_codes = _label_codes(true_arr, "y_true")
    pred_uniques, pred_codes = _label_codes(pred_arr, "y_pred")
    if classes is None:
        seen = {*true_uniques, *pred_uniques}
        if positive_class is not None and len(seen) < 2:
            seen.add(positive_class)  # every row is of one class: the other is the positive one
        try:
            class_list = sorted(seen)
        except TypeError as exc:
            raise InvalidInput(
                "The labels in 'y_true' and 'y_pred' are of types that cannot be ordered "
                f"({exc}); pass classes=[...] in the order of the score columns.",
                field="classes",
            ) from exc
    else:
        class_list = _check_classes(classes)
    if len(class_list) < 2:
        raise InvalidInput(
            f"Only one class ({class_list[0]!r}) appears in 'y_true' and 'y_pred'; pass "
            "classes=[...] listing every class of the model.",
            field="classes",
        )
    position = {value: i for i, value in enumerate(class_list)}
    return (
        class_list,
        _to_class_index(true_uniques, true_codes, position, "y_true"),
        _to_class_index(pred_uniques, pred_codes, position, "y_pred"),
    )


def _label_codes(values: npt.NDArray[Any], field: str) -> tuple[list[Any], IntArray]:
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise InvalidInput(
            f"'{field}' contains NaN or infinite values; drop or fill those rows first.",
            field=field,
        )
    if values.dtype.kind not in "biufUSO":
        raise InvalidInput(
            f"'{field}' must hold class labels (numbers, text or booleans). Got dtype "
            f"{values.dtype}.",
            field=field,
        )
    uniques, codes, has_missing = factorize(values, field)
    if has_missing:
        raise InvalidInput(
            f"'{field}' contains missing values (None or NaN); drop or fill those rows first.",
            field=field,
        )
    return uniques, codes


def _check_classes(classes: Sequence[Any]) -> list[Any]:
    class_list = np.asarray(classes).tolist() if isinstance(classes, np.ndarray) else list(classes)
    if len(set(class_list)) != len(class_list):
        raise InvalidInput(f"'classes' lists a class twice: {class_list!r}.", field="classes")
    return class_list


def _to_class_index(
    uniques: list[Any], codes: IntArray, position: dict[Any, int], field: str
) -> IntArray:
    lookup = np.empty(len(uniques), dtype=np.intp)
    for i, value in enumerate(uniques):
        if value not in position:
            raise InvalidInput(
                f"'{field}' holds {value!r}, which is not one of the classes "
                f"{list(position)!r}; pass classes=[...] listing every class.",
                field=field,
            )
        lookup[i] = position[value]
    return lookup[codes]


def classifier_input(
    y_true: Any,
    y_pred: Any,
    scores: Any,
    classes: Sequence[Any] | None,
    positive_class: Any,
) -> ClassifierInput:
    class_list, y, y_pred_idx = encode_labels(y_true, y_pred, classes, positive_class)
    k = len(class_list)
    positive: int | None = None
    if k == 2:
        positive = 1 if positive_class is None else _positive_index(class_list, positive_class)
        if positive == 0:  # binary rows are coded 1 = positive class
            y, y_pred_idx = 1 - y, 1 - y_pred_idx
    elif positive_class is not None:
        raise InvalidInput(
            f"'positive_class' applies to binary classification; the labels hold {k} classes.",
            field="positive_class",
        )
    proba = None if scores is None else _probabilities(scores, y.size, k, positive)
    task = Task.BINARY if k == 2 else Task.MULTICLASS
    return ClassifierInput(task, class_list, y, y_pred_idx, proba, positive)


def _positive_index(class_list: list[Any], positive_class: Any) -> int:
    if positive_class not in class_list:
        raise InvalidInput(
            f"'positive_class' {positive_class!r} is not one of the classes {class_list!r}.",
            field="positive_class",
        )
    return class_list.index(positive_class)


def _probabilities(scores: Any, n: int, k: int, positive: int | None) -> FloatArray:
    try:
        arr = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"'scores' must be numeric probabilities: {exc}", field="scores"
        ) from exc
    if arr.ndim not in (1, 2) or arr.shape[0] != n or (arr.ndim == 2 and arr.shape[1] != k):
        want = f"({n},) or ({n}, 2)" if k == 2 else f"({n}, {k})"
        raise InvalidInput(
            f"'scores' must have shape {want}: one probability per class, in the order of "
            f"classes. Got shape {arr.shape}.",
            field="scores",
        )
    if arr.ndim == 1 and k != 2:
        raise InvalidInput(f"'scores' must be ({n}, {k}) for {k} classes.", field="scores")
    if not np.isfinite(arr).all():
        raise InvalidInput("'scores' contains NaN or infinite values.", field="scores")
    low, high = float(arr.min()), float(arr.max())
    if low < 0.0 or high > 1.0:
        raise InvalidInput(
            f"'scores' must be probabilities in [0, 1]; got values from {low:g} to {high:g}. "
            "Pass predict_proba output, not decision scores or logits.",
            field="scores",
        )
    if arr.ndim == 2:
        worst = float(np.abs(arr.sum(axis=1) - 1.0).max())
        if worst > ROW_SUM_TOLERANCE:
            raise InvalidInput(
                f"Each row of 'scores' must sum to 1 (a probability per class); a row is off "
                f"by {worst:.3g}. Pass every class's probability, in the order of classes.",
                field="scores",
            )
        if k == 2 and positive is not None:
            return np.ascontiguousarray(arr[:, positive])
    return arr


def regressor_input(y_true: Any, y_pred: Any) -> RegressorInput:
    y = _numeric_column(y_true, "y_true")
    check_min_rows(y.size)
    y_hat = _numeric_column(y_pred, "y_pred")
    check_lengths(y.size, y_hat.size, "y_pred")
    return RegressorInput(y, y_hat)


def _numeric_column(values: Any, field: str) -> FloatArray:
    arr = as_column(values, field)
    if arr.dtype.kind not in "biuf":
        raise InvalidInput(f"'{field}' must be numeric. Got dtype {arr.dtype}.", field=field)
    out = arr.astype(np.float64, copy=False)
    if not np.isfinite(out).all():
        raise InvalidInput(
            f"'{field}' contains NaN or infinite values; drop or fill those rows first.",
            field=field,
        )
    return out
