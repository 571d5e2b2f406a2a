"""The first Wasserstein distance of two sorted samples in O(n + m), without merging them.

W1 is the area between the two quantile functions, ``integral over u in (0, 1) of
|Q_a(u) - Q_b(u)|``. Each Q is a step function: on the longer sample ``b`` (n values, the
"base") it changes at the n cumulative-weight fractions, on ``a`` (m values) at m of them.
Put both on one integer scale (a's cumulative weights times b's total, and the reverse) and:

1. expand a's quantile function onto b's steps with ``np.repeat`` (the value of Q_a where each
   step of b starts): the base area is ``sum |Q_a(start) - b| * step``;
2. each of a's m breakpoints that falls strictly inside a step of b changes Q_a for the rest of
   that step: add ``(|a_k - b_l| - |a_(k-1) - b_l|) * (end of step l - breakpoint)``.

That is a handful of passes over n values plus O(m) work: scipy's ``wasserstein_distance``
re-sorts both samples, concatenates and sorts them again and runs two ``searchsorted`` over the
concatenation (~6x the time on 1M + 1M sorted values, measured). Weights must be integers (raw
samples, a profile's value counts, a KLL sketch's item weights all are); the integer scale keeps
every breakpoint exact. It is the same sum as scipy's, in another order, so the figures agree to
~1e-13 relative.
"""

from __future__ import annotations

import numpy as np

from steward.stats._samples import IntArray, NumericSample

# Beyond this common scale (total weight of one side times the other's) the integer breakpoints
# could overflow int64; the caller falls back to the merge.
MAX_SCALE = 1 << 62


def _weights(sample: NumericSample) -> IntArray | None:
    if sample.weights is None:
        return None
    return np.rint(sample.weights).astype(np.int64)


def _total(sample: NumericSample, weights: IntArray | None) -> int:
    return int(sample.values.size) if weights is None else int(weights.sum())


def fits(a: NumericSample, b: NumericSample) -> bool:
    wa, wb = _weights(a), _weights(b)
    return _total(a, wa) * _total(b, wb) < MAX_SCALE


def area(x: NumericSample, y: NumericSample) -> float:
    """W1 of two sorted samples (the caller checked ``fits``)."""
    base, other = (x, y) if x.values.size >= y.values.size else (y, x)
    a, b = other.values, base.values
    wa, wb = _weights(other), _weights(base)
    total_a, total_b = _total(other, wa), _total(base, wb)
    # a's breakpoints on the common scale, with 0 in front: pa[k] = where Q_a becomes a[k]
    cumulative_a = np.arange(a.size + 1, dtype=np.int64) if wa is None else np.concatenate(
        ([0], np.cumsum(wa)))  # fmt: skip
    pa = cumulative_a * total_b
    inner = pa[1:-1]
    if wb is None:
        # b's steps all span total_a: step l covers [l * total_a, (l + 1) * total_a)
        counts = np.diff(-(-pa // total_a))  # ceil: the first step starting at or after pa[k]
        step = inner // total_a
        rest = total_a - (inner - step * total_a)  # from the breakpoint to the step's end
        gaps = np.abs(np.repeat(a, counts) - b)
        base_area = float(gaps.sum()) * total_a
    else:
        starts = np.concatenate(([0], np.cumsum(wb)[:-1])) * total_a
        counts = np.diff(np.searchsorted(starts, pa, side="left"))
        step = np.searchsorted(starts, inner, side="right") - 1
        rest = starts[step] + wb[step] * total_a - inner
        gaps = np.abs(np.repeat(a, counts) - b)
        base_area = float(np.dot(gaps, wb.astype(np.float64))) * total_a
    # a breakpoint exactly on a step's start is already in that step's base value
    on_start = inner == (step * total_a if wb is None else starts[step])
    width = np.where(on_start, 0.0, rest.astype(np.float64))
    # breakpoint k (1..m-1) switches Q_a from a[k-1] to a[k] for the rest of its step
    b_at = b[step]
    change = np.abs(a[1:] - b_at) - np.abs(a[:-1] - b_at)
    correction = float(np.dot(change, width))
    return (base_area + correction) / (float(total_a) * float(total_b))
