"""Multiple-testing corrections: adjusted p-values across metrics and arms.

Each function returns adjusted p-values in the input's order, equal (to the last bit) to
``statsmodels.stats.multitest.multipletests(p, method=...)[1]`` for ``"holm"``,
``"fdr_bh"`` and ``"bonferroni"``: the same operations in the same order. Compare an adjusted
p-value with the unadjusted alpha.

- Bonferroni: ``min(1, m·p)``; controls the family-wise error rate, conservative.
- Holm (step-down): sorted ascending, ``max_{j<=i} min(1, (m-j+1)·p_(j))``; controls the
  family-wise error rate and is never less powerful than Bonferroni.
- Benjamini-Hochberg (step-up): ``min_{j>=i} min(1, p_(j)·m/j)``; controls the false discovery
  rate under independence or positive dependence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from steward.errors import InvalidInput

FloatArray = npt.NDArray[np.float64]
Method = Literal["holm", "benjamini_hochberg", "bonferroni", "none"]
METHODS: tuple[Method, ...] = ("holm", "benjamini_hochberg", "bonferroni", "none")


def bonferroni(p_values: Any) -> FloatArray:
    p = _check(p_values)
    return np.minimum(p * p.size, 1.0)


def holm(p_values: Any) -> FloatArray:
    p = _check(p_values)
    order = np.argsort(p)
    stepped = np.maximum.accumulate(p[order] * np.arange(p.size, 0, -1))
    return _unsort(np.minimum(stepped, 1.0), order)


def benjamini_hochberg(p_values: Any) -> FloatArray:
    p = _check(p_values)
    order = np.argsort(p)
    ecdf = np.arange(1, p.size + 1) / float(p.size)
    stepped = np.minimum.accumulate((p[order] / ecdf)[::-1])[::-1]
    return _unsort(np.minimum(stepped, 1.0), order)


def adjust_p_values(
    p_values: Sequence[float | None], method: Method = "holm"
) -> list[float | None]:
    """Adjust the defined p-values together; a ``None`` (undefined test) stays ``None``.

    The family is the defined p-values only: an undefined test cannot be rejected, so it does
    not count towards ``m``.
    """
    if method not in METHODS:
        raise InvalidInput(
            f"'correction' must be one of {', '.join(METHODS)}. Got {method!r}.",
            field="correction",
        )
    where = [i for i, p in enumerate(p_values) if p is not None]
    out: list[float | None] = [None] * len(p_values)
    if not where:
        return out
    defined = np.asarray([p_values[i] for i in where], dtype=np.float64)
    adjusted = _METHODS[method](defined)
    for i, value in zip(where, adjusted, strict=True):
        out[i] = float(value)
    return out


def _none(p_values: Any) -> FloatArray:
    return _check(p_values).copy()


_METHODS = {
    "holm": holm,
    "benjamini_hochberg": benjamini_hochberg,
    "bonferroni": bonferroni,
    "none": _none,
}


def _check(p_values: Any) -> FloatArray:
    try:
        p = np.asarray(p_values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"'p_values' must be numbers. {exc}", field="p_values") from exc
    if p.ndim != 1:
        raise InvalidInput(f"'p_values' must be 1-D. Got shape {p.shape}.", field="p_values")
    if not ((p >= 0.0) & (p <= 1.0)).all():  # also rejects NaN
        raise InvalidInput(
            "'p_values' must be numbers between 0 and 1 (no NaN). Got "
            f"{p[~((p >= 0.0) & (p <= 1.0))][:3].tolist()}.",
            field="p_values",
        )
    return p


def _unsort(sorted_values: FloatArray, order: npt.NDArray[np.intp]) -> FloatArray:
    out = np.empty_like(sorted_values)
    out[order] = sorted_values
    return out
