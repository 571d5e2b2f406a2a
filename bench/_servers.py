"""Shared helpers: free ports, server processes that always stop, PostgreSQL scratch databases.

Every process started here runs in its own session (process group), so stopping it also stops
the workers it forked (``mlflow server`` -> ``uvicorn --workers N``). Only those groups are
signalled; nothing is killed by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"
DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


# -- measuring ---------------------------------------------------------------------------------
def timed(fn: Callable[[], Any]) -> float:
    """Seconds taken by one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds (user + system, from the kernel) of each thread of a process, keyed
    "TID NAME". Why not a profiler's sample count: on 2 cores a sampler competes with what it
    samples and falls behind its rate (py-spy undercounted a server's CPU by half here)."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        found[f"{tid} {name}"] = (int(fields[11]) + int(fields[12])) / tick
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process, its threads and its live child processes (a gateway's
    prediction-log writer processes, say); a process that ended meanwhile counts 0."""
    try:
        total = sum(thread_cpu_seconds(pid).values())
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return 0.0
    return total + sum(tree_cpu_seconds(int(child)) for child in children)


def sample_in_blocks(
    calls: dict[str, Callable[[int], Any]], n: int, *, warm: int, block: int
) -> dict[str, list[float]]:
    """Seconds per call for each side: ``n`` kept samples after ``warm`` dropped ones.

    Sides take turns in blocks of ``block`` consecutive calls rather than one call each: with
    single alternation, whatever a heavy call leaves behind on a 2-core machine (its server's
    garbage collection and background threads, cold CPU caches) lands on the other side's
    next call. Each call gets its global index, so inputs can vary from call to call.
    """
    samples: dict[str, list[float]] = {side: [] for side in calls}
    done = 0
    while done < warm + n:
        size = min(block, warm + n - done)
        for side, call in calls.items():
            for i in range(done, done + size):
                secs = timed(lambda i=i, call=call: call(i))
                if i >= warm:
                    samples[side].append(secs)
        done += size
    return samples


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Row:
    """One line of the results table: a Steward median beside an MLflow median."""

    benchmark: str
    case: str
    unit: str
    higher_is_better: bool
    steward: list[float]
    mlflow: list[float]
    mlflow_setting: str
    goal: float | None = None  # the speedup the issue asks for (Steward vs MLflow), if any
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # With --repeat: each run's speedup, in order; the samples above are all runs' together.
    run_speedups: list[float] = field(default_factory=list)

    @classmethod
    def pooled(cls, runs: list[Row]) -> Row:
        """One row from the same case measured in several runs: their samples together (each
        run has as many, so the median is the middle of all the runs' calls), and each run's
        own speedup kept to show the spread."""
        first = runs[0]
        return replace(
            first,
            steward=[x for r in runs for x in r.steward],
            mlflow=[x for r in runs for x in r.mlflow],
            run_speedups=[r.speedup for r in runs],
        )

    @property
    def steward_median(self) -> float:
        return median(self.steward)

    @property
    def mlflow_median(self) -> float:
        return median(self.mlflow)

    @property
    def speedup(self) -> float:
        """How many times better Steward's median is than MLflow's (>1: Steward wins)."""
        s, m = self.steward_median, self.mlflow_median
        if self.higher_is_better:
            return s / m if m else float("inf")
        return m / s if s else float("inf")

    @property
    def goal_met(self) -> bool | None:
        return None if self.goal is None else self.speedup >= self.goal

    def to_json(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "case": self.case,
            "unit": self.unit,
            "higher_is_better": self.higher_is_better,
            "mlflow_setting": self.mlflow_setting,
            "steward_median": self.steward_median,
            "mlflow_median": self.mlflow_median,
            "speedup": self.speedup,
            "goal": self.goal,
            "goal_met": self.goal_met,
            "n_steward": len(self.steward),
            "n_mlflow": len(self.mlflow),
            "steward_samples": self.steward,
            "mlflow_samples": self.mlflow,
            "notes": self.notes,
            **({"extra": self.extra} if self.extra else {}),
            **({"run_speedups": self.run_speedups} if self.run_speedups else {}),
        }


@dataclass
class Context:
    """What every benchmark receives from the driver."""

    python: str  # interpreter with both steward and mlflow installed
    quick: bool
    backends: list[str]  # "sqlite", "postgres"
    pg_admin_url: str
    mlflow_workers: list[int]  # e.g. [4, 1]: 4 is mlflow server's default
    workdir: Path
    log: Callable[[str], None] = print

    def scratch(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.workdir))
        return path


# -- processes ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Server:
    """A server process in its own process group, stopped (group and all) by ``stop``."""

    def __init__(self, name: str, cmd: list[str], port: int, logdir: Path, env: dict[str, str]):
        self.name, self.cmd, self.port = name, cmd, port
        self.url = f"http://{HOST}:{port}"
        logdir.mkdir(parents=True, exist_ok=True)
        self.log_path = logdir / f"{name}-{port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )

    def wait_healthy(self, path: str = "/health", timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} before becoming healthy; "
                    f"see {self.log_path}:\n{self.log_path.read_text(errors='replace')[-2000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + path, timeout=2.0).status_code == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not healthy at {self.url}{path} after {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        # Workers forked by the group leader may outlive it for a moment; reap the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()


def _child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STEWARD_", "MLFLOW_"))}
    env.update(extra or {})
    return env


@contextlib.contextmanager
def steward_server(ctx: Context, home: Path, database_url: str | None) -> Iterator[Server]:
    """``uvicorn.run(create_app(settings))``: one process on a free port, as `steward server`."""
    port = free_port()
    cmd = [
        ctx.python,
        str(BENCH_DIR / "_steward_server.py"),
        str(home),
        database_url or "",
        str(port),
    ]
    server = Server("steward", cmd, port, home, _child_env())
    try:
        server.wait_healthy("/health")
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def mlflow_server(
    ctx: Context, backend_uri: str, artifact_root: Path, workers: int
) -> Iterator[Server]:
    """``mlflow server --backend-store-uri URI --workers N`` (uvicorn, MLflow's default server)."""
    port = free_port()
    cmd = [
        str(Path(ctx.python).parent / "mlflow"), "server",
        "--backend-store-uri", backend_uri,
        "--artifacts-destination", str(artifact_root),
        "--host", HOST, "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    # MLflow 3 also starts a job runner with seven huey consumers (each a full `import mlflow`);
    # none of them serves these calls, and on a 2-core machine their start-up would steal the
    # CPU from whatever is being measured, so they are switched off.
    env = _child_env({"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    server = Server(f"mlflow-w{workers}", cmd, port, artifact_root, env)
    try:
        server.wait_healthy("/health")
        yield server
    finally:
        server.stop()


# -- stores ------------------------------------------------------------------------------------
def pg_url(admin_url: str, database: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{database}"


@contextlib.contextmanager
def pg_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one run, dropped afterwards (even on failure)."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_url(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def databases(ctx: Context, backend: str, home: Path, names: list[str]) -> Iterator[dict[str, str]]:
    """One database URL per name: SQLite files under ``home`` or scratch PostgreSQL databases."""
    if backend == "sqlite":
        yield {n: f"sqlite:///{home / (n + '.db')}" for n in names}
        return
    with contextlib.ExitStack() as stack:
        yield {n: stack.enter_context(pg_database(ctx.pg_admin_url, f"bench_{n}")) for n in names}


def steward_admin_token(home: Path, database_url: str) -> str:
    """Create the admin token with the embedded client on the server's own home and database."""
    from steward.client import Client
    from steward.settings import Settings

    settings = Settings(home=home, url=None, database={"url": database_url})
    with Client(settings=settings) as client:
        return client.create_token("bench", "admin").secret


def mlflow_init_db(backend_uri: str, artifact_root: Path) -> None:
    """Run MLflow's migrations once, before several servers share the database."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    SqlAlchemyStore(backend_uri, str(artifact_root))


def quiet_mlflow_logging() -> None:
    import logging

    for name in ("mlflow", "alembic", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)


def python_version() -> str:
    return sys.version.split()[0]
