"""Evaluate a loaded model on a table: check the data against the signature, predict through
the real loader, compute the metrics (``steward.stats``) and time ``predict``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from steward.domain.evaluation import EvaluationSummary, Latency, Percentiles
from steward.domain.signature import Signature
from steward.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from steward.flavors import LoadedModel

_NUMERIC_PREFIXES = ("float", "int", "uint")


def check_columns(
    frame: pd.DataFrame, *, label: str, groups: Sequence[str], signature: Signature | None
) -> list[str]:
    """The feature columns to feed the model; refuse data that does not fit the version."""
    columns = [str(c) for c in frame.columns]
    if label not in columns:
        raise InvalidInput(
            f"The evaluation data has no label column {label!r}; its columns are: "
            f"{', '.join(columns)}. Pass --label with the column holding the true values.",
            field="label",
        )
    for group in groups:
        if group not in columns:
            raise InvalidInput(
                f"The group column {group!r} is not in the evaluation data; its columns are: "
                f"{', '.join(columns)}.",
                field="groups",
            )
    if len(frame) < 2:
        raise InvalidInput("The evaluation data needs at least 2 rows.", field="data")
    if signature is None or not signature.inputs:
        return [c for c in columns if c != label and c not in groups]
    expected = signature.input_names
    missing = [c for c in expected if c not in columns]
    if missing:
        raise InvalidInput(
            f"The evaluation data lacks input columns the version's signature needs: "
            f"{', '.join(missing)}.",
            field="data",
            details={"missing": missing},
        )
    extra = [c for c in columns if c not in expected and c != label and c not in groups]
    if extra:
        raise InvalidInput(
            f"The evaluation data has columns the version's signature lacks: {', '.join(extra)}. "
            "Drop them, or name them with --groups if they are group columns.",
            field="data",
            details={"extra": extra},
        )
    _check_dtypes(frame, signature)
    return expected


def _check_dtypes(frame: pd.DataFrame, signature: Signature) -> None:
    import pandas as pd

    for spec in signature.inputs:
        column = frame[spec.name]
        wants_number = spec.dtype.startswith(_NUMERIC_PREFIXES)
        is_number = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
        if wants_number and not is_number:
            raise InvalidInput(
                f"Column {spec.name!r} must be {spec.dtype} as in the signature; the data has "
                f"{column.dtype}.",
                field="data",
                details={"column": spec.name, "expected": spec.dtype, "found": str(column.dtype)},
            )


def is_classifier(model: LoadedModel, labels: np.ndarray[Any, Any]) -> bool:
    """Probabilities mean a classifier; otherwise, whole-number or text labels do."""
    import numpy as np

    if model.has_predict_proba:
        return True
    if labels.dtype.kind in "OUSb":
        return True
    if labels.dtype.kind == "f" and not np.all(np.mod(labels, 1) == 0):
        return False
    return bool(labels.dtype.kind in "iu" and len(np.unique(labels)) <= 50)


def summarize(
    model: LoadedModel,
    frame: pd.DataFrame,
    *,
    label: str,
    features: list[str],
    groups: Sequence[str],
    resamples: int,
    seed: int,
) -> EvaluationSummary:
    from steward.stats.evaluation import evaluate_classifier, evaluate_regressor

    inputs = frame[features]
    truth = frame[label].to_numpy()
    predicted = model.predict(inputs)
    by_group = {g: frame[g].to_numpy() for g in groups}
    if not is_classifier(model, truth):
        return evaluate_regressor(truth, predicted, groups=by_group, resamples=resamples, seed=seed)
    scores = model.predict_proba(inputs) if model.has_predict_proba else None
    return evaluate_classifier(
        truth, predicted, scores, classes=model.classes, groups=by_group,
        resamples=resamples, seed=seed,
    )  # fmt: skip


def measure_latency(
    model: LoadedModel, frame: pd.DataFrame, features: list[str], *, calls: int, batch_size: int
) -> Latency:
    """Percentiles of wall time per predict call, after a warm-up, through the loader."""
    inputs = frame[features]
    one, batch = inputs.iloc[:1], inputs.iloc[: max(1, min(batch_size, len(inputs)))]
    return Latency(
        single_row_ms=_percentiles(_timings(model, one, calls)),
        batch_ms=_percentiles(_timings(model, batch, calls)),
        batch_size=len(batch),
        calls=calls,
    )


def _timings(model: LoadedModel, data: pd.DataFrame, calls: int) -> list[float]:
    for _ in range(min(5, calls)):
        model.predict(data)
    out: list[float] = []
    for _ in range(calls):
        start = time.perf_counter()
        model.predict(data)
        out.append((time.perf_counter() - start) * 1000)
    return out


def _percentiles(values: list[float]) -> Percentiles:
    import numpy as np

    p50, p95, p99 = np.percentile(np.asarray(values), [50, 95, 99])
    return Percentiles(p50=float(p50), p95=float(p95), p99=float(p99))
