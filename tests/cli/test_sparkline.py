"""The sparkline the monitor's `show` draws: one block per value, lowest ▁, highest █."""

from __future__ import annotations

import math

import pytest

from steward.cli._sparkline import BLOCKS, MISSING, sparkline


def test_scales_from_lowest_to_highest() -> None:
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == BLOCKS
    assert sparkline([7, 0]) == "█▁"
    assert sparkline([10.0, 10.5, 11.0]) == "▁▅█"  # relative to the series, not to zero


def test_missing_values_are_dots() -> None:
    assert sparkline([1, None, 3, math.nan, math.inf]) == f"▁{MISSING}█{MISSING}{MISSING}"
    assert sparkline([None, None]) == MISSING * 2


@pytest.mark.parametrize("values", [[5], [2.5, 2.5, 2.5], [0, None, 0]])
def test_a_flat_series_sits_in_the_middle(values: list[float | None]) -> None:
    line = sparkline(values)
    assert set(line) <= {"▄", MISSING}
    assert len(line) == len(values)


def test_empty_and_negative() -> None:
    assert sparkline([]) == ""
    assert sparkline([-1.0, -3.0, -2.0]) == "█▁▅"
