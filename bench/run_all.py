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
import json
import os
import platform
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
BENCHMARKS = ["import", "log_batch", "registry", "search"]
BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"


def _version(module: str) -> str:
    try:
        return str(importlib.import_module(module).__version__)
    except Exception:
        return "?"


def machine_info(pg_url: str, backends: list[str]) -> dict[str, Any]:
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
    git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True)  # fmt: skip
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "src"],
                           capture_output=True, text=True)  # fmt: skip
    info["git"] = git.stdout.strip() + (" (+ uncommitted changes in src/)" if dirty.stdout else "")
    if "postgres" in backends:
        import psycopg

        with psycopg.connect(pg_url, autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            info["postgresql"] = row[0] if row else "?"
    return info


def _fmt(value: float, unit: str) -> str:
    if unit == "points/s":
        return f"{value:,.0f}"
    return f"{value:,.1f}" if value >= 10 else f"{value:,.2f}"


def render_tables(results: dict[str, Any]) -> str:
    info = results["machine"]
    lines = [
        BEGIN,
        "",
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
        + ".",
        "",
        "Speedup = MLflow median / Steward median for times (Steward's points/s / MLflow's for "
        "throughput): above 1, Steward is faster. n = samples per side.",
        "",
    ]
    for bench in BENCHMARKS:
        rows = [r for r in results["rows"] if r["benchmark"] == bench]
        if not rows:
            continue
        lines += [f"### {bench}", "",
                  "| case | MLflow setting | Steward | MLflow | unit | speedup | goal | n |",
                  "|---|---|---:|---:|---|---:|---|---:|"]  # fmt: skip
        for r in rows:
            goal = "-" if r["goal"] is None else (
                f"≥ {r['goal']:g}x {'✅' if r['goal_met'] else '❌'}")  # fmt: skip
            lines.append(
                f"| {r['case']} | {r['mlflow_setting']} | {_fmt(r['steward_median'], r['unit'])} "
                f"| {_fmt(r['mlflow_median'], r['unit'])} | {r['unit']} median "
                f"| **{r['speedup']:.1f}x** | {goal} | {r['n_steward']} |"
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
    if results.get("errors"):
        lines += ["### errors", ""] + [f"- {e['benchmark']}: `{e['error']}`"
                                       for e in results["errors"]] + [""]  # fmt: skip
    lines.append(END)
    return "\n".join(lines)


def write_doc(results: dict[str, Any]) -> None:
    tables = render_tables(results)
    text = DOC.read_text() if DOC.exists() else ""
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        DOC.write_text(head + tables + tail)
    else:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(text + ("\n" if text else "# Benchmarks\n\n") + tables + "\n")


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
        "machine": machine_info(args.pg_url, args.backends),
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
                new_rows = module.run(ctx)
            except Exception as exc:
                traceback.print_exc()
                results["errors"].append({"benchmark": name, "error": repr(exc)[:500]})
                continue
            finally:
                results["seconds"][name] = round(time.perf_counter() - start, 1)
            rows += new_rows
            for row in new_rows:
                print(f"   {row.case} [{row.mlflow_setting}]: steward {row.steward_median:,.2f} "
                      f"mlflow {row.mlflow_median:,.2f} {row.unit} -> {row.speedup:.1f}x",
                      flush=True)  # fmt: skip
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["rows"] = [r.to_json() for r in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    if not args.no_doc:
        write_doc(results)
        print(f"updated {DOC}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
