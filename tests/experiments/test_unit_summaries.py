"""``_unit_values.unit_summaries``: the variants' sums of the units that count, the same as
summing every counted unit, whether it takes the sparse path or not."""

from __future__ import annotations

import numpy as np
import pytest

from steward.experiments._unit_values import UnitBuffers, UnitValues, unit_summaries
from steward.stats import ab


def _dense(found: UnitValues, variant: np.ndarray, covariate: np.ndarray | None) -> list:
    keep = found.counted
    x = None if covariate is None else covariate[keep]
    return ab.summaries_by_group(variant[keep], found.values[keep], x, n_groups=3)


def _close(a: list[ab.Summary], b: list[ab.Summary]) -> bool:
    return all(
        x.n == y.n
        and np.isclose(x.sum, y.sum, rtol=1e-12)
        and np.isclose(x.sum_sq, y.sum_sq, rtol=1e-12)
        and (x.cross_sum is None) == (y.cross_sum is None)
        for x, y in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("share", [0.0, 0.02, 0.5, 1.0], ids=["none", "sparse", "half", "all"])
@pytest.mark.parametrize("counted", ["every", "some"])
@pytest.mark.parametrize("cuped", [False, True])
def test_the_summaries_are_those_of_every_counted_unit(
    share: float, counted: str, cuped: bool
) -> None:
    rng = np.random.default_rng(11)
    units = 5000
    variant = rng.integers(0, 3, units)
    keep = np.ones(units, bool) if counted == "every" else rng.random(units) < 0.7
    # a unit that does not count has the value 0 (as ``aggregate`` makes them)
    values = np.where(keep & (rng.random(units) < share), rng.lognormal(size=units), 0.0)
    found = UnitValues(values, keep)
    covariate = rng.normal(size=units) if cuped else None
    per_variant = np.bincount(variant, minlength=3)
    mine = unit_summaries(found, variant, per_variant, covariate)
    assert _close(mine, _dense(found, variant, covariate))
    # the squares made in reused buffers: the same
    buffers = UnitBuffers(units)
    buffers.squares.fill(7.0)
    assert _close(unit_summaries(found, variant, per_variant, covariate, buffers), mine)
    assert [s.n for s in mine] == [int(np.count_nonzero(keep & (variant == v))) for v in range(3)]


def test_a_variant_without_units_has_an_empty_summary() -> None:
    variant = np.array([0, 0, 2, 2])
    found = UnitValues(np.array([1.0, 0.0, 0.0, 3.0]), np.ones(4, bool))
    mine = unit_summaries(found, variant, np.array([2, 0, 2]))
    assert [(s.n, s.sum, s.sum_sq) for s in mine] == [(2, 1.0, 1.0), (0, 0.0, 0.0), (2, 3.0, 9.0)]


def test_a_non_finite_value_is_refused_on_the_sparse_path() -> None:
    found = UnitValues(np.array([0.0, np.nan, 1.0]), np.ones(3, bool))
    with pytest.raises(Exception, match="finite"):
        unit_summaries(found, np.array([0, 1, 1]), np.array([1, 2]))
