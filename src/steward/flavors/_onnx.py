"""ONNX models: validated with onnx, run with onnxruntime."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from steward.domain.signature import ColumnSpec, Signature
from steward.errors import InvalidInput
from steward.flavors._inputs import (
    frame_to_array,
    numeric_matrix,
    to_frame,
    to_matrix,
    uniform_dtype,
)
from steward.flavors._signature import infer_signature

_ONNX_DTYPES: dict[str, str] = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int8)": "int8", "tensor(int16)": "int16", "tensor(int32)": "int32",
    "tensor(int64)": "int64", "tensor(uint8)": "uint8", "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32", "tensor(uint64)": "uint64", "tensor(bool)": "bool",
    "tensor(string)": "string",
}  # fmt: skip


def is_model_proto(model: object) -> bool:
    return isinstance(model, onnx.ModelProto)


def proto_bytes(model: Any) -> bytes:
    content: bytes = model.SerializeToString()
    return content


def check(content: bytes) -> str | None:
    """Why ``content`` is not a runnable ONNX model, or None when it is."""
    try:
        onnx.checker.check_model(onnx.load_model_from_string(content))
        session(content)
    # protobuf, the onnx checker and onnxruntime's pybind errors share no base class.
    except Exception as exc:
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__
    return None


def session(content: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    # Serving runs several models side by side: cap each one's threads.
    options.intra_op_num_threads = min(2, os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    return ort.InferenceSession(content, options, providers=["CPUExecutionProvider"])


def _spec(node: Any) -> ColumnSpec:
    dtype = _ONNX_DTYPES.get(node.type, "object")
    dims = [d if isinstance(d, int) and d > 0 else -1 for d in (node.shape or [])]
    if len(dims) <= 1 or (len(dims) == 2 and dims[1] == 1):
        return ColumnSpec(name=node.name, dtype=dtype)
    return ColumnSpec(name=node.name, dtype=dtype, shape=[-1, *dims[1:]])


def session_signature(sess: ort.InferenceSession) -> Signature:
    """Inputs and outputs as the ONNX graph declares them."""
    return Signature(
        inputs=[_spec(i) for i in sess.get_inputs()],
        outputs=[_spec(o) for o in sess.get_outputs()],
    )


def _numpy_dtype(node: Any) -> np.dtype[Any]:
    name = _ONNX_DTYPES.get(node.type, "float32")
    return np.dtype(object) if name == "string" else np.dtype(name)


class OnnxPredictor:
    """Runs a session; a single matrix input gets the columns stacked, otherwise one per column."""

    def __init__(self, sess: ort.InferenceSession, signature: Signature | None) -> None:
        self._session = sess
        self._inputs = sess.get_inputs()
        outputs = sess.get_outputs()
        self._label = outputs[0].name
        self._proba = _proba_output(outputs)
        specs = signature.inputs if signature else []
        # Column specs (shape [-1]) mean named columns to select; otherwise read raw matrices.
        self._specs = specs if specs and all(len(s.shape) == 1 for s in specs) else None
        self._names = [s.name for s in self._specs or ()]
        self._matrix_dtype = uniform_dtype(self._specs)

    @property
    def has_proba(self) -> bool:
        return self._proba is not None

    def _single_matrix(self) -> bool:
        shape = self._inputs[0].shape or []
        return len(self._inputs) == 1 and len(shape) == 2 and shape[1] != 1

    def _feeds(self, data: object) -> dict[str, np.ndarray[Any, Any]]:
        if self._single_matrix():
            node = self._inputs[0]
            width = node.shape[1] if isinstance(node.shape[1], int) else None
            if self._specs is None:
                return {node.name: to_matrix(data, width, _numpy_dtype(node))}
            if self._matrix_dtype is not None:
                matrix = numeric_matrix(data, self._names, self._matrix_dtype)
                if matrix is not None:  # the gateway's case: no frame on the way
                    return {node.name: matrix.astype(_numpy_dtype(node), copy=False)}
            frame = to_frame(data, [s.name for s in self._specs], self._specs)
            return {node.name: frame_to_array(frame, _numpy_dtype(node))}
        names = [s.name for s in self._specs] if self._specs else [i.name for i in self._inputs]
        frame = to_frame(data, names, self._specs)
        return {node.name: _column(frame, node) for node in self._inputs}

    def _run(self, data: object, outputs: list[str]) -> list[np.ndarray[Any, Any]]:
        try:
            results = self._session.run(outputs, self._feeds(data))
        except InvalidInput:
            raise
        except Exception as exc:  # onnxruntime's errors are pybind types without a common base
            raise InvalidInput(f"The ONNX model rejected the input: {exc}.", field="data") from exc
        return [_as_array(result) for result in results]

    def predict(self, data: object) -> np.ndarray[Any, Any]:
        return _labels(self._run(data, [self._label])[0])

    def predict_with_proba(
        self, data: object
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
        """Both outputs from one session run."""
        if self._proba is None:
            return self.predict(data), None
        label, proba = self._run(data, [self._label, self._proba])
        return _labels(label), proba

    def predict_proba(self, data: object) -> np.ndarray[Any, Any]:
        if self._proba is None:
            raise InvalidInput("This ONNX model has no probability output.", field="predict_proba")
        return self._run(data, [self._proba])[0]


def _labels(label: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return label.ravel() if label.ndim == 2 and label.shape[1] == 1 else label


def _column(frame: Any, node: Any) -> np.ndarray[Any, Any]:
    if node.name not in frame.columns:
        raise InvalidInput(f"The input is missing column '{node.name}'.", field=node.name)
    try:
        values: np.ndarray[Any, Any] = frame[node.name].to_numpy(dtype=_numpy_dtype(node))
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            f"Column '{node.name}' could not be read as {node.type}: {exc}.", field=node.name
        ) from exc
    return values.reshape(-1, 1) if len(node.shape or []) == 2 else values


def _proba_output(outputs: list[Any]) -> str | None:
    """skl2onnx classifiers return (label, probabilities); find the probabilities."""
    for node in outputs[1:]:
        if "prob" in node.name.lower() or node.type.startswith("seq(map"):
            return str(node.name)
    return None


def _as_array(result: Any) -> np.ndarray[Any, Any]:
    if isinstance(result, list) and result and isinstance(result[0], dict):
        keys = sorted(result[0])  # ZipMap output: one {class: probability} dict per row
        return np.asarray([[row[k] for k in keys] for row in result])
    return np.asarray(result)


def signature_for(sess: ort.InferenceSession, sample: object | None) -> Signature:
    if sample is None:
        return session_signature(sess)
    return infer_signature(sample, None, lambda sig: OnnxPredictor(sess, sig))
