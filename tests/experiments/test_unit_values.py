"""``_unit_values.events``: every outcome's events mapped to exposed units, the rest dropped."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa
import pytest

from steward.experiments._exposures import Exposures
from steward.experiments._unit_values import events


def _exposures(units: list[str]) -> Exposures:
    return Exposures(
        pa.array(units, pa.string()),
        np.ones(len(units), dtype=np.int64),
        pa.table({"unit": pa.array([], pa.int64())}),
        0,
    )


def _outcomes(rows: list[tuple[str, str, float]]) -> pa.Table:
    unit_ids, names, values = zip(*rows, strict=True)
    return pa.table({
        "unit_id": pa.array(unit_ids, pa.string()),
        "request_id": pa.nulls(len(rows), pa.string()),
        "name": pa.array(names, pa.string()),
        "value": pa.array(values, pa.float64()),
    })  # fmt: skip


def _expected(
    rows: list[tuple[str, str, float]], units: list[str]
) -> dict[str, tuple[list[int], list[float]]]:
    """The same mapping, row by row: events in their order, those of unknown units dropped."""
    index = {unit: i for i, unit in enumerate(units)}
    found: dict[str, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
    for unit, name, value in rows:
        found[name]  # an outcome whose events all belong to unknown units still has an entry
        if unit in index:
            found[name][0].append(index[unit])
            found[name][1].append(value)
    return dict(found)


@pytest.mark.parametrize("strangers", [0, 0.3], ids=["all-exposed", "some-never-exposed"])
def test_events_are_split_by_outcome_and_mapped_to_exposed_units(strangers: float) -> None:
    rng = np.random.default_rng(7)
    units = [f"u{i}" for i in range(50)]
    rows = [
        (
            f"x{i}" if rng.random() < strangers else str(rng.choice(units)),
            str(rng.choice(["checkout", "revenue", "churn"])),
            float(rng.normal()),
        )
        for i in range(400)
    ]
    found = events(_outcomes(rows), _exposures(units))
    expected = _expected(rows, units)
    assert set(found) == set(expected)
    for name, (unit, value) in expected.items():
        assert found[name][0].tolist() == unit
        assert found[name][1].tolist() == value


def test_an_outcome_seen_only_for_unknown_units_has_no_events() -> None:
    rows = [("u0", "checkout", 1.0), ("ghost", "refund", 5.0), ("u1", "checkout", 2.0)]
    found = events(_outcomes(rows), _exposures(["u0", "u1"]))
    assert found["checkout"][0].tolist() == [0, 1]
    assert found["refund"][0].size == 0
    assert found["refund"][1].size == 0


def test_more_outcomes_than_a_16_bit_code_holds() -> None:
    count = (1 << 16) + 3
    rows = [(f"u{i % 3}" if i % 5 else "ghost", f"m{i}", float(i)) for i in range(count)]
    found = events(_outcomes(rows), _exposures(["u0", "u1", "u2"]))
    expected = _expected(rows, ["u0", "u1", "u2"])
    assert len(found) == count
    assert all(found[name][1].tolist() == expected[name][1] for name in ("m0", "m1", "m65538"))
