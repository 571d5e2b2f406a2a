"""Steward vs MLflow, side by side in one run: writes bench/results/latest.json and the tables
in docs/benchmarks.md.

    python -m venv .venv-bench
    .venv-bench/bin/pip install -e . "mlflow==3.17.*" "pandas<3"
    .venv-bench/bin/python bench/run_all.py            # full run (~10 minutes)
    .venv-bench/bin/python bench/run_all.py --quick    # smoke run (~2 minutes)

Needs PostgreSQL for the postgres rows (``--pg-url``, a database the user may CREATE DATABASE
from; ``--backends sqlite`` skips them). Every server runs on 127.0.0.1 on a free port and is
stopped, and every scratch database dropped, when the run ends, even on failure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from _servers import BENCH_DIR, DEFAULT_PG_ADMIN_URL, Context, Row

ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results" / "latest.json"
DOC = ROOT / "docs" / "benchmarks.md"
BENCHMARKS = ["import", "log_batch", "registry", "search", "evaluate", "serving", "drift",
              "profile", "experiments"]  # fmt: skip
SERVER_BENCHMARKS = {"log_batch", "registry", "search"}  # the ones that use --backends
# The side each benchmark compares Steward with (MLflow unless named here).
PEERS = {"evaluate": "scikit-learn + fairlearn", "serving": "peer", "drift": "peer",
         "profile": "reference", "experiments": "pandas + statsmodels"}  # fmt: skip
BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"


def _version(module: str) -> str:
    try:
        return str(importlib.import_module(module).__version__)
    except Exception:
        return "?"


def machine_info(pg_url: str, backends: list[str], only: list[str]) -> dict[str, Any]:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "os": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "steward": _version("steward"),
        "mlflow": _version("mlflow"),
        "sqlalchemy": _version("sqlalchemy"),
        "uvicorn": _version("uvicorn"),
        "fastapi": _version("fastapi"),
        "sqlite": __import__("sqlite3").sqlite_version,
    }
    if "evaluate" in only:
        for module in ("numpy", "sklearn", "fairlearn"):
            info[module] = _version(module)
    if "drift" in only:
        for module in ("numpy", "scipy", "pyarrow", "pandas", "evidently"):
            info[module] = _version(module)
    if "profile" in only:
        for module in ("numpy", "pyarrow", "datasketches"):
            info[f"profile_{module}"] = importlib.metadata.version(module)
    if "experiments" in only:
        for module in ("numpy", "pyarrow", "duckdb", "pandas", "statsmodels", "scipy"):
            info[f"experiments_{module}"] = importlib.metadata.version(module)
    git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True)  # fmt: skip
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "src"],
                           capture_output=True, text=True)  # fmt: skip
    info["git"] = git.stdout.strip() + (" (+ uncommitted changes in src/)" if dirty.stdout else "")
    if "postgres" in backends and SERVER_BENCHMARKS & set(only):
        import psycopg

        with psycopg.connect(pg_url, autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            info["postgresql"] = row[0] if row else "?"
    return info


def _fmt(value: float, unit: str) -> str:
    if unit == "points/s":
        return f"{value:,.0f}"
    return f"{value:,.1f}" if value >= 10 else f"{value:,.2f}"


def _run_lines(results: dict[str, Any]) -> list[str]:
    info = results["machine"]
    return [
        f"Run {info['date']}, `{results['command']}`"
        + (
            " (**quick mode: fewer samples and 1,000 versions; not for quoting**)"
            if results["quick"]
            else ""
        )
        + ".",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['os']}; Python {info['python']}; "
        f"Steward {info['steward']} (git {info['git']}); MLflow {info['mlflow']}; "
        f"SQLAlchemy {info['sqlalchemy']}; uvicorn {info['uvicorn']}; SQLite {info['sqlite']}"
        + (f"; PostgreSQL {info['postgresql']}" if "postgresql" in info else "")
        + (
            f"; numpy {info['numpy']}, scikit-learn {info['sklearn']}, fairlearn "
            f"{info['fairlearn']}"
            if "fairlearn" in info
            else ""
        )
        + (
            f"; numpy {info['numpy']}, scipy {info['scipy']}, pyarrow {info['pyarrow']}, "
            f"pandas {info['pandas']}, Evidently {info['evidently']}"
            if "evidently" in info
            else ""
        )
        + (
            f"; numpy {info['profile_numpy']}, pyarrow {info['profile_pyarrow']}, "
            f"datasketches {info['profile_datasketches']}"
            if "profile_datasketches" in info
            else ""
        )
        + (
            f"; numpy {info['experiments_numpy']}, pyarrow {info['experiments_pyarrow']}, "
            f"duckdb {info['experiments_duckdb']}, pandas {info['experiments_pandas']}, "
            f"statsmodels {info['experiments_statsmodels']}, "
            f"scipy {info['experiments_scipy']}"
            if "experiments_statsmodels" in info
            else ""
        )
        + ".",
        "",
    ]


def _section(bench: str, rows: list[dict[str, Any]]) -> list[str]:
    peer = PEERS.get(bench, "MLflow")
    lines = [f"| case | {peer} setting | Steward | {peer} | unit | speedup | goal | n |",
             "|---|---|---:|---:|---|---:|---|---:|"]  # fmt: skip
    for r in rows:
        goal = "-" if r["goal"] is None else (
            f"≥ {r['goal']:.3g}x {'✅' if r['goal_met'] else '❌'}")  # fmt: skip
        lines.append(
            f"| {r['case']} | {r['mlflow_setting']} | {_fmt(r['steward_median'], r['unit'])} "
            f"| {_fmt(r['mlflow_median'], r['unit'])} | {r['unit']} median "
            f"| **{r['speedup']:.1f}x**{_spread(r)} | {goal} | {r['n_steward']} |"
        )
    notes = sorted({r["notes"] for r in rows if r["notes"]})
    extras = [r["extra"] for r in rows if r.get("extra")]
    lines.append("")
    lines += [f"- {note}" for note in notes]
    seen: set[str] = set()
    for extra in extras:
        key = json.dumps(extra, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        lines.append(
            f"- {extra.get('backend', '')}: populated {extra['versions']:,} versions "
            f"({extra['matching']:,} match): "
            f"Steward {extra['steward_populate_s']} s via {extra['steward_populate']}; "
            f"MLflow {extra['mlflow_populate_s']} s via {extra['mlflow_populate']}"
        )
    lines.append("")
    return lines


def _spread(row: dict[str, Any]) -> str:
    """The range of the runs' own speedups, for a row pooled from several runs."""
    runs = row.get("run_speedups") or []
    if len(runs) < 2:
        return ""
    return f" ({min(runs):.1f}-{max(runs):.1f}x in {len(runs)} runs)"


def _error_lines(errors: list[dict[str, Any]]) -> list[str]:
    return [f"- {e['benchmark']}: `{e['error']}`" for e in errors]


def render_tables(results: dict[str, Any]) -> str:
    lines = [
        BEGIN,
        "",
        *_run_lines(results),
        "Speedup = peer median / Steward median for times (Steward's points/s / the peer's for "
        "throughput): above 1, Steward is faster. The peer is MLflow unless the table names "
        "another. n = samples per side.",
        "",
    ]
    for bench in BENCHMARKS:
        rows = [r for r in results["rows"] if r["benchmark"] == bench]
        if rows:
            lines += [f"### {bench}", "", *_section(bench, rows)]
    if results.get("errors"):
        lines += ["### errors", "", *_error_lines(results["errors"]), ""]
    lines.append(END)
    return "\n".join(lines)


def merge_tables(block: str, results: dict[str, Any], ran: list[str]) -> str:
    """The existing results block with only the sections of the benchmarks in ``ran`` replaced
    (each then says its own run and machine): ``--only`` keeps the other tables as they were."""
    body = block.removeprefix(BEGIN).removesuffix(END)
    head, *parts = re.split(r"(?m)^### ", body)
    sections = {part.split("\n", 1)[0].strip(): "### " + part for part in parts}
    old_errors = sections.pop("errors", "").splitlines()[2:]
    for bench in ran:
        rows = [r for r in results["rows"] if r["benchmark"] == bench]
        sections.pop(bench, None)
        if rows:
            section = [f"### {bench}", "", *_run_lines(results), *_section(bench, rows)]
            sections[bench] = "\n".join(section) + "\n"
    errors = [e for e in old_errors if e.strip() and e[2:].split(":")[0] not in ran]
    errors += _error_lines(results.get("errors", []))
    ordered = [sections[b] for b in BENCHMARKS if b in sections]
    if errors:
        ordered.append("\n".join(["### errors", "", *errors, ""]) + "\n")
    return BEGIN + head + "".join(ordered) + END


def write_doc(results: dict[str, Any], ran: list[str]) -> None:
    text = DOC.read_text() if DOC.exists() else ""
    partial = set(ran) != set(BENCHMARKS)
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        block, _, tail = rest.partition(END)
        tables = merge_tables(BEGIN + block + END, results, ran) if partial else (
            render_tables(results))  # fmt: skip
        DOC.write_text(head + tables + tail)
    else:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(
            text + ("\n" if text else "# Benchmarks\n\n") + render_tables(results) + "\n"
        )


def carry_over(results: dict[str, Any], previous: Path, only: list[str]) -> None:
    """Keep the previous run's rows of the benchmarks not run this time (``--only``), so a
    partial run updates its own tables without erasing the others; each keeps its run's date."""
    if not previous.exists():
        return
    old = json.loads(previous.read_text())
    carried = dict(old.get("carried", {}))
    for row in old.get("rows", []):
        bench = row["benchmark"]
        if bench in only or bench not in BENCHMARKS:
            continue
        results["rows"].append(row)
        carried.setdefault(bench, {"date": old["machine"]["date"], "command": old["command"]})
    results["carried"] = {b: run for b, run in carried.items() if b not in only}
    results["rows"].sort(key=lambda r: BENCHMARKS.index(r["benchmark"]))


def _repeated(run: Any, ctx: Context, times: int) -> list[Row]:
    """``run(ctx)``'s rows, or with ``times`` > 1 each case's rows of every run pooled."""
    if times <= 1:
        return list(run(ctx))
    runs = []
    for index in range(times):
        ctx.log(f"  run {index + 1} of {times}")
        runs.append(run(ctx))
    return [Row.pooled([rows[i] for rows in runs]) for i in range(len(runs[0]))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few samples, 1,000 versions")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=BENCHMARKS)
    parser.add_argument("--backends", nargs="+", choices=["sqlite", "postgres"],
                        default=["sqlite", "postgres"])  # fmt: skip
    parser.add_argument(
        "--pg-url",
        default=DEFAULT_PG_ADMIN_URL,
        help="PostgreSQL URL used to create and drop scratch databases",
    )
    parser.add_argument(
        "--mlflow-workers",
        nargs="+",
        type=int,
        default=[4, 1],
        help="mlflow server --workers values to compare against (4 = default)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run each benchmark N times: the table gives the median of all runs' samples "
        "and the range of the runs' own speedups (the host's noise moves a single run's)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args(argv)

    # A SIGTERM (timeout, Ctrl-C in make) must still run the finally blocks that stop the
    # servers and drop the scratch databases.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    workdir = Path(tempfile.mkdtemp(prefix="steward-bench-"))
    ctx = Context(
        python=sys.executable, quick=args.quick, backends=args.backends,
        pg_admin_url=args.pg_url, mlflow_workers=args.mlflow_workers, workdir=workdir,
        log=lambda msg: print(msg, flush=True),
    )  # fmt: skip
    command = "python bench/run_all.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results: dict[str, Any] = {
        "command": command.strip(),
        "quick": args.quick,
        "machine": machine_info(args.pg_url, args.backends, args.only),
        "rows": [],
        "errors": [],
        "seconds": {},
    }
    rows: list[Row] = []
    try:
        for name in args.only:
            module = importlib.import_module(f"bench_{name}")
            print(f"== {name}", flush=True)
            start = time.perf_counter()
            try:
                new_rows = _repeated(module.run, ctx, args.repeat)
            except Exception as exc:
                traceback.print_exc()
                results["errors"].append({"benchmark": name, "error": repr(exc)[:500]})
                continue
            finally:
                results["seconds"][name] = round(time.perf_counter() - start, 1)
            rows += new_rows
            for row in new_rows:
                runs = ", ".join(f"{x:.1f}x" for x in row.run_speedups)
                print(f"   {row.case} [{row.mlflow_setting}]: steward {row.steward_median:,.2f} "
                      f"mlflow {row.mlflow_median:,.2f} {row.unit} -> {row.speedup:.1f}x"
                      + (f" (runs: {runs})" if runs else ""), flush=True)  # fmt: skip
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["rows"] = [r.to_json() for r in rows]
    carry_over(results, args.out, args.only)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    if not args.no_doc:
        write_doc(results, args.only)
        print(f"updated {DOC}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
