"""What a window measures, one function per kind of measure, each giving flat metrics (what
alert rules watch) and a report section (what a person reads).

The statistics are ``steward.stats``'s; this module picks their inputs out of a window and
names the results. docs/monitoring.md lists every metric name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from steward.domain.entities import ModelVersion
from steward.domain.evaluation import EvaluationSummary, Task
from steward.domain.monitoring import FreshnessSla, MonitorSpec, ServingSlo
from steward.monitoring.labels import join
from steward.monitoring.reference import Reference
from steward.monitoring.window import Partial
from steward.stats import drift as stats_drift
from steward.stats.cbpe import estimate_binary, realized_binary
from steward.stats.drift import DriftOptions
from steward.stats.evaluation import evaluate_classifier, evaluate_regressor
from steward.stats.quality import data_quality, metric_segment
from steward.stats.slo import error_budget, request_slo
from steward.store.label_log import read_labels

# The output column prediction drift is reported under ``drift.prediction.*``: the first the
# window has values for (a classifier's score moves before its labels do).
_PREDICTION_ORDER = ("score", "prediction", "prediction_label")


@dataclass
class Measured:
    metrics: dict[str, float] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


# -- drift -----------------------------------------------------------------------------------
def drift(spec: MonitorSpec, reference: Reference, data: Partial) -> Measured:
    out = Measured()
    if data.rows < spec.min_rows:
        out.report["drift"] = {
            "note": f"{data.rows} rows in the window, fewer than min_rows={spec.min_rows}: "
            "drift not tested"
        }
        return out
    options = DriftOptions(
        thresholds=spec.thresholds, drift_share=spec.drift_share, histograms=True
    )
    shared = [name for name in data.inputs if name in reference.inputs.columns]
    # a feature whose type changed since the reference is a data-quality finding (a schema
    # violation), not a reason to lose the other features' drift: it is left out and named
    changed = [name for name in shared if _type_changed(reference, data, name)]
    shared = [name for name in shared if name not in changed]
    out.metrics["drift.type_changed"] = float(len(changed))
    if shared:
        found = stats_drift.compare_with_profile(
            reference.inputs, data.inputs, columns=shared, options=options
        )
        out.report["drift"] = {**found.model_dump(mode="json"), "type_changed": changed}
        out.metrics.update(
            {
                "drift.share_drifted": found.share_drifted,
                "drift.n_drifted": float(found.n_drifted),
                "drift.n_tested": float(found.n_tested),
                "drift.dataset_drift": float(found.dataset_drift),
            }
        )
        for column in found.columns:
            if column.score is not None:
                segment = metric_segment(column.column)
                out.metrics[f"drift.column.{segment}.score"] = column.score
                out.metrics[f"drift.column.{segment}.drifted"] = float(column.drifted)
    else:
        out.report["drift"] = {
            "note": "no input column of the window is in the reference with the same type",
            "type_changed": changed,
        }
    out.metrics.update(_prediction_drift(reference, data, options, out.report))
    return out


def _type_changed(reference: Reference, data: Partial, name: str) -> bool:
    current = data.inputs[name]
    if current.sample is None or current.sample.n == 0:
        return False  # no values: no type to disagree with
    return bool(reference.inputs.columns[name].family != current.family)


def _prediction_drift(
    reference: Reference, data: Partial, options: DriftOptions, report: dict[str, Any]
) -> dict[str, float]:
    if reference.predictions is None:
        report["prediction_drift"] = {"note": reference.prediction_note}
        return {}
    shared = [
        name
        for name in _PREDICTION_ORDER
        if name in reference.predictions.columns
        and name in data.outputs
        and data.outputs[name].sample is not None
        and data.outputs[name].sample.n > 0  # type: ignore[union-attr]
    ]
    if not shared:
        report["prediction_drift"] = {"note": "no prediction column to compare"}
        return {}
    found = stats_drift.compare_with_profile(
        reference.predictions, data.outputs, columns=shared, options=options
    )
    report["prediction_drift"] = found.model_dump(mode="json")
    metrics: dict[str, float] = {}
    for column in found.columns:
        if column.score is not None:
            metrics[f"drift.output.{column.column}.score"] = column.score
            metrics[f"drift.output.{column.column}.drifted"] = float(column.drifted)
    main = next((c for c in found.columns if c.score is not None), None)
    if main is not None:
        metrics["drift.prediction.score"] = float(main.score)  # type: ignore[arg-type]
        metrics["drift.prediction.drifted"] = float(main.drifted)
    return metrics


def no_reference(version: ModelVersion | None) -> Measured:
    which = f"v{version.version}" if version is not None else "the answering version"
    note = (
        f"{which} was registered without a reference sample: drift and data quality need one "
        "(log_model(..., training_data=df) stores it)"
    )
    return Measured(report={"drift": {"note": note}})


# -- freshness -------------------------------------------------------------------------------
def freshness(
    sla: FreshnessSla,
    *,
    now: datetime,
    newest_prediction: datetime | None,
    newest_label: datetime | None,
    reference_built: datetime | None,
) -> Measured:
    """Ages in seconds, and 0/1 "late" flags where an SLA is set. Something never seen has no
    age; against an SLA it is late (a deployment that never answered is not fresh)."""
    out = Measured()
    sections: dict[str, Any] = {}
    checks = (
        ("prediction", newest_prediction, sla.max_prediction_age_s),
        ("label", newest_label, sla.max_label_age_s),
        ("reference", reference_built, sla.max_reference_age_s),
    )
    for name, newest, limit in checks:
        age = None if newest is None else max(0.0, (now - newest).total_seconds())
        if age is not None:
            out.metrics[f"freshness.{name}_age_s"] = age
        if limit is not None:
            out.metrics[f"freshness.{name}_late"] = float(age is None or age > limit)
        sections[name] = {
            "newest": newest.isoformat() if newest else None,
            "age_s": age,
            "sla_s": limit,
        }
    out.report = sections
    return out


# -- data quality ----------------------------------------------------------------------------
def quality(reference: Reference, data: Partial, version: ModelVersion | None) -> Measured:
    """Against the input profile; the signature's types, when the version has one, are the
    schema (a missing input or a changed type is a violation)."""
    expected = None
    if version is not None and version.signature is not None:
        expected = {spec.name: _type_family(spec.dtype) for spec in version.signature.inputs}
    found = data_quality(reference.inputs, data.inputs, expected_types=expected)
    return Measured(found.to_metrics(), {"quality": _plain(found)})


def _type_family(dtype: str) -> str:
    if dtype.startswith(("float", "int", "uint")):
        return "numeric"
    if dtype == "bool":
        return "bool"
    if dtype.startswith("datetime"):
        return "datetime"
    return "string"


# -- serving SLOs ----------------------------------------------------------------------------
def slo(objective: ServingSlo, data: Partial, earlier: tuple[int, int]) -> Measured:
    """This window's requests, and the error budget over it plus the stored windows inside the
    budget window (``earlier``: their requests and errors)."""
    window = request_slo(data.latency_ms, data.ok)
    budget = error_budget(
        [earlier[0], window.requests], [earlier[1], window.errors], target=objective.availability
    )
    metrics = {**window.to_metrics(), **budget.to_metrics()}
    if objective.max_p95_ms is not None and window.p95_ms is not None:
        metrics["slo.p95_late"] = float(window.p95_ms > objective.max_p95_ms)
    return Measured(metrics, {"slo": {"window": _plain(window), "budget": _plain(budget)}})


# -- live performance, once labels arrived ---------------------------------------------------
@dataclass(frozen=True)
class Release:
    """What the version's evaluation at release measured, to compare live numbers with."""

    task: Task | None = None
    metrics: dict[str, float] = field(default_factory=dict)


def performance(label_root: str, deployment: str, data: Partial, release: Release) -> Measured:
    if data.join is None or data.join.num_rows == 0:
        return Measured()
    ids = set(data.join["request_id"].to_pylist())
    joined = join(data.join, read_labels(label_root, deployment, request_ids=ids))
    coverage = joined.matched / data.join.num_rows
    metrics = {
        "performance.labeled_rows": float(joined.matched),
        "performance.label_coverage": coverage,
    }
    report: dict[str, Any] = {
        "labeled_rows": joined.matched,
        "unlabeled_rows": joined.unlabeled_predictions,
        "labels_superseded": joined.duplicates_superseded,
    }
    if joined.matched == 0:
        report["note"] = "no label for this window's predictions yet"
        return Measured(metrics, {"performance": report})
    summary = _evaluate(joined.table, release.task)
    report["task"] = summary.task.value if summary else None
    if summary is None:
        report["note"] = "labels and predictions are of different kinds: not compared"
        return Measured(metrics, {"performance": report})
    live = {k: e.value for k, e in summary.metrics.items() if e.value is not None}
    for name, value in live.items():
        metrics[f"performance.{name}"] = value
        if name in release.metrics:
            metrics[f"performance.{name}.delta"] = value - release.metrics[name]
    report["metrics"] = live
    report["release"] = release.metrics
    metrics.update(_estimate_error(joined.table, data))
    return Measured(metrics, {"performance": report})


def _evaluate(table: pa.Table, task: Task | None) -> EvaluationSummary | None:
    text = table["label_text"].null_count < table.num_rows
    if text:  # string labels: compare with the text predictions
        if table["prediction_label"].null_count == table.num_rows:
            return None
        return evaluate_classifier(
            np.asarray(table["label_text"].to_pylist(), dtype=object),
            np.asarray(table["prediction_label"].to_pylist(), dtype=object),
            resamples=0,
        )
    if table["prediction"].null_count == table.num_rows:
        return None
    y_true = table["label"].to_numpy(zero_copy_only=False)
    y_pred = table["prediction"].to_numpy(zero_copy_only=False)
    if task is Task.REGRESSION or (task is None and not _looks_like_classes(y_true, y_pred)):
        return evaluate_regressor(y_true, y_pred, resamples=0)
    scores = table["score"]
    has_scores = scores.null_count == 0 and np.unique(y_true).size <= 2
    return evaluate_classifier(
        y_true.astype(np.int64) if _integral(y_true) else y_true,
        y_pred.astype(np.int64) if _integral(y_pred) else y_pred,
        scores.to_numpy(zero_copy_only=False) if has_scores else None,
        resamples=0,
    )


def _integral(values: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))


def _looks_like_classes(y_true: np.ndarray, y_pred: np.ndarray) -> bool:
    """Without an evaluation at release to say, integral labels and predictions with few
    distinct values are classes."""
    both = np.concatenate([y_true, y_pred])
    return _integral(both) and np.unique(both).size <= _MAX_INFERRED_CLASSES


_MAX_INFERRED_CLASSES = 20


# -- estimated performance before labels -----------------------------------------------------
def estimated(data: Partial, release: Release) -> Measured:
    """CBPE from a binary classifier's scores, over the whole window. The scores are taken as
    calibrated when the version's evaluation at release found them so (ECE within the
    tolerance), and the report says which."""
    scores = _scores(data)
    if scores is None:
        return Measured()
    found = estimate_binary(scores)
    metrics = found.to_metrics("estimated")
    ece = release.metrics.get("ece")
    calibrated = None if ece is None else ece <= CALIBRATION_TOLERANCE
    if calibrated is not None:
        metrics["estimated.calibrated"] = float(calibrated)
    report = {
        "estimate": True,
        "calibrated": calibrated,
        "note": "an estimate from the model's scores (CBPE); compared with the realized "
        "metrics once labels arrive",
        "metrics": found.metrics(),
    }
    return Measured(metrics, {"estimated": report})


# scores this well calibrated at release (expected calibration error) are trusted for CBPE
CALIBRATION_TOLERANCE = 0.05


def _scores(data: Partial) -> np.ndarray | None:
    if data.join is None or "score" not in data.join.column_names:
        return None
    column = data.join["score"]
    if column.null_count == len(column):
        return None
    values = column.drop_null().to_numpy()
    return values if values.size else None


def _estimate_error(table: pa.Table, data: Partial) -> dict[str, float]:
    """Estimate minus realized on the labeled rows, when both exist (binary, with scores)."""
    scores = table["score"]
    if scores.null_count or table["label"].null_count:
        return {}
    y_true = table["label"].to_numpy(zero_copy_only=False)
    if not set(np.unique(y_true).tolist()) <= {0.0, 1.0}:
        return {}
    values = scores.to_numpy(zero_copy_only=False)
    guess = estimate_binary(values).metrics()
    actual = realized_binary(y_true.astype(np.int64), values).metrics()
    return {
        f"estimated.{name}.error": guess[name] - actual[name]  # type: ignore[operator]
        for name in guess
        if guess[name] is not None and actual.get(name) is not None
    }


def _plain(value: Any) -> Any:
    """A stats dataclass as JSON-ready data (NaN never reaches the store: stats gives None)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
