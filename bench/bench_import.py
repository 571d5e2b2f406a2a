"""Benchmark 1: ``import steward`` vs ``import mlflow``, a fresh interpreter per sample.

Two measures, samples interleaved (steward, mlflow, baseline, ...) so drift hits all alike:
- ``-X importtime``: the cumulative microseconds the interpreter reports for the top-level
  package (precise, excludes interpreter start-up);
- wall clock of ``python -c "import x"`` minus the median of ``python -c "pass"``.
A third, informational pair imports each SDK's client class, which ``import steward`` defers.
"""

from __future__ import annotations

import re
import subprocess
import time

from _servers import Context, Row, median

_LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|\s?( *)(\S+)")


def _importtime_us(python: str, code: str, module: str) -> float:
    out = subprocess.run(
        [python, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True
    ).stderr
    total = 0.0
    for match in _LINE.finditer(out):
        # Top-level entries (no indent) belonging to the package: "mlflow", "steward.client", ...
        if match.group(3) == "" and match.group(4).split(".")[0] == module:
            total += int(match.group(2))
    return total


def _wall_s(python: str, code: str) -> float:
    start = time.perf_counter()
    subprocess.run([python, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - start


def run(ctx: Context) -> list[Row]:
    n = 7 if ctx.quick else 9
    py = ctx.python
    cases = {
        "steward": "import steward",
        "mlflow": "import mlflow",
        "steward_client": "from steward.client import Client",
        "mlflow_client": "from mlflow import MlflowClient",
    }
    # Warm the OS file cache (and .pyc files) once per case; not measured.
    for code in (*cases.values(), "pass"):
        _wall_s(py, code)
    it: dict[str, list[float]] = {k: [] for k in cases}
    wall: dict[str, list[float]] = {k: [] for k in (*cases, "pass")}
    for i in range(n):
        ctx.log(f"  import sample {i + 1}/{n}")
        for key, code in cases.items():
            it[key].append(_importtime_us(py, code, key.split("_")[0]) / 1000.0)
            wall[key].append(_wall_s(py, code) * 1000.0)
        wall["pass"].append(_wall_s(py, "pass") * 1000.0)
    base = median(wall["pass"])
    # A sample cannot be less than the interpreter's own account of the import: where the
    # start-up's noise (a few ms) hides an import of under a millisecond, the net would be 0
    # and the ratio infinite.
    net = {k: [max(v - base, median(it[k])) for v in wall[k]] for k in cases}
    note_wall = (
        f"wall clock of a fresh `python -c` minus `python -c pass` (median {base:.1f} ms), "
        "at least the -X importtime figure"
    )
    return [
        Row("import", "`import steward` vs `import mlflow` (-X importtime, cumulative)", "ms",
            False, it["steward"], it["mlflow"], "-", goal=10.0,
            notes="sum of top-level cumulative import times of the package"),
        Row("import", "`import steward` vs `import mlflow` (wall clock, net of start-up)", "ms",
            False, net["steward"], net["mlflow"], "-", goal=10.0, notes=note_wall),
        Row("import", "SDK client: `from steward.client import Client` vs "
            "`from mlflow import MlflowClient` (-X importtime)", "ms",
            False, it["steward_client"], it["mlflow_client"], "-",
            notes="informational: `import steward` defers the client until first use"),
    ]  # fmt: skip
