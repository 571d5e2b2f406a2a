"""The label log on the wire: JSON rows or a Parquet body in, a receipt out.

Labels travel two ways, one request either way: JSON rows (``LabelsCreate``) for small inputs,
or a Parquet body (``PARQUET_MEDIA_TYPE``) with the columns ``request_id``, ``label`` and
optionally ``row``. The table helpers below are shared by the client (which turns a DataFrame
or a file into that table before sending it), the API (which reads the Parquet body) and the
label service (which takes the same inputs in-process), so every way in reads a table the same.
pyarrow loads inside them, not at import: ``steward.client`` imports this module and must stay
light until labels are actually logged.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NotRequired, TypeAlias

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, StrictInt, StrictStr, with_config
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from steward.errors import InvalidInput, PayloadTooLarge
from steward.schemas import RequestBody

if TYPE_CHECKING:
    import pyarrow as pa

# Most labels one call logs: one file and one ledger event per call, so a call must fit in
# memory on the server (1M labels with 36-character ids is ~60 MB of Arrow, ~20 MB of Parquet).
MAX_LABELS_PER_CALL = 1_000_000
# Largest request body the labels route reads (JSON or Parquet): room for MAX_LABELS_PER_CALL
# rows as JSON with short ids, or as Parquet with ids and text labels of ~200 characters.
MAX_LABELS_BODY_BYTES = 256 * 1024 * 1024
# Above this many rows the client sends a table as Parquet: 10k JSON rows cost the server ~10 ms
# to parse and validate (measured), and JSON grows ~4x larger than Parquet (78 MB vs 20 MB for
# 1M labels with 36-character ids).
JSON_ROWS_LIMIT = 10_000
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
MAX_ROW = 2**31 - 1  # rows are int32 in both logs

LabelSource = Literal["sdk", "api", "file"]
# What the client hands its backend: rows (from a mapping or a list) or a table.
LabelPayload: TypeAlias = "list[Any] | pa.Table"


def _label_value(value: object) -> bool | int | float | str:
    """One check rather than a union of four types: a union reports a failure once per member
    (``labels.0.label.bool``, ``labels.0.label.int``, ...), this names ``labels.0.label``."""
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise ValueError(f"a label is a finite number, a boolean or text, not {value!r:.40}")


# JSON true is a bool, 1 an int, 1.5 a float, "yes" a string; nothing is coerced.
LabelValue = Annotated[
    bool | int | float | str,
    PlainValidator(_label_value, json_schema_input_type=bool | int | float | str),
]

_PARQUET_SUFFIXES = (".parquet", ".pq")
_READ_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError)


# A TypedDict, not a model, like LogBatch's points: no model instance is built per row (10,000
# rows validate in ~10 ms, measured).
@with_config(ConfigDict(extra="forbid"))
class LabelIn(TypedDict):
    """One label: the prediction's ``request_id`` and ``row`` (default 0), and its truth."""

    request_id: Annotated[StrictStr, Field(min_length=1)]
    label: LabelValue
    row: NotRequired[Annotated[StrictInt, Field(ge=0, le=MAX_ROW)]]


class LabelsCreate(RequestBody):
    """``POST /deployments/{name}/labels`` as JSON."""

    bulk_fields = frozenset({"labels"})  # Parquet holds NUL fine; no second walk of the rows

    labels: list[LabelIn] = Field(min_length=1, max_length=MAX_LABELS_PER_CALL)
    source: LabelSource = "api"


class LabelReceipt(BaseModel):
    """What one call logged, and which request ids the prediction log does not know (yet)."""

    model_config = ConfigDict(frozen=True)

    deployment: str
    rows: int = Field(description="Labels written, in one file.")
    file: str = Field(description="The file written, relative to the label log's root.")
    source: LabelSource
    logged_at: datetime
    unknown_request_ids: int | None = Field(
        default=None,
        description="Request ids with no prediction in the deployment's last 7 days of the "
        "prediction log; null when that was not cheap to check (the labels are stored anyway).",
    )
    unknown_examples: list[str] = Field(
        default_factory=list, description="Up to 5 of the unknown request ids."
    )


# -- tables ---------------------------------------------------------------------------------
def label_table(
    data: object,
    *,
    request_id_column: str = "request_id",
    label_column: str = "label",
    row_column: str | None = None,
) -> pa.Table:
    """``data`` (a .parquet/.csv path, a pyarrow Table or a pandas DataFrame) as a table of
    ``request_id``, ``label`` and, when there is one, ``row``; other columns are dropped.

    ``row_column`` None uses a ``row`` column if there is one (else every row is 0); a named
    one must exist. A CSV's request ids are read as text, so ``007`` stays ``007``.
    """
    columns = {request_id_column, label_column, row_column or "row"}
    table, where, names = _read(data, request_id_column, columns)
    wanted = {"request_id": request_id_column, "label": label_column}
    if row_column is not None:
        wanted["row"] = row_column
    elif "row" in table.column_names:
        wanted["row"] = "row"
    for canonical, column in wanted.items():
        if column not in table.column_names:
            known = ", ".join(names[:20]) or "none"
            raise InvalidInput(
                f"The labels ({where}) have no column {column!r} for the {canonical}; the "
                f"columns are: {known}. Name it with {canonical}_column=... "
                f"(--{canonical.replace('_', '-')}-column on the command line).",
                field=canonical,
            )
    return table.select(list(wanted.values())).rename_columns(list(wanted))


def _read(
    data: object, request_id_column: str, columns: set[str]
) -> tuple[pa.Table, str, list[str]]:
    """The table (a file: only ``columns`` of it), how to name it, and all its column names."""
    import pyarrow as pa

    if isinstance(data, str | Path):
        table, names = _read_file(Path(data), request_id_column, columns)
        return table, repr(str(data)), names
    if isinstance(data, pa.Table):
        return data, "a pyarrow Table", data.column_names
    if _is_data_frame(data):
        try:
            table = pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowException, *_READ_ERRORS) as exc:
            raise InvalidInput(
                f"Cannot convert the labels DataFrame: {_short(exc)}. Use one column of "
                "numbers, booleans or text for the labels.",
                field="labels",
            ) from exc
        return table, "a DataFrame", table.column_names
    raise InvalidInput(
        f"Cannot read labels from a {type(data).__name__}: pass a mapping of request id to "
        "label, a list of {'request_id', 'label', 'row'?} rows, a pandas DataFrame, a pyarrow "
        "Table, or the path of a .parquet or .csv file.",
        field="labels",
    )


def _read_file(path: Path, request_id_column: str, columns: set[str]) -> tuple[pa.Table, list[str]]:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if not path.is_file():
        raise InvalidInput(f"The labels file {str(path)!r} does not exist.", field="labels")
    suffix = path.suffix.lower()
    if suffix not in (*_PARQUET_SUFFIXES, ".csv"):
        raise InvalidInput(
            f"Cannot read labels from {path.name!r}: use a .parquet or .csv file.", field="labels"
        )
    try:
        if suffix in _PARQUET_SUFFIXES:  # columnar: the other columns are never read
            names = pq.read_schema(path).names
            return pq.read_table(path, columns=[n for n in names if n in columns]), names
        types = {request_id_column: pa.string()}  # ids are text, leading zeros and all
        table = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(column_types=types))
        return table, table.column_names
    except (pa.ArrowException, *_READ_ERRORS) as exc:
        raise InvalidInput(
            f"Cannot read the labels file {str(path)!r}: {_short(exc)}. Check that it is a "
            "valid Parquet or CSV file.",
            field="labels",
        ) from exc


def _is_data_frame(data: object) -> bool:
    return type(data).__name__ == "DataFrame" and hasattr(data, "columns")


def json_compatible(table: pa.Table) -> bool:
    """Whether the table's rows read the same as JSON ``LabelIn`` rows: text ids, labels of
    numbers, booleans or text, integer rows. Anything else (integer ids, timestamps, ...) goes
    as Parquet, so the server converts or refuses it exactly as the embedded service does."""
    import pyarrow as pa

    def text(kind: pa.DataType) -> bool:  # pandas 3's strings arrive as large_string
        return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))

    types = {field.name: field.type for field in table.schema}
    label = types["label"]
    return (
        text(types["request_id"])
        and (pa.types.is_integer(label) or pa.types.is_floating(label)
             or pa.types.is_boolean(label) or text(label))
        and ("row" not in types or pa.types.is_integer(types["row"]))
    )  # fmt: skip


def parquet_body(table: pa.Table) -> bytes:
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()


def table_from_parquet(body: bytes) -> pa.Table:
    """A Parquet request body as a table; InvalidInput naming the body when it is not one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(pa.BufferReader(body))
    except (pa.ArrowException, *_READ_ERRORS) as exc:
        raise InvalidInput(
            f"The request body is not a readable Parquet file: {_short(exc)}.", field="body"
        ) from exc


@dataclass(frozen=True)
class LabelRequest:
    """One labels request as the client sends it."""

    content: bytes
    media_type: str
    params: dict[str, str]


def label_request(labels: LabelPayload, source: LabelSource) -> LabelRequest:
    """JSON rows for rows and for small plain tables, Parquet for the rest; one request either
    way, refused here (as the server would) when it is over MAX_LABELS_BODY_BYTES."""
    if isinstance(labels, list) or (labels.num_rows <= JSON_ROWS_LIMIT and json_compatible(labels)):
        rows = labels if isinstance(labels, list) else labels.to_pylist()
        request = LabelRequest(_json_body(rows, source), "application/json", {})
    else:
        request = LabelRequest(parquet_body(labels), PARQUET_MEDIA_TYPE, {"source": source})
    if len(request.content) > MAX_LABELS_BODY_BYTES:
        raise PayloadTooLarge(
            f"The labels make a {len(request.content):,}-byte request, over the server's limit "
            f"of {MAX_LABELS_BODY_BYTES:,} bytes; split them into several calls.",
            field="labels",
        )
    return request


def _json_body(rows: list[Any], source: LabelSource) -> bytes:
    """NaN stays NaN on the wire, so the server names it rather than seeing a null."""
    body = {"labels": rows, "source": source}
    try:
        return pydantic_core.to_json(body, inf_nan_mode="constants")
    except pydantic_core.PydanticSerializationError:
        pass
    # numpy scalars (a label from a Series, an index from a DataFrame): as Python values
    plain = [{k: _plain(v) for k, v in r.items()} if isinstance(r, Mapping) else r for r in rows]
    try:
        return pydantic_core.to_json({**body, "labels": plain}, inf_nan_mode="constants")
    except pydantic_core.PydanticSerializationError:
        raise _unsendable(plain) from None


def _plain(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else value


def _unsendable(rows: list[Any]) -> InvalidInput:
    """The first value JSON cannot carry, named as the service would name it."""
    for i, row in enumerate(rows):
        items = row.items() if isinstance(row, Mapping) else [("", row)]
        for key, value in items:
            try:
                pydantic_core.to_json(value)
            except pydantic_core.PydanticSerializationError:
                field = f"labels.{i}.{key}" if key else f"labels.{i}"
                return InvalidInput(
                    f"Label {i} has the value {value!r:.60} under {key or 'itself'!r}: a label "
                    "is a finite number, a boolean or text, with a text request id.",
                    field=field,
                )
    return InvalidInput("The labels cannot be sent as JSON.", field="labels")


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def rows_from(data: Any) -> list[Any] | None:
    """Labels given as a mapping (request id -> label) or a list of rows, as a list of rows;
    None for anything else (a table)."""
    if isinstance(data, Mapping):
        return [{"request_id": key, "label": value} for key, value in data.items()]
    if isinstance(data, list | tuple):
        return list(data)
    return None


__all__ = [
    "JSON_ROWS_LIMIT",
    "MAX_LABELS_BODY_BYTES",
    "MAX_LABELS_PER_CALL",
    "MAX_ROW",
    "PARQUET_MEDIA_TYPE",
    "LabelIn",
    "LabelPayload",
    "LabelReceipt",
    "LabelRequest",
    "LabelSource",
    "LabelsCreate",
    "json_compatible",
    "label_request",
    "label_table",
    "parquet_body",
    "rows_from",
    "table_from_parquet",
]
