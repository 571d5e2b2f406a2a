"""Bootstrap intervals: seeded, containing the estimate, narrowing with n, covering the truth at
their nominal rate, and as wide as a plain row-by-row bootstrap."""

import numpy as np
import pytest
from sklearn import metrics as skm

from steward.stats._bootstrap import ChunkResamples, resample_cells
from steward.stats.evaluation import evaluate_classifier, evaluate_regressor

# 200 simulated datasets at nominal 90%: the hit rate's standard error is 2.1 points, so a
# correct method lands in [0.84, 0.96] (three standard errors) essentially always.
SIMULATIONS = 200
BAND = (0.84, 0.96)


def _widths(summary) -> dict[str, float]:
    return {name: e.upper - e.lower for name, e in summary.metrics.items()}


def test_same_seed_same_summary_and_seed_changes_only_intervals(binary) -> None:
    y, y_pred, p = binary(0, 2000)
    groups = {"g": np.arange(2000) % 3}
    first = evaluate_classifier(y, y_pred, p, groups=groups, resamples=200, seed=7)
    assert evaluate_classifier(y, y_pred, p, groups=groups, resamples=200, seed=7) == first
    other = evaluate_classifier(y, y_pred, p, groups=groups, resamples=200, seed=8)
    assert other.seed == 8
    for name, estimate in first.metrics.items():
        assert other.metrics[name].value == estimate.value
    assert any(other.metrics[n].lower != e.lower for n, e in first.metrics.items())


def test_overall_intervals_do_not_depend_on_the_group_columns(binary) -> None:
    y, y_pred, p = binary(1, 1500)
    alone = evaluate_classifier(y, y_pred, p, resamples=200)
    grouped = evaluate_classifier(y, y_pred, p, groups={"g": np.arange(1500) % 4}, resamples=200)
    assert grouped.metrics == alone.metrics


def test_intervals_contain_the_estimate_and_narrow_with_n(binary) -> None:
    small = evaluate_classifier(*binary(2, 1000), resamples=400)
    large = evaluate_classifier(*binary(3, 16000), resamples=400)
    assert small.resamples == 400
    assert small.confidence_level == 0.95
    for summary in (small, large):
        for name, estimate in summary.metrics.items():
            assert estimate.lower <= estimate.value <= estimate.upper, name
    narrow, wide = _widths(large), _widths(small)
    for name in narrow:
        # 16x the rows: about a quarter of the width
        assert narrow[name] < 0.45 * wide[name], name


def test_higher_confidence_gives_wider_intervals(binary) -> None:
    data = binary(4, 2000)
    at_80 = _widths(evaluate_classifier(*data, confidence=0.8, resamples=400))
    at_99 = _widths(evaluate_classifier(*data, confidence=0.99, resamples=400))
    assert all(at_99[name] > at_80[name] for name in at_80)


def test_widths_match_a_row_by_row_bootstrap(binary) -> None:
    y, y_pred, p = binary(5, 2000, ties=True)
    ours = _widths(evaluate_classifier(y, y_pred, p, confidence=0.9, resamples=1000))
    rng = np.random.default_rng(0)
    reference = {"accuracy": [], "roc_auc": [], "pr_auc": [], "log_loss": [], "brier": []}
    for _ in range(250):  # the slow way: one weighted scikit-learn call per resample
        w = np.bincount(rng.integers(0, y.size, y.size), minlength=y.size)
        reference["accuracy"].append(skm.accuracy_score(y, y_pred, sample_weight=w))
        reference["roc_auc"].append(skm.roc_auc_score(y, p, sample_weight=w))
        reference["pr_auc"].append(skm.average_precision_score(y, p, sample_weight=w))
        reference["log_loss"].append(skm.log_loss(y, y_proba=p, sample_weight=w))
        reference["brier"].append(skm.brier_score_loss(y, p, sample_weight=w))
    for name, values in reference.items():
        low, high = np.quantile(values, [0.05, 0.95])
        assert 0.8 < ours[name] / (high - low) < 1.25, name


def _coverage(truth: dict[str, float], summaries) -> dict[str, float]:
    hits = dict.fromkeys(truth, 0)
    for summary in summaries:
        for name, value in truth.items():
            estimate = summary.metrics[name]
            hits[name] += estimate.lower <= value <= estimate.upper
    return {name: count / SIMULATIONS for name, count in hits.items()}


def test_binary_intervals_cover_the_truth_at_the_nominal_rate(binary) -> None:
    population = evaluate_classifier(*binary(10_000, 2_000_000), resamples=0)
    truth = {n: e.value for n, e in population.metrics.items() if n != "ece"}
    summaries = (
        evaluate_classifier(*binary(seed, 800), confidence=0.9, resamples=200, seed=seed)
        for seed in range(SIMULATIONS)
    )
    for name, rate in _coverage(truth, summaries).items():
        assert BAND[0] <= rate <= BAND[1], (name, rate)


def test_ece_intervals_cover_a_miscalibrated_models_ece(binary) -> None:
    # ECE is biased upward in samples; the bias-corrected replicates keep coverage near nominal
    # once the miscalibration is larger than the sampling noise of the bins.
    population = evaluate_classifier(*binary(10_000, 2_000_000, shift=0.6), resamples=0)
    truth = {"ece": population.metrics["ece"].value}
    summaries = (
        evaluate_classifier(*binary(s, 1500, shift=0.6), confidence=0.9, resamples=200, seed=s)
        for s in range(SIMULATIONS)
    )
    assert 0.8 <= _coverage(truth, summaries)["ece"] <= BAND[1]


def _regression(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    y = np.exp(1.0 + 0.4 * x)
    return y, np.exp(1.0 + 0.35 * x) + rng.normal(0, 0.3, n)


def test_regression_intervals_cover_the_truth_at_the_nominal_rate() -> None:
    population = evaluate_regressor(*_regression(10_000, 2_000_000), resamples=0)
    truth = {n: e.value for n, e in population.metrics.items()}
    summaries = (
        evaluate_regressor(*_regression(seed, 500), confidence=0.9, resamples=200, seed=seed)
        for seed in range(SIMULATIONS)
    )
    for name, rate in _coverage(truth, summaries).items():
        assert BAND[0] <= rate <= BAND[1], (name, rate)


def test_chunked_multiclass_intervals_cover_the_truth(multiclass) -> None:
    # 2,500 rows: above the 2,048 chunks, so resampling is by chunks of rows.
    y, proba = multiclass(10_000, 300_000, k=3)
    population = evaluate_classifier(y, proba.argmax(1), proba, resamples=0)
    truth = {n: population.metrics[n].value for n in ("accuracy", "roc_auc", "log_loss", "f1")}

    def summary(seed: int):
        y, proba = multiclass(seed, 2500, k=3)
        return evaluate_classifier(y, proba.argmax(1), proba, confidence=0.9, resamples=150,
                                   seed=seed)  # fmt: skip

    for name, rate in _coverage(truth, (summary(s) for s in range(SIMULATIONS))).items():
        assert BAND[0] <= rate <= BAND[1], (name, rate)


def test_resampled_cells_are_multinomial_draws_of_n() -> None:
    counts = np.array([[500.0, 0.0, 300.0], [100.0, 80.0, 20.0]])
    draws = resample_cells(np.random.default_rng(0), counts, 4000)
    assert draws.shape == (4000, 2, 3)
    assert (draws.sum(axis=(1, 2)) == 1000).all()
    assert (draws[:, 0, 1] == 0).all()  # an empty cell stays empty
    assert draws.mean(axis=0) == pytest.approx(counts, rel=0.02)
    # multinomial variance n p (1 - p) for the first cell
    assert draws[:, 0, 0].var() == pytest.approx(1000 * 0.5 * 0.5, rel=0.1)


def test_chunk_weights_draw_every_chunk_once_on_average() -> None:
    weights = ChunkResamples.draw(np.random.default_rng(0), 300, 5000).weights
    assert weights.shape == (5000, 300)
    assert (weights.sum(axis=1) == 300).all()
    assert weights.mean() == pytest.approx(1.0)
    assert weights.var() == pytest.approx(1 - 1 / 300, rel=0.05)


def test_chunks_partition_large_inputs_and_totals_agree_dense_or_sparse() -> None:
    rng = np.random.default_rng(1)
    draws = ChunkResamples.draw(rng, 10_000, 50)
    assert draws.chunks == 2048
    sizes = np.bincount(draws.ids)
    assert sizes.min() >= 4
    assert sizes.max() <= 5  # equal chunks
    assert draws.totals().mean() == pytest.approx(10_000, rel=0.01)
    cells = rng.integers(0, 3, 10_000)
    values = rng.random(10_000)
    dense = draws.cell_totals(cells, 3, values)  # 10,000 rows >= 5% of 2,048 x 3: dense
    sparse = draws.cell_totals(cells, 3000, values)[:, :3]  # 5% of 2,048 x 3,000 > rows: sparse
    assert dense == pytest.approx(sparse)
    assert dense.sum(axis=1) == pytest.approx(draws.weights @ np.bincount(draws.ids, values))


def test_no_resamples_means_no_intervals(binary) -> None:
    summary = evaluate_classifier(*binary(6, 300), groups={"g": np.arange(300) % 2}, resamples=0)
    assert summary.resamples == 0
    estimates = [*summary.metrics.values(), summary.groups[0].demographic_parity_difference]
    assert all(e.lower is None and e.upper is None for e in estimates)


def test_a_group_often_missing_from_resamples_gets_no_interval() -> None:
    # A single-row group: its recall is undefined whenever the resample holds no positive.
    y = np.array([1, 0, 1, 0, 1, 0, 1, 0, 1, 1])
    y_pred = np.array([1, 0, 0, 0, 1, 1, 1, 0, 1, 0])
    group = np.array(["big"] * 9 + ["solo"])
    report = evaluate_classifier(y, y_pred, groups={"g": group}, resamples=200).groups[0]
    solo = report.groups[1]
    assert solo.n == 1
    assert solo.metrics["accuracy"].value == 0.0
    assert solo.metrics["accuracy"].lower == solo.metrics["accuracy"].upper == 0.0
    big = report.groups[0].metrics["precision"]
    assert big.lower is not None
