"""Confidence-based performance estimation (CBPE): a classifier's performance before its labels
arrive, from its own calibrated probabilities, as NannyML's ``CBPE`` estimates it.

    calibration = fit_calibration(reference_scores, reference_labels)    # once, on the reference
    estimate = estimate_binary(window_scores, threshold=0.5, calibration=calibration)
    window_metrics.update(estimate.to_metrics())          # estimated.accuracy, ... roc_auc
    later = realized_binary(window_labels, window_scores, threshold=0.5)
    window_metrics.update(later.to_metrics("realized"))

**Binary.** A row is predicted positive when its raw score ``s >= threshold``; ``p`` is its
calibrated probability (``s`` itself without a calibration). The expected confusion matrix is
``TP = sum(p)`` and ``FP = sum(1 - p)`` over the predicted positives, ``FN = sum(p)`` and
``TN = sum(1 - p)`` over the predicted negatives; the metrics follow with the release gates' own
formulas (``_classification.binary_label_metrics``). Estimated ROC AUC is the area under the
expected ROC curve over the distinct raw scores: a Mann-Whitney statistic with weight ``p``
positive and ``1 - p`` negative per row, ties counted half (``_ranking.roc_auc``); rows are
ranked by the raw score and weighted by the calibrated one, as NannyML does. Accuracy and
precision are exact expectations of the realized metric given the scores; the others are ratios
of expectations (bias O(1/n)). An undefined metric is None with a note, never NaN.

**Calibration**: an isotonic map fitted on the reference, used when its held-out expected
calibration error beats the raw scores' (NannyML's rule); ``calibration_check`` calls
probabilities calibrated when their ECE is within ``ECE_TOLERANCE`` of what chance gives a
calibrated model on as many rows. **Multiclass**: estimated accuracy is the mean largest
probability. docs/monitoring-statistics.md states every convention.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from steward.errors import InvalidInput
from steward.stats._bootstrap import FloatArray, IntArray, bincount
from steward.stats._calibration import bin_index, ece
from steward.stats._classification import binary_label_metrics, binary_label_notes
from steward.stats._inputs import ROW_SUM_TOLERANCE, as_column
from steward.stats._ranking import roc_auc, tie_blocks

__all__ = [
    "BINARY_METRICS",
    "CALIBRATION_BINS",
    "CALIBRATION_FOLDS",
    "CALIBRATION_FORMAT",
    "ECE_TOLERANCE",
    "BinaryPerformance",
    "Calibration",
    "CalibrationCheck",
    "Confusion",
    "IsotonicMap",
    "MulticlassEstimate",
    "calibration_check",
    "estimate_binary",
    "estimate_multiclass",
    "fit_calibration",
    "fit_isotonic",
    "is_calibrated",
    "realized_binary",
]

BINARY_METRICS = ("accuracy", "precision", "recall", "specificity", "f1", "roc_auc")
# ECE above the sampling noise of a calibrated model that is still called calibrated: one
# percentage point of average |predicted - observed| frequency.
ECE_TOLERANCE = 0.01
CALIBRATION_BINS = 10
CALIBRATION_FOLDS = 3  # NannyML's three splits
CALIBRATION_FORMAT = "steward.calibration/1"
# Standard deviations of a calibrated model's chance ECE allowed on top of its mean.
_NOISE_SDS = 3.0
# Parallel pooling passes before the isotonic fit finishes block by block (see _pava).
_PARALLEL_PASSES = 32
_METRIC_NAME = re.compile(r"^[A-Za-z_][\w\-]*(\.[\w\-]+)*$")

_ESTIMATE_NOTES = {
    "precision": "undefined: no row is predicted positive (score >= threshold)",
    "recall": "undefined: the probabilities expect no positive row (every p is 0)",
    "specificity": "undefined: the probabilities expect no negative row (every p is 1)",
    "f1": "undefined: no row is predicted positive and none is expected positive",
    "roc_auc": "undefined: the probabilities expect a single class (every p is 0, or every 1)",
}
_REALIZED_NOTES = {
    "specificity": "undefined: no row of y_true is 0 (the negative class)",
    "roc_auc": "undefined: y_true holds only one class",
}


# -- results ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Confusion:
    """Confusion-matrix cells: expected (an estimate, fractional) or counted (realized)."""

    tp: float
    fp: float
    tn: float
    fn: float


@dataclass(frozen=True)
class BinaryPerformance:
    """Estimated or realized binary metrics; None where undefined (``notes`` says why).

    ``calibrated``: for an estimate made with a :class:`Calibration`, whether the probabilities
    used passed :func:`calibration_check` on the reference (False: read the estimate with
    caution); None when unknown (no calibration given, or a realized result).
    """

    rows: int
    threshold: float
    confusion: Confusion
    accuracy: float | None
    precision: float | None
    recall: float | None
    specificity: float | None
    f1: float | None
    roc_auc: float | None
    notes: Mapping[str, str] = field(default_factory=dict)
    calibrated: bool | None = None

    def metrics(self) -> dict[str, float | None]:
        return {name: getattr(self, name) for name in BINARY_METRICS}

    def to_metrics(self, prefix: str = "estimated") -> dict[str, float]:
        """``<prefix>.accuracy`` ... ``<prefix>.roc_auc`` for the defined metrics, and
        ``<prefix>.calibrated`` (1 or 0) when known."""
        _check_prefix(prefix)
        out = {f"{prefix}.{k}": v for k, v in self.metrics().items() if v is not None}
        if self.calibrated is not None:
            out[f"{prefix}.calibrated"] = 1.0 if self.calibrated else 0.0
        return out


@dataclass(frozen=True)
class MulticlassEstimate:
    rows: int
    accuracy: float

    def to_metrics(self, prefix: str = "estimated") -> dict[str, float]:
        _check_prefix(prefix)
        return {f"{prefix}.accuracy": self.accuracy}


def _check_prefix(prefix: str) -> None:
    if not _METRIC_NAME.match(prefix):
        raise InvalidInput(
            f"'prefix' must be a dotted metric name such as 'estimated'. Got {prefix!r}.",
            field="prefix",
        )


# -- binary: estimated and realized -----------------------------------------------------------
def estimate_binary(
    scores: Any, *, threshold: float = 0.5, calibration: Calibration | None = None
) -> BinaryPerformance:
    """CBPE's estimate from positive-class scores (see the module docstring)."""
    raw = _scores(scores)
    cut = _threshold(threshold)
    p = raw if calibration is None else calibration.probabilities(raw)
    predicted = raw >= cut
    n_predicted = float(np.count_nonzero(predicted))
    tp = float(p[predicted].sum())
    fn = float(p[~predicted].sum())
    # TN FP FN TP; a row's 1 - p is its chance of being a negative
    cells = np.array([max(raw.size - n_predicted - fn, 0.0), max(n_predicted - tp, 0.0), fn, tp])
    auc = _expected_roc_auc(raw, p)
    calibrated = None if calibration is None else calibration.calibrated
    return _performance(raw.size, cut, cells, auc, _ESTIMATE_NOTES, calibrated)


def realized_binary(y_true: Any, scores: Any, *, threshold: float = 0.5) -> BinaryPerformance:
    """The same metrics from the labels (1 or True = positive), to compare with an estimate."""
    raw = _scores(scores)
    y = _labels(y_true, raw.size)
    cut = _threshold(threshold)
    predicted = (raw >= cut).astype(np.intp)
    cells = np.bincount(y * 2 + predicted, minlength=4).astype(np.float64)  # TN FP FN TP
    order = np.argsort(raw, kind="stable")
    auc = float(roc_auc(*tie_blocks(raw[order], y[order])))
    notes = {**binary_label_notes(cells, "1"), **_REALIZED_NOTES}
    return _performance(raw.size, cut, cells, auc, notes, None)


def _expected_roc_auc(rank_by: FloatArray, p: FloatArray) -> float:
    """Area under the expected ROC curve: per distinct ``rank_by`` value, ``sum(p)`` expected
    positives and ``sum(1 - p)`` expected negatives."""
    order = np.argsort(rank_by, kind="stable")
    ranked = rank_by[order]
    starts = np.flatnonzero(np.concatenate(([True], ranked[1:] != ranked[:-1])))
    positives = np.add.reduceat(p[order], starts)
    negatives = np.diff(np.append(starts, ranked.size)) - positives
    return float(roc_auc(np.maximum(negatives, 0.0), positives))


def _performance(
    rows: int,
    threshold: float,
    cells: FloatArray,
    auc: float,
    messages: Mapping[str, str],
    calibrated: bool | None,
) -> BinaryPerformance:
    tn, fp, fn, tp = (float(c) for c in cells)
    label = binary_label_metrics(cells)
    values = {
        "accuracy": float(label["accuracy"]),
        "precision": float(label["precision"]),
        "recall": float(label["recall"]),
        "specificity": 1.0 - float(label["false_positive_rate"]),
        "f1": float(label["f1"]),
        "roc_auc": auc,
    }
    defined = {k: (v if math.isfinite(v) else None) for k, v in values.items()}
    notes = {k: messages[k] for k, v in defined.items() if v is None and k in messages}
    return BinaryPerformance(
        rows=rows, threshold=threshold, confusion=Confusion(tp=tp, fp=fp, tn=tn, fn=fn),
        notes=notes, calibrated=calibrated, **defined,
    )  # fmt: skip


# -- multiclass -------------------------------------------------------------------------------
def estimate_multiclass(probabilities: Any) -> MulticlassEstimate:
    """Estimated accuracy of a multiclass classifier: the mean of each row's largest
    probability, given ``(n, k)`` calibrated class probabilities."""
    try:
        proba = np.asarray(probabilities, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"'probabilities' must be numbers: {exc}", field="probabilities"
        ) from exc
    if proba.ndim != 2 or proba.shape[0] == 0 or proba.shape[1] < 2:
        raise InvalidInput(
            "'probabilities' must have shape (rows, classes) with at least one row and two "
            f"classes. Got shape {proba.shape}.",
            field="probabilities",
        )
    _check_probabilities(proba, "probabilities")
    worst = float(np.abs(proba.sum(axis=1) - 1.0).max())
    if worst > ROW_SUM_TOLERANCE:
        raise InvalidInput(
            f"Each row of 'probabilities' must sum to 1; a row is off by {worst:.3g}.",
            field="probabilities",
        )
    return MulticlassEstimate(rows=int(proba.shape[0]), accuracy=float(proba.max(axis=1).mean()))


# -- calibration ------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class IsotonicMap:
    """A non-decreasing map from raw score to probability: linear between ``x`` (ascending
    reference scores, interior points of flat stretches dropped) and constant beyond them, as
    scikit-learn's ``IsotonicRegression(out_of_bounds="clip").predict``."""

    x: FloatArray
    y: FloatArray

    def apply(self, scores: Any) -> FloatArray:
        return np.interp(_scores(scores), self.x, self.y)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IsotonicMap):
            return NotImplemented
        return bool(np.array_equal(self.x, other.x) and np.array_equal(self.y, other.y))

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, list[float]]:
        return {"x": self.x.tolist(), "y": self.y.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IsotonicMap:
        try:
            x, y = (np.asarray(data[k], dtype=np.float64) for k in ("x", "y"))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(
                f"The isotonic map is malformed: {exc!r}.", field="calibration"
            ) from exc
        if (x.ndim != 1 or x.shape != y.shape or x.size == 0 or not np.isfinite(x).all()
                or np.any(np.diff(x) <= 0) or not ((y >= 0) & (y <= 1)).all()
                or np.any(np.diff(y) < 0)):  # fmt: skip
            raise InvalidInput("The isotonic map is malformed.", field="calibration")
        return cls(x, y)


@dataclass(frozen=True)
class CalibrationCheck:
    """Expected calibration error against what chance allows a calibrated model."""

    rows: int
    ece: float
    noise: float  # mean + 3 sd of a calibrated model's ECE on these scores
    tolerance: float

    @property
    def allowance(self) -> float:
        return self.noise + self.tolerance

    @property
    def calibrated(self) -> bool:
        return self.ece <= self.allowance


@dataclass(frozen=True)
class Calibration:
    """Fitted on the reference: the isotonic map, and whether to use it (``needed``)."""

    isotonic: IsotonicMap
    needed: bool  # the held-out isotonic ECE is lower than the raw scores'
    raw: CalibrationCheck  # the raw reference scores
    held_out: CalibrationCheck  # the isotonic map's held-out predictions on the reference

    @property
    def calibrated(self) -> bool:
        """Whether the probabilities CBPE will use are calibrated on the reference."""
        return (self.held_out if self.needed else self.raw).calibrated

    def probabilities(self, scores: Any) -> FloatArray:
        """The probabilities CBPE uses: the isotonic map's when ``needed``, else the scores."""
        return self.isotonic.apply(scores) if self.needed else _scores(scores)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, to store with the model version it was fitted for."""
        return {"format": CALIBRATION_FORMAT, "isotonic": self.isotonic.to_dict(),
                "needed": self.needed, "raw": asdict(self.raw),
                "held_out": asdict(self.held_out)}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        if not isinstance(data, Mapping) or data.get("format") != CALIBRATION_FORMAT:
            raise InvalidInput(
                f"Not a Steward calibration: expected format {CALIBRATION_FORMAT!r}.",
                field="calibration",
            )
        try:
            checks = [_check_from_dict(data[key]) for key in ("raw", "held_out")]
            return cls(IsotonicMap.from_dict(data["isotonic"]), bool(data["needed"]), *checks)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(
                f"The calibration is malformed: {exc!r}.", field="calibration"
            ) from exc


def _check_from_dict(data: Mapping[str, Any]) -> CalibrationCheck:
    return CalibrationCheck(int(data["rows"]), float(data["ece"]), float(data["noise"]),
                            float(data["tolerance"]))  # fmt: skip


def fit_isotonic(scores: Any, y_true: Any) -> IsotonicMap:
    """Least-squares non-decreasing fit of the labels on the scores (pool adjacent violators);
    equal scores are pooled first, as scikit-learn does."""
    raw = _scores(scores)
    return _fit_isotonic(raw, _labels(y_true, raw.size).astype(np.float64))


def _fit_isotonic(raw: FloatArray, y: FloatArray) -> IsotonicMap:
    order = np.argsort(raw, kind="stable")
    ranked = raw[order]
    starts = np.flatnonzero(np.concatenate(([True], ranked[1:] != ranked[:-1])))
    weights = np.diff(np.append(starts, ranked.size)).astype(np.float64)
    fitted = _pava(np.add.reduceat(y[order], starts) / weights, weights)
    x = ranked[starts]
    # interior points of a flat stretch change nothing under linear interpolation
    flat = np.zeros(x.size, dtype=bool)
    flat[1:-1] = (fitted[1:-1] == fitted[:-2]) & (fitted[1:-1] == fitted[2:])
    return IsotonicMap(x[~flat], fitted[~flat])


def _pava(values: FloatArray, weights: FloatArray) -> FloatArray:
    """Pool adjacent violators: the non-decreasing sequence closest to ``values`` in weighted
    least squares.

    Hand-written because ``steward.stats`` may import only numpy and scipy (STYLE.md §1), so
    scikit-learn's ``IsotonicRegression`` is off limits here even though scikit-learn is a
    dependency of the package, and ``scipy.optimize.isotonic_regression`` needs scipy 1.12
    while Steward supports 1.11. Each numpy pass pools every run of falling block means at once
    (pooling a falling run is a sequence of valid PAV steps, and PAV's result does not depend
    on the order of its steps); inputs that keep creating new violations, rare in practice, are
    finished by the classic one-block-at-a-time stack.
    """
    sums, mass = values * weights, weights.astype(np.float64)
    starts = np.arange(values.size)
    for _ in range(_PARALLEL_PASSES):
        falling = sums[:-1] / mass[:-1] > sums[1:] / mass[1:]
        if not falling.any():
            break
        first = np.flatnonzero(np.concatenate(([True], ~falling)))
        sums, mass, starts = (
            np.add.reduceat(sums, first),
            np.add.reduceat(mass, first),
            starts[first],
        )
    else:
        sums, mass, starts = _pava_stack(sums, mass, starts)
    return np.repeat(sums / mass, np.diff(np.append(starts, values.size)))


def _pava_stack(
    sums: FloatArray, mass: FloatArray, starts: IntArray
) -> tuple[FloatArray, FloatArray, IntArray]:
    out_sum: list[float] = []
    out_mass: list[float] = []
    out_start: list[int] = []
    for s, m, first in zip(sums.tolist(), mass.tolist(), starts.tolist(), strict=True):
        out_sum.append(s)
        out_mass.append(m)
        out_start.append(first)
        while len(out_sum) > 1 and out_sum[-2] / out_mass[-2] > out_sum[-1] / out_mass[-1]:
            out_start.pop()
            last_mass, last_sum = out_mass.pop(), out_sum.pop()
            out_mass[-1] += last_mass
            out_sum[-1] += last_sum
    return np.array(out_sum), np.array(out_mass), np.array(out_start, dtype=np.intp)


def calibration_check(
    scores: Any,
    y_true: Any,
    *,
    tolerance: float = ECE_TOLERANCE,
    bins: int = CALIBRATION_BINS,
) -> CalibrationCheck:
    """ECE of ``scores`` against ``y_true`` and the allowance a calibrated model gets."""
    raw = _scores(scores)
    y = _labels(y_true, raw.size)
    if not (isinstance(bins, int) and 1 <= bins <= 1000):
        raise InvalidInput(f"'bins' must be an integer from 1 to 1000. Got {bins!r}.", field="bins")
    if not (math.isfinite(tolerance) and 0.0 <= tolerance <= 1.0):
        raise InvalidInput(
            f"'tolerance' must be between 0 and 1. Got {tolerance}.", field="tolerance"
        )
    return _check(raw, y.astype(np.float64), float(tolerance), bins)


def _check(p: FloatArray, y: FloatArray, tolerance: float, bins: int) -> CalibrationCheck:
    n = p.size
    where = bin_index(p, bins)
    predicted = bincount(where, p, bins)
    observed = bincount(where, y, bins)
    # Given the scores, a calibrated model's outcome sum in a bin has variance v = sum p(1 - p);
    # its |gap| then has mean sqrt(2v / pi) and variance v(1 - 2/pi) (normal approximation).
    variance = bincount(where, p * (1.0 - p), bins)
    mean = float(np.sqrt(2.0 * variance / np.pi).sum())
    spread = math.sqrt((1.0 - 2.0 / np.pi) * float(variance.sum()))
    noise = (mean + _NOISE_SDS * spread) / n
    return CalibrationCheck(n, float(ece(predicted, observed, n)), noise, tolerance)


def is_calibrated(
    scores: Any, y_true: Any, *, tolerance: float = ECE_TOLERANCE, bins: int = CALIBRATION_BINS
) -> bool:
    """Whether ``scores`` are calibrated probabilities of ``y_true`` (see ``calibration_check``)."""
    return calibration_check(scores, y_true, tolerance=tolerance, bins=bins).calibrated


def fit_calibration(
    scores: Any,
    y_true: Any,
    *,
    folds: int = CALIBRATION_FOLDS,
    seed: int = 0,
    tolerance: float = ECE_TOLERANCE,
    bins: int = CALIBRATION_BINS,
) -> Calibration:
    """Fit the isotonic map on the reference and decide, out of fold, whether to use it."""
    raw = _scores(scores)
    y = _labels(y_true, raw.size)
    if not (isinstance(folds, int) and folds >= 2):
        raise InvalidInput(f"'folds' must be an integer >= 2. Got {folds!r}.", field="folds")
    fewest = int(min(np.count_nonzero(y), np.count_nonzero(y == 0)))
    if fewest < folds:
        raise InvalidInput(
            f"Calibration needs at least {folds} rows of each class in 'y_true' (one per fold); "
            f"the rarer class has {fewest}. Use a larger reference sample.",
            field="y_true",
        )
    labels = y.astype(np.float64)
    fold = _stratified_folds(y, folds, seed)
    held_out = np.empty_like(raw)
    for k in range(folds):
        test = fold == k
        held_out[test] = _fit_isotonic(raw[~test], labels[~test]).apply(raw[test])
    raw_check = calibration_check(raw, y, tolerance=tolerance, bins=bins)
    mapped_check = _check(held_out, labels, raw_check.tolerance, bins)
    return Calibration(
        isotonic=_fit_isotonic(raw, labels),
        needed=mapped_check.ece < raw_check.ece,
        raw=raw_check,
        held_out=mapped_check,
    )


def _stratified_folds(y: IntArray, folds: int, seed: int) -> IntArray:
    """A fold per row: each class's rows shuffled (seeded) and dealt round-robin."""
    order = np.random.default_rng(seed).permutation(y.size)
    fold = np.empty(y.size, dtype=np.intp)
    for label in (0, 1):
        rows = order[y[order] == label]
        fold[rows] = np.arange(rows.size) % folds
    return fold


# -- input checks -----------------------------------------------------------------------------
def _scores(values: Any, name: str = "scores") -> FloatArray:
    arr = as_column(values, name)
    if arr.dtype.kind not in "biuf":
        raise InvalidInput(
            f"'{name}' must be numeric probabilities of the positive class. Got dtype {arr.dtype}.",
            field=name,
        )
    if arr.size == 0:
        raise InvalidInput(f"'{name}' is empty: pass at least one row.", field=name)
    floats = arr.astype(np.float64, copy=False)
    _check_probabilities(floats, name)
    return floats


def _check_probabilities(values: FloatArray, name: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        raise InvalidInput(
            f"'{name}' contains NaN or infinite values (first at row {int(np.argmax(bad))}); "
            "drop those rows (e.g. requests answered by a fallback) first.",
            field=name,
        )
    low, high = float(values.min()), float(values.max())
    if low < 0.0 or high > 1.0:
        raise InvalidInput(
            f"'{name}' must be probabilities in [0, 1]; got values from {low:g} to {high:g}.",
            field=name,
        )


def _threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.number):
        raise InvalidInput("'threshold' must be a number in [0, 1].", field="threshold")
    value = float(threshold)
    if not 0.0 <= value <= 1.0:
        raise InvalidInput(f"'threshold' must be in [0, 1]. Got {threshold}.", field="threshold")
    return value


def _labels(values: Any, n: int) -> IntArray:
    arr = as_column(values, "y_true")
    if arr.size != n:
        raise InvalidInput(
            f"'y_true' has {arr.size} rows but 'scores' has {n}; pass one label per row.",
            field="y_true",
        )
    if arr.dtype.kind not in "biuf" or not np.isin(arr, (0, 1)).all():
        raise InvalidInput(
            "'y_true' must hold 0/1 or booleans (1 = the positive class), with no missing values.",
            field="y_true",
        )
    return arr.astype(np.intp)
