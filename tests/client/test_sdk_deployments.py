"""Deployments through the SDK, in every mode: only deployable versions take traffic, changes
are revisions on the ledger, and a rollback sends everything back to the champion."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from steward.client import Client, log_model
from steward.errors import Conflict, GateFailed, InvalidInput, NotFound

POLICY = """\
name: deploy-policy
checks:
  - check: metric_floor
    metric: roc_auc
    min: 0.5
  - check: approvals
    count: 1
"""


@pytest.fixture(scope="module")
def table_and_model() -> tuple[pd.DataFrame, LogisticRegression]:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    label = (frame["a"] > 0).astype(int)
    return frame.assign(label=label), LogisticRegression().fit(frame, label)


def _versions(client: Client, reviewer: Client, table: pd.DataFrame, model) -> list[str]:
    """v1 in production, v2 approved, v3 registered (never gated)."""
    client.create_model("pricing", owner="ana@example.com")
    client.set_policy(POLICY, model="pricing")
    uris = [log_model(model, "pricing", client=client).uri for _ in range(3)]
    for uri in uris[:2]:
        client.evaluate(uri, table, "label", resamples=10, latency_calls=3)
        client.gate(uri)
        reviewer.approve(uri)
    client.promote(uris[0], "production")
    return uris


def test_only_deployable_versions_take_traffic(client: Client, reviewer: Client, table_and_model):
    table, model = table_and_model
    _versions(client, reviewer, table, model)
    with pytest.raises(GateFailed, match="a champion must be production") as refused:
        client.deploy("pricing-api", model="pricing", champion=2)
    assert refused.value.details["field"] == "champion"
    with pytest.raises(GateFailed, match="registered; a canary must be") as canary:
        client.deploy("pricing-api", model="pricing", champion=1, canary=3, canary_share=0.1)
    assert canary.value.details["field"] == "canary"
    with pytest.raises(GateFailed, match="no previous production version") as previous:
        client.deploy("pricing-api", model="pricing", champion=1, fallbacks=[{"kind": "previous"}])
    assert previous.value.details["field"] == "fallbacks"
    with pytest.raises(NotFound):
        client.deploy("pricing-api", model="pricing", champion=1, shadow=9)
    assert client.deployments() == []  # nothing was half written

    deployed = client.deploy(
        "pricing-api", model="pricing", champion=1, canary=2, canary_share=0.1,
        fallbacks=[{"kind": "default", "value": {"price": 0}}], timeout_ms=250,
    )  # fmt: skip
    assert (deployed.champion, deployed.canary, deployed.canary_share) == (1, 2, 0.1)
    assert deployed.revision == 1
    assert deployed.fallbacks[0].value == {"price": 0}
    assert client.get_deployment("pricing-api") == deployed
    assert [d.name for d in client.deployments(model="pricing")] == ["pricing-api"]

    back = client.rollback("pricing-api", reason="p95 over budget")
    assert (back.champion, back.canary, back.revision) == (1, None, 2)
    assert back.fallbacks == deployed.fallbacks  # the safety net stays
    with pytest.raises(Conflict, match="Nothing to roll back"):
        client.rollback("pricing-api")
    events = client.list_events(subject_type="deployment").items
    assert [e.kind for e in events] == ["deployment.created", "deployment.rolled_back"]
    assert events[-1].payload["reason"] == "p95 over budget"
    assert events[-1].payload["from_versions"] == [2]


def test_a_split_is_sticky_by_unit_and_needs_a_unit_key(
    client: Client, reviewer: Client, table_and_model
) -> None:
    table, model = table_and_model
    _versions(client, reviewer, table, model)
    with pytest.raises(InvalidInput, match="unit_key"):
        client.deploy("ab", model="pricing", champion=1, split={1: 0.5, 2: 0.5})
    with pytest.raises(InvalidInput, match="canary or a split"):
        client.deploy(
            "ab", model="pricing", champion=1, canary=2, canary_share=0.5,
            split={1: 0.5, 2: 0.5}, unit_key="user_id",
        )  # fmt: skip
    ab = client.deploy(
        "ab", model="pricing", champion=1, split={1: 1, 2: 1}, unit_key="user_id",
        experiment="price-test",
    )  # fmt: skip
    assert ab.split == {1: 1.0, 2: 1.0}
    assert ab.experiment == "price-test"
    assert client.rollback("ab").split is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"canary": 2}, "canary"),
        ({"canary": 1, "canary_share": 0.2}, "canary"),
        ({"canary": 2, "canary_share": 1.5}, "canary_share"),
        ({"timeout_ms": 0}, "timeout_ms"),
        ({"shadow": 1}, "shadow"),
        ({"canary": 2, "canary_share": 0.1, "shadow": 2}, "shadow"),
        ({"fallbacks": [{"kind": "rule"}]}, "fallbacks"),
        ({"fallbacks": [{"kind": "teleport"}]}, "fallbacks.0.kind"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(client: Client, changes, field) -> None:
    with pytest.raises(InvalidInput) as refused:
        client.deploy("x", model="pricing", champion=1, **changes)
    assert refused.value.field is not None
    assert refused.value.field.startswith(field.split(".")[0])


SLO = {"max_error_rate": 0.05, "max_p95_ms": 50.0, "window_s": 120, "min_requests": 30}


def test_a_canary_slo_is_kept_and_goes_with_the_canary(
    client: Client, reviewer: Client, table_and_model
) -> None:
    table, model = table_and_model
    _versions(client, reviewer, table, model)
    deployed = client.deploy(
        "slo-api", model="pricing", champion=1, canary=2, canary_share=0.1, canary_slo=SLO
    )
    assert deployed.canary_slo is not None
    assert deployed.canary_slo.model_dump() == SLO
    assert client.get_deployment("slo-api").canary_slo == deployed.canary_slo
    defaults = client.deploy(
        "slo-api", model="pricing", champion=1, canary=2, canary_share=0.1,
        canary_slo={"max_error_rate": 0.1},
    )  # fmt: skip
    assert defaults.canary_slo is not None
    assert (defaults.canary_slo.window_s, defaults.canary_slo.min_requests) == (60, 50)
    assert defaults.canary_slo.max_p95_ms is None
    back = client.rollback("slo-api", reason="by hand", evidence={"p95_ms": 80})
    assert (back.canary, back.canary_slo) == (None, None)
    events = client.list_events(subject_type="deployment", subject_id="slo-api").items
    assert [e.kind for e in events] == [
        "deployment.created", "deployment.updated", "deployment.rolled_back",
    ]  # fmt: skip
    assert events[0].payload["canary_slo"] == SLO
    assert events[-1].payload["canary_slo"] is None
    assert events[-1].payload["evidence"] == {"p95_ms": 80}


CANARY = {"canary": 2, "canary_share": 0.1}


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"canary_slo": {"max_error_rate": 0.1}}, "canary_slo", "needs a canary"),
        ({"split": {1: 1, 2: 1}, "unit_key": "u", "canary_slo": {"max_p95_ms": 50}},
         "canary_slo", "not a split"),
        ({**CANARY, "canary_slo": {}}, "canary_slo", "max_error_rate"),
        ({**CANARY, "canary_slo": {"max_error_rate": 1.5}}, "canary_slo.max_error_rate", "less"),
        ({**CANARY, "canary_slo": {"max_error_rate": -0.1}}, "canary_slo.max_error_rate",
         "greater"),
        ({**CANARY, "canary_slo": {"max_p95_ms": 0}}, "canary_slo.max_p95_ms", "greater than 0"),
        ({**CANARY, "canary_slo": {"max_p95_ms": 5, "window_s": 1}}, "canary_slo.window_s", "5"),
        ({**CANARY, "canary_slo": {"max_p95_ms": 5, "window_s": 7200}}, "canary_slo.window_s",
         "3600"),
        ({**CANARY, "canary_slo": {"max_p95_ms": 5, "min_requests": 0}},
         "canary_slo.min_requests", "1"),
        ({**CANARY, "canary_slo": {"max_p95_ms": 5, "p99_ms": 9}}, "canary_slo.p99_ms", "Extra"),
    ],
)  # fmt: skip
def test_bad_canary_slos_are_refused_naming_the_field(
    client: Client, changes: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(InvalidInput, match=says) as refused:
        client.deploy("x", model="pricing", champion=1, **changes)
    assert refused.value.field == field
