"""Convert a fitted scikit-learn model to ONNX with skl2onnx (imported only when exporting)."""

from __future__ import annotations

from typing import Any

from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.base import is_classifier

from steward.errors import InvalidInput


def export_onnx(model: Any, n_features: int | None) -> bytes:
    """ONNX bytes with one float input "X" [None, n_features]; classifiers give plain arrays."""
    if n_features is None:
        raise InvalidInput(
            f"Cannot export {type(model).__name__} to ONNX: its number of features is unknown. "
            "Pass sample_input, or fit the model before packaging it.",
            field="export_onnx",
        )
    # zipmap=False: probabilities as a float tensor, not a list of {class: p} maps.
    options = {"zipmap": False} if is_classifier(model) else None
    try:
        proto = to_onnx(
            model,
            initial_types=[("X", FloatTensorType([None, n_features]))],
            options=options,
        )
    except Exception as exc:  # the converter raises many unrelated types; report its reason
        raise InvalidInput(
            f"skl2onnx could not convert {type(model).__name__} to ONNX: {exc}. "
            "Register the model without export_onnx=True, or replace the unsupported step.",
            field="export_onnx",
        ) from exc
    content: bytes = proto.SerializeToString()
    return content
