"""Benchmark 8: building a reference profile streams: 10M rows x 20 columns in bounded memory.

``steward.monitoring.drift.build_profile(path)`` reads a Parquet file in record batches into a
mergeable profile. This benchmark writes seeded Parquet files of 1M, 3M and 10M rows x 20
columns (bench_drift's reference generator: 14 floats of several shapes, one with 5% nulls, 2
integer columns, 4 text columns of 4 to 200 categories), in 1M-row chunks, one row group per
chunk (pyarrow's default row group size is about that), so writing them stays in bounded memory
too. Each file lives in a scratch folder and is deleted once measured.

Sides, each run in a fresh process (bench/_profile_worker.py) after a warm-up on a 2,000-row
file of the same schema:

- ``build_profile(path)`` with the default batch (65,536 rows) at every size; at 10M also with
  16,384- and 262,144-row batches, and on a 10M-row file written in 131,072-row row groups;
- the streaming floor: the same record batches read through the same reader and dropped
  (what build_profile costs before it computes anything);
- the reference point, what streaming avoids: ``pyarrow.parquet.read_table(path)``, all
  defaults, the whole table in memory. There is no direct peer for a streamed profile.

Memory: the run's peak RSS above the RSS before it (Linux's resettable high-water mark, as in
bench_drift). Each configuration runs ``runs`` times, sides interleaved; medians are reported,
and each peak is checked against the bound documented in docs/drift.md (``bound_mb`` below).
A test run on the same cores would skew the times, so each run first waits for no ``pytest``
process to be running (15 minutes at most in all, then noted).
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from _servers import BENCH_DIR, Context, Row
from bench_drift import table
from steward.monitoring._tables import DEFAULT_BATCH_ROWS

WORKER = BENCH_DIR / "_profile_worker.py"
COLUMNS = 20
SEED = 11
CHUNK_ROWS = 1_000_000  # rows generated and written at a time
MB = 1 << 20
QUIET_BUDGET_S = 15 * 60

# The documented bound (docs/drift.md, "Memory bound"), peak RSS above the RSS before the call:
#   G + READER_BATCHES x B x w + B x (8 x numeric columns + 48) + PER_COLUMN_MB x C + FIXED_MB
# G: the largest row group's compressed size (pyarrow's unbuffered reader, as Steward opens the
# file, reads each column chunk of the current row group whole); B x w: one record batch in
# Arrow; B x (8 x N + 48): Steward's float64 copies of the batch's numeric columns, held while
# the batch is profiled, and the temporaries of the column being profiled (mask, abs, std, a
# writable copy for the sketch, np.unique while under 1,024 values).
READER_BATCHES = 3  # Arrow's decoding buffers and the batch: ~2.3x Arrow's peak, ~3x in RSS
PER_COLUMN_MB = 2  # a decompressed data page (1 MiB by default), decoder and profile state
FIXED_MB = 128  # allocator slack (RSS above Arrow's own peak: 50-120 MB here), touched code


@dataclass(frozen=True)
class Case:
    rows: int
    row_group: int
    batch_rows: int
    usual_row_group: bool  # written like the other sizes (else the label says how)

    @property
    def label(self) -> str:
        text = f"{_count(self.rows)} x {COLUMNS}"
        if self.batch_rows != DEFAULT_BATCH_ROWS:
            text += f", {self.batch_rows:,}-row batches"
        if not self.usual_row_group:
            text += f", {self.row_group:,}-row row groups"
        return text


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...]
    row_group: int
    small_row_group: int
    other_batches: tuple[int, ...]
    runs: int


PLAN = Plan((1_000_000, 3_000_000, 10_000_000), 1_000_000, 131_072, (16_384, 262_144), 3)
QUICK_PLAN = Plan((100_000, 300_000, 1_000_000), 100_000, 16_384, (16_384, 262_144), 1)


def _count(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"


# -- data ------------------------------------------------------------------------------------
def write_parquet(path: Path, rows: int, row_group: int) -> None:
    """``rows`` seeded rows, generated and written ``CHUNK_ROWS`` at a time."""
    writer: pq.ParquetWriter | None = None
    try:
        for index, start in enumerate(range(0, rows, CHUNK_ROWS)):
            part = table(min(CHUNK_ROWS, rows - start), COLUMNS, current=False, seed=SEED + index)
            if writer is None:
                writer = pq.ParquetWriter(path, part.schema)
            writer.write_table(part, row_group_size=row_group)
    finally:
        if writer is not None:
            writer.close()


def largest_row_group_mb(path: Path) -> float:
    meta = pq.ParquetFile(path).metadata
    sizes = (
        sum(group.column(i).total_compressed_size for i in range(group.num_columns))
        for group in (meta.row_group(g) for g in range(meta.num_row_groups))
    )
    return max(sizes) / MB


def numeric_columns(path: Path) -> int:
    schema = pq.ParquetFile(path).schema_arrow
    return sum(pa.types.is_integer(f.type) or pa.types.is_floating(f.type) for f in schema)


def bound_mb(facts: dict[str, Any], batch_mb: float, batch_rows: int) -> float:
    steward = batch_rows * (8 * facts["numeric"] + 48) / MB
    return (facts["group_mb"] + READER_BATCHES * batch_mb + steward
            + PER_COLUMN_MB * COLUMNS + FIXED_MB)  # fmt: skip


# -- running ---------------------------------------------------------------------------------
@dataclass
class Quiet:
    """Waits for no pytest process before each run, within one budget for the whole bench."""

    log: Any
    waited_s: float = 0.0
    busy_runs: int = 0

    def wait(self) -> None:
        while _pytest_running():
            if self.waited_s >= QUIET_BUDGET_S:
                self.busy_runs += 1
                return
            if self.waited_s == 0:
                self.log("  a pytest run is using the cores: waiting for it to end")
            time.sleep(20)
            self.waited_s += 20


def _pytest_running() -> bool:
    found = subprocess.run(["pgrep", "-f", "pytest"], capture_output=True, text=True)
    return bool(found.stdout.strip())


def _work(ctx: Context, quiet: Quiet, side: str, data: Path, batch_rows: int,
          warm: Path) -> dict[str, Any]:  # fmt: skip
    quiet.wait()
    cmd = [ctx.python, str(WORKER), side, str(data), str(batch_rows), str(warm)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, cwd=BENCH_DIR)
    if done.returncode != 0:
        raise RuntimeError(f"{side} on {data.name} failed: {done.stderr[-1500:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _check(sample: dict[str, Any], rows: int) -> None:
    if sample["rows"] != rows or sample.get("columns", COLUMNS) != COLUMNS:
        raise RuntimeError(f"{sample['side']} read {sample['rows']} rows, expected {rows}")


def _files(plan: Plan) -> list[tuple[int, int, list[int]]]:
    """(rows, row group, batch sizes) of each file, in the order measured."""
    largest = plan.sizes[-1]
    out = [(rows, plan.row_group, [DEFAULT_BATCH_ROWS]) for rows in plan.sizes[:-1]]
    out.append((largest, plan.row_group, [DEFAULT_BATCH_ROWS, *plan.other_batches]))
    out.append((largest, plan.small_row_group, [DEFAULT_BATCH_ROWS]))
    return out


Samples = dict[str, list[dict[str, Any]]]


def _measure_file(ctx: Context, quiet: Quiet, plan: Plan, rows: int, row_group: int,
                  batch_sizes: list[int]) -> dict[Case, Samples]:  # fmt: skip
    folder = ctx.scratch(f"profile-{rows}-{row_group}")
    data, warm = folder / "data.parquet", folder / "warm.parquet"
    try:
        ctx.log(f"  {_count(rows)} x {COLUMNS}: writing the file ({row_group:,}-row row groups)")
        start = time.perf_counter()
        write_parquet(data, rows, row_group)
        pq.write_table(table(2000, COLUMNS, current=False, seed=SEED), warm)
        on_disk = data.stat().st_size / MB
        ctx.log(f"  wrote {on_disk:,.0f} MB in {time.perf_counter() - start:.0f} s")
        group_mb = largest_row_group_mb(data)
        usual = row_group == plan.row_group
        cases = {b: Case(rows, row_group, b, usual) for b in batch_sizes}
        facts = {"disk_mb": on_disk, "group_mb": group_mb, "numeric": numeric_columns(data)}
        out: dict[Case, Samples] = {c: {"file": [facts]} for c in cases.values()}
        for run in range(plan.runs):
            if usual:  # the whole table, once per round (the same table at any batch size)
                ctx.log(f"  {_count(rows)} x {COLUMNS}: read_table, run {run + 1}")
                whole = _work(ctx, quiet, "table", data, DEFAULT_BATCH_ROWS, warm)
                _check(whole, rows)
                for case in cases.values():
                    out[case].setdefault("table", []).append(whole)
            for case in cases.values():
                for side in ("profile", "batches"):
                    ctx.log(f"  {case.label}: {side}, run {run + 1}")
                    sample = _work(ctx, quiet, side, data, case.batch_rows, warm)
                    _check(sample, rows)
                    out[case].setdefault(side, []).append(sample)
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- rows ------------------------------------------------------------------------------------
def _median(samples: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(s[key] for s in samples))


def _values(samples: list[dict[str, Any]], key: str) -> list[float]:
    return [float(s[key]) for s in samples]


def _note(case: Case, samples: Samples) -> str:
    profile, floor = samples["profile"], samples["batches"]
    facts = samples["file"][0]
    batch_mb = _median(floor, "batch_mb")
    peak, floor_mb = _median(profile, "extra_mb"), _median(floor, "extra_mb")
    bound = bound_mb(facts, batch_mb, case.batch_rows)
    seconds = _median(profile, "seconds")
    return (
        f"{case.label}: {case.rows / seconds / 1e6:.2f}M rows/s; peak {peak:,.0f} MB; reading "
        f"the same batches and nothing else (the streaming floor) {floor_mb:,.0f} MB in "
        f"{_median(floor, 'seconds'):.3g} s; Arrow's own allocator peak "
        f"{_median(profile, 'arrow_peak_mb'):,.0f} MB; file {facts['disk_mb']:,.0f} MB on disk, "
        f"largest row group {facts['group_mb']:,.0f} MB, one batch {batch_mb:,.1f} MB in "
        f"Arrow; bound {bound:,.0f} MB; profile JSON {_median(profile, 'json_kb'):,.0f} KB"
    )


def _rows(results: dict[Case, Samples], plan: Plan, quiet: Quiet) -> list[Row]:
    largest = max(plan.sizes)
    whole = {c.rows: s["table"] for c, s in results.items() if "table" in s}
    pyarrow = f"pyarrow {version('pyarrow')}"
    method = (
        f"method: fresh process per run, warm-up on a 2,000-row file; peak = peak RSS above the "
        f"RSS before the call; {plan.runs} run(s) per configuration, medians; bound = largest "
        f"row group + {READER_BATCHES} x one batch + batch rows x (8 B x numeric columns + "
        f"48 B) + {PER_COLUMN_MB} MB x columns + {FIXED_MB} MB"
    )
    if quiet.waited_s or quiet.busy_runs:
        method += (f"; waited {quiet.waited_s:.0f} s for test runs to end, "
                   f"{quiet.busy_runs} run(s) made while one was running")  # fmt: skip
    rows: list[Row] = []
    for case, samples in results.items():
        profile, reference = samples["profile"], whole[case.rows]
        table_mb = _median(reference, "table_mb")
        notes = _note(case, samples)
        setting = f"`pq.read_table(path)`, {pyarrow} defaults; the table is {table_mb:,.0f} MB"
        rows.append(Row("profile", f"{case.label}: peak memory, build_profile vs reading the "
                        "whole table", "MB", False, _values(profile, "extra_mb"),
                        _values(reference, "extra_mb"), setting, notes=notes))  # fmt: skip
        bound = bound_mb(
            samples["file"][0], _median(samples["batches"], "batch_mb"), case.batch_rows
        )
        rows.append(Row("profile", f"{case.label}: peak memory vs the documented bound", "MB",
                        False, _values(profile, "extra_mb"), [bound],
                        "docs/drift.md's formula for this file and batch", goal=1.0,
                        notes=notes))  # fmt: skip
        if case.batch_rows == DEFAULT_BATCH_ROWS and case.usual_row_group:
            rows.append(Row("profile", f"{case.label}: time, build_profile vs reading the "
                            "whole table", "s", False, _values(profile, "seconds"),
                            _values(reference, "seconds"), setting, notes=notes))  # fmt: skip
    # these rows carry the method note, so the table lists it once
    last = Case(largest, plan.row_group, DEFAULT_BATCH_ROWS, True)
    for rows_before in plan.sizes[:-1]:
        first = Case(rows_before, plan.row_group, DEFAULT_BATCH_ROWS, True)
        rows.append(Row("profile", f"{last.label} vs {first.label}: peak memory of "
                        "build_profile, same batches and row groups (flat = 1x)", "MB", False,
                        _values(results[last]["profile"], "extra_mb"),
                        _values(results[first]["profile"], "extra_mb"),
                        f"build_profile on the {_count(first.rows)}-row file",
                        notes=method))  # fmt: skip
    return rows


def run(ctx: Context) -> list[Row]:
    plan = QUICK_PLAN if ctx.quick else PLAN
    quiet = Quiet(ctx.log)
    results: dict[Case, Samples] = {}
    for rows, row_group, batch_sizes in _files(plan):
        results.update(_measure_file(ctx, quiet, plan, rows, row_group, batch_sizes))
    for case, samples in results.items():
        ctx.log(f"  {_note(case, samples)}")
    return _rows(results, plan, quiet)
