"""The store's side of serving, on every backend: the ONNX runtime is refused for versions
without an ONNX export, and the ledger is a feed servers follow (a cursor on the event seq, and
on PostgreSQL a NOTIFY sent when a followed event commits)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest
from sklearn.linear_model import LogisticRegression

from steward.domain.clock import utcnow
from steward.domain.deployments import FOLLOWED_EVENTS, ONNX_EXPORT_FILE, VERSION_STATUS_EVENT
from steward.domain.enums import Flavor, Role
from steward.errors import InvalidInput
from steward.flavors import MODEL_FILES, package_model
from steward.schemas.registry import ModelCreate, VersionCreate
from steward.schemas.serving import DeploymentSpec
from steward.schemas.tracking import RunCreate
from steward.settings import Settings
from steward.store.sql._feed import FEED_CHANNEL
from steward.store.sql._gates import TRANSITION_EVENT
from steward.wiring import Services

APPROVALS = "name: two-eyes\nchecks:\n  - check: approvals\n    count: 1\n"


def release(services: Services, name: str, exports: list[bool], production: int = 1) -> None:
    """``name`` with one version per entry of ``exports`` (True: with its ONNX export), each
    gated and approved, and ``production`` promoted (an approvals-only policy)."""
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"a": rng.random(12), "b": rng.random(12)})
    model = LogisticRegression().fit(frame, (frame["a"] > 0.5).astype(int))
    services.registry.create_model("ana", ModelCreate(name=name))
    services.gates.set_policy("admin", APPROVALS, model=name)
    for version, export in enumerate(exports, start=1):
        files = {
            file: services.registry.upload_artifact(content)
            for file, content in package_model(model, export_onnx=export).files.items()
        }
        body = VersionCreate(flavor="sklearn", files=files, primary_file="model.skops")
        services.registry.create_version("ana", name, body)
        services.gates.gate("ana", f"models:/{name}/{version}")
        services.gates.approve("bo", Role.APPROVER, f"models:/{name}/{version}")
    services.gates.promote("ana", f"models:/{name}/{production}", "production")


def spec(**routing: Any) -> DeploymentSpec:
    return DeploymentSpec.model_validate({"model": "m", "champion": 1, **routing})


def test_names_shared_with_other_layers_agree() -> None:
    # domain may not import flavors or the store's internals: these are kept equal by hand
    assert MODEL_FILES[Flavor.ONNX] == ONNX_EXPORT_FILE
    assert TRANSITION_EVENT == VERSION_STATUS_EVENT


def test_the_onnx_runtime_needs_an_export_of_every_routed_version(services: Services) -> None:
    release(services, "m", [True, False, True])  # v2 has no ONNX export
    deploy = services.deployments.deploy
    served = deploy("ana", "d", spec(runtime="onnx", canary=3, canary_share=0.2))
    assert served.runtime == "onnx"
    for routing, role in [
        ({"canary": 2, "canary_share": 0.1}, "canary"),
        ({"shadow": 2}, "shadow"),
        ({"split": {1: 1, 2: 1}, "unit_key": "u"}, "split variant"),
    ]:
        with pytest.raises(InvalidInput, match="export_onnx=True") as refused:
            deploy("ana", "d", spec(runtime="onnx", **routing))
        assert refused.value.details == {
            "field": "runtime", "version": 2, "role": role, "flavor": "sklearn",
        }  # fmt: skip
        assert f"models:/m/2 (its {role}" in refused.value.message
        deploy("ana", "native", spec(**routing))  # natively, v2 is fine
    # the refusal wrote nothing: d is still at its first revision, and so is its ledger
    assert services.deployments.get("d").revision == 1
    events = services.audit.list_events(subject_type="deployment", subject_id="d").items
    assert [(e.kind, e.payload["runtime"]) for e in events] == [("deployment.created", "onnx")]
    # a rollback keeps the runtime
    assert services.deployments.rollback("ana", "d").runtime == "onnx"
    assert services.audit.verify().ok


def test_a_row_written_before_the_runtime_runs_natively(services: Services) -> None:
    release(services, "m", [False])
    with services.store.write("ana") as tx:
        tx.put_deployment("old", "m", {"champion": 1, "fallbacks": [], "timeout_ms": 100}, utcnow())
    assert services.deployments.get("old").runtime == "native"


def test_the_feed_returns_followed_events_after_the_cursor(services: Services) -> None:
    release(services, "m", [False, False])
    with services.store.read() as rx:
        start = rx.ledger_tip()
        assert rx.read_feed(start, FOLLOWED_EVENTS).items == []
    assert start > 0
    services.deployments.deploy("ana", "d", spec())
    services.tracking.create_run("ana", RunCreate(name="unrelated"))  # not followed
    services.deployments.deploy("ana", "d", spec(canary=2, canary_share=0.5))
    with services.store.read() as rx:
        tip = rx.ledger_tip()
        page = rx.read_feed(start, FOLLOWED_EVENTS)
        assert [(i.kind, i.subject_id) for i in page.items] == [
            ("deployment.created", "d"), ("deployment.updated", "d"),
        ]  # fmt: skip
        assert page.cursor == tip == start + 3
        assert rx.read_feed(tip, FOLLOWED_EVENTS).items == []
        first = rx.read_feed(start, FOLLOWED_EVENTS, limit=1)  # a full page stops at its end
        assert [i.kind for i in first.items] == ["deployment.created"]
        assert first.cursor == first.items[0].seq < tip
    services.gates.promote("ana", "models:/m/2", "production")
    with services.store.read() as rx:
        moved = rx.read_feed(tip, FOLLOWED_EVENTS).items
    assert [(i.kind, i.subject_id) for i in moved] == [
        (VERSION_STATUS_EVENT, "models:/m/1"), (VERSION_STATUS_EVENT, "models:/m/2"),
    ]  # fmt: skip
    assert services.audit.verify().ok  # the feed reads the chain, never rewrites it


@pytest.mark.postgres
def test_postgres_notifies_at_commit_and_only_for_followed_events(
    postgres_url: str, tmp_path: Path
) -> None:
    services = Services.from_settings(
        Settings(home=tmp_path / "home", database={"url": postgres_url})
    )
    try:
        release(services, "m", [False, False])
        _, params = services.store.engine.dialect.create_connect_args(services.store.engine.url)
        params.pop("context", None)
        with psycopg.connect(**params, autocommit=True) as listener:
            listener.execute(f"LISTEN {FEED_CHANNEL}")
            services.tracking.create_run("ana", RunCreate(name="unrelated"))
            with pytest.raises(InvalidInput):  # refused: rolled back, so nothing is sent
                services.deployments.deploy("ana", "d", spec(runtime="onnx"))
            assert list(listener.notifies(timeout=0.3)) == []
            deployed = services.deployments.deploy("ana", "d", spec())
            (note,) = list(listener.notifies(timeout=2, stop_after=1))
        with services.store.read() as rx:
            assert int(note.payload) == rx.ledger_tip()
        assert deployed.revision == 1
    finally:
        services.close()


def test_the_feed_listener_is_postgres_only(services: Services) -> None:
    listener = services.store.feed_listener()
    assert (listener is None) == (services.store.dialect == "sqlite")
    if listener is not None:
        asyncio.run(_listen_once(services, listener))


async def _listen_once(services: Services, listener: Any) -> None:
    release(services, "m", [False])
    await listener.connect()
    try:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, services.deployments.deploy, "ana", "d", spec())
        seq = await asyncio.wait_for(listener.wait(), timeout=5)
        with services.store.read() as rx:
            assert seq == rx.ledger_tip()
    finally:
        await listener.close()
