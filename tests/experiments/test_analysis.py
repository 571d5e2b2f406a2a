"""``analyze`` end to end: a split's traffic in the prediction log, outcomes in the outcome log,
the verdict and its reasons; and the decision acting on the deployment."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from tests.serving.test_gateway import Store

from steward.domain.assignment import variant_for
from steward.domain.experiments import (
    DecisionAction,
    ExperimentState,
    GuardrailStatus,
    Recommendation,
)
from steward.errors import Conflict, InvalidInput
from steward.settings import Settings
from steward.store.base import EventFilter
from steward.store.prediction_log import PredictionLogWriter, PredictionRecord
from steward.wiring import Services

START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
SPLIT = {1: 0.5, 2: 0.5}
ROW = {"a": 0.5, "b": -1.0, "c": 2.0}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    made = Store(tmp_path_factory.mktemp("experiments") / "home")
    made.client.close()
    return made.home


@pytest.fixture
def services(template: Path, tmp_path: Path) -> Iterator[Services]:
    home = tmp_path / "home"
    shutil.copytree(template, home)
    made = Services.from_settings(Settings(url=None, home=home))
    made.deployments.deploy(
        "me", "churn-ab", _spec(split=SPLIT, experiment="churn-ab", unit_key="user_id")
    )
    for name, source, event, aggregation in (
        ("converted", "outcome", "purchase", "any"),
        ("revenue", "outcome", "purchase", "sum"),
        ("latency", "latency", None, "mean"),
    ):
        made.experiments.define_metric(
            "me", name, {"source": source, "event": event, "aggregation": aggregation}
        )
    yield made
    made.close()


def _spec(**routing: Any) -> Any:
    from steward.schemas.serving import DeploymentSpec

    return DeploymentSpec.model_validate({"model": "churn", "champion": 1, **routing})


def _create(services: Services, **fields: Any) -> None:
    body = {
        "name": "checkout", "deployment": "churn-ab", "start": START, "planned_units": 10_000,
        "metrics": [
            {"metric": "converted", "role": "primary"},
            {"metric": "revenue", "role": "secondary"},
            {"metric": "latency", "role": "guardrail", "direction": "decrease",
             "tolerance": 0.05},
        ],
        **fields,
    }  # fmt: skip
    services.experiments.create("me", body)


def _traffic(
    services: Services,
    units: int,
    *,
    rates: dict[int, float],
    latency: dict[int, float] | None = None,
    drop: dict[int, float] | None = None,
    served_split: dict[int, float] | None = None,
    seed: int = 0,
) -> None:
    """One request per unit, answered by the unit's variant; a purchase (value 10) with the
    variant's rate. ``drop`` loses that share of a variant's units (a broken split)."""
    rng = np.random.default_rng(seed)
    writer = PredictionLogWriter(services.settings.prediction_log_root, queue_size=200_000,
                                 flush_rows=50_000, flush_seconds=0.05)  # fmt: skip
    bought: list[str] = []
    at = START + timedelta(minutes=5)
    for i in range(units):
        unit = f"user-{seed}-{i}"
        version = variant_for(served_split or SPLIT, unit, experiment="churn-ab")
        if drop and rng.random() < drop.get(version, 0.0):
            continue
        ms = (latency or {}).get(version, 5.0) * rng.uniform(0.8, 1.2)
        writer.log(PredictionRecord("churn-ab", version, f"r-{unit}", at, ms, ROW, 1,
                                    unit_id=unit))  # fmt: skip
        if rng.random() < rates[version]:
            bought.append(unit)
    writer.close()
    if bought:
        services.experiments.log_outcomes("me", pa.table({
            "name": ["purchase"] * len(bought), "value": [10.0] * len(bought),
            "unit_id": bought, "timestamp": [at + timedelta(minutes=1)] * len(bought),
        }))  # fmt: skip


def test_a_clear_winner_is_shipped_with_its_reasons(services: Services) -> None:
    _create(services)
    _traffic(services, 20_000, rates={1: 0.10, 2: 0.14})
    found = services.analyze_experiment("me", "checkout")
    assert not found.srm.mismatch
    assert sum(found.units.values()) == 20_000
    converted = next(m for m in found.metrics if m.metric == "converted")
    (arm,) = converted.arms
    assert converted.kind == "proportion"
    assert arm.variant == 2
    assert arm.relative == pytest.approx(0.4, abs=0.12)
    assert arm.significant
    assert arm.better is True
    assert arm.p_value_adjusted is not None
    assert arm.p_value_adjusted >= arm.p_value  # type: ignore[operator]
    latency = next(m for m in found.metrics if m.metric == "latency")
    assert latency.arms[0].guardrail is GuardrailStatus.OK
    assert found.recommendation is Recommendation.SHIP
    assert found.ship_variant == 2
    assert "converted improves for v2" in found.reasons[0]
    assert found.assignment_mismatches == 0
    with services.store.read() as rx:
        (event,) = rx.list_events(EventFilter(kind="experiment.analyzed"), limit=5, offset=0)
    assert event.payload["recommendation"] == "ship"


def test_a_broken_split_is_flagged_before_any_result(services: Services) -> None:
    _create(services)
    _traffic(services, 20_000, rates={1: 0.10, 2: 0.14}, drop={2: 0.1}, seed=1)
    found = services.analyze_experiment("me", "checkout")
    assert found.srm.mismatch
    assert found.srm.p_value < 0.001
    assert found.recommendation is Recommendation.INCONCLUSIVE
    assert "Sample ratio mismatch" in found.reasons[0]


def test_a_failing_guardrail_rolls_back_even_a_winner(services: Services) -> None:
    _create(services)
    _traffic(services, 20_000, rates={1: 0.10, 2: 0.14}, latency={1: 5.0, 2: 6.0}, seed=2)
    found = services.analyze_experiment("me", "checkout")
    latency = next(m for m in found.metrics if m.metric == "latency")
    assert latency.arms[0].guardrail is GuardrailStatus.FAILING
    assert found.recommendation is Recommendation.ROLLBACK
    assert "Guardrail latency fails for v2" in found.reasons[0]


@pytest.mark.parametrize(
    ("planned", "verdict"),
    [(100_000, Recommendation.KEEP_RUNNING), (3_000, Recommendation.INCONCLUSIVE)],
)
def test_no_difference_keeps_running_until_the_plan_then_is_inconclusive(
    services: Services, planned: int, verdict: Recommendation
) -> None:
    _create(services, planned_units=planned)
    _traffic(services, 4_000, rates={1: 0.1, 2: 0.1}, seed=3)
    found = services.analyze_experiment("me", "checkout")
    assert found.recommendation is verdict
    assert "No significant difference on converted" in found.reasons[0]


def test_ship_decision_promotes_and_makes_the_variant_champion(services: Services) -> None:
    _create(services)
    decided = services.decide_experiment(
        "me", "checkout", DecisionAction.SHIP, "v2 converts 40% better", apply=True
    )
    assert decided.state is ExperimentState.DECIDED
    assert decided.decision is not None
    assert (decided.decision.variant, decided.decision.applied) == (2, True)
    deployment = services.deployments.get("churn-ab")
    assert (deployment.champion, deployment.split) == (2, None)
    assert services.registry.get_version("models:/churn/2").status.value == "production"
    with pytest.raises(Conflict, match="already decided"):
        services.decide_experiment("me", "checkout", DecisionAction.ITERATE, "again")


def test_rollback_decision_sends_traffic_to_the_champion(services: Services) -> None:
    _create(services)
    decided = services.decide_experiment(
        "me", "checkout", DecisionAction.ROLLBACK, "guardrail failed", apply=True
    )
    assert decided.decision is not None
    assert decided.decision.applied
    deployment = services.deployments.get("churn-ab")
    assert (deployment.champion, deployment.split) == (1, None)


def test_a_decision_without_reason_or_with_a_wrong_variant_is_refused(
    services: Services,
) -> None:
    _create(services)
    with pytest.raises(InvalidInput) as no_reason:
        services.decide_experiment("me", "checkout", DecisionAction.SHIP, "  ")
    assert no_reason.value.field == "reason"
    with pytest.raises(InvalidInput) as control:
        services.decide_experiment("me", "checkout", DecisionAction.SHIP, "why", variant=1)
    assert control.value.field == "variant"
    assert services.experiments.get("checkout").state is ExperimentState.RUNNING


@pytest.mark.parametrize(("method", "test"), [("sequential", "confidence-sequence"),
                                              ("bayesian", "beta-exact")])  # fmt: skip
def test_sequential_and_bayesian_reads_find_the_same_winner(
    services: Services, method: str, test: str
) -> None:
    _create(services, method=method)
    _traffic(services, 20_000, rates={1: 0.10, 2: 0.14}, seed=4)
    found = services.analyze_experiment("me", "checkout")
    converted = next(m for m in found.metrics if m.metric == "converted")
    assert converted.test == test
    (arm,) = converted.arms
    if method == "bayesian":
        assert arm.chance_to_beat is not None
        assert arm.chance_to_beat > 0.99
        assert arm.expected_loss is not None
    else:
        assert arm.difference_ci is not None
        assert arm.difference_ci[0] > 0
    assert found.recommendation is Recommendation.SHIP


def test_cuped_uses_the_pre_period_and_reports_its_variance_reduction(
    services: Services,
) -> None:
    services.experiments.define_metric(
        "me", "spend", {"source": "outcome", "event": "spend", "aggregation": "sum",
                        "covariate": "spend"},
    )  # fmt: skip
    _create(services, metrics=[{"metric": "spend", "role": "primary"}])
    rng = np.random.default_rng(5)
    units = [f"user-5-{i}" for i in range(4_000)]
    writer = PredictionLogWriter(services.settings.prediction_log_root, queue_size=10_000,
                                 flush_rows=5_000, flush_seconds=0.05)  # fmt: skip
    habit = rng.gamma(2.0, 20.0, size=len(units))  # each unit's usual spend
    before, during = START - timedelta(days=3), START + timedelta(minutes=5)
    for unit in units:
        version = variant_for(SPLIT, unit, experiment="churn-ab")
        writer.log(PredictionRecord("churn-ab", version, f"r-{unit}", during, 5.0, ROW, 1,
                                    unit_id=unit))  # fmt: skip
    writer.close()
    services.experiments.log_outcomes("me", pa.table({
        "name": ["spend"] * (2 * len(units)),
        "value": np.concatenate([habit + rng.normal(0, 5, len(units)),
                                 habit + rng.normal(0, 5, len(units))]),
        "unit_id": units * 2,
        "timestamp": [before] * len(units) + [during] * len(units),
    }))  # fmt: skip
    (spend,) = services.analyze_experiment("me", "checkout").metrics
    assert spend.cuped_variance_reduction is not None
    assert spend.cuped_variance_reduction > 0.8


def test_a_split_changed_during_the_experiment_is_caught(services: Services) -> None:
    _create(services)
    _traffic(services, 20_000, rates={1: 0.1, 2: 0.1}, served_split={1: 0.65, 2: 0.35}, seed=6)
    found = services.analyze_experiment("me", "checkout")
    assert found.srm.mismatch
    assert found.units[1] > found.units[2]  # the served versions, not the design's hash
    assert found.assignment_mismatches > 2_000
    assert found.recommendation is Recommendation.INCONCLUSIVE
    assert any("split changed during the experiment" in r for r in found.reasons)


def test_analysing_before_any_traffic_says_so(services: Services) -> None:
    _create(services)
    with pytest.raises(InvalidInput, match="no exposed unit yet") as refused:
        services.analyze_experiment("me", "checkout")
    assert refused.value.field == "name"


def test_an_unequal_design_is_checked_against_its_own_weights(services: Services) -> None:
    services.deployments.deploy(
        "me", "churn-ab", _spec(split={1: 0.3, 2: 0.7}, experiment="churn-ab", unit_key="u")
    )
    _create(services)
    _traffic(services, 10_000, rates={1: 0.1, 2: 0.1}, served_split={1: 0.3, 2: 0.7}, seed=7)
    found = services.analyze_experiment("me", "checkout")
    assert not found.srm.mismatch
    assert found.srm.expected[2] == pytest.approx(0.7 * sum(found.units.values()))
    assert not [n for m in found.metrics for n in m.notes if "ratio" in n.lower()]
