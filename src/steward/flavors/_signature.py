"""Infer a signature from a sample input and the model's answers on a few of its rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from steward.domain.signature import SIGNATURE_DTYPES, ColumnSpec, Signature
from steward.flavors._inputs import default_names, to_frame
from steward.flavors._loaded import Predictor

# Enough rows to describe the outputs without paying for a full prediction at packaging time.
_PROBE_ROWS = 5


def dtype_name(dtype: object) -> str:
    """Map a numpy or pandas dtype to the SIGNATURE_DTYPES vocabulary."""
    if isinstance(dtype, pd.CategoricalDtype):
        return dtype_name(dtype.categories.dtype)
    if isinstance(dtype, pd.StringDtype):
        return "string"
    if isinstance(dtype, pd.BooleanDtype):
        return "bool"
    if isinstance(dtype, pd.DatetimeTZDtype):
        return "datetime64[ns]"
    numpy_type = getattr(dtype, "numpy_dtype", dtype)  # nullable Int64 -> int64
    try:
        resolved = np.dtype(numpy_type)  # type: ignore[call-overload]
    except TypeError:
        return "object"
    return _numpy_dtype_name(resolved)


def _numpy_dtype_name(dtype: np.dtype[Any]) -> str:
    if dtype.kind in "US":
        return "string"
    if dtype.kind == "b":
        return "bool"
    if dtype.kind == "M":
        return "datetime64[ns]"
    return dtype.name if dtype.name in SIGNATURE_DTYPES else "object"


def _series_dtype(column: pd.Series) -> str:
    if column.dtype == object:
        values = column.dropna()
        if len(values) and all(isinstance(v, str) for v in values):
            return "string"
        return "object"
    return dtype_name(column.dtype)


def input_specs(sample: object, feature_names: Sequence[str] | None) -> list[ColumnSpec]:
    """One column per sample column; unnamed matrices use the model's feature names or x0.."""
    if isinstance(sample, np.ndarray):
        matrix = sample.reshape(1, -1) if sample.ndim == 1 else sample
        width = matrix.shape[1]
        names = list(feature_names) if feature_names and len(feature_names) == width else None
        names = names or default_names(width)
        dtype = _numpy_dtype_name(matrix.dtype)
        return [ColumnSpec(name=n, dtype=dtype) for n in names]
    frame = to_frame(sample)
    return [ColumnSpec(name=str(c), dtype=_series_dtype(frame[c])) for c in frame.columns]


def head(sample: object, rows: int = _PROBE_ROWS) -> object:
    """The first ``rows`` rows of a sample, keeping its type."""
    if isinstance(sample, pd.DataFrame):
        return sample.head(rows)
    if isinstance(sample, np.ndarray):
        return sample[:rows] if sample.ndim == 2 else sample
    if isinstance(sample, (list, tuple)) and sample and not np.isscalar(sample[0]):
        return list(sample[:rows])
    return sample


def output_specs(predictor: Predictor, probe: object) -> list[ColumnSpec]:
    """Describe what the model returns for ``probe``: "prediction" and maybe "probabilities"."""
    prediction = np.asarray(predictor.predict(probe))
    outputs = [_array_spec("prediction", prediction)]
    if predictor.has_proba:
        outputs.append(_array_spec("probabilities", np.asarray(predictor.predict_proba(probe))))
    return outputs


def _array_spec(name: str, array: np.ndarray[Any, Any]) -> ColumnSpec:
    shape = [-1, *[int(d) for d in array.shape[1:]]]
    if array.dtype == object:
        flat = array.ravel()
        kind = "string" if len(flat) and all(isinstance(v, str) for v in flat) else "object"
        return ColumnSpec(name=name, dtype=kind, shape=shape)
    return ColumnSpec(name=name, dtype=_numpy_dtype_name(array.dtype), shape=shape)


def infer_signature(
    sample: object,
    feature_names: Sequence[str] | None,
    make_predictor: Callable[[Signature], Predictor],
) -> Signature:
    """Inputs from ``sample``; outputs from a predictor built on those inputs.

    ``make_predictor(Signature) -> Predictor``: running the predictor through the same input
    path as serving also proves, at packaging time, that the signature round-trips.
    """
    inputs = Signature(inputs=input_specs(sample, feature_names))
    predictor = make_predictor(inputs)
    return Signature(inputs=inputs.inputs, outputs=output_specs(predictor, head(sample)))
