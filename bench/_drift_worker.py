"""One timed drift computation in a fresh process, for bench_drift.py: prints one JSON line.

    python bench/_drift_worker.py SIDE REF.parquet CUR.parquet [PROFILE.json]

SIDE is ``steward`` (both tables in memory as pyarrow Tables), ``steward_profile`` (the
reference's profile JSON and the current table), ``floor`` (numpy sorting every column of both
samples: the float64 values of numeric columns, the int32 dictionary codes of text columns),
``floor_current`` (the same, current sample only), ``evidently`` (``Report([DataDriftPreset()])``
on pandas DataFrames) or ``profile_build`` (``build_profile`` streaming REF.parquet).

The data is loaded before the clock starts, a warm-up runs the same code on the first 2,000
rows (lazy imports, first-call costs), then the peak-RSS mark of the process is reset (Linux
``/proc/self/clear_refs``) and one timed run follows. ``extra_mb`` is the peak RSS during the
run minus the RSS before it; ``data_mb`` the in-memory size of the current window as this side
holds it (``profile_build``: of the reference).
"""

from __future__ import annotations

import gc
import json
import sys
import time
import warnings
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from _rss import MB, reset_peak, status_mb


def _head(table: pa.Table, rows: int = 2000) -> pa.Table:
    return table.slice(0, rows)


# -- sides -------------------------------------------------------------------------------------
def steward(ref_path: str, cur_path: str, _profile: str | None) -> tuple[Any, Any, float]:
    from steward.monitoring.drift import compare

    ref, cur = pq.read_table(ref_path), pq.read_table(cur_path)
    compare(_head(ref), _head(cur))
    return (lambda: compare(ref, cur)), _drifted_steward, cur.nbytes / MB


def steward_profile(ref_path: str, cur_path: str, profile: str | None) -> tuple[Any, Any, float]:
    from steward.monitoring.drift import compare, read_profile

    assert profile is not None
    reference = read_profile(profile)
    cur = pq.read_table(cur_path)
    compare(reference, _head(cur))
    return (lambda: compare(reference, cur)), _drifted_steward, cur.nbytes / MB


def _drifted_steward(report: Any) -> list[str]:
    return sorted(report.drifted_columns)


def _floor_arrays(table: pa.Table) -> list[np.ndarray]:
    out = []
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            encoded = column.dictionary_encode().combine_chunks()
            out.append(encoded.indices.to_numpy())
        else:
            out.append(column.to_numpy())
    return out


def _sort_all(arrays: list[np.ndarray]) -> None:
    for values in arrays:
        np.sort(values)


def floor(ref_path: str, cur_path: str, _profile: str | None) -> tuple[Any, Any, float]:
    cur = pq.read_table(cur_path)
    arrays = _floor_arrays(pq.read_table(ref_path)) + _floor_arrays(cur)
    _sort_all([a[:2000] for a in arrays])
    return (lambda: _sort_all(arrays)), None, cur.nbytes / MB


def floor_current(ref_path: str, cur_path: str, _profile: str | None) -> tuple[Any, Any, float]:
    cur = pq.read_table(cur_path)
    arrays = _floor_arrays(cur)
    _sort_all([a[:2000] for a in arrays])
    return (lambda: _sort_all(arrays)), None, cur.nbytes / MB


def evidently(ref_path: str, cur_path: str, _profile: str | None) -> tuple[Any, Any, float]:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    ref, cur = pq.read_table(ref_path).to_pandas(), pq.read_table(cur_path).to_pandas()

    def run(reference: Any, current: Any) -> Any:
        return Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)

    run(ref.head(2000), cur.head(2000))
    return (lambda: run(ref, cur)), _drifted_evidently, cur.memory_usage(deep=True).sum() / MB


def _drifted_evidently(snapshot: Any) -> list[str]:
    """The columns whose ValueDrift metric says drift, with Evidently's own comparison (its
    tests flag drift at p < threshold, except ks at p <= threshold; distances >= threshold)."""
    out = []
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config.get("type") != "evidently:metric_v2:ValueDrift":
            continue
        value, threshold, method = float(metric["value"]), config["threshold"], config["method"]
        if "p_value" in method:
            drifted = value <= threshold if method.startswith("K-S") else value < threshold
        else:
            drifted = value >= threshold
        if drifted:
            out.append(config["column"])
    return sorted(out)


def profile_build(ref_path: str, _cur: str, _profile: str | None) -> tuple[Any, Any, float]:
    from steward.monitoring.drift import build_profile

    # warm up on the first rows only: reading the whole file here would leave its pages in
    # the process and hide the streamed build's own memory
    first = next(pq.ParquetFile(ref_path).iter_batches(batch_size=2000))
    build_profile(pa.Table.from_batches([first]))
    size = pq.ParquetFile(ref_path).metadata
    data_mb = sum(size.row_group(i).total_byte_size for i in range(size.num_row_groups)) / MB
    return (lambda: build_profile(ref_path)), None, data_mb


SIDES = {f.__name__: f for f in (steward, steward_profile, floor, floor_current, evidently,
                                  profile_build)}  # fmt: skip


def main(argv: list[str]) -> None:
    warnings.filterwarnings("ignore")
    side, ref_path, cur_path = argv[:3]
    profile = argv[3] if len(argv) > 3 else None
    call, drifted, data_mb = SIDES[side](ref_path, cur_path, profile)
    gc.collect()
    before = status_mb("VmRSS")
    reset_peak()
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    peak = status_mb("VmHWM")
    if side == "profile_build" and profile:
        with open(profile, "w") as f:  # the profile the steward_profile runs will read
            f.write(result.to_json())
    out = {
        "side": side,
        "seconds": seconds,
        "rss_before_mb": round(before, 1),
        "extra_mb": round(peak - before, 1),
        "data_mb": round(float(data_mb), 1),
        "drifted": drifted(result) if drifted else None,
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
