"""The fast paths of OIP decoding: a table sent as one tensor per column (JSON or binary), or
as one [N, k] tensor of flat JSON numbers.

Each returns the columns and the row count, or None when anything is unusual; the careful
path in ``steward.serving.oip`` then decodes the request again and names the fault. A missing
value where ``forbid`` refuses one is refused here, with one test per block of values.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

from steward.domain.signature import ColumnSpec, Signature
from steward.errors import InvalidInput
from steward.serving._binary import Binary, read_array
from steward.serving._datatypes import DATATYPES, NUMBERS, accepts
from steward.serving._tensors import (
    Array,
    ColumnView,
    FieldOf,
    coerce,
    refuse_missing,
    spec_dtype,
    table_plan,
)

_Groups = dict[tuple[str, str], list[tuple[ColumnSpec, list[Any], int]]]


def fast_columns(
    raw: object, signature: Signature, forbid: frozenset[str]
) -> tuple[dict[str, Array], int] | None:
    """A table sent as one flat [N] (or [N, 1]) tensor per column, converted in one numpy call
    per datatype; None when anything is unusual, and the careful path then names the fault.
    A missing value where ``forbid`` refuses one is refused here, one test per datatype."""
    if not isinstance(raw, list) or len(raw) != len(signature.inputs):
        return None  # say one [N, k] tensor for k columns: not this form
    specs = {spec.name: spec for spec in signature.inputs}
    groups: _Groups = {}
    first = raw[0].get("data") if type(raw[0]) is dict else None
    rows = len(first) if type(first) is list else 0  # binary data: fast_binary_columns
    if rows == 0 or not all(
        _fast_member(item, index, specs, rows, groups) for index, item in enumerate(raw)
    ):
        return None
    arrays: dict[str, Array] = {}
    for (_, read_as), members in groups.items():
        try:
            block = coerce(list(chain.from_iterable(d for _, d, _ in members)), read_as, "", "")
        except InvalidInput:
            return None
        if block.ndim != 1 or block.size != rows * len(members):
            return None
        columns = dict(zip((s.name for s, _, _ in members), block.reshape(-1, rows), strict=True))
        if forbid:
            refuse_missing(block, columns, forbid, _member_field(members))
        for spec, _, _ in members:
            arrays[spec.name] = columns[spec.name].astype(spec_dtype(spec), copy=False)
    if len(arrays) != len(specs):  # a column given twice, another missing
        return None
    return {name: arrays[name] for name in specs}, rows


def fast_matrix(
    raw: object, signature: Signature, forbid: frozenset[str]
) -> tuple[ColumnView, int, Array] | None:
    """A table of one dtype sent as one [N, k] tensor, not named as a column, its data a flat
    JSON array of N * k numbers (what Triton's and KServe's clients send for a feature matrix):
    the columns, the row count and the model's matrix; None when anything is unusual.

    The careful path (``oip._matrix_form``) reads the same tensor through the general
    checks, a third of an ONNX request's decoding (measured); this does only what the usual
    form needs and leaves every refusal to it.
    """
    if type(raw) is not list or len(raw) != 1 or type(raw[0]) is not dict:
        return None
    plan = table_plan(signature)
    item = raw[0]
    name, shape, data = item.get("name"), item.get("shape"), item.get("data")
    if plan.dtype is None or len(plan.names) < 2 or type(name) is not str or not name:
        return None
    if name in plan.index or type(shape) is not list or len(shape) != 2:
        return None
    if type(shape[1]) is not int or shape[1] != len(plan.names):
        return None
    rows = shape[0]
    if type(rows) is not int or rows < 1 or type(data) is not list or len(data) != rows * shape[1]:
        return None
    datatype = item.get("datatype")
    if datatype not in NUMBERS or item.get("parameters") is not None:
        return None
    if not all(accepts(datatype, signature.inputs[group[1][0]].dtype) for group in plan.groups):
        return None
    try:
        flat = coerce(data, DATATYPES[datatype], "", "")
    except InvalidInput:
        return None
    if flat.ndim != 1:
        return None
    array = flat.reshape(rows, shape[1])
    if forbid:
        refuse_missing(array, ColumnView(array, plan.index), forbid, lambda _, __: "inputs[0].data")
    matrix = array.astype(plan.dtype, copy=False)
    return ColumnView(matrix, plan.index), rows, matrix


def _fast_member(
    item: object, index: int, specs: dict[str, ColumnSpec], rows: int, groups: _Groups
) -> bool:
    if type(item) is not dict:
        return False
    name = item.get("name")
    spec = specs.get(name) if isinstance(name, str) else None
    if spec is None:
        return False
    datatype, data, shape = item.get("datatype"), item.get("data"), item.get("shape")
    if type(data) is not list or len(data) != rows or datatype not in DATATYPES:
        return False
    if not accepts(datatype, spec.dtype) or item.get("parameters") is not None:
        return False
    if shape != [rows] and shape != [rows, 1]:
        return False
    read_as = DATATYPES[datatype]
    if datatype == "BYTES" and spec.dtype != "object":
        read_as = spec.dtype
    groups.setdefault((datatype, read_as), []).append((spec, data, index))
    return True


def fast_binary_columns(
    raw: object, signature: Signature, forbid: frozenset[str], binary: memoryview
) -> tuple[dict[str, Array], int] | None:
    """A table sent as one binary [N] (or [N, 1]) column per input, all of one datatype, as
    tritonclient sends one: the columns lie side by side after the JSON, so one
    ``np.frombuffer`` reads them all and one test looks for missing values. None when anything
    is unusual (mixed datatypes too), and the careful path then names the fault."""
    specs = {spec.name: spec for spec in signature.inputs}
    if not isinstance(raw, list) or len(raw) != len(specs) or type(raw[0]) is not dict:
        return None
    datatype, shape = raw[0].get("datatype"), raw[0].get("shape")
    if not isinstance(datatype, str) or datatype not in NUMBERS:
        return None
    if type(shape) is not list or not shape or type(shape[0]) is not int:
        return None
    dtype, rows, names = NUMBERS[datatype], shape[0], []
    size = rows * dtype.itemsize
    for item in raw:
        if type(item) is not dict or item.get("datatype") != datatype:
            return None
        name, data = item.get("name"), item.get("data")
        spec = specs.get(name) if isinstance(name, str) else None
        if spec is None or not isinstance(data, Binary) or len(data.view) != size:
            return None
        if not accepts(datatype, spec.dtype) or item.get("shape") not in ([rows], [rows, 1]):
            return None
        names.append(spec.name)
    if rows == 0 or len(set(names)) != len(names) or len(binary) != size * len(names):
        return None
    block = read_array(Binary(binary), dtype, datatype, (len(names), rows), "", "")
    columns = dict(zip(names, block, strict=True))
    refuse_missing(block, columns, forbid, lambda name, row: f"inputs[{names.index(name)}].data")
    inputs = {s.name: columns[s.name].astype(spec_dtype(s), copy=False) for s in signature.inputs}
    return inputs, rows


def _member_field(members: list[tuple[ColumnSpec, list[Any], int]]) -> FieldOf:
    """The ``inputs[i].data`` of a column, worked out only when a refusal names it."""
    return lambda name, row: next(f"inputs[{i}].data" for s, _, i in members if s.name == name)
