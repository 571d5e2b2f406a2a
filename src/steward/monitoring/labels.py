"""Labels: the ground truth of a deployment's predictions, logged, checked and joined.

``LabelService.log`` takes labels in any of the SDK's shapes (a mapping of request id to label,
a list of rows, a pyarrow Table, a pandas DataFrame, a .parquet/.csv path), validates all of
them first, then writes one file to the label log and records one ``labels.logged`` event. A
request id with no prediction in the deployment's recent prediction log is still stored (its
prediction may not be written yet: the log flushes off the hot path) but is counted in the
receipt and logged as a warning. ``join`` puts the newest label of each ``(request_id, row)``
next to the predictions it belongs to; the monitor calls ``read_labels`` and ``join`` per
window. Semantics are in docs/labels.md.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from steward.domain.clock import utcnow
from steward.errors import InvalidInput
from steward.schemas.labels import (
    MAX_LABELS_PER_CALL,
    MAX_ROW,
    LabelReceipt,
    LabelSource,
    label_table,
    rows_from,
)
from steward.store.base import MetadataStore
from steward.store.label_log import (
    KEY_COLUMNS,
    LABEL_COLUMNS,
    SOURCES,
    LabelSet,
    delete_file,
    newest_labels,
    read_labels,
    write_labels,
)
from steward.store.prediction_log import partitions, read_files

logger = logging.getLogger(__name__)

EVENT_KIND = "labels.logged"
# How far back the prediction log is searched for the labelled request ids, and the most files
# that search may open: past that the check is not cheap, and the receipt says "not checked".
UNKNOWN_CHECK_WINDOW = timedelta(days=7)
UNKNOWN_CHECK_MAX_FILES = 2_000
EXAMPLES = 5
_ROW_KEYS = frozenset({"request_id", "label", "row"})


@dataclass(frozen=True)
class LabelJoin:
    """Predictions with their labels.

    ``table`` holds the matched prediction rows (every column given) plus ``label`` and
    ``label_text``, in the predictions' order. A label matches every prediction row of its
    ``(request_id, row)``: with shadow rows in the predictions, one label can match two.
    """

    table: pa.Table
    matched: int  # prediction rows with a label
    unlabeled_predictions: int  # prediction rows without one
    labels_without_prediction: int  # labels whose (request_id, row) no prediction row has
    duplicates_superseded: int  # older labels replaced by a later one for the same key


class LabelService:
    def __init__(
        self,
        store: MetadataStore,
        root: str,
        *,
        predictions_root: str | None = None,
        check_window: timedelta = UNKNOWN_CHECK_WINDOW,
        check_max_files: int = UNKNOWN_CHECK_MAX_FILES,
    ) -> None:
        self.store = store
        self.root = root
        self.predictions_root = predictions_root
        self.check_window = check_window
        self.check_max_files = check_max_files

    def log(
        self, actor: str, deployment: str, labels: object, *, source: LabelSource = "sdk"
    ) -> LabelReceipt:
        """Log ``labels`` for ``deployment``: all or nothing, one file, one ledger event.

        NotFound for an unknown deployment; InvalidInput naming the field for anything the
        labels get wrong (see ``validated_labels``).
        """
        if source not in SOURCES:
            raise InvalidInput(
                f"The source must be one of {', '.join(SOURCES)}; got {source!r}.", field="source"
            )
        with self.store.read() as rx:
            rx.get_deployment(deployment)
        table = validated_labels(labels)
        logged_at = utcnow()
        unknown, examples = self._unknown_request_ids(deployment, table.column("request_id"),
                                                      logged_at)  # fmt: skip
        file = write_labels(self.root, deployment, table, logged_at=logged_at, source=source)
        payload = {"rows": table.num_rows, "file": file, "source": source,
                   "unknown_request_ids": unknown}  # fmt: skip
        try:
            with self.store.write(actor) as tx:
                tx.record(EVENT_KIND, "deployment", deployment, payload)
        except BaseException:
            delete_file(self.root, file)  # no event, no labels: nothing half written
            raise
        if unknown:
            logger.warning(
                "%d request id(s) labelled for deployment %r have no prediction in its last %g "
                "hours of predictions (e.g. %s); the labels are stored and join once their "
                "predictions are logged.",
                unknown, deployment, self.check_window / timedelta(hours=1), ", ".join(examples),
            )  # fmt: skip
        return LabelReceipt(
            deployment=deployment, rows=table.num_rows, file=file, source=source,
            logged_at=logged_at, unknown_request_ids=unknown, unknown_examples=examples,
        )  # fmt: skip

    def read(
        self,
        deployment: str,
        request_ids: Sequence[str] | set[str] | None = None,
        since: datetime | None = None,
    ) -> LabelSet:
        """The newest label per ``(request_id, row)`` of ``deployment`` (``read_labels``)."""
        return read_labels(self.root, deployment, request_ids=request_ids, since=since)

    def _unknown_request_ids(
        self, deployment: str, ids: pa.ChunkedArray, now: datetime
    ) -> tuple[int | None, list[str]]:
        """How many distinct ``ids`` have no prediction in the window, and up to 5 of them;
        (None, []) when there is no prediction log to check, or checking it is not cheap or
        fails (the check only informs: it never stops labels from being logged)."""
        if self.predictions_root is None:
            return None, []
        since = now - self.check_window
        try:
            folders = partitions(self.predictions_root, deployment, since=since)
            if sum(len(files) for files in folders) > self.check_max_files:
                return None, []
            remaining = pc.unique(ids)
            for files in reversed(folders):  # newest first: labels mostly follow recent ones
                known = read_files(self.predictions_root, files, since=since,
                                   columns=["request_id"]).column("request_id")  # fmt: skip
                found = pc.is_in(remaining, value_set=known.combine_chunks())
                remaining = remaining.filter(pc.invert(found))
                if len(remaining) == 0:
                    break
        except (OSError, pa.ArrowException):
            logger.warning("Cannot read the prediction log at %s to check the labelled request "
                           "ids; skipped.", self.predictions_root, exc_info=True)  # fmt: skip
            return None, []
        return len(remaining), remaining.slice(0, EXAMPLES).to_pylist()


# -- validation ------------------------------------------------------------------------------
def validated_labels(labels: object) -> pa.Table:
    """``labels`` as a table of ``LABEL_COLUMNS``, every row checked: a non-empty request id,
    a row in [0, 2^31), a label that is a finite number, a bool (stored as 0/1) or text, at
    most ``MAX_LABELS_PER_CALL`` of them, and each ``(request_id, row)`` once."""
    rows = rows_from(labels)
    if rows is not None:
        _check_count(len(rows))
        table = _from_rows(rows)
    else:
        given = label_table(labels)
        _check_count(given.num_rows)
        table = _from_table(given)
    _refuse_duplicates(table)
    return table


def _check_count(count: int) -> None:
    if count == 0:
        raise InvalidInput("No labels given: there is nothing to log.", field="labels")
    if count > MAX_LABELS_PER_CALL:
        raise InvalidInput(
            f"{count:,} labels in one call; at most {MAX_LABELS_PER_CALL:,} are logged at once. "
            "Split them into several calls.",
            field="labels",
        )


def _from_rows(rows: list[Any]) -> pa.Table:
    ids: list[str] = []
    positions: list[int] = []
    numbers_: list[float | None] = []
    texts: list[str | None] = []
    for i, item in enumerate(rows):
        if not isinstance(item, Mapping):
            raise InvalidInput(
                f"Label {i} is a {type(item).__name__}; each label is a mapping with "
                "'request_id' and 'label' (and optionally 'row').",
                field=f"labels.{i}",
            )
        extra = sorted(str(key) for key in item if key not in _ROW_KEYS)
        if extra:
            raise InvalidInput(
                f"Label {i} has the unknown key {extra[0]!r}; a label has 'request_id', "
                "'label' and optionally 'row'.",
                field=f"labels.{i}.{extra[0]}",
            )
        ids.append(_request_id(item.get("request_id"), i))
        positions.append(_row(item.get("row", 0), i))
        number, text = _label(item.get("label"), i, ids[-1])
        numbers_.append(number)
        texts.append(text)
    arrays = [pa.array(ids, pa.string()), pa.array(positions, pa.int32()),
              pa.array(numbers_, pa.float64()), pa.array(texts, pa.string())]  # fmt: skip
    return pa.Table.from_arrays(arrays, schema=LABEL_COLUMNS)


def _request_id(value: Any, i: int) -> str:
    # Text only, as the API's JSON schema has it (the gateway's ids are text): a table's
    # integer column is converted as a whole (see _id_column), a Python int here is refused.
    if isinstance(value, str) and value:
        return value
    raise InvalidInput(
        f"The request id of label {i} must be non-empty text; got {_shown(value)}.",
        field=f"labels.{i}.request_id",
    )


def _row(value: Any, i: int) -> int:
    integer = isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)
    if integer and 0 <= int(value) <= MAX_ROW:
        return int(value)
    raise InvalidInput(
        f"The row of label {i} must be an integer from 0 to {MAX_ROW} (the row's position in "
        f"its request); got {_shown(value)}.",
        field=f"labels.{i}.row",
    )


def _label(value: Any, i: int, request_id: str) -> tuple[float | None, str | None]:
    """(number, text): bools as 0/1 and numbers go left, text right."""
    if isinstance(value, bool | np.bool_):
        return float(value), None
    if isinstance(value, str):
        return None, value
    if isinstance(value, numbers.Real):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number):
            return number, None
    what = "no label" if value is None else f"the label {_shown(value)}"
    raise InvalidInput(
        f"Label {i} (request id {request_id!r}) has {what}: a label is a finite number, a "
        "boolean or text.",
        field=f"labels.{i}.label",
    )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _from_table(table: pa.Table) -> pa.Table:
    ids = _id_column(table.column("request_id"))
    if "row" in table.column_names:
        rows = _row_column(table.column("row"))
    else:
        rows = pa.array(np.zeros(table.num_rows, dtype=np.int32))
    number, text = _label_columns(table.column("label"), ids)
    return pa.Table.from_arrays([ids, rows, number, text], schema=LABEL_COLUMNS)


def _decoded(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


def _first(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(pc.index(mask, True).as_py())


def _id_column(column: pa.ChunkedArray) -> pa.ChunkedArray:
    column = _decoded(column)
    if pa.types.is_integer(column.type):
        column = column.cast(pa.string())
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise InvalidInput(
            f"The request ids must be text; the request_id column is {column.type}.",
            field="request_id",
        )
    column = column.cast(pa.string())
    missing = pc.fill_null(pc.equal(pc.utf8_length(column), 0), True)
    if pc.any(missing).as_py():
        i = _first(missing)
        raise InvalidInput(
            f"The request id of label {i} is missing or empty; every label needs the request "
            "id of the prediction it is the truth of.",
            field=f"labels.{i}.request_id",
        )
    return column


def _row_column(column: pa.ChunkedArray) -> pa.ChunkedArray:
    column = _decoded(column)
    bad = None
    if pa.types.is_integer(column.type):
        bad = pc.fill_null(pc.or_(pc.less(column, 0), pc.greater(column, MAX_ROW)), True)
    elif pa.types.is_floating(column.type):
        # a pandas integer column with a gap in it arrives as float: whole numbers are fine
        whole = pc.and_(pc.equal(pc.floor(column), column), pc.is_finite(column))
        inside = pc.and_(pc.greater_equal(column, 0), pc.less_equal(column, MAX_ROW))
        bad = pc.fill_null(pc.invert(pc.and_(whole, inside)), True)
    if bad is None:
        raise InvalidInput(
            f"The rows must be integers; the row column is {column.type}.", field="row"
        )
    if pc.any(bad).as_py():
        i = _first(bad)
        raise InvalidInput(
            f"The row of label {i} must be an integer from 0 to {MAX_ROW}; got "
            f"{column[i].as_py()!r}.",
            field=f"labels.{i}.row",
        )
    return column.cast(pa.int32())


def _label_columns(
    column: pa.ChunkedArray, ids: pa.ChunkedArray
) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    """(label, label_text) from one column: numbers and bools, or text."""
    column = _decoded(column)
    rows = len(column)
    if column.null_count:
        i = _first(pc.is_null(column))
        raise _bad_label(i, ids, "no label")
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return pa.chunked_array([pa.nulls(rows, pa.float64())]), column.cast(pa.string())
    if not (pa.types.is_boolean(kind) or pa.types.is_integer(kind)
            or pa.types.is_floating(kind) or pa.types.is_decimal(kind)):  # fmt: skip
        raise InvalidInput(
            f"The labels must be numbers, booleans or text; the label column is {kind}.",
            field="label",
        )
    number = column.cast(pa.float64())
    finite = pc.is_finite(number)
    if not pc.all(finite).as_py():
        i = _first(pc.invert(finite))
        raise _bad_label(i, ids, f"the label {number[i].as_py()!r}")
    return number, pa.chunked_array([pa.nulls(rows, pa.string())])


def _bad_label(i: int, ids: pa.ChunkedArray, what: str) -> InvalidInput:
    return InvalidInput(
        f"Label {i} (request id {ids[i].as_py()!r}) has {what}: a label is a finite number, a "
        "boolean or text.",
        field=f"labels.{i}.label",
    )


def _refuse_duplicates(table: pa.Table) -> None:
    """Within one call a key twice is ambiguous (which one is the truth?); across calls the
    later label is a correction, which ``read_labels`` resolves."""
    counts = table.select(list(KEY_COLUMNS)).group_by(list(KEY_COLUMNS), use_threads=False)
    counted = counts.aggregate([([], "count_all")])
    twice = counted.filter(pc.greater(counted.column("count_all"), 1))
    if twice.num_rows == 0:
        return
    examples = [
        f"{r['request_id']!r} (row {r['row']})" for r in twice.slice(0, EXAMPLES).to_pylist()
    ]
    raise InvalidInput(
        f"{twice.num_rows} (request_id, row) pair(s) appear more than once in these labels, "
        f"e.g. {', '.join(examples)}. Give each prediction one label per call; a later call "
        "corrects an earlier one.",
        field="request_id",
        details={
            "duplicates": twice.column("request_id").slice(0, EXAMPLES).to_pylist(),
            "count": twice.num_rows,
        },
    )


# -- the join --------------------------------------------------------------------------------
def join(predictions: pa.Table, labels: pa.Table | LabelSet) -> LabelJoin:
    """The predictions that have a label, with it; counts of what did not match.

    ``labels`` is ``read_labels``' LabelSet (its superseded count is carried over) or any table
    with ``request_id``, ``row``, ``label``, ``label_text`` (and ``logged_at``, for newest-wins
    among duplicates). Keys are matched with pyarrow's hash join on the keys alone, then the
    rows are taken by position: a join cannot carry list columns such as ``probabilities``.
    """
    superseded = 0
    if isinstance(labels, LabelSet):
        superseded, labels = labels.superseded, labels.table
    for name, table in (("predictions", predictions), ("labels", labels)):
        missing = [c for c in KEY_COLUMNS if c not in table.column_names]
        if missing:
            raise InvalidInput(f"The {name} have no {missing[0]!r} column.", field=name)
    wanted = [c for c in (*KEY_COLUMNS, "label", "label_text", "logged_at")
              if c in labels.column_names]  # fmt: skip
    newest, dropped = newest_labels(labels.select(wanted))
    left = _keys(predictions).append_column("_prediction", _positions(predictions.num_rows))
    right = _keys(newest).append_column("_label", _positions(newest.num_rows))
    pairs = left.join(right, keys=list(KEY_COLUMNS), join_type="inner").sort_by("_prediction")
    joined = predictions.take(pairs.column("_prediction"))
    for name, kind in (("label", pa.float64()), ("label_text", pa.string())):
        if name in joined.column_names:  # the labels' column replaces one of the same name
            joined = joined.drop_columns([name])
        values = newest.column(name) if name in newest.column_names else pa.nulls(
            newest.num_rows, kind)  # fmt: skip
        joined = joined.append_column(name, values.take(pairs.column("_label")))
    matched_labels = pc.count_distinct(pairs.column("_label")).as_py() if pairs.num_rows else 0
    return LabelJoin(
        table=joined,
        matched=pairs.num_rows,
        unlabeled_predictions=predictions.num_rows - pairs.num_rows,
        labels_without_prediction=newest.num_rows - matched_labels,
        duplicates_superseded=superseded + dropped,
    )


def _keys(table: pa.Table) -> pa.Table:
    """The join keys with one type on both sides (the log's string and int32)."""
    return pa.table({"request_id": _decoded(table.column("request_id")).cast(pa.string()),
                     "row": table.column("row").cast(pa.int32())})  # fmt: skip


def _positions(rows: int) -> pa.Array:
    return pa.array(np.arange(rows, dtype=np.int64))


__all__ = [
    "EVENT_KIND",
    "LabelJoin",
    "LabelService",
    "join",
    "read_labels",
    "validated_labels",
]
