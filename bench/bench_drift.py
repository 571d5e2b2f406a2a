"""Benchmark 7: data drift, Steward vs Evidently 0.7's DataDriftPreset, and the sort floor.

Synthetic reference and current tables (seeded) with drift injected in known columns: per
block of 20 columns, 14 floats (normal, lognormal, uniform, exponential, one with 5% NaN), 2
integer columns with hundreds of values (numerical by Evidently's rule) and 4 text columns (4,
8, 30 and 200 categories). Drift goes into 6 columns of each block (a 0.3 std shift, a 1.5x
scale, a heavier lognormal tail, a shifted integer, two category mixes changed): 30% of the
columns, so neither side should call dataset drift at Evidently's default share of 0.5.

Sides, each run in a fresh process (bench/_drift_worker.py) with the data already in memory:

- Steward: ``steward.monitoring.drift.compare(reference_table, current_table)`` on pyarrow
  Tables, every test exact (the raw reference);
- Steward with a precomputed profile: ``compare(profile, current_table)``, the profile built
  beforehand by ``build_profile(reference.parquet)`` (as at registration) and read from JSON;
- Evidently 0.7 ``Report([DataDriftPreset()]).run(current_data=..., reference_data=...)`` on
  pandas DataFrames, all defaults;
- the sort floor: ``np.sort`` of every column of both samples (float64 values; the int32
  dictionary codes of text columns, since sorting Python strings would measure the
  interpreter), and, informational, of the current sample only.

Runs are interleaved (one of each side per round); Evidently's runs are capped per size (it
takes minutes a run at 1M x 100). Before timing counts, the drifted columns of both sides are
compared with the injected ones. Memory: the peak RSS of the run above the RSS before it (the
data already loaded), from Linux's resettable high-water mark.
"""

from __future__ import annotations

import json
import statistics
import subprocess
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from _servers import BENCH_DIR, Context, Row

WORKER = BENCH_DIR / "_drift_worker.py"
BLOCK = 20
# per block of 20 columns: which ones drift in the current table (see the docstring)
DRIFTED_IN_BLOCK = (0, 3, 10, 14, 16, 18)
_CATEGORIES = {16: 4, 17: 8, 18: 30, 19: 200}


@dataclass(frozen=True)
class Size:
    rows: int
    columns: int
    runs: int  # Steward and floor runs
    evidently_runs: int

    @property
    def label(self) -> str:
        return f"{_count(self.rows)} x {self.columns}"


SIZES = [Size(100_000, 20, 5, 5), Size(1_000_000, 20, 5, 3), Size(1_000_000, 100, 3, 1)]
QUICK_SIZES = [Size(20_000, 20, 3, 2), Size(100_000, 20, 3, 1), Size(100_000, 100, 2, 1)]


def _count(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"


# -- data ------------------------------------------------------------------------------------
def _categories(rng: np.random.Generator, n: int, k: int, drifted: bool) -> pa.Array:
    weights = 1.0 / np.arange(1, k + 1) ** (0.3 if drifted else 1.1)  # zipf-like mixes
    if k == 4:
        weights = np.array([0.1, 0.2, 0.3, 0.4]) if drifted else np.array([0.4, 0.3, 0.2, 0.1])
    codes = rng.choice(k, n, p=weights / weights.sum()).astype(np.int32)
    names = pa.array([f"cat_{k}_{i:03d}" for i in range(k)])
    return pa.DictionaryArray.from_arrays(pa.array(codes), names).cast(pa.string())


def _column(rng: np.random.Generator, j: int, n: int, drifted: bool) -> pa.Array:
    """Column ``j`` of a block; ``drifted``: the current table's version of a drifted one."""
    if j in _CATEGORIES:
        return _categories(rng, n, _CATEGORIES[j], drifted)
    if j == 10:
        return pa.array(rng.lognormal(0.0, 1.3 if drifted else 1.0, n))
    if j == 11:
        return pa.array(rng.uniform(-5, 5, n))
    if j == 12:
        values = rng.normal(2.0, 0.5, n)
        values[rng.random(n) < 0.05] = np.nan
        return pa.array(values, from_pandas=True)
    if j == 13:
        return pa.array(rng.exponential(3.0, n))
    if j == 14:
        return pa.array(rng.integers(0, 1000, n) + (150 if drifted else 0))
    if j == 15:
        return pa.array(rng.integers(18, 91, n))
    loc, scale = 10.0 * j, 1.0 + j / 4
    if drifted and j == 0:
        loc += 0.3 * scale
    if drifted and j == 3:
        scale *= 1.5
    return pa.array(rng.normal(loc, scale, n))


def table(rows: int, columns: int, *, current: bool, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    data = {}
    for i in range(columns):
        j = i % BLOCK
        drifted = current and j in DRIFTED_IN_BLOCK
        data[f"f{i:03d}"] = _column(rng, j, rows, drifted)
    return pa.table(data)


def injected(columns: int) -> list[str]:
    return sorted(f"f{i:03d}" for i in range(columns) if i % BLOCK in DRIFTED_IN_BLOCK)


# -- running ---------------------------------------------------------------------------------
def _work(ctx: Context, side: str, ref: Path, cur: Path, profile: Path) -> dict[str, Any]:
    cmd = [ctx.python, str(WORKER), side, str(ref), str(cur), str(profile)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, cwd=BENCH_DIR)
    if done.returncode != 0:
        raise RuntimeError(f"{side} failed: {done.stderr[-1500:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _prepare(ctx: Context, size: Size, workdir: Path) -> tuple[Path, Path, Path, dict[str, Any]]:
    ref, cur = workdir / "reference.parquet", workdir / "current.parquet"
    pq.write_table(table(size.rows, size.columns, current=False, seed=1), ref)
    pq.write_table(table(size.rows, size.columns, current=True, seed=2), cur)
    profile = workdir / "reference.profile.json"
    build = _work(ctx, "profile_build", ref, cur, profile)  # timed; writes the profile's JSON
    build["profile_kb"] = round(profile.stat().st_size / 1024)
    return ref, cur, profile, build


def _measure(ctx: Context, size: Size) -> dict[str, list[dict[str, Any]]]:
    workdir = ctx.scratch(f"drift-{size.rows}x{size.columns}")
    ctx.log(f"  {size.label}: writing the tables and building the profile")
    ref, cur, profile, build = _prepare(ctx, size, workdir)
    samples: dict[str, list[dict[str, Any]]] = {"profile_build": [build]}
    sides = ["steward", "steward_profile", "floor", "floor_current", "evidently"]
    for run in range(size.runs):
        for side in sides:
            if side == "evidently" and run >= size.evidently_runs:
                continue
            ctx.log(f"  {size.label}: {side} run {run + 1}")
            samples.setdefault(side, []).append(_work(ctx, side, ref, cur, profile))
    return samples


def _median(samples: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(s[key] for s in samples))


def _agreement(samples: dict[str, list[dict[str, Any]]], columns: int) -> str:
    truth = injected(columns)
    found = {side: samples[side][0]["drifted"] for side in ("steward", "steward_profile",
                                                              "evidently")}  # fmt: skip
    same = all(f == truth for f in found.values())
    if same:
        return (f"both flag exactly the {len(truth)} injected columns (Steward raw and from "
                "the profile, Evidently)")  # fmt: skip
    return "drifted columns DIFFER: " + "; ".join(
        f"{side}: {sorted(set(f) ^ set(truth))} differ from the injected set"
        for side, f in found.items()
    )


def _rows(size: Size, samples: dict[str, list[dict[str, Any]]]) -> list[Row]:
    seconds = {side: [s["seconds"] for s in runs] for side, runs in samples.items()}
    evidently = f"Evidently {version('evidently')} DataDriftPreset(), pandas {version('pandas')}"
    note = _agreement(samples, size.columns)
    build = samples["profile_build"][0]
    cur_mb = _median(samples["steward"], "data_mb")
    steward_mb = _median(samples["steward"], "extra_mb")
    profile_mb = _median(samples["steward_profile"], "extra_mb")
    evidently_mb = _median(samples["evidently"], "extra_mb")
    floor_current = statistics.median(seconds["floor_current"])
    notes = (
        f"{size.label}: {note}; current window {cur_mb:,.0f} MB in Arrow "
        f"({_median(samples['evidently'], 'data_mb'):,.0f} MB as a pandas DataFrame); "
        f"peak memory above the loaded data: Steward {steward_mb:,.0f} MB, with the profile "
        f"{profile_mb:,.0f} MB, Evidently {evidently_mb:,.0f} MB; sorting the current sample "
        f"alone {floor_current:.3g} s; building the profile (streamed from Parquet) "
        f"{build['seconds']:.3g} s, {build['extra_mb']:,.0f} MB peak, "
        f"{build['profile_kb']:,} KB of JSON"
    )
    runs = f"{len(seconds['evidently'])} run(s)"
    budget = 2 * cur_mb
    # the goal is at 1M x 20; shown on both rows, the raw reference and the profile
    goal_vs_evidently = 100.0 if (size.rows, size.columns) == (1_000_000, 20) else None
    return [
        Row("drift", f"{size.label}: Steward vs Evidently (raw reference)", "s", False,
            seconds["steward"], seconds["evidently"], f"{evidently}; {runs}",
            goal=goal_vs_evidently, notes=notes),
        Row("drift", f"{size.label}: Steward with a precomputed profile vs Evidently", "s",
            False, seconds["steward_profile"], seconds["evidently"], f"{evidently}; {runs}",
            goal=goal_vs_evidently, notes=notes),
        Row("drift", f"{size.label}: Steward with a precomputed profile vs the sort floor",
            "s", False, seconds["steward_profile"], seconds["floor"],
            "np.sort of every column of both samples", goal=1 / 3, notes=notes),
        Row("drift", f"{size.label}: Steward (raw reference) vs the sort floor", "s", False,
            seconds["steward"], seconds["floor"], "np.sort of every column of both samples",
            notes=notes),
        Row("drift", f"{size.label}: peak memory with a profile (data + work) vs 2x the "
            "current window", "MB", False,
            [cur_mb + s["extra_mb"] for s in samples["steward_profile"]], [budget],
            f"budget: 2 x {cur_mb:,.0f} MB", goal=1.0, notes=notes),
        Row("drift", f"{size.label}: peak memory above the loaded data, Steward vs Evidently",
            "MB", False, [s["extra_mb"] for s in samples["steward"]],
            [s["extra_mb"] for s in samples["evidently"]], f"{evidently}; {runs}",
            notes=notes),
    ]  # fmt: skip


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    for size in QUICK_SIZES if ctx.quick else SIZES:
        samples = _measure(ctx, size)
        rows += _rows(size, samples)
        ctx.log(f"  {size.label}: {_agreement(samples, size.columns)}")
    return rows
