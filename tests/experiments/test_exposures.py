"""Assignment by the gateway's hash, vectorized; per-unit aggregation of events."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from steward.domain.assignment import bucket, canary_salt, variant_for
from steward.domain.experiments import Aggregation, Experiment, ExperimentMetric, MetricRole
from steward.experiments._exposures import Design, assign, buckets, read_exposures
from steward.experiments._unit_values import UnitBuffers, aggregate
from steward.store.outcome_events import Events
from steward.store.prediction_log import PredictionRecord, partition_path, records_to_table
from steward.store.unit_keys import unit_keys

UNITS = pa.array([f"user-{i}" for i in range(2000)] + ["ü-ñ", ""])


def _experiment(**fields: object) -> Experiment:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    return Experiment.model_validate({
        "name": "exp", "deployment": "churn", "model_name": "churn", "control": 1,
        "variants": [1, 2, 3], "metrics": [ExperimentMetric(metric="m", role=MetricRole.PRIMARY)],
        "start": now, "created_at": now, "created_by": "me", **fields,
    })  # fmt: skip


def test_buckets_are_the_gateways() -> None:
    got = buckets("exp-1", UNITS)
    want = np.array([bucket("exp-1", u) for u in UNITS.to_pylist()])
    np.testing.assert_array_equal(got, want)


def test_a_split_assigns_every_unit_as_the_gateway_does() -> None:
    split = {1: 0.2, 2: 0.5, 3: 0.3}
    design = Design.of(_experiment(weights=split, salt="exp-1"))
    got = assign(design, UNITS)
    want = [variant_for(split, u, experiment="exp-1") for u in UNITS.to_pylist()]
    assert got.tolist() == want
    assert design.weight(2) == pytest.approx(0.5)


def test_a_canary_takes_the_units_below_its_share() -> None:
    design = Design.of(_experiment(variants=[1, 4], weights={1: 0.9, 4: 0.1}, salt=canary_salt(4)))
    got = assign(design, UNITS)
    want = [4 if bucket(canary_salt(4), u) < 0.1 else 1 for u in UNITS.to_pylist()]
    assert got.tolist() == want


@pytest.mark.parametrize(
    ("how", "values", "counted"),
    [
        (Aggregation.SUM, [3.0, 0.0, 5.0], [True, True, True]),
        (Aggregation.COUNT, [2.0, 0.0, 1.0], [True, True, True]),
        (Aggregation.ANY, [1.0, 0.0, 1.0], [True, True, True]),
        (Aggregation.MEAN, [1.5, 0.0, 5.0], [True, False, True]),
    ],
)
def test_aggregation_per_unit(how: Aggregation, values: list[float], counted: list[bool]) -> None:
    for unit in (np.array([0, 0, 2]), np.array([0, 0, 2], np.uint32)):
        found = aggregate(how, Events.of(unit, np.array([1.0, 2.0, 5.0])), UnitBuffers(3))
        assert found.values.tolist() == values
        assert found.counted.tolist() == counted


def test_buffers_reused_metric_after_metric_start_from_zero() -> None:
    """Every aggregation into the same buffers gives what it gives into fresh ones."""
    rng = np.random.default_rng(5)
    buffers = UnitBuffers(50)
    for how in [*Aggregation, *Aggregation]:
        unit, value = rng.integers(0, 50, 200), rng.normal(size=200)
        # in chunks, as keyed_events gives them, and in one
        reused = aggregate(how, Events((unit[:70], unit[70:]), (value[:70], value[70:])), buffers)
        fresh = aggregate(how, Events.of(unit, value), UnitBuffers(50))
        assert np.allclose(reused.values, fresh.values, rtol=1e-12)
        assert reused.counted.tolist() == fresh.counted.tolist()
        expected = {u: value[unit == u] for u in range(50)}
        if how is Aggregation.SUM:
            assert np.allclose(reused.values, [expected[u].sum() for u in range(50)])
        if how is Aggregation.COUNT:
            assert reused.values.tolist() == [float(expected[u].size) for u in range(50)]


def _log(root: Path, hour: str, records: list[PredictionRecord], keyed: bool) -> None:
    table = records_to_table(records, None)
    if not keyed:  # as schema version 1 wrote it
        table = table.drop_columns(["unit_key_hi", "unit_key_lo"])
    folder = root / partition_path("churn", hour)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / f"part-{hour}.parquet")


def test_each_exposed_unit_has_its_key_logged_or_made(tmp_path: Path) -> None:
    """Keys come from the log where it has them; a unit of a file logged before the key
    existed, and a request standing for its unit, are keyed from their ids: the same keys."""
    at = datetime(2026, 11, 27, 10, tzinfo=UTC)

    def record(request: str, unit: str | None, version: int) -> PredictionRecord:
        return PredictionRecord("churn", version, request, at, 1.0, {"x": 1.0}, 0.5, unit_id=unit)

    _log(tmp_path, "2026-11-27T10", [record("r1", "ann", 1), record("r2", None, 2)], keyed=True)
    at = at.replace(hour=11)
    _log(tmp_path, "2026-11-27T11", [record("r3", "bob", 2), record("r4", "ann", 1)], keyed=False)
    experiment = _experiment(variants=[1, 2], weights={1: 0.5, 2: 0.5})
    start = datetime(2026, 11, 27, tzinfo=UTC)
    exposures = read_exposures(str(tmp_path), experiment, start, start.replace(day=28))
    assert sorted(exposures.units.to_pylist()) == ["ann", "bob", "r2"]
    hi, lo = unit_keys(exposures.units)
    assert exposures.keys is not None
    assert exposures.keys[0].equals(hi)
    assert exposures.keys[1].equals(lo)
