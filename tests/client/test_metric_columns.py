"""`steward.client._http.metric_columns`: plain points as LogBatch columns, anything else None."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from steward.client._http import metric_columns
from steward.schemas import parse
from steward.schemas.tracking import LogBatch

AT = datetime(2024, 1, 1, tzinfo=UTC)


def test_points_become_columns_with_steps_and_timestamps_filled() -> None:
    points = [{"key": "a", "value": 1.0}, {"key": "b", "value": 2.0, "step": 5, "timestamp": AT}]
    assert metric_columns(points) == {
        "key": ["a", "b"], "value": [1.0, 2.0], "step": [0, 5], "timestamp": [None, AT],
    }  # fmt: skip
    assert metric_columns(points[:1]) == {"key": ["a"], "value": [1.0], "step": [0]}


@pytest.mark.parametrize(
    "points",
    [
        [],
        [{"key": "a"}],  # no value: the server names the point
        [{"value": 1.0}],
        [{"key": "a", "value": 1.0, "unit": "s"}],  # a field LogBatch refuses
        [("a", 1.0)],
        ["key"],
        [None],
        [{"key": "a", "value": 1.0}, 3],
    ],
    ids=["empty", "no-value", "no-key", "extra-field", "tuple", "text", "none", "mixed"],
)
def test_anything_but_plain_points_is_sent_as_given(points: list[Any]) -> None:
    assert metric_columns(points) is None


def test_columns_validate_to_the_same_points_as_the_rows() -> None:
    rows = [{"key": f"k{i % 3}", "value": i / 7, "step": i} for i in range(50)]
    rows[7]["timestamp"] = AT
    as_rows = parse(LogBatch, {"metrics": rows})
    as_columns = parse(LogBatch, {"metric_columns": metric_columns(rows)})
    columns = as_columns.metric_columns
    assert columns is not None
    steps, stamps = columns.step or [], columns.timestamp or []
    rebuilt = [
        {"key": k, "value": v, "step": s, **({"timestamp": t} if t else {})}
        for k, v, s, t in zip(columns.key, columns.value, steps, stamps, strict=True)
    ]
    assert rebuilt == as_rows.metrics
