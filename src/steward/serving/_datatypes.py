"""The Open Inference Protocol's tensor datatypes and the signature dtypes they feed.

Datatypes are strict, as KServe is, except for lossless widening (``accepts``).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from steward.serving._tensors import Array

# OIP datatype -> the signature dtype its JSON data is read as.
DATATYPES: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "string",
}
_BY_DTYPE = {v: k for k, v in DATATYPES.items()}
# The numeric datatypes and the numpy dtype of their values.
NUMBERS = {k: np.dtype(v) for k, v in DATATYPES.items() if k != "BYTES"}


def datatype_for(dtype: str) -> str:
    """The OIP datatype of a signature dtype (strings, objects and dates travel as BYTES)."""
    return _BY_DTYPE.get(dtype, "BYTES")


# Keyed by the dtype itself: ``dtype.name`` builds a string on every call (~1 µs, measured),
# more than the rest of encoding a small response.
_BY_NUMPY_DTYPE = {dtype: datatype for datatype, dtype in NUMBERS.items()}


def datatype_of(array: Array) -> str:
    """The OIP datatype of a numpy array."""
    found = _BY_NUMPY_DTYPE.get(array.dtype)
    if found is None and array.dtype.kind in "biuf":  # say a non-native byte order
        return _BY_DTYPE.get(array.dtype.name, "BYTES")
    return found or "BYTES"


@cache
def accepts(datatype: str, dtype: str) -> bool:
    """Whether a tensor of ``datatype`` may feed a signature input of ``dtype`` losslessly."""
    if dtype == "object":
        return True
    source = DATATYPES[datatype]
    if source == "string" or dtype in ("string", "datetime64[ns]"):
        return source == "string" and dtype in ("string", "datetime64[ns]")
    src, dst = np.dtype(source), np.dtype(dtype)
    if src == dst:
        return True
    if (src.kind == "b") != (dst.kind == "b") or not np.can_cast(src, dst, "safe"):
        return False
    # numpy calls int64 -> float64 safe; past 2**53 it is not, so ints need a wider float.
    return not (src.kind in "iu" and dst.kind == "f" and src.itemsize >= dst.itemsize)
