"""Builders of the real domain types a gate reads, with defaults that pass every check."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from steward.domain.entities import CARD_SECTIONS, ArtifactRef, GitInfo, Lineage, Model
from steward.domain.entities import ModelVersion as Version
from steward.domain.enums import Flavor, Role
from steward.domain.evaluation import (
    Estimate,
    Evaluation,
    EvaluationSummary,
    GroupMetrics,
    GroupReport,
    Latency,
    Percentiles,
    Task,
)
from steward.domain.gates import Approval, CheckResult, GateContext, Reproduction
from steward.gates.checks import builtin_checks

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
DATA = "sha256:" + "ab" * 32
OTHER_DATA = "sha256:" + "cd" * 32
SAMPLE = ArtifactRef(digest="sha256:" + "ef" * 32, size=1024)


class Make:
    """``make.ctx(...)`` and friends: each takes keyword overrides of its fields."""

    data = DATA  # the evaluation data's fingerprint
    other_data = OTHER_DATA

    def model(self, **fields: Any) -> Model:
        base: dict[str, Any] = {
            "id": "m-1",
            "name": "churn",
            "owner": "alice",
            "risk_tier": 1,
            "card": {section: f"About {section}." for section in CARD_SECTIONS},
            "created_at": NOW,
            "created_by": "alice",
            "updated_at": NOW,
        }
        return Model(**{**base, **fields})

    def version(self, version: int = 2, **fields: Any) -> Version:
        base: dict[str, Any] = {
            "id": f"v-{version}",
            "model_id": "m-1",
            "model_name": "churn",
            "version": version,
            "flavor": Flavor.SKLEARN,
            "files": {"model.skops": ArtifactRef(digest="sha256:" + "01" * 32, size=10)},
            "primary_file": "model.skops",
            "lineage": Lineage(
                git=GitInfo(commit="0123456789abcdef" * 2 + "01234567", dirty=False),
                training_data=DATA,
                environment={"python": "3.11.9", "scikit-learn": "1.5.0"},
                command="python train.py --seed 1",
            ),
            "reference_sample": SAMPLE,
            "created_at": NOW,
            "created_by": "bob",
        }
        return Version(**{**base, **fields})

    def estimate(
        self, value: float | None, width: float = 0.02, note: str | None = None
    ) -> Estimate:
        if value is None:
            return Estimate(value=None, note=note)
        return Estimate(value=value, lower=value - width, upper=value + width)

    def evaluation(
        self,
        metrics: dict[str, float | None] | None = None,
        *,
        task: Task = Task.BINARY,
        version: int = 2,
        eval_id: str = "ev-2",
        fingerprint: str = DATA,
        groups: list[GroupReport] | None = None,
        latency: Latency | str | None = "default",
        intervals: bool = True,
    ) -> Evaluation:
        if metrics is None:
            metrics = (
                {"rmse": 1.0, "mae": 0.8, "r2": 0.7}
                if task == Task.REGRESSION
                else {"roc_auc": 0.85, "log_loss": 0.35, "ece": 0.03, "accuracy": 0.8}
            )
        estimates = {
            name: self.estimate(value) if intervals else Estimate(value=value)
            for name, value in metrics.items()
        }
        timing = (
            Latency(
                single_row_ms=Percentiles(p50=0.5, p95=1.2, p99=2.0),
                batch_ms=Percentiles(p50=4.0, p95=9.0, p99=12.0),
                batch_size=256,
                calls=200,
            )
            if latency == "default"
            else latency
        )
        return Evaluation(
            id=eval_id,
            model_name="churn",
            version=version,
            label="holdout",
            data_fingerprint=fingerprint,
            summary=EvaluationSummary(
                task=task,
                n_rows=5000,
                metrics=estimates,
                groups=[] if groups is None else groups,
                resamples=200 if intervals else 0,
            ),
            latency=None if isinstance(timing, str) else timing,
            created_at=NOW,
            created_by="ci",
        )

    def group_report(
        self,
        column: str,
        per_group: dict[str, dict[str, float | None]],
        *,
        dpd: float | None = None,
        eod: float | None = None,
    ) -> GroupReport:
        return GroupReport(
            column=column,
            groups=[
                GroupMetrics(
                    group=group,
                    n=100,
                    metrics={name: Estimate(value=v) for name, v in metrics.items()},
                )
                for group, metrics in per_group.items()
            ],
            demographic_parity_difference=None if dpd is None else Estimate(value=dpd),
            equalized_odds_difference=None if eod is None else Estimate(value=eod),
        )

    def approval(self, approver: str, role: Role = Role.APPROVER, version: int = 2) -> Approval:
        return Approval(
            model_name="churn", version=version, approver=approver, role=role, approved_at=NOW
        )

    def reproduction(self, **fields: Any) -> Reproduction:
        base: dict[str, Any] = {
            "id": "rep-1",
            "model_name": "churn",
            "version": 2,
            "matched": True,
            "tolerance": 0.01,
            "recorded": {"roc_auc": 0.85, "log_loss": 0.35},
            "reproduced": {"roc_auc": 0.852, "log_loss": 0.349},
            "data_fingerprints_matched": True,
            "detail": "ran python train.py --seed 1 at 01234567",
            "created_at": NOW,
            "created_by": "ci",
        }
        return Reproduction(**{**base, **fields})

    def ctx(self, **fields: Any) -> GateContext:
        """A context where every built-in check passes, unless a field is overridden."""
        base: dict[str, Any] = {
            "model": self.model(),
            "version": self.version(),
            "evaluation": self.evaluation(
                groups=[
                    self.group_report(
                        "sex", {"f": {"recall": 0.7}, "m": {"recall": 0.72}}, dpd=0.04
                    )
                ]
            ),
            "champion": self.version(1),
            "champion_evaluation": self.evaluation(
                {"roc_auc": 0.84, "log_loss": 0.36, "ece": 0.03}, version=1, eval_id="ev-1"
            ),
            "approvals": [self.approval("carol"), self.approval("dave", Role.ADMIN)],
            "reproduction": self.reproduction(),
            "rollback_targets": [1],
            "previously_in_production": [1],
            "drift_rules": ["psi-features", "prediction-shift"],
            "now": NOW,
        }
        return GateContext(**{**base, **fields})


@pytest.fixture
def make() -> Make:
    return Make()


@pytest.fixture
def run() -> Callable[..., CheckResult]:
    """``run("metric_floor", ctx, metric="roc_auc", min=0.8)``: one built-in check's result."""

    def _run(name: str, ctx: GateContext, **params: Any) -> CheckResult:
        check = builtin_checks()[name]
        return check.run(check.Params.model_validate(params), ctx)

    return _run
