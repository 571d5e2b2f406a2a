"""Benchmark 9: an experiment's analysis at 10M units x 10 metrics, Steward vs pandas + statsmodels.

Data (seeded, written in chunks into a scratch folder, deleted once measured):

- ``exposures.parquet``: one row per unit, ``unit_id`` (16 hex characters) and ``variant``
  (int64: version 1 or 2, 50/50), the variant computed with Steward's vectorised
  ``steward.experiments._exposures.buckets`` on the ids (the gateway's sha256 bucket, the same
  numbers as ``steward.domain.assignment.variant_for``, which is checked on a sample);
- ``outcomes/``: the events as Steward's outcome log keeps them
  (``outcome={name}/day={YYYY-MM-DD}/part-0.parquet``, ``RECORD_SCHEMA``: ``unit_id``,
  ``request_id`` (null: keyed by unit), ``value``, ``timestamp``, ``logged_at``, ``source``),
  one row per event at a random time in the experiment's week (2026-11-20 06:00 to 11-27
  06:00 UTC, so 8 day folders per outcome, the first and last cut by the window), sparse (a
  unit has events for some metrics only, some several): 4 conversions (ANY: the unit converted
  if it has an event), 4 revenue-like sums (SUM, 0 without events) and 2 means (MEAN of the
  unit's events, units without events left out), in random unit order; 0.5% of the rows belong
  to units never exposed, which both sides must drop. True effects: ``checkout`` converts 4%
  more in variant 2, and ``revenue``'s values are 4% higher there; the other 8 metrics have
  none.

Sides, each run in a fresh process (bench/_experiments_worker.py), after a warm-up on a 20,000-unit
dataset of the same shape; the clock runs from the Parquet files to the analysis result:

- Steward: pyarrow reads the exposures, ``steward.store.outcome_events.keyed_events`` reads the
  outcome log's files of the window (the two cut days filtered by timestamp) and joins every
  event's unit id onto the exposed units (DuckDB), gathered by metric, then, one metric at a
  time, ``_unit_values.aggregate`` makes its per-unit values,
  ``steward.stats.ab.summaries_by_group`` and ``ab.analyze`` (Welch t, or the unpooled
  two-proportion z for conversions) test it; ``adjust_p_values(holm)`` adjusts across the 10
  and ``sample_ratio_mismatch`` checks the split: the functions and the order of
  ``steward.experiments.analysis._analysis``, called directly (the service itself needs a
  metadata store and the prediction log);
- pandas + statsmodels: ``pd.read_parquet`` of the exposures and of the log's folder (the
  outcome's name comes from the folder names, as a categorical; no filter by time: every
  event is inside the window), ``groupby([unit_id, outcome], sort=False)`` ``.agg`` then
  ``unstack`` to one row per unit, a left join onto the exposures (fill 0 for sums and
  conversions, missing means dropped), then per metric ``ttest_ind(usevar="unequal")`` or the
  unpooled two-proportion z (``test_proportions_2indep(method="wald")``: ``proportions_ztest``
  only has the pooled one), ``multipletests(method="holm")`` and ``scipy.stats.chisquare``.
  ``sort=False`` because the default sort of 10M string keys cost pandas ~10 s more here;
- informational, Steward's own path: ``analysis._outcomes`` (the same read and join) then
  ``analysis._analysis``, what ``analyze_experiment`` runs after reading the prediction log
  and before recording the event, with the exposures already in memory (one request per
  unit: the check for outcomes keyed by request id runs, and finds none).

Neither side hashes the units into variants: both read the variant from the exposures file.
Steward's ``buckets`` (sha256 per unit), which the service runs on every analysis, is timed on
its own and reported beside. Before any timing counts, both sides' p-values (raw and adjusted)
must agree to 1e-6 relative, their counts exactly and their significant metrics be the same,
else the benchmark fails. Memory: peak RSS of the run above the RSS before it (Linux's resettable
high-water mark, as bench_drift), so it includes the data read. A test run on the same cores
would skew the times, so each run first waits for no ``pytest`` process (bench_profile.Quiet)
and for other processes to use under a quarter of the CPUs (15 minutes of waiting at most in
all, then noted); the share they used in the second before each run is recorded.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from _servers import BENCH_DIR, Context, Row
from bench_profile import QUIET_BUDGET_S, Quiet
from steward.domain.assignment import variant_for
from steward.experiments._exposures import buckets
from steward.store.outcome_log import DAY_FORMAT, RECORD_SCHEMA, partition_path
from steward.store.unit_keys import unit_keys

WORKER = BENCH_DIR / "_experiments_worker.py"
SALT = "bench-experiment"  # the experiment's name: the hash's salt
SPLIT = {1: 0.5, 2: 0.5}  # version -> weight; version 1 is the control
CONTROL, TREATMENT = 1, 2
CHUNK_ROWS = 1 << 20  # outcome rows written at a time (one row group each)
# the experiment's window: a week, starting and ending mid-day, so the first and last day
# folders of the log hold events on both sides of a bound and must be filtered by time
START = datetime(2026, 11, 20, 6, tzinfo=UTC)
END = datetime(2026, 11, 27, 6, tzinfo=UTC)
FIRST_DAY = datetime(2026, 11, 20, tzinfo=UTC)
ONE_DAY = timedelta(days=1)
STRANGERS = 0.005  # share of outcome rows from units never exposed
WARM_UNITS = 20_000
SEED = 7
RTOL = 1e-6
ALPHA = 0.05
MB = 1 << 20
BUSY_LIMIT = 0.25  # of the machine's CPUs used by others, above which a run waits


@dataclass(frozen=True)
class Metric:
    """One metric's events: ``presence`` of the units have 1 + Poisson(``extra``) events with
    values drawn by ``draw``; in the treatment, presence (ANY) or values (SUM) x ``effect``."""

    name: str
    aggregation: str  # "any" (a conversion), "sum" or "mean": steward's Aggregation values
    presence: float
    extra: float
    draw: tuple[Any, ...]
    effect: float = 1.0


METRICS = (
    Metric("signup", "any", 0.08, 0.3, ("one",)),
    Metric("checkout", "any", 0.05, 0.3, ("one",), effect=1.04),
    Metric("subscribe", "any", 0.02, 0.1, ("one",)),
    Metric("return_7d", "any", 0.30, 0.5, ("one",)),
    Metric("revenue", "sum", 0.10, 1.0, ("lognormal", 3.0, 1.0), effect=1.04),
    Metric("ad_revenue", "sum", 0.30, 1.0, ("lognormal", -3.0, 1.2)),
    Metric("items", "sum", 0.10, 0.5, ("integers", 1, 6)),
    Metric("refunds", "sum", 0.01, 0.2, ("lognormal", 3.0, 1.0)),
    Metric("latency_ms", "mean", 0.70, 0.8, ("lognormal", math.log(120.0), 0.5)),
    Metric("session_minutes", "mean", 0.50, 0.3, ("gamma", 2.0, 4.0)),
)
INJECTED = sorted(m.name for m in METRICS if m.effect != 1.0)


@dataclass(frozen=True)
class Size:
    units: int
    runs: int  # Steward and pandas runs
    extra_runs: int  # runs of Steward's events() + _analysis and of buckets()

    @property
    def label(self) -> str:
        return f"{_count(self.units)} units x {len(METRICS)} metrics"


SIZES = [Size(1_000_000, 5, 3), Size(10_000_000, 3, 1)]
QUICK_SIZES = [Size(100_000, 2, 1), Size(1_000_000, 2, 1)]
GOAL_UNITS = 10_000_000  # the goal: >= 10x pandas + statsmodels at 10M x 10
GOAL = 10.0


def _count(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"


# -- data ------------------------------------------------------------------------------------
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def unit_ids(start: int, stop: int) -> pa.StringArray:
    """16 hex characters per unit: splitmix64 of its number (a bijection, so no two collide)."""
    z = np.arange(start, stop, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    nibbles = z.astype(">u8").view(np.uint8).reshape(-1, 8)
    chars = np.empty((z.size, 16), dtype=np.uint8)
    chars[:, 0::2], chars[:, 1::2] = _HEX[nibbles >> 4], _HEX[nibbles & 15]
    offsets = np.arange(0, 16 * (z.size + 1), 16, dtype=np.int32)
    return pa.StringArray.from_buffers(z.size, pa.py_buffer(offsets), pa.py_buffer(chars))


def assign_variants(ids: pa.Array) -> np.ndarray:
    """The version of ``SPLIT`` each unit gets from the gateway's hash (``variant_for``)."""
    points = buckets(SALT, ids)
    return np.where(points < SPLIT[CONTROL] / sum(SPLIT.values()), CONTROL, TREATMENT)


def _draw(rng: np.random.Generator, draw: tuple[Any, ...], n: int) -> np.ndarray:
    kind, *args = draw
    if kind == "one":
        return np.ones(n)
    if kind == "lognormal":
        return rng.lognormal(args[0], args[1], n)
    if kind == "integers":
        return rng.integers(args[0], args[1], n).astype(np.float64)
    return rng.gamma(args[0], args[1], n)


def _events(
    rng: np.random.Generator, metric: Metric, treated: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(unit number, value) of every event of ``metric``, in random unit order."""
    lift = metric.effect if metric.aggregation == "any" else 1.0
    chance = np.where(treated, min(metric.presence * lift, 1.0), metric.presence)
    present = np.flatnonzero(rng.random(treated.size) < chance)
    per_unit = 1 + rng.poisson(metric.extra, present.size)
    unit = np.repeat(present, per_unit)
    value = _draw(rng, metric.draw, unit.size)
    if metric.aggregation == "sum" and metric.effect != 1.0:
        value = np.where(treated[unit], value * metric.effect, value)
    order = rng.permutation(unit.size)
    return unit[order], value[order]


def write_dataset(folder: Path, units: int, seed: int) -> dict[str, Any]:
    """``exposures.parquet``, the outcome log under ``outcomes/`` and ``metrics.json`` in
    ``folder``; the facts of what was written."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    strangers = max(units // 200, 10)
    ids = unit_ids(seed << 40, (seed << 40) + units + strangers)  # exposed, then never exposed
    variant = assign_variants(ids.slice(0, units))
    hi, lo = unit_keys(ids)  # as both logs write them beside the id
    exposures = pa.table({
        "unit_id": ids.slice(0, units), "variant": pa.array(variant),
        "unit_key_hi": hi.slice(0, units), "unit_key_lo": lo.slice(0, units),
    })  # fmt: skip
    pq.write_table(exposures, folder / "exposures.parquet", row_group_size=CHUNK_ROWS)
    treated = variant == TREATMENT
    rows = 0
    for metric in METRICS:
        unit, value = _events(rng, metric, treated)
        # events of units never exposed, mixed in (both sides must drop them)
        extra = rng.binomial(unit.size, STRANGERS)
        where = rng.integers(0, unit.size, extra)
        unit[where] = units + rng.integers(0, strangers, extra)
        _write_outcome(folder / "outcomes", metric.name, (ids, hi, lo), unit, value, rng)
        rows += unit.size
    facts = {
        "units": units,
        "rows": rows,
        "salt": SALT,
        "control": CONTROL,
        "treatment": TREATMENT,
        "weights": {str(v): w for v, w in SPLIT.items()},
        "metrics": {m.name: m.aggregation for m in METRICS},
        "start": START.isoformat(),
        "end": END.isoformat(),
    }
    (folder / "metrics.json").write_text(json.dumps(facts))
    _check_assignment(ids, variant, units)
    return facts


def _write_outcome(
    root: Path, name: str, ids: tuple[pa.Array, pa.Array, pa.Array], unit: np.ndarray,
    value: np.ndarray, rng: np.random.Generator,
) -> None:  # fmt: skip
    """One outcome's events at random times in [START, END), as the outcome log keeps them:
    one file per day, ``RECORD_SCHEMA``, keyed by unit id; ``ids``: each unit's id and its
    key (hi, lo)."""
    stamp = _us(START) + rng.integers(0, _us_in(END - START), unit.size)
    day = (stamp - _us(FIRST_DAY)) // _us_in(ONE_DAY)
    for d in np.unique(day):
        rows = np.flatnonzero(day == d)
        folder = root / partition_path(name, (FIRST_DAY + int(d) * ONE_DAY).strftime(DAY_FORMAT))
        folder.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(folder / "part-0.parquet", RECORD_SCHEMA) as writer:
            for start in range(0, rows.size, CHUNK_ROWS):
                chunk = rows[start : start + CHUNK_ROWS]
                times = pa.array(stamp[chunk], pa.timestamp("us", tz="UTC"))
                of = pa.array(unit[chunk])
                writer.write_table(pa.table({
                    "unit_id": ids[0].take(of),
                    "request_id": pa.nulls(chunk.size, pa.string()),
                    "value": pa.array(value[chunk]),
                    "timestamp": times,
                    "logged_at": times,
                    "source": pa.repeat(pa.scalar("file"), chunk.size),
                    "unit_key_hi": ids[1].take(of),
                    "unit_key_lo": ids[2].take(of),
                }, schema=RECORD_SCHEMA))  # fmt: skip


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _us_in(span: timedelta) -> int:
    return int(span.total_seconds() * 1_000_000)


def _check_assignment(ids: pa.Array, variant: np.ndarray, units: int) -> None:
    """The vectorised variants are the gateway's: ``variant_for`` on 2,000 spread units."""
    for i in np.linspace(0, units - 1, 2000).astype(int):
        expected = variant_for(SPLIT, ids[int(i)].as_py(), experiment=SALT)
        if expected != variant[i]:
            raise RuntimeError(f"unit {i}: buckets gave v{variant[i]}, variant_for v{expected}")


def _disk_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*.parquet")) / MB


def _check_room(folder: Path, units: int) -> None:
    """Both datasets take ~100 bytes a unit on disk; ask for 4x that, free."""
    need = 4 * 100 * (units + WARM_UNITS)
    free = shutil.disk_usage(folder).free
    if free < need:
        raise RuntimeError(f"{folder} has {free / MB:,.0f} MB free; this size needs "
                           f"{need / MB:,.0f} MB")  # fmt: skip


# -- running ---------------------------------------------------------------------------------
def _busy(seconds: float = 1.0) -> float:
    """The share of the machine's CPU time used by others over ``seconds`` (this bench idle)."""

    def ticks() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # all, idle + iowait

    total, idle = ticks()
    time.sleep(seconds)
    total2, idle2 = ticks()
    return 1.0 - (idle2 - idle) / max(total2 - total, 1)


def _idle(ctx: Context, quiet: Quiet) -> float:
    """Wait (within Quiet's budget) while other processes use more than BUSY_LIMIT of the CPUs
    (another benchmark, a build): pytest is not the only thing that runs here. The last share
    measured."""
    quiet.wait()
    busy = _busy()
    while busy > BUSY_LIMIT and quiet.waited_s < QUIET_BUDGET_S:
        if quiet.waited_s == 0:
            ctx.log(f"  other processes use {busy:.0%} of the CPUs: waiting for them to end")
        time.sleep(19)
        quiet.waited_s += 20
        busy = _busy()
    return busy


def _work(ctx: Context, quiet: Quiet, side: str, data: Path, warm: Path) -> dict[str, Any]:
    busy = _idle(ctx, quiet)
    cmd = [ctx.python, str(WORKER), side, str(data), str(warm)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, cwd=BENCH_DIR)
    if done.returncode != 0:
        raise RuntimeError(f"{side} failed: {done.stderr[-1500:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "busy": busy}


Samples = dict[str, list[dict[str, Any]]]


def _measure(ctx: Context, quiet: Quiet, size: Size) -> Samples:
    folder = ctx.scratch(f"experiments-{size.units}")
    data, warm = folder / "data", folder / "warm"
    try:
        _check_room(folder, size.units)
        ctx.log(f"  {size.label}: writing the exposures and outcomes")
        start = time.perf_counter()
        facts = write_dataset(data, size.units, SEED)
        write_dataset(warm, WARM_UNITS, SEED + 1)
        facts["write_s"] = time.perf_counter() - start
        facts["disk_mb"] = _disk_mb(data)
        ctx.log(f"  wrote {facts['rows']:,} outcome rows, {facts['disk_mb']:,.0f} MB, in "
                f"{facts['write_s']:.0f} s")  # fmt: skip
        samples: Samples = {"data": [facts]}
        for run in range(size.runs):
            sides = ["steward", "pandas"] + (["shipped", "buckets"] if run < size.extra_runs
                                             else [])  # fmt: skip
            for side in sides:
                ctx.log(f"  {size.label}: {side} run {run + 1}")
                sample = _work(ctx, quiet, side, data, warm)
                if side in ("pandas", "shipped"):
                    _agree(samples["steward"][0]["result"], sample["result"], side)
                samples.setdefault(side, []).append(sample)
        return samples
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= RTOL * max(abs(a), abs(b))


def _agree(steward: dict[str, Any], other: dict[str, Any], side: str) -> None:
    """The same units, counts, p-values (raw and Holm-adjusted) and significant metrics."""
    problems = []
    if steward["units"] != other["units"]:
        problems.append(f"units per variant {steward['units']} vs {other['units']}")
    if not _close(steward["srm_p_value"], other["srm_p_value"]):
        problems.append(f"SRM p {steward['srm_p_value']} vs {other['srm_p_value']}")
    for name, mine in steward["metrics"].items():
        theirs = other["metrics"][name]
        if mine["n"] != theirs["n"]:
            problems.append(f"{name}: n {mine['n']} vs {theirs['n']}")
        for key in ("p_value", "p_adjusted"):
            if not _close(mine[key], theirs[key]):
                problems.append(f"{name}: {key} {mine[key]} vs {theirs[key]}")
        if mine["significant"] != theirs["significant"]:
            problems.append(f"{name}: significant {mine['significant']} vs {theirs['significant']}")
    if problems:
        raise RuntimeError(f"Steward and {side} disagree: " + "; ".join(problems))


def _significant(result: dict[str, Any]) -> list[str]:
    return sorted(n for n, r in result["metrics"].items() if r["significant"])


# -- rows ------------------------------------------------------------------------------------
def _median(samples: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(s[key] for s in samples))


def _phase(samples: list[dict[str, Any]], phase: str) -> float:
    return float(statistics.median(s["phases"].get(phase, 0.0) for s in samples))


def _values(samples: list[dict[str, Any]], key: str) -> list[float]:
    return [float(s[key]) for s in samples]


def _busiest(samples: list[dict[str, Any]]) -> str:
    busy = [s["busy"] for s in samples]
    return f"{statistics.median(busy):.0%} of the CPUs (at most {max(busy):.0%})"


def _notes(size: Size, samples: Samples, quiet: Quiet) -> str:
    facts = samples["data"][0]
    steward, pandas = samples["steward"], samples["pandas"]
    found = _significant(steward[0]["result"])
    verdict = (f"both sides find exactly the {len(INJECTED)} injected effects "
               f"({', '.join(INJECTED)})" if found == INJECTED else
               f"both sides find {found or 'nothing'}; injected: {INJECTED}")  # fmt: skip
    hashing = _median(samples["buckets"], "seconds")
    hashing_mb = _median(samples["buckets"], "extra_mb")
    total = _median(steward, "seconds")
    note = (
        f"{size.label}: {facts['rows']:,} outcome rows ({facts['rows'] / facts['units']:.1f} per "
        f"unit; {facts['disk_mb']:,.0f} MB of Parquet), p-values agree to {RTOL:g}; {verdict}. "
        f"Steward median phases: read the exposures {_phase(steward, 'read'):.3g} s, read "
        f"the outcome log and join it onto the units by metric (`keyed_events`, DuckDB "
        f"{version('duckdb')}) {_phase(steward, 'map'):.3g} s, per-unit aggregation "
        f"{_phase(steward, 'aggregate'):.3g} s, summaries + tests + Holm + SRM "
        f"{_phase(steward, 'test'):.3g} s; pandas + statsmodels: read "
        f"{_phase(pandas, 'read'):.3g} s, groupby/unstack/join {_phase(pandas, 'reshape'):.3g} s, "
        f"tests {_phase(pandas, 'test'):.3g} s. Peak RSS above the process before the run "
        f"(data read included): Steward {_median(steward, 'extra_mb'):,.0f} MB, pandas "
        f"{_median(pandas, 'extra_mb'):,.0f} MB. Not timed on either side: the sha256 "
        f"assignment; Steward's buckets() on these units takes {hashing:.3g} s "
        f"({hashing / facts['units'] * 1e6:.2f} µs a unit, {hashing_mb:,.0f} MB peak), which "
        f"with it would make Steward {total + hashing:.3g} s "
        f"({_median(pandas, 'seconds') / (total + hashing):.1f}x). Steward's own path, "
        f"`_outcomes` + `_analysis` "
        f"(as the service runs it, the exposures already in memory) takes "
        f"{_median(samples['shipped'], 'seconds'):.3g} s against "
        f"{total - _phase(steward, 'read'):.3g} s for the same steps above; other work on the "
        f"machine in the second before each run: median {_busiest(steward + pandas)}"
    )
    if quiet.waited_s or quiet.busy_runs:
        note += (f"; waited {quiet.waited_s:.0f} s for test runs or other work to end, "
                 f"{quiet.busy_runs} run(s) made while one was running")  # fmt: skip
    return note


def _rows(size: Size, samples: Samples, quiet: Quiet) -> list[Row]:
    steward, pandas = samples["steward"], samples["pandas"]
    notes = _notes(size, samples, quiet)
    peer = (f"pandas {version('pandas')} groupby/unstack/join, statsmodels "
            f"{version('statsmodels')} tests, scipy {version('scipy')} chisquare; "
            f"{len(pandas)} runs")  # fmt: skip
    direct = [s["seconds"] - s["phases"]["read"] for s in steward]
    return [
        Row("experiments", f"{size.label}: Steward vs pandas + statsmodels, Parquet to result",
            "s", False, _values(steward, "seconds"), _values(pandas, "seconds"), peer,
            goal=GOAL if size.units == GOAL_UNITS else None, notes=notes),
        Row("experiments", f"{size.label}: peak memory above the process, Steward vs pandas",
            "MB", False, _values(steward, "extra_mb"), _values(pandas, "extra_mb"), peer,
            notes=notes),
        Row("experiments", f"{size.label}: Steward's own `_outcomes` + `_analysis` vs the "
            "composition above, exposures in memory", "s", False,
            _values(samples["shipped"], "seconds"), direct,
            "the Steward row's map + aggregate + test phases", notes=notes),
    ]  # fmt: skip


def run(ctx: Context) -> list[Row]:
    quiet = Quiet(ctx.log)
    rows: list[Row] = []
    for size in QUICK_SIZES if ctx.quick else SIZES:
        samples = _measure(ctx, quiet, size)
        rows += _rows(size, samples, quiet)
        ctx.log(f"  {_notes(size, samples, quiet)}")
    return rows


if __name__ == "__main__":  # a dataset to profile on: python bench/bench_experiments.py DIR UNITS
    target, count = Path(sys.argv[1]), int(sys.argv[2])
    print(write_dataset(target, count, SEED))
