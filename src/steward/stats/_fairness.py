"""Disparities between the groups of one column, and the group doing worst on each metric.

As fairlearn defines them, for a binary classifier's predicted labels:

- demographic parity difference = max - min over groups of the selection rate
  (share of rows predicted positive);
- equalized odds difference = the larger of (max - min of the true positive rate) and
  (max - min of the false positive rate).

A group without a positive (negative) row in y_true has no true (false) positive rate; it is left
out of that comparison, with a note, where fairlearn would count its rate as 0. Replicates come
from each group resampled on its own (a stratified bootstrap), so the groups' sizes stay fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from steward.domain.evaluation import WorstGroup
from steward.stats._bootstrap import FloatArray, Replicated, finite_or_none

RATES = ("selection_rate", "true_positive_rate", "false_positive_rate")
# The metrics where a higher value is worse; for every other metric the lowest value is worst.
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece", "rmse", "mae", "mape"})


@dataclass(frozen=True)
class GroupRates:
    """One group's rates (NaN where undefined): exact, and per resample (or None)."""

    exact: dict[str, float]
    replicates: dict[str, FloatArray] | None


def _spread(rates: FloatArray) -> FloatArray:
    """max - min over the last axis, ignoring NaN; NaN when no value is defined."""
    defined = np.isfinite(rates)
    high = np.where(defined, rates, -np.inf).max(axis=-1)
    low = np.where(defined, rates, np.inf).min(axis=-1)
    return np.where(defined.any(axis=-1), high - low, np.nan)


def disparities(labels: list[str], groups: list[GroupRates]) -> dict[str, Replicated]:
    exact = {name: np.array([g.exact[name] for g in groups]) for name in RATES}
    dp = float(_spread(exact["selection_rate"]))
    eo = float(np.fmax(_spread(exact["true_positive_rate"]), _spread(exact["false_positive_rate"])))
    dp_reps = eo_reps = None
    replicates = [g.replicates for g in groups]
    if all(r is not None for r in replicates):
        stacked = {name: np.stack([r[name] for r in replicates if r], axis=-1) for name in RATES}
        dp_reps = _spread(stacked["selection_rate"])
        eo_reps = np.fmax(
            _spread(stacked["true_positive_rate"]), _spread(stacked["false_positive_rate"])
        )
    return {
        "demographic_parity_difference": Replicated(finite_or_none(dp), dp_reps),
        "equalized_odds_difference": Replicated(
            finite_or_none(eo), eo_reps, _odds_note(labels, exact)
        ),
    }


def _odds_note(labels: list[str], exact: dict[str, FloatArray]) -> str | None:
    notes = []
    for name, missing in (
        ("true_positive_rate", "no positive"),
        ("false_positive_rate", "no negative"),
    ):
        left_out = [labels[i] for i in np.flatnonzero(~np.isfinite(exact[name]))]
        if left_out:
            notes.append(
                f"{name.replace('_', ' ')}s compared without the groups with {missing} in "
                f"y_true: {', '.join(left_out)}"
            )
    if (
        not np.isfinite(exact["true_positive_rate"]).any()
        and not np.isfinite(exact["false_positive_rate"]).any()
    ):
        return "undefined: no group has both classes in y_true"
    return "; ".join(notes) or None


def worst_groups(
    groups: list[tuple[str, dict[str, Replicated]]], metrics: tuple[str, ...]
) -> dict[str, WorstGroup]:
    """Per metric, the group with the lowest value (highest for losses); first one on ties."""
    out = {}
    for metric in metrics:
        scored = [(label, m[metric].value) for label, m in groups if m[metric].value is not None]
        if not scored:
            continue
        values = np.array([value for _, value in scored], dtype=np.float64)
        at = int(values.argmax() if metric in LOWER_IS_BETTER else values.argmin())
        out[metric] = WorstGroup(group=scored[at][0], value=float(values[at]))
    return out
