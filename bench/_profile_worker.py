"""One timed read of a Parquet file in a fresh process, for bench_profile.py: prints one JSON line.

    python bench/_profile_worker.py SIDE DATA.parquet BATCH_ROWS WARM.parquet

SIDE is ``profile`` (``build_profile(DATA, batch_rows=BATCH_ROWS)``, as shipped),
``batches`` (the record batches build_profile reads, through the same reader, and nothing
else: the floor of streaming) or ``table`` (``pyarrow.parquet.read_table(DATA)``, all
defaults: what streaming avoids).

Before the clock starts the process runs the same code on WARM.parquet, a 2,000-row file of the
same schema (lazy imports, first-call costs). Not on the first rows of DATA: opening DATA with
pyarrow's defaults reads a whole row group, and the allocator keeps those pages, so the timed
run would reuse them and its peak would look ~100 MB smaller than it is. Then the peak-RSS mark
is reset (Linux ``/proc/self/clear_refs``) and one timed run follows. ``extra_mb`` is the peak
RSS during the run minus the RSS before it; ``arrow_peak_mb`` the peak of Arrow's own allocator
(``pyarrow.default_memory_pool().max_memory()``, the warm-up's included, which is tiny).
"""

from __future__ import annotations

import gc
import json
import sys
import time
import warnings
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from _rss import MB, reset_peak, status_mb
from steward.monitoring._tables import batches, source
from steward.monitoring.drift import build_profile


def profile(path: str, batch_rows: int) -> dict[str, Any]:
    result = build_profile(path, batch_rows=batch_rows)
    return {"rows": result.rows, "columns": len(result.columns), "json": result}


def read_batches(path: str, batch_rows: int) -> dict[str, Any]:
    rows, largest = 0, 0
    for batch in batches(source(path, "data"), "data", batch_rows):
        rows += batch.num_rows
        largest = max(largest, batch.nbytes)
    return {"rows": rows, "batch_mb": round(largest / MB, 2)}


def table(path: str, _batch_rows: int) -> dict[str, Any]:
    data = pq.read_table(path)
    return {"rows": data.num_rows, "table_mb": round(data.nbytes / MB, 1)}


SIDES = {"profile": profile, "batches": read_batches, "table": table}


def main(argv: list[str]) -> None:
    warnings.filterwarnings("ignore")
    side, path, batch_rows, warm = argv[0], argv[1], int(argv[2]), argv[3]
    run = SIDES[side]
    run(warm, batch_rows)
    gc.collect()
    before = status_mb("VmRSS")
    reset_peak()
    start = time.perf_counter()
    out = run(path, batch_rows)
    seconds = time.perf_counter() - start
    peak = status_mb("VmHWM")
    if "json" in out:  # serialised after the measurement: storing it is not building it
        out["json_kb"] = round(len(out.pop("json").to_json().encode()) / 1024, 1)
    out.update(
        side=side,
        batch_rows=batch_rows,
        seconds=seconds,
        rss_before_mb=round(before, 1),
        extra_mb=round(peak - before, 1),
        arrow_peak_mb=round(pa.default_memory_pool().max_memory() / MB, 1),
    )
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
