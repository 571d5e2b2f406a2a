"""Benchmark 5: evaluating a binary classifier on 1M rows with 3 group columns.

Steward: ``evaluate_classifier(y, y_pred, scores, groups=..., resamples=1000)``: nine metrics,
overall and per group, the worst group, the two disparities, all with bootstrap intervals.
Peer, without intervals (one pass, no resampling), arranged as favourably as fairlearn allows:

- scikit-learn for the nine metrics (ECE by a numpy histogram: scikit-learn has none);
- one fairlearn ``MetricFrame`` per group column over the nine metrics plus selection rate,
  true and false positive rates, the scores passed through ``sample_params``; the overall
  figures are taken from the first frame's ``overall`` and the disparities from
  ``difference()`` of the rates, which is how fairlearn's ``demographic_parity_difference`` and
  ``equalized_odds_difference`` compute them (calling those functions would build two more
  frames per column).

Two informational rows: the same evaluation against scikit-learn with a numpy boolean mask per
group (no fairlearn), and the overall figures alone (no groups). Samples are interleaved
(Steward, peer, Steward, ...), the first round is a warm-up, and both sides' figures are checked
to agree before anything is timed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from _servers import Context, Row

N_ROWS = 1_000_000
RESAMPLES = 1000
GROUPS = {"sex": 2, "region": 5, "month": 12}
_REGIONS = np.array(["north", "south", "east", "west", "centre"], dtype=object)
_SEXES = np.array(["F", "M"], dtype=object)


def dataset(seed: int = 0, n: int = N_ROWS) -> dict[str, Any]:
    """A model-like binary problem: ~30% positives, scores from a noisy, overconfident logit.

    Group columns as a pandas frame holds them: text as object arrays, the month as integers;
    outcomes and scores drift a little with the groups, as real data does.
    """
    rng = np.random.default_rng(seed)
    sex = _SEXES[rng.choice(2, n, p=[0.45, 0.55])]
    region = _REGIONS[rng.choice(5, n, p=[0.3, 0.25, 0.2, 0.15, 0.1])]
    month = rng.integers(1, 13, n)
    logit = rng.normal(-1.0, 1.8, n) + 0.2 * (sex == "M") - 0.05 * (month - 6.5) / 6.5
    y_true = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    score_logit = 1.15 * logit + rng.normal(0.0, 0.7, n) + 0.1 * (region == "east")
    scores = 1.0 / (1.0 + np.exp(-score_logit))
    return {
        "y_true": y_true,
        "y_pred": (scores >= 0.5).astype(np.int64),
        "scores": scores,
        "groups": {"sex": sex, "region": region, "month": month},
    }


# -- Steward -----------------------------------------------------------------------------------
def steward_full(data: dict[str, Any]) -> dict[str, Any]:
    from steward.stats.evaluation import evaluate_classifier

    summary = evaluate_classifier(
        data["y_true"], data["y_pred"], data["scores"], groups=data["groups"],
        resamples=RESAMPLES, seed=0,
    )  # fmt: skip
    return _steward_figures(summary)


def steward_overall(data: dict[str, Any]) -> dict[str, Any]:
    from steward.stats.evaluation import evaluate_classifier

    summary = evaluate_classifier(
        data["y_true"], data["y_pred"], data["scores"], resamples=RESAMPLES, seed=0
    )
    return _steward_figures(summary)


def _steward_figures(summary: Any) -> dict[str, Any]:
    out: dict[str, Any] = {("overall", m): e.value for m, e in summary.metrics.items()}
    for report in summary.groups:
        out[(report.column, "dp")] = report.demographic_parity_difference.value
        out[(report.column, "eo")] = report.equalized_odds_difference.value
        for group in report.groups:
            out.update({(report.column, group.group, m): e.value
                        for m, e in group.metrics.items()})  # fmt: skip
    return out


# -- peer: scikit-learn (+ fairlearn) ----------------------------------------------------------
def _ece(y_true: np.ndarray, y_score: np.ndarray, bins: int = 10) -> float:
    """Equal-width bins as ``sklearn.calibration.calibration_curve`` assigns them."""
    ids = np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], y_score)
    gap = np.bincount(ids, y_score, minlength=bins) - np.bincount(ids, y_true, minlength=bins)
    return float(np.abs(gap).sum() / y_true.size)


def _metric_functions() -> tuple[dict[str, Callable[..., float]], dict[str, Callable[..., float]]]:
    from sklearn import metrics as skm

    labels = {
        "accuracy": skm.accuracy_score,
        "precision": skm.precision_score,
        "recall": skm.recall_score,
        "f1": skm.f1_score,
    }
    scores = {
        "roc_auc": skm.roc_auc_score,
        "pr_auc": skm.average_precision_score,
        "log_loss": lambda y, s: skm.log_loss(y, y_proba=s, labels=[0, 1]),
        "brier": skm.brier_score_loss,
        "ece": _ece,
    }
    return labels, scores


def sklearn_overall(data: dict[str, Any]) -> dict[str, Any]:
    labels, scores = _metric_functions()
    y, y_pred, p = data["y_true"], data["y_pred"], data["scores"]
    out = {("overall", m): f(y, y_pred) for m, f in labels.items()}
    out.update({("overall", m): f(y, p) for m, f in scores.items()})
    return out


def sklearn_masks(data: dict[str, Any]) -> dict[str, Any]:
    """scikit-learn on a boolean mask per group: the hand-written loop, no fairlearn."""
    labels, scores = _metric_functions()
    y, y_pred, p = data["y_true"], data["y_pred"], data["scores"]
    out = sklearn_overall(data)
    for column, values in data["groups"].items():
        rates = []
        for value in np.unique(values):
            mask = values == value
            yg, pg, sg = y[mask], y_pred[mask], p[mask]
            group = str(value)
            out.update({(column, group, m): f(yg, pg) for m, f in labels.items()})
            out.update({(column, group, m): f(yg, sg) for m, f in scores.items()})
            positives = yg == 1
            rates.append((pg.mean(), pg[positives].mean(), pg[~positives].mean()))
        spread = np.ptp(np.array(rates), axis=0)
        out[(column, "dp")] = float(spread[0])
        out[(column, "eo")] = float(max(spread[1], spread[2]))
    return out


def fairlearn_frames(data: dict[str, Any]) -> dict[str, Any]:
    from fairlearn.metrics import (
        MetricFrame,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    labels, scores = _metric_functions()
    metrics: dict[str, Callable[..., float]] = dict(labels)
    for name, function in scores.items():
        metrics[name] = lambda y_true, y_pred, y_score, f=function: f(y_true, y_score)
    rates = {"selection_rate": selection_rate, "tpr": true_positive_rate,
             "fpr": false_positive_rate}  # fmt: skip
    metrics.update(rates)
    params = {name: {"y_score": data["scores"]} for name in scores}
    out: dict[str, Any] = {}
    for column, values in data["groups"].items():
        frame = MetricFrame(
            metrics=metrics, y_true=data["y_true"], y_pred=data["y_pred"],
            sensitive_features=values, sample_params=params,
        )  # fmt: skip
        if not out:
            out.update({("overall", m): float(frame.overall[m]) for m in (*labels, *scores)})
        by_group = frame.by_group
        for value, row in by_group.iterrows():
            out.update({(column, str(value), m): float(row[m]) for m in (*labels, *scores)})
        difference = frame.difference(method="between_groups")
        out[(column, "dp")] = float(difference["selection_rate"])
        out[(column, "eo")] = float(max(difference["tpr"], difference["fpr"]))
    return out


# -- driver ------------------------------------------------------------------------------------
def _check_same_figures(ours: dict[str, Any], theirs: dict[str, Any], label: str) -> None:
    """Both sides must compute the same numbers before their times mean anything."""
    for key, value in theirs.items():
        mine = ours[key]
        if mine is None or abs(mine - value) > 1e-9 * max(1.0, abs(value)):
            raise AssertionError(f"{label}: {key} differs: Steward {mine!r} vs {value!r}")


def _time(fn: Callable[[dict[str, Any]], Any], data: dict[str, Any]) -> float:
    start = time.perf_counter()
    fn(data)
    return time.perf_counter() - start


def run(ctx: Context) -> list[Row]:
    import fairlearn
    import sklearn

    samples = 3 if ctx.quick else 5
    data = dataset()
    cases = {
        "steward_full": steward_full,
        "steward_overall": steward_overall,
        "fairlearn": fairlearn_frames,
        "sklearn_masks": sklearn_masks,
        "sklearn_overall": sklearn_overall,
    }
    ctx.log("  checking that both sides compute the same figures (also the warm-up)")
    full = steward_full(data)
    _check_same_figures(full, sklearn_masks(data), "scikit-learn masks")
    _check_same_figures(full, fairlearn_frames(data), "fairlearn")
    _check_same_figures(steward_overall(data), sklearn_overall(data), "scikit-learn overall")
    times: dict[str, list[float]] = {name: [] for name in cases}
    for i in range(samples):
        ctx.log(f"  evaluate sample {i + 1}/{samples}")
        for name, fn in cases.items():  # interleaved: one of each per round
            times[name].append(_time(fn, data))
    versions = f"scikit-learn {sklearn.__version__}, fairlearn {fairlearn.__version__}"
    what = f"{N_ROWS:,} rows, binary, {RESAMPLES:,} resamples"
    groups = "3 group columns (2, 5 and 12 groups)"
    note = (f"Steward with {RESAMPLES:,}-resample bootstrap intervals; the peer computes the "
            "same point estimates once, without intervals")  # fmt: skip
    return [
        Row("evaluate", f"{what}, {groups}: vs scikit-learn + fairlearn MetricFrame", "s", False,
            times["steward_full"], times["fairlearn"], f"{versions}, no intervals",
            goal=1.0, notes=note),
        Row("evaluate", f"{what}, {groups}: vs scikit-learn with a mask per group "
            "(informational)", "s", False, times["steward_full"], times["sklearn_masks"],
            f"scikit-learn {sklearn.__version__}, no intervals", notes=note),
        Row("evaluate", f"{what}, overall only: vs scikit-learn's nine metrics (informational)",
            "s", False, times["steward_overall"], times["sklearn_overall"],
            f"scikit-learn {sklearn.__version__}, no intervals", notes=note),
    ]  # fmt: skip
