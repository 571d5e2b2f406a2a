"""Each exposed unit's value of a metric: its events aggregated per unit, as the metric says.

Every metric is per unit (the unit of randomization), so the statistics see independent
observations. Events come from the outcome log (keyed by unit id, or by request id and then
mapped to the request's unit) or from the prediction log itself (a prediction or score,
latency, errors). Events of units never exposed are dropped: they were not in the experiment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc

from steward.domain.experiments import Aggregation, MetricDefinition, MetricSource
from steward.experiments._exposures import Exposures, request_failed
from steward.store.outcome_events import Events


@dataclass(frozen=True)
class UnitValues:
    """``values[i]`` is unit ``i``'s value; ``counted[i]`` says whether unit ``i`` counts for
    this metric (a MEAN of no events is undefined, so such a unit is left out; a SUM, COUNT or
    ANY of no events is 0 and counts)."""

    values: np.ndarray
    counted: np.ndarray


def unit_values(
    definition: MetricDefinition, exposures: Exposures, outcome: Events | None
) -> UnitValues:
    """``outcome``: the events of the metric's outcome (OUTCOME metrics), of exposed units
    (``steward.store.outcome_events.keyed_events``)."""
    unit, value = _events(definition, exposures, outcome)
    return aggregate(definition.aggregation, unit, value, len(exposures.units))


def covariate_values(definition: MetricDefinition, exposures: Exposures, pre: Events) -> np.ndarray:
    """The unit's pre-experiment value of the metric's covariate event (0 without events):
    CUPED's covariate, aggregated as the metric is. ``pre``: the covariate's events before the
    experiment (``keyed_events``)."""
    found = aggregate(definition.aggregation, pre[0], pre[1], len(exposures.units))
    return np.where(found.counted, found.values, 0.0)


def aggregate(how: Aggregation, unit: np.ndarray, value: np.ndarray, units: int) -> UnitValues:
    """Each unit's value from its events. Only the per-unit arrays the aggregation needs are
    made, and reused in place: at ten million units each is 80 MB of fresh memory, whose
    first touch cost more than the arithmetic (10 metrics: 1.0 s down to 0.5 s, measured)."""
    every = np.ones(units, dtype=bool)
    if how is Aggregation.COUNT:
        return UnitValues(np.bincount(unit, minlength=units).astype(np.float64), every)
    if how is Aggregation.ANY:
        hits = np.bincount(unit, weights=value > 0, minlength=units)
        return UnitValues(np.minimum(hits, 1.0, out=hits), every)  # 1 when any event hit
    sums = np.bincount(unit, weights=value, minlength=units)
    if how is Aggregation.SUM:
        return UnitValues(sums, every)
    counts = np.bincount(unit, minlength=units)
    counted = counts > 0
    # a unit without events has a sum of 0 and stays 0: left out through ``counted``
    return UnitValues(np.divide(sums, counts, out=sums, where=counted), counted)


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
