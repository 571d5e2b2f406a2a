"""One timed experiment analysis in a fresh process, for bench_experiments.py: prints one JSON line.

    python bench/_experiments_worker.py SIDE DATA_DIR WARM_DIR [--profile]

SIDE is ``steward`` (``steward.store.outcome_events.keyed_events``, ``_unit_values.events``
and ``aggregate`` and ``steward.stats``, composed as ``steward.experiments.analysis._analysis``
composes them), ``pandas`` (pandas + statsmodels + scipy, idiomatic), ``shipped``
(``analysis._outcomes`` and ``_analysis``, as ``analyze_experiment`` runs them, on exposures
built in memory before the clock starts) or ``buckets`` (Steward's sha256 assignment of every
exposed unit, ``steward.experiments._exposures.buckets``, on the ids already in memory: not
part of either analysis). DATA_DIR holds ``exposures.parquet``, the outcome log under
``outcomes/`` and ``metrics.json`` (bench_experiments.write_dataset); WARM_DIR the same for a
small dataset.

The analysis runs once on WARM_DIR first (lazy imports, first-call costs), then the peak-RSS
mark of the process is reset (Linux ``/proc/self/clear_refs``) and one timed run follows, from
the Parquet files to the result. ``extra_mb`` is the peak RSS during the run minus the RSS
before it (the data read is part of the run); ``phases`` the seconds of each step. With
``--profile`` the timed run is under cProfile and its top functions go to stderr (where the
time goes; the times printed then include cProfile's overhead).
"""

from __future__ import annotations

import cProfile
import gc
import json
import pstats
import sys
import time
import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from _rss import reset_peak, status_mb

ALPHA = 0.05
Result = dict[str, Any]


class Clock:
    """Seconds per phase, in the order run."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = self.phases.get(phase, 0.0) + now - self._last
        self._last = now


def _facts(folder: Path) -> dict[str, Any]:
    return dict(json.loads((folder / "metrics.json").read_text()))


def _window(facts: dict[str, Any]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(facts["start"]), datetime.fromisoformat(facts["end"])


# -- Steward ---------------------------------------------------------------------------------
def steward(folder: Path, clock: Clock) -> Result:
    from steward.domain.experiments import Aggregation
    from steward.experiments._unit_values import UnitBuffers, aggregate, unit_summaries
    from steward.stats import ab
    from steward.stats.corrections import adjust_p_values
    from steward.stats.srm import sample_ratio_mismatch
    from steward.store.outcome_events import keyed_events

    facts = _facts(folder)
    names = list(facts["metrics"])
    # the exposed units' keys, as the prediction log holds them beside the ids (the ids
    # themselves are not needed once they are keyed)
    exposures = pq.read_table(folder / "exposures.parquet",
                              columns=["variant", "unit_key_hi", "unit_key_lo"])  # fmt: skip
    keys = (exposures["unit_key_hi"], exposures["unit_key_lo"])  # DuckDB reads the chunks
    variant = exposures["variant"].to_numpy()
    clock.lap("read")
    # every event of the window read from the outcome log, joined onto the exposed units by
    # their keys (DuckDB) and gathered by metric; events of units never exposed dropped (the
    # requests are only read for outcomes keyed by request id, and these have none)
    by_metric = keyed_events(str(folder / "outcomes"), names, keys, None, *_window(facts))
    # analysis._analysis: each unit's variant index
    variants = [facts["control"], facts["treatment"]]
    codes = np.searchsorted(np.asarray(variants), variant)
    per_variant = np.bincount(codes, minlength=len(variants))
    clock.lap("map")
    buffers = UnitBuffers(len(variant))  # as analysis._analysis: one metric's units at a time
    results: Result = {}
    control, treatment = str(facts["control"]), str(facts["treatment"])
    for name, how in facts["metrics"].items():  # as analysis._metric, one metric at a time
        found = aggregate(Aggregation(how), by_metric[name], buffers)
        clock.lap("aggregate")
        summaries = unit_summaries(found, codes, per_variant, None, buffers)
        by_name = {str(v): s for v, s in zip(variants, summaries, strict=True)}
        kind: ab.Kind = "proportion" if Aggregation(how).is_proportion else "mean"
        analysis = ab.analyze(by_name, control, kind=kind, alpha=ALPHA, correction="none")
        c = analysis.comparisons[treatment]
        results[name] = {
            "n": [c.control.n, c.treatment.n],
            "mean": [c.control.mean, c.treatment.mean],
            "p_value": c.p_value,
        }
        clock.lap("test")
    adjusted = adjust_p_values([r["p_value"] for r in results.values()], "holm")
    for r, p in zip(results.values(), adjusted, strict=True):
        r["p_adjusted"] = p
        r["significant"] = p is not None and p < ALPHA
    counts = {str(v): int(n) for v, n in zip(variants, per_variant, strict=True)}
    srm = sample_ratio_mismatch(counts, facts["weights"])
    clock.lap("test")
    return {"metrics": results, "units": counts, "srm_p_value": srm.p_value}


# -- Steward's analysis as shipped -----------------------------------------------------------
def _shipped_inputs(folder: Path) -> tuple[Any, Any, Any, Any]:
    """What ``analyze_experiment`` holds before ``_analysis``: the experiment and its metric
    definitions (from the store), the exposures (from the prediction log: one request per
    unit here, its variant read from the file rather than hashed) and the outcome table as
    ``read_outcomes`` returns it (``name, unit_id, request_id, value``; no request ids)."""
    from datetime import UTC, datetime

    from steward.domain.experiments import (
        Experiment,
        ExperimentMetric,
        MetricDefinition,
        MetricRole,
        MetricSource,
    )
    from steward.experiments._exposures import Exposures

    facts = _facts(folder)
    now = datetime(2026, 11, 27, tzinfo=UTC)
    names = list(facts["metrics"])
    definitions = {
        n: MetricDefinition(name=n, source=MetricSource.OUTCOME, event=n, aggregation=how,
                            created_at=now, created_by="bench")
        for n, how in facts["metrics"].items()
    }  # fmt: skip
    roles = [MetricRole.PRIMARY] + [MetricRole.SECONDARY] * (len(names) - 1)
    experiment = Experiment(
        name=facts["salt"], deployment="bench", model_name="bench", control=facts["control"],
        variants=[facts["control"], facts["treatment"]],
        weights={int(v): w for v, w in facts["weights"].items()}, salt=facts["salt"],
        metrics=[ExperimentMetric(metric=n, role=r) for n, r in zip(names, roles, strict=True)],
        start=now, created_at=now, created_by="bench",
    )  # fmt: skip
    table = pq.read_table(folder / "exposures.parquet")
    units = table["unit_id"].combine_chunks()
    requests = pa.table({
        "request_id": pc.binary_join_element_wise("q-", units, ""),
        "unit": pa.array(np.arange(len(units), dtype=np.int64)),
    })  # fmt: skip
    keys = (table["unit_key_hi"].combine_chunks(), table["unit_key_lo"].combine_chunks())
    exposures = Exposures(units, table["variant"].to_numpy(), requests, 0, keys=keys)
    return experiment, definitions, exposures, _window(facts)


_inputs: dict[Path, tuple[Any, Any, Any, Any]] = {}


def shipped(folder: Path, clock: Clock) -> Result:
    """``analysis._outcomes`` (the outcome log read and joined onto the exposed units) then
    ``analysis._analysis``, on the exposures in memory (timed: the two of them)."""
    from steward.experiments.analysis import _analysis, _outcomes

    experiment, definitions, exposures, (start, end) = _inputs[folder]
    clock.lap("setup")
    root = str(folder / "outcomes")
    outcomes = _outcomes(root, definitions, exposures, start, end)
    found = _analysis(experiment, definitions, exposures, outcomes, root, end, end)
    clock.lap("analysis")
    results: Result = {}
    for metric in found.metrics:
        arm = metric.arms[0]
        results[metric.metric] = {
            "n": [metric.control_n, arm.n],
            "mean": [metric.control_mean, arm.mean],
            "p_value": arm.p_value,
            "p_adjusted": arm.p_value_adjusted,
            "significant": arm.significant,
        }
    units = {str(v): n for v, n in found.units.items()}
    return {"metrics": results, "units": units, "srm_p_value": found.srm.p_value}


# -- pandas + statsmodels --------------------------------------------------------------------
def pandas(folder: Path, clock: Clock) -> Result:
    import pandas as pd
    from scipy.stats import chisquare
    from statsmodels.stats.multitest import multipletests
    from statsmodels.stats.proportion import test_proportions_2indep
    from statsmodels.stats.weightstats import ttest_ind

    facts = _facts(folder)
    exposures = pd.read_parquet(folder / "exposures.parquet", columns=["unit_id", "variant"])
    # the whole log: every event is inside the experiment's window, so no filter by time
    # (Steward filters the first and last day by timestamp); ``outcome`` comes from the
    # folder names, as a categorical
    outcomes = pd.read_parquet(folder / "outcomes", columns=["unit_id", "outcome", "value"])
    clock.lap("read")
    per_unit = outcomes.groupby(["unit_id", "outcome"], sort=False, observed=True)["value"].agg(
        ["sum", "mean", "max"]
    )
    wide = per_unit.unstack("outcome")
    wide.columns = [f"{how}:{name}" for how, name in wide.columns]
    table = exposures.join(wide, on="unit_id")  # units never exposed drop out here
    clock.lap("reshape")
    control = table["variant"] == facts["control"]
    treatment = table["variant"] == facts["treatment"]
    results: Result = {}
    for name, how in facts["metrics"].items():
        if how == "any":
            values = (table[f"max:{name}"] > 0).astype(float)  # no event: NaN > 0 is False
        elif how == "sum":
            values = table[f"sum:{name}"].fillna(0.0)
        else:
            values = table[f"mean:{name}"]
        a, b = values[control].dropna(), values[treatment].dropna()
        if how == "any":
            test = test_proportions_2indep(b.sum(), len(b), a.sum(), len(a), method="wald")
            p_value = float(test.pvalue)
        else:
            p_value = float(ttest_ind(b, a, usevar="unequal")[1])
        results[name] = {"n": [len(a), len(b)], "mean": [a.mean(), b.mean()], "p_value": p_value}
    reject, adjusted, _, _ = multipletests(
        [r["p_value"] for r in results.values()], alpha=ALPHA, method="holm"
    )
    for r, p, significant in zip(results.values(), adjusted, reject, strict=True):
        r["p_adjusted"] = float(p)
        r["significant"] = bool(significant)
    sizes = table.groupby("variant").size()
    counts = {str(v): int(sizes.get(v, 0)) for v in (facts["control"], facts["treatment"])}
    weights = np.array([facts["weights"][v] for v in counts])
    srm = chisquare(list(counts.values()), f_exp=sum(counts.values()) * weights / weights.sum())
    clock.lap("test")
    return {"metrics": results, "units": counts, "srm_p_value": float(srm.pvalue)}


# -- the assignment, on its own --------------------------------------------------------------
def buckets(folder: Path, clock: Clock) -> Result:
    """Set up with the ids in memory (the analysis reads them anyway); timed: the hash."""
    from steward.experiments._exposures import buckets as hash_buckets

    ids = _ids[folder]
    points = hash_buckets(_facts(folder)["salt"], ids)
    clock.lap("buckets")
    return {"units": int(points.size)}


_ids: dict[Path, pa.Array] = {}


def _load_ids(folder: Path) -> None:
    _ids[folder] = pq.read_table(folder / "exposures.parquet")["unit_id"].combine_chunks()


SIDES: dict[str, Callable[[Path, Clock], Result]] = {
    "steward": steward,
    "shipped": shipped,
    "pandas": pandas,
    "buckets": buckets,
}


def main(argv: list[str]) -> None:
    warnings.filterwarnings("ignore")
    side, data, warm = argv[0], Path(argv[1]), Path(argv[2])
    run = SIDES[side]
    if side == "buckets":
        _load_ids(warm)
        _load_ids(data)
    if side == "shipped":
        _inputs[warm] = _shipped_inputs(warm)
        _inputs[data] = _shipped_inputs(data)
    run(warm, Clock())
    gc.collect()
    before = status_mb("VmRSS")
    reset_peak()
    clock = Clock()
    profiler = cProfile.Profile() if "--profile" in argv else None
    start = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    result = run(data, clock)
    seconds = time.perf_counter() - start
    peak = status_mb("VmHWM")
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(15)
    out = {
        "side": side,
        "seconds": seconds,
        "phases": {k: round(v, 4) for k, v in clock.phases.items()},
        "rss_before_mb": round(before, 1),
        "extra_mb": round(peak - before, 1),
        "result": result,
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
