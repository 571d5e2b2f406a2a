"""Sample-ratio mismatch: Pearson's chi-square of the arms' counts against the design weights.

A mismatch means the assignment or the logging is broken (a bot filter on one arm, a redirect
that loses users, a crash in one variant), so no effect estimate from the experiment can be
trusted. ``analyze`` runs this check first on every analysis and puts it before the results.
The default threshold, p < 0.001, is the one GrowthBook and Statsig use: with a check on every
analysis a looser one would raise false alarms too often.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from steward.errors import InvalidInput

DEFAULT_THRESHOLD = 0.001
# Pearson's approximation wants at least this many expected rows in every arm.
_MIN_EXPECTED = 5.0


@dataclass(frozen=True)
class SrmResult:
    """The chi-square test of observed arm sizes against the design's allocation."""

    statistic: float
    df: int  # arms - 1
    p_value: float
    threshold: float
    mismatch: bool  # p_value < threshold
    observed: dict[str, int]
    expected: dict[str, float]
    notes: tuple[str, ...] = ()


def sample_ratio_mismatch(
    counts: Mapping[str, int] | Sequence[int] | Any,
    weights: Mapping[str, float] | Sequence[float] | Any = None,
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> SrmResult:
    """Test arm sizes ``counts`` against ``weights`` (any positive scale; None = equal split).

    Arrays are named ``"0", "1", ...``; with mappings, ``weights`` must name the same arms.
    """
    names, observed = _counts(counts)
    design = _weights(weights, names)
    if not 0.0 < threshold < 1.0:
        raise InvalidInput(
            f"'threshold' must be between 0 and 1 (e.g. 0.001). Got {threshold}.",
            field="threshold",
        )
    total = int(observed.sum())
    share = design / design.sum()
    expected = total * share
    notes: list[str] = []
    if total == 0:
        statistic, p_value = 0.0, 1.0
        notes.append("No observations in any arm: nothing to check yet, p = 1.")
    else:
        statistic = float(((observed - expected) ** 2 / expected).sum())
        p_value = float(stats.chi2.sf(statistic, len(names) - 1))
        if expected.min() < _MIN_EXPECTED:
            notes.append(
                f"An arm expects fewer than {_MIN_EXPECTED:g} observations: the chi-square "
                "approximation is rough this early."
            )
    return SrmResult(
        statistic=statistic,
        df=len(names) - 1,
        p_value=p_value,
        threshold=float(threshold),
        mismatch=p_value < threshold,
        observed={name: int(c) for name, c in zip(names, observed, strict=True)},
        expected={name: float(e) for name, e in zip(names, expected, strict=True)},
        notes=tuple(notes),
    )


def _counts(counts: Any) -> tuple[list[str], np.ndarray[Any, np.dtype[np.float64]]]:
    if isinstance(counts, Mapping):
        names = [str(name) for name in counts]
        raw = list(counts.values())
    else:
        raw = list(np.asarray(counts).ravel()) if not isinstance(counts, str) else [counts]
        names = [str(i) for i in range(len(raw))]
    if len(raw) < 2:
        raise InvalidInput(
            f"A sample-ratio check needs at least 2 arms. Got {len(raw)}.", field="counts"
        )
    for name, value in zip(names, raw, strict=True):
        ok = isinstance(value, int | np.integer) and not isinstance(value, bool)
        if not ok or value < 0:
            raise InvalidInput(
                f"The count of arm '{name}' must be a non-negative integer. Got {value!r}.",
                field="counts",
            )
    return names, np.asarray(raw, dtype=np.float64)


def _weights(weights: Any, names: list[str]) -> np.ndarray[Any, np.dtype[np.float64]]:
    if weights is None:
        return np.ones(len(names))
    if isinstance(weights, Mapping):
        if sorted(map(str, weights)) != sorted(names):
            raise InvalidInput(
                f"'weights' must name the same arms as the counts ({', '.join(names)}). "
                f"Got {', '.join(map(str, weights))}.",
                field="weights",
            )
        raw = [weights[name] for name in names]
    else:
        raw = list(np.asarray(weights, dtype=np.float64).ravel())
    if len(raw) != len(names):
        raise InvalidInput(
            f"'weights' must have one entry per arm ({len(names)}). Got {len(raw)}.",
            field="weights",
        )
    arr = np.asarray(raw, dtype=np.float64)
    if not all(math.isfinite(w) and w > 0 for w in arr):
        raise InvalidInput(
            f"'weights' must be positive numbers (an arm's share of traffic). Got {raw}.",
            field="weights",
        )
    return arr
