"""Runs through the SDK: batched metrics, immutable params, artifacts; embedded and over HTTP."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from steward.client import Client, start_run
from steward.domain.enums import RunStatus
from steward.errors import Conflict, InvalidInput, NotFound


def test_start_run_flushes_5000_points_in_batches(client: Client) -> None:
    with start_run(
        "long", project="p1", params={"lr": 0.01}, flush_every=1000, flush_seconds=3600,
        client=client,
    ) as run:  # fmt: skip
        for step in range(5000):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        assert len(run._buffer) == 0  # the 5000th point filled the fifth batch
    assert run.run.status is RunStatus.FINISHED

    batches = client.list_events(kind="run.logged", subject_id=run.id).items
    assert [e.payload["points"] for e in batches] == [1000] * 5

    history = client.metric_history(run.id, "loss")
    assert [p.step for p in history] == list(range(5000))
    assert [p.value for p in history] == [1.0 / (s + 1) for s in range(5000)]
    assert all(a.timestamp <= b.timestamp for a, b in itertools.pairwise(history))

    stored = client.get_run(run.id)
    assert stored.params == {"lr": "0.01"}
    assert stored.metrics == {"loss": pytest.approx(1 / 5000)}
    assert stored.ended_at is not None
    assert client.metric_history(run.id, "never-logged") == []


def test_failed_block_marks_the_run_failed_and_keeps_its_points(client: Client) -> None:
    started: list[str] = []

    def train() -> None:
        with start_run("boom", client=client) as run:
            started.append(run.id)
            run.log_metrics({"loss": 0.5, "acc": 0.7}, step=1)
            raise RuntimeError("training crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        train()
    stored = client.get_run(started[0])
    assert stored.status is RunStatus.FAILED
    assert stored.metrics == {"loss": 0.5, "acc": 0.7}


def test_params_are_immutable_once_logged(client: Client) -> None:
    run = client.create_run("p", params={"lr": 0.1})
    client.log_params(run.id, {"lr": 0.1, "depth": 4})  # same value again is fine
    assert client.get_run(run.id).params == {"lr": "0.1", "depth": "4"}
    with pytest.raises(Conflict) as info:
        client.log_params(run.id, {"lr": 0.2})
    assert info.value.details["field"] == "params.lr"
    with start_run("q", client=client) as active:
        active.log_params({"seed": 1})
        with pytest.raises(Conflict):
            active.log_params({"seed": 2})
    assert client.get_run(run.id).params["lr"] == "0.1"


def test_run_artifacts_and_path_escapes(client: Client) -> None:
    run = client.create_run("art")
    stored = client.log_artifact(run.id, "plots/roc.txt", b"roc data")
    assert [(a.path, a.size) for a in stored.artifacts] == [("plots/roc.txt", 8)]
    digest = stored.artifacts[0].digest
    assert client.download_artifact(digest) == b"roc data"

    for bad in ("../x", "a/../../x", "/etc/passwd", "..", "a\\b", "C:/x"):
        with pytest.raises(InvalidInput) as info:
            client.log_artifact(run.id, bad, b"nope")
        assert info.value.field == "path", bad
    assert [a.path for a in client.get_run(run.id).artifacts] == ["plots/roc.txt"]
    with pytest.raises(NotFound):
        client.log_artifact("no-such-run", "x.txt", b"nope")


def test_runs_not_found_and_invalid(client: Client) -> None:
    with pytest.raises(NotFound) as info:
        client.get_run("no-such-run")
    assert isinstance(info.value, LookupError)
    with pytest.raises(NotFound):
        client.log_metrics("no-such-run", {"loss": 1.0})
    with pytest.raises(NotFound):
        client.end_run("no-such-run")
    with pytest.raises(NotFound):
        client.metric_history("no-such-run", "loss")
    run = client.create_run("x")
    with pytest.raises(InvalidInput) as value:
        client.log_batch(run.id, [{"key": "loss", "value": "low"}])
    assert value.value.field == "metrics.0.value"
    with pytest.raises(InvalidInput) as step:
        client.log_batch(run.id, [{"key": "loss", "value": 1.0, "step": -1}])
    assert step.value.field == "metrics.0.step"
    for bad in (float("nan"), float("inf"), "0.5"):  # a finite number, not text
        with pytest.raises(InvalidInput) as nan:
            client.log_batch(run.id, [{"key": "ok", "value": 1.0}, {"key": "loss", "value": bad}])
        assert nan.value.field == "metrics.1.value", bad
    with pytest.raises(InvalidInput) as unknown:
        client.log_batch(run.id, [{"key": "loss", "value": 1.0, "unit": "s"}])
    assert unknown.value.field == "metrics.0.unit"
    # a key is checked once per batch for NUL: the first point holding it is named
    keys = ["loss", "loss", "lo\x00ss", "acc", "lo\x00ss"]
    with pytest.raises(InvalidInput) as nul:
        client.log_batch(run.id, [{"key": k, "value": 1.0} for k in keys])
    assert nul.value.field == "metrics.2.key"
    assert "NUL" in str(nul.value)
    for bad_key in ("", "k" * 257):
        with pytest.raises(InvalidInput) as key:
            client.log_batch(run.id, [{"key": "ok", "value": 1.0}, {"key": bad_key, "value": 1}])
        assert key.value.field == "metrics.1.key"
    assert client.metric_history(run.id, "ok") == []  # a refused batch writes nothing
    # numpy scalars are numbers (float32 is not JSON: the HTTP backend converts it first)
    assert client.log_batch(run.id, [{"key": "ok", "value": np.float64(2.5)}]) == 1
    assert client.log_batch(run.id, [{"key": "ok", "value": np.float32(0.5), "step": 1}]) == 1
    assert [p.value for p in client.metric_history(run.id, "ok")] == [2.5, 0.5]
    with pytest.raises(InvalidInput) as status:
        client.end_run(run.id, "exploded")
    assert status.value.field == "status"


def test_list_runs_by_project_filter_and_pages(client: Client) -> None:
    for i in range(5):
        run = client.create_run(f"r{i}", project="a" if i < 3 else "b")
        client.log_metrics(run.id, {"loss": i / 10})
    assert {r.name for r in client.list_runs(project="b").items} == {"r3", "r4"}
    assert {r.name for r in client.list_runs("metrics.loss < 0.15").items} == {"r0", "r1"}
    first = client.list_runs(limit=2)
    second = client.list_runs(limit=2, page_token=first.next_page_token)
    third = client.list_runs(limit=2, page_token=second.next_page_token)
    names = [r.name for page in (first, second, third) for r in page.items]
    assert sorted(names) == [f"r{i}" for i in range(5)]
    assert third.next_page_token is None
    with pytest.raises(InvalidInput) as info:
        client.list_runs("tags.x = 'y'")
    assert info.value.field == "filter"


def test_points_with_and_without_step_or_timestamp_are_stored_as_given(client: Client) -> None:
    """Over HTTP the points travel as columns (steps 0 and timestamps of the logging time where
    left out); embedded they do not: the same history either way."""
    run = client.create_run("columns")
    at = datetime(2024, 5, 1, tzinfo=UTC)
    points = [
        {"key": "loss", "value": 0.5, "step": 2, "timestamp": at},
        {"key": "loss", "value": 0.75},
        {"key": "acc", "value": np.float64(0.9), "step": 1},
        {"key": "loss", "value": 0.25, "step": 3, "timestamp": None},
    ]
    before = datetime.now(UTC)
    assert client.log_batch(run.id, points) == 4
    loss = client.metric_history(run.id, "loss")
    assert [(p.step, p.value) for p in loss] == [(0, 0.75), (2, 0.5), (3, 0.25)]
    assert loss[1].timestamp == at
    assert all(p.timestamp >= before - timedelta(seconds=5) for p in (loss[0], loss[2]))
    assert [(p.step, p.value) for p in client.metric_history(run.id, "acc")] == [(1, 0.9)]
    # anything but plain points goes as given, with the same answers
    assert client.log_batch(run.id, ({"key": "gen", "value": float(i)} for i in range(3))) == 3
    assert len(client.metric_history(run.id, "gen")) == 3
