"""Checks that read the evaluation: floor, ceiling, regression, fairness, calibration, latency."""

from __future__ import annotations

from steward.domain.evaluation import Task
from steward.domain.gates import Outcome


def test_metric_floor_passes_and_carries_the_evaluation(make, run) -> None:
    result = run("metric_floor", make.ctx(), metric="roc_auc", min=0.80)
    assert result.outcome == Outcome.PASSED
    assert result.title == "roc_auc >= 0.8"
    assert result.evidence["evaluation_id"] == "ev-2"
    assert result.evidence["data_fingerprint"] == make.data
    assert result.evidence["compared"] == 0.85
    assert "0.85 >= 0.8" in result.detail


def test_metric_floor_on_the_lower_bound_fails_where_the_value_would_pass(make, run) -> None:
    ctx = make.ctx(evaluation=make.evaluation({"roc_auc": 0.81}))
    assert run("metric_floor", ctx, metric="roc_auc", min=0.80).outcome == Outcome.PASSED
    result = run("metric_floor", ctx, metric="roc_auc", min=0.80, estimate="lower_bound")
    assert result.outcome == Outcome.FAILED
    assert result.evidence["compared"] == 0.81 - 0.02
    assert result.title == "roc_auc lower bound >= 0.8"


def test_metric_floor_without_interval_fails_when_the_bound_is_asked(make, run) -> None:
    ctx = make.ctx(evaluation=make.evaluation({"roc_auc": 0.9}, intervals=False))
    result = run("metric_floor", ctx, metric="roc_auc", min=0.8, estimate="lower_bound")
    assert result.outcome == Outcome.FAILED
    assert "no confidence interval for roc_auc" in result.detail


def test_metric_check_without_evaluation_fails(make, run) -> None:
    result = run("metric_floor", make.ctx(evaluation=None), metric="roc_auc", min=0.8)
    assert result.outcome == Outcome.FAILED
    assert result.detail == "no evaluation of this version; run steward evaluate"


def test_metric_not_in_the_evaluation_fails_naming_the_available_ones(make, run) -> None:
    result = run("metric_floor", make.ctx(), metric="auc", min=0.8)
    assert result.outcome == Outcome.FAILED
    assert "'auc' is not in evaluation ev-2" in result.detail
    assert "accuracy, ece, log_loss, roc_auc" in result.detail


def test_metric_without_value_fails_quoting_the_note(make, run) -> None:
    evaluation = make.evaluation({"roc_auc": None})
    evaluation = evaluation.model_copy(
        update={
            "summary": evaluation.summary.model_copy(
                update={"metrics": {"roc_auc": make.estimate(None, note="only one class present")}}
            )
        }
    )
    result = run("metric_floor", make.ctx(evaluation=evaluation), metric="roc_auc", min=0.8)
    assert result.outcome == Outcome.FAILED
    assert "only one class present" in result.detail


def test_metric_check_scoped_to_other_tasks_is_not_applicable(make, run) -> None:
    ctx = make.ctx(evaluation=make.evaluation(task=Task.REGRESSION))
    result = run("metric_floor", ctx, metric="roc_auc", min=0.8, tasks=["binary", "multiclass"])
    assert result.outcome == Outcome.NOT_APPLICABLE
    assert "regression" in result.detail
    assert run("metric_floor", ctx, metric="r2", min=0.5, tasks=["regression"]).outcome == (
        Outcome.PASSED
    )


def test_metric_ceiling(make, run) -> None:
    ctx = make.ctx()
    assert run("metric_ceiling", ctx, metric="log_loss", max=0.5).outcome == Outcome.PASSED
    failed = run("metric_ceiling", ctx, metric="log_loss", max=0.3)
    assert failed.outcome == Outcome.FAILED
    assert "0.35 > 0.3" in failed.detail
    upper = run("metric_ceiling", ctx, metric="log_loss", max=0.36, estimate="upper_bound")
    assert upper.outcome == Outcome.FAILED  # 0.35 + 0.02 > 0.36


def test_no_regression_passes_within_tolerance_and_fails_beyond(make, run) -> None:
    ctx = make.ctx(evaluation=make.evaluation({"roc_auc": 0.835}))
    passed = run("no_regression", ctx, metric="roc_auc", tolerance=0.01)
    assert passed.outcome == Outcome.PASSED
    assert passed.evidence["champion"] == 0.84
    assert passed.evidence["champion_evaluation_id"] == "ev-1"
    assert passed.evidence["data_fingerprint"] == make.data
    failed = run("no_regression", ctx, metric="roc_auc", tolerance=0.001)
    assert failed.outcome == Outcome.FAILED
    assert "vs champion v1 0.84" in failed.detail


def test_no_regression_reads_losses_as_lower_is_better(make, run) -> None:
    # candidate log_loss 0.35 vs champion 0.36: lower, so better
    ctx = make.ctx()
    result = run("no_regression", ctx, metric="log_loss")
    assert result.outcome == Outcome.PASSED
    assert result.title == "log_loss <= champion + 0"
    flipped = run("no_regression", ctx, metric="log_loss", direction="higher")
    assert flipped.outcome == Outcome.FAILED


def test_no_regression_without_champion_is_not_applicable(make, run) -> None:
    assert run("no_regression", make.ctx(champion=None), metric="roc_auc").outcome == (
        Outcome.NOT_APPLICABLE
    )
    own = run("no_regression", make.ctx(champion=make.version(2)), metric="roc_auc")
    assert own.outcome == Outcome.NOT_APPLICABLE
    assert own.detail == "this version is the champion"


def test_no_regression_needs_the_champion_on_the_same_data(make, run) -> None:
    elsewhere = make.evaluation(
        {"roc_auc": 0.8}, version=1, eval_id="ev-1", fingerprint=make.other_data
    )
    for champion_evaluation in (None, elsewhere):
        ctx = make.ctx(champion_evaluation=champion_evaluation)
        result = run("no_regression", ctx, metric="roc_auc")
        assert result.outcome == Outcome.FAILED
        assert "evaluate the champion on the same data" in result.detail


def test_fairness_on_the_computed_disparity(make, run) -> None:
    groups = [
        make.group_report("sex", {"f": {}, "m": {}}, dpd=0.04),
        make.group_report("age", {"young": {}, "old": {}}, dpd=0.12),
    ]
    ctx = make.ctx(evaluation=make.evaluation(groups=groups))
    both = run("fairness", ctx, max=0.10)
    assert both.outcome == Outcome.FAILED
    assert both.evidence["disparity"] == {"sex": 0.04, "age": 0.12}
    assert "over 0.1: age" in both.detail
    assert run("fairness", ctx, groups=["sex"], max=0.10).outcome == Outcome.PASSED


def test_fairness_evidence_shows_the_rates_behind_a_disparity(make, run) -> None:
    rates = {
        "f": {"selection_rate": 0.30, "true_positive_rate": 0.8, "false_positive_rate": 0.10},
        "m": {"selection_rate": 0.42, "true_positive_rate": 0.6, "false_positive_rate": 0.12},
    }
    report = make.group_report("sex", rates, dpd=0.12, eod=0.2)
    ctx = make.ctx(evaluation=make.evaluation(groups=[report]))
    parity = run("fairness", ctx, max=0.1)
    assert parity.evidence["group_values"] == {"sex": {"f": 0.30, "m": 0.42}}
    odds = run("fairness", ctx, metric="equalized_odds_difference", max=0.1)
    assert odds.evidence["group_values"]["sex"]["m"] == {
        "true_positive_rate": 0.6, "false_positive_rate": 0.12,
    }  # fmt: skip


def test_fairness_on_a_regression_uses_the_per_group_metric(make, run) -> None:
    groups = [
        make.group_report("region", {"n": {"mae": 1.0}, "s": {"mae": 1.5}, "e": {"mae": 1.2}})
    ]
    ctx = make.ctx(evaluation=make.evaluation(task=Task.REGRESSION, groups=groups))
    result = run("fairness", ctx, metric="mae", max=0.6)
    assert result.outcome == Outcome.PASSED
    assert result.evidence["disparity"] == {"region": 0.5}
    assert result.evidence["group_values"]["region"] == {"n": 1.0, "s": 1.5, "e": 1.2}
    assert run("fairness", ctx, metric="mae", max=0.4).outcome == Outcome.FAILED
    parity = run("fairness", ctx, max=0.1)  # demographic parity is for binary classifiers
    assert parity.outcome == Outcome.FAILED
    assert "name a per-group metric such as mae" in parity.detail


def test_fairness_fails_without_group_metrics_or_with_an_unknown_column(make, run) -> None:
    none = run("fairness", make.ctx(evaluation=make.evaluation(groups=[])), max=0.1)
    assert none.outcome == Outcome.FAILED
    assert "no group metrics" in none.detail
    unknown = run("fairness", make.ctx(), groups=["race"], max=0.1)
    assert unknown.outcome == Outcome.FAILED
    assert "no group metrics for race; it has: sex" in unknown.detail


def test_calibration(make, run) -> None:
    assert run("calibration", make.ctx(), max_ece=0.05).outcome == Outcome.PASSED
    failed = run("calibration", make.ctx(), max_ece=0.02)
    assert failed.outcome == Outcome.FAILED
    assert failed.evidence["compared"] == 0.03
    regression = make.ctx(evaluation=make.evaluation(task=Task.REGRESSION))
    assert run("calibration", regression, max_ece=0.05).outcome == Outcome.NOT_APPLICABLE
    assert run("calibration", make.ctx(evaluation=None), max_ece=0.05).outcome == Outcome.FAILED
    scoped = run("calibration", make.ctx(), max_ece=0.02, tasks=["multiclass"])
    assert scoped.outcome == Outcome.NOT_APPLICABLE  # would fail, but the policy scoped it away


def test_latency(make, run) -> None:
    ctx = make.ctx()
    single = run("latency", ctx, p95_ms=20)
    assert single.outcome == Outcome.PASSED
    assert single.evidence["p95_ms"] == 1.2
    assert single.title == "p95 single-row latency <= 20 ms"
    batch = run("latency", ctx, p95_ms=5, case="batch")
    assert batch.outcome == Outcome.FAILED
    assert "9 ms (batches of 256) > 5 ms" in batch.detail
    untimed = run("latency", make.ctx(evaluation=make.evaluation(latency=None)), p95_ms=20)
    assert untimed.outcome == Outcome.FAILED
    assert "no latency measurements" in untimed.detail
