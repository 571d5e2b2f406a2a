"""The release rules are the store's: a write session refuses them whoever holds it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from steward.domain.clock import utcnow
from steward.domain.enums import Role
from steward.domain.enums import VersionStatus as S
from steward.errors import GateFailed, PermissionDenied
from steward.flavors import package_model
from steward.schemas.registry import ModelCreate, VersionCreate
from steward.wiring import Services

POLICY = "name: two-eyes\nchecks:\n  - check: approvals\n    count: 1\n"


def _register(services: Services, name: str) -> None:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"a": rng.random(12), "b": rng.random(12)})
    model = LogisticRegression().fit(frame, (frame["a"] > 0.5).astype(int))
    files = {
        file: services.registry.upload_artifact(content)
        for file, content in package_model(model).files.items()
    }
    services.registry.create_model("ana", ModelCreate(name=name))
    services.registry.create_version("ana", name, VersionCreate(flavor="sklearn", files=files))


def test_the_store_refuses_promotion_and_self_approval(services: Services) -> None:
    _register(services, "guarded")
    with (
        pytest.raises(GateFailed, match="needs a passed gate"),
        services.store.write("mallory") as tx,
    ):
        tx.transition("guarded", 1, S.PRODUCTION, "trust me", utcnow())

    services.gates.set_policy("admin", POLICY, model="guarded")
    assert services.gates.gate("ana", "models:/guarded/1").verdict.value == "awaiting_approval"
    with pytest.raises(PermissionDenied, match="cannot approve"), services.store.write("ana") as tx:
        tx.add_approval("guarded", 1, Role.ADMIN, None, utcnow())
    with pytest.raises(PermissionDenied, match="approver role"), services.store.write("dev") as tx:
        tx.add_approval("guarded", 1, Role.DEVELOPER, None, utcnow())
    with (
        pytest.raises(GateFailed, match="collect the approvals"),
        services.store.write("mallory") as tx,
    ):
        tx.transition("guarded", 1, S.STAGING, None, utcnow())  # approvals pending

    services.gates.approve("bo", Role.APPROVER, "models:/guarded/1")
    services.gates.set_policy("admin", POLICY.replace("count: 1", "count: 1\n    role: admin"))
    with (
        pytest.raises(GateFailed, match="policy now in force") as stale,
        services.store.write("mallory") as tx,
    ):
        tx.transition("guarded", 1, S.STAGING, None, utcnow())
    assert stale.value.details["reason"] == "policy_changed"
    with services.store.read() as rx:
        assert rx.get_model("guarded").aliases == {}
    assert services.registry.get_version("models:/guarded/1").status is S.APPROVED


def test_the_store_refuses_deploying_a_version_that_was_never_released(
    services: Services,
) -> None:
    _register(services, "undeployable")
    spec = {"champion": 1, "fallbacks": [], "timeout_ms": 100}
    with (
        pytest.raises(GateFailed, match="a champion must be production"),
        services.store.write("mallory") as tx,
    ):
        tx.put_deployment("sneaky", "undeployable", spec, utcnow())
    with services.store.read() as rx:
        assert rx.list_deployments() == []


def test_a_deployment_with_a_rule_or_default_fallback_is_a_way_back(services: Services) -> None:
    _register(services, "served")
    services.gates.set_policy("admin", POLICY, model="served")
    services.gates.gate("ana", "models:/served/1")
    services.gates.approve("bo", Role.APPROVER, "models:/served/1")
    services.gates.promote("ana", "models:/served/1", S.PRODUCTION)

    def fallback_configured() -> bool:
        with services.store.read() as rx:
            return rx.gate_context("served", 1, utcnow()).fallback_configured

    assert not fallback_configured()
    plain = {"champion": 1, "fallbacks": [], "timeout_ms": 100}
    with services.store.write("ana") as tx:
        tx.put_deployment("served-api", "served", plain, utcnow())
    assert not fallback_configured()
    safe = {**plain, "fallbacks": [{"kind": "default", "value": 0}]}
    with services.store.write("ana") as tx:
        tx.put_deployment("served-api", "served", safe, utcnow())
    assert fallback_configured()
