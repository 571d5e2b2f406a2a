"""Each exposed unit's value of a metric: its events aggregated per unit, as the metric says.

Every metric is per unit (the unit of randomization), so the statistics see independent
observations. Events come from the outcome log (keyed by unit id, or by request id and then
mapped to the request's unit) or from the prediction log itself (a prediction or score,
latency, errors). Events of units never exposed are dropped: they were not in the experiment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from steward.domain.experiments import Aggregation, MetricDefinition, MetricSource
from steward.experiments._exposures import Exposures, request_failed


@dataclass(frozen=True)
class UnitValues:
    """``values[i]`` is unit ``i``'s value; ``counted[i]`` says whether unit ``i`` counts for
    this metric (a MEAN of no events is undefined, so such a unit is left out; a SUM, COUNT or
    ANY of no events is 0 and counts)."""

    values: np.ndarray
    counted: np.ndarray


# An outcome's events as (unit index, value) arrays, those of units never exposed dropped.
Events = tuple[np.ndarray, np.ndarray]


def unit_values(
    definition: MetricDefinition, exposures: Exposures, outcome: Events | None
) -> UnitValues:
    """``outcome``: the events of the metric's outcome (OUTCOME metrics), from ``events``."""
    unit, value = _events(definition, exposures, outcome)
    return aggregate(definition.aggregation, unit, value, len(exposures.units))


def events(outcomes: pa.Table, exposures: Exposures) -> dict[str, Events]:
    """Every outcome's events by name, the ids of all of them mapped to units at once: one
    hash table of the exposed units, whatever the number of outcomes (building it is most of
    the cost at ten million units)."""
    if outcomes.num_rows == 0:
        return {}
    unit, value, known = _outcome_rows(outcomes, exposures)
    names = pc.dictionary_encode(outcomes["name"].combine_chunks())
    outcome_count = len(names.dictionary)
    # numpy sorts 16-bit integers by radix when asked for a stable sort: 0.6 s against 3.6 s
    # for the same 35M codes as 32-bit integers (measured). One code more than the outcomes
    # marks the events of units never exposed: they sort after every outcome and are never
    # gathered (dropping them from three 35M arrays first took 1.7 s, measured).
    small = outcome_count < _RADIX_SORTED
    codes = names.indices.to_numpy(zero_copy_only=False).astype(np.uint16 if small else np.int64)
    if not known.all():
        codes[~known] = outcome_count
    order = np.argsort(codes, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(codes, minlength=outcome_count + 1))))
    return {
        str(name): (unit[order[bounds[i] : bounds[i + 1]]], value[order[bounds[i] : bounds[i + 1]]])
        for i, name in enumerate(names.dictionary.to_pylist())
    }


_RADIX_SORTED = 1 << 16  # outcome names that fit a 16-bit code


def covariate_values(
    definition: MetricDefinition, exposures: Exposures, pre_period: pa.Table
) -> np.ndarray:
    """The unit's pre-experiment value of the metric's covariate event (0 without events):
    CUPED's covariate, aggregated as the metric is."""
    unit, value, known = _outcome_rows(pre_period, exposures)
    found = aggregate(definition.aggregation, unit[known], value[known], len(exposures.units))
    return np.where(found.counted, found.values, 0.0)


def aggregate(how: Aggregation, unit: np.ndarray, value: np.ndarray, units: int) -> UnitValues:
    counts = np.bincount(unit, minlength=units).astype(np.float64)
    if how is Aggregation.COUNT:
        return UnitValues(counts, np.ones(units, dtype=bool))
    if how is Aggregation.ANY:
        hits = np.bincount(unit, weights=(value > 0).astype(np.float64), minlength=units)
        return UnitValues((hits > 0).astype(np.float64), np.ones(units, dtype=bool))
    sums = np.bincount(unit, weights=value, minlength=units)
    if how is Aggregation.SUM:
        return UnitValues(sums, np.ones(units, dtype=bool))
    counted = counts > 0
    means = np.divide(sums, counts, out=np.zeros(units), where=counted)
    return UnitValues(means, counted)


def _events(definition: MetricDefinition, exposures: Exposures, outcome: Events | None) -> Events:
    requests = exposures.requests
    unit = requests["unit"].to_numpy()
    if definition.source is MetricSource.OUTCOME:
        return outcome if outcome is not None else (np.zeros(0, np.int64), np.zeros(0))
    if definition.source is MetricSource.LATENCY:
        return unit, requests["latency_ms"].to_numpy(zero_copy_only=False).astype(np.float64)
    if definition.source is MetricSource.ERROR:
        return unit, request_failed(requests)
    column = requests[definition.event or "prediction"]
    present = pc.is_valid(column).to_numpy(zero_copy_only=False)
    values = pc.fill_null(column, 0.0).to_numpy(zero_copy_only=False).astype(np.float64)
    return unit[present], values[present]


def _outcome_rows(
    outcomes: pa.Table, exposures: Exposures
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each outcome row's unit index and value, and whether its unit was exposed (by unit id,
    or by request id through the request's unit)."""
    if outcomes.num_rows == 0:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, dtype=bool)
    by_unit = pc.index_in(outcomes["unit_id"], value_set=exposures.units)
    unit = by_unit
    if outcomes["request_id"].null_count < outcomes.num_rows:
        requests = exposures.requests
        by_request = pc.index_in(
            outcomes["request_id"], value_set=requests["request_id"].combine_chunks()
        )
        request_unit = pc.take(requests["unit"], pc.fill_null(by_request, 0))
        unit = pc.coalesce(by_unit, pc.if_else(pc.is_valid(by_request), request_unit, None))
    known = pc.is_valid(unit).to_numpy(zero_copy_only=False)
    index = pc.fill_null(unit, 0).to_numpy(zero_copy_only=False).astype(np.int64)
    value = outcomes["value"].to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    return index, value, known
