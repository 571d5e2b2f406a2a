"""``--engine ray``: a window read as one Ray task per partition, on a local Ray, equals the
same window read in this process, field by field; and the engine's errors.

One local Ray session serves the whole module (started by the engine itself, two CPUs, no
dashboard) and is shut down at the end.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray
from tests.monitoring.test_window_merge import assert_same_partial

from steward.domain.signature import ColumnSpec, Signature
from steward.errors import InvalidInput
from steward.monitoring import engines
from steward.monitoring.engines import engine_named, ray_engine
from steward.monitoring.window import local_engine, read_window
from steward.stats._samples import NumericSample
from steward.stats.drift import DriftOptions, compare
from steward.store.prediction_log import (
    PredictionLogWriter,
    PredictionRecord,
    RequestRecord,
    partitions,
)

DEPLOYMENT = "fraud"
H0 = datetime(2024, 5, 1, 10, tzinfo=UTC)
START, END = H0 + timedelta(minutes=15), H0 + timedelta(hours=5, minutes=30)
WITH_ITEMS = Signature(
    inputs=[
        ColumnSpec(name="amount", dtype="float64"),
        ColumnSpec(name="country", dtype="string"),
        ColumnSpec(name="items", dtype="int64"),
    ]
)
WITHOUT_ITEMS = Signature(inputs=WITH_ITEMS.inputs[:2])

# under `pytest -n N --dist loadgroup`, every test here on one worker: one Ray, not N
pytestmark = pytest.mark.xdist_group("ray")


# -- the log ---------------------------------------------------------------------------------
class _Log:
    """Logs through the project's writer; ``n`` numbers the requests."""

    def __init__(self, writer: PredictionLogWriter) -> None:
        self.writer, self.n, self.rng = writer, 0, np.random.default_rng(7)

    def request(
        self, at: datetime, rows: int, *, items: bool = True, nan: bool = False,
        deployment: str = DEPLOYMENT, **kw: Any,
    ) -> None:  # fmt: skip
        """One batched request of ``rows`` typed rows, as the gateway logs it."""
        self.n += 1
        amount = self.rng.gamma(2.0, 30.0, rows).round(2)
        if nan:
            amount[0] = np.nan
        inputs: dict[str, Any] = {
            "amount": amount,
            "country": self.rng.choice(np.array(["FR", "DE", "IT", "ES"], dtype=object), rows),
        }
        if items:
            inputs["items"] = self.rng.integers(1, 6, rows)
        score = self.rng.random(rows)
        options: dict[str, Any] = {"version": 1, "latency_ms": float(self.rng.gamma(3.0, 4.0))}
        options.update(kw)
        assert self.writer.log_request(RequestRecord(
            deployment=deployment, request_id=f"r{self.n:04d}", timestamp=at.timestamp(),
            inputs=inputs, predictions=(score > 0.5).astype(np.int64),
            probabilities=np.column_stack([1 - score, score]), rows=rows, **options,
        ))  # fmt: skip

    def json_row(self, at: datetime, inputs: Any, prediction: Any, **kw: Any) -> None:
        """One row logged without a signature: its inputs are stored as JSON text."""
        self.n += 1
        options: dict[str, Any] = {"version": 2, "latency_ms": 3.5} | kw
        assert self.writer.log(PredictionRecord(
            deployment=DEPLOYMENT, request_id=f"r{self.n:04d}", timestamp=at, inputs=inputs,
            prediction=prediction, probabilities=[0.25, 0.75], **options,
        ))  # fmt: skip

    def flush(self) -> None:
        assert self.writer.flush(timeout=30)


def _write_log(root: Path) -> None:
    writer = PredictionLogWriter(str(root), queue_size=100_000, flush_rows=100_000,
                                 flush_seconds=60.0)  # fmt: skip
    log = _Log(writer)
    at = H0.__add__
    try:
        # hours 0 and 1: typed inputs with `items`; fallbacks; shadow copies never returned
        writer.set_signature(DEPLOYMENT, WITH_ITEMS)
        log.request(at(timedelta(minutes=5)), 2)  # before the window: left out
        for minute in range(16, 60, 4):
            log.request(at(timedelta(minutes=minute)), 1 + minute % 3, version=1 + minute % 2)
            log.request(at(timedelta(minutes=minute)), 1, version=3, shadow=True)
        log.request(at(timedelta(minutes=41)), 3, fallback="error", error="boom")
        log.request(at(timedelta(hours=1, minutes=7)), 2, fallback="timeout")
        log.request(at(timedelta(hours=1, minutes=8)), 1, fallback="previous")
        log.flush()
        # hour 1 again (a second file), with NaN amounts
        for minute in range(10, 60, 7):
            log.request(at(timedelta(hours=1, minutes=minute)), 2, nan=minute % 2 == 0)
        log.flush()
        # hour 2: the signature lost `items` (missing from this partition on)
        writer.set_signature(DEPLOYMENT, WITHOUT_ITEMS)
        for minute in range(0, 60, 6):
            log.request(at(timedelta(hours=2, minutes=minute)), 2, version=2, items=False)
        log.request(at(timedelta(hours=2, minutes=30)), 4, deployment="other", items=False)
        log.flush()
        # hour 3: no signature: inputs as JSON, with a key of mixed types and a list row
        writer.set_signature(DEPLOYMENT, None)
        for minute in range(0, 60, 5):
            inputs = {"amount": 10.0 + minute, "country": ["FR", "DE"][minute % 2],
                      "note": None if minute % 3 else f"n{minute % 4}",
                      "code": minute // 10 if minute % 4 else f"c{minute // 20}"}  # fmt: skip
            label, fallback = ["approve", "deny"][minute % 2], "rule" if minute == 25 else None
            log.json_row(at(timedelta(hours=3, minutes=minute)), inputs, label, fallback=fallback)
        log.json_row(at(timedelta(hours=3, minutes=59)), [1.0, "FR"], "deny")
        log.flush()
        # hour 4: only shadow rows; hour 5: half inside the window, half after it
        writer.set_signature(DEPLOYMENT, WITHOUT_ITEMS)
        for minute in range(0, 60, 10):
            log.request(at(timedelta(hours=4, minutes=minute)), 2, items=False, shadow=True)
            log.request(at(timedelta(hours=5, minutes=minute + 5)), 1, items=False)
        log.flush()
    finally:
        writer.close(timeout=30)
    assert writer.dropped == 0


@pytest.fixture(scope="module")
def log_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("prediction-log")
    _write_log(root)
    return str(root)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """The engine starts its own local Ray at its first call (RAY_ADDRESS unset for this
    module); one session for every test here, shut down at the end."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("RAY_ADDRESS", raising=False)
        try:
            yield
        finally:
            engines.shutdown()
    assert not ray.is_initialized()


# -- comparing partials ----------------------------------------------------------------------
# -- the engine on a local Ray ---------------------------------------------------------------
@pytest.mark.usefixtures("local_ray")
def test_a_window_read_on_ray_equals_the_in_process_read(log_root: str) -> None:
    parts = partitions(log_root, DEPLOYMENT, START, END)
    assert len(parts) == 6
    assert max(len(files) for files in parts) == 2  # hour 1 was written twice

    on_ray = read_window(log_root, DEPLOYMENT, START, END, engine=ray_engine)
    local = read_window(log_root, DEPLOYMENT, START, END, engine=local_engine)
    assert_same_partial(on_ray, local)

    # what the window holds, so the comparison above compares something
    assert set(local.inputs) == {"amount", "country", "items", "note", "code"}
    assert 3 not in local.versions  # shadow answers are left out
    assert local.versions == {1: local.versions[1], 2: local.versions[2]}
    assert not local.ok.all()  # the error and the timeout count against availability
    assert local.ok.size < local.rows  # batched requests: one latency per request
    items = local.inputs["items"].sample
    assert isinstance(items, NumericSample)
    assert items.integer
    assert items.missing > 0  # hours without the column count as missing
    code = local.inputs["code"]
    assert code.family == "string"  # mixed JSON types: compared as text
    assert local.newest is not None
    assert START <= local.newest < END
    assert local.join is not None
    assert local.join.num_rows == local.rows

    # each partition on its own, the all-shadow hour included, and the drift it leads to
    by_ray = ray_engine(log_root, parts, START, END)
    by_process = local_engine(log_root, parts, START, END)
    assert [p.rows for p in by_ray] == [p.rows for p in by_process]
    assert 0 in [p.rows for p in by_ray]
    for got, want in zip(by_ray, by_process, strict=True):
        assert_same_partial(got, want)
    options = DriftOptions(histograms=True)
    assert compare(local.inputs, on_ray.inputs, options=options) == compare(
        local.inputs, local.inputs, options=options
    )


@pytest.mark.usefixtures("local_ray")
def test_the_engine_starts_a_small_local_ray_once_and_reuses_it(log_root: str) -> None:
    parts = partitions(log_root, DEPLOYMENT, START, END)
    ray_engine(log_root, parts[:1], START, END)
    job = ray.get_runtime_context().get_job_id()
    ray_engine(log_root, parts, START, END)
    assert ray.get_runtime_context().get_job_id() == job
    assert ray.cluster_resources()["CPU"] == engines.LOCAL_RAY_CPUS
    assert ray_engine(log_root, [], START, END) == []


@pytest.mark.usefixtures("local_ray")
def test_an_error_in_a_task_reaches_the_caller_as_the_steward_error(log_root: str) -> None:
    parts = partitions(log_root, DEPLOYMENT, START, END)
    naive = START.replace(tzinfo=None)
    with pytest.raises(InvalidInput, match="timezone-aware") as caught:
        ray_engine(log_root, parts[:1], naive, END)
    assert type(caught.value) is InvalidInput
    assert caught.value.field == "since"


@pytest.mark.usefixtures("local_ray")
def test_a_file_error_in_a_task_is_the_error_the_local_engine_raises(log_root: str) -> None:
    gone = [[f"{log_root}/deployment={DEPLOYMENT}/hour=2024-05-01T10/part-gone.parquet"]]
    with pytest.raises(OSError, match="part-gone") as locally:
        local_engine(log_root, gone, START, END)
    with pytest.raises(OSError, match="part-gone") as on_ray:
        ray_engine(log_root, gone, START, END)
    assert type(on_ray.value) is type(locally.value)


# -- without Ray -----------------------------------------------------------------------------
def test_engine_named() -> None:
    assert engine_named("local") is local_engine
    assert engine_named("ray") is ray_engine
    for name in ("spark", "Ray", ""):
        with pytest.raises(InvalidInput, match="Use one of: local, ray") as caught:
            engine_named(name)
        assert caught.value.field == "engine"
        assert caught.value.details == {"field": "engine"}


def test_without_ray_installed_the_engine_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(InvalidInput, match=r"pip install 'ml-steward\[ray\]'") as caught:
        ray_engine(str(tmp_path), [["part-x.parquet"]], START, END)
    assert caught.value.field == "engine"


def test_importing_the_engines_does_not_import_ray() -> None:
    code = "import sys, steward.monitoring.engines; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)  # fmt: skip
    assert out.stdout.strip() == "False"
