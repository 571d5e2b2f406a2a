"""The label log: ground truth for logged predictions, one Parquet row per labelled row.

Layout (a local folder or any fsspec URL), the same as the prediction log's::

    {root}/deployment={name}/hour={YYYY-MM-DDTHH of logged_at}/part-{uuid}.parquet

Labels join predictions by ``(request_id, row)``. The log is append-only: a label logged
again for the same ``(request_id, row)`` is a correction, and ``read_labels`` keeps the newest
one (by ``logged_at``) and counts the ones it superseded. Each ``write_labels`` call writes one
file, under a hidden temporary name first and then renamed, so a reader never sees a partial
file. Validation of what goes in is the label service's (``steward.monitoring.labels``); the
schema is documented in docs/labels.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from steward.store.prediction_log import (
    HOUR_FORMAT,
    PARTITION_SCHEMA,
    partition_path,
    partitions,
)

SCHEMA_VERSION = "1"
SCHEMA_VERSION_KEY = "steward.label_log.schema_version"
KEY_COLUMNS = ("request_id", "row")
SOURCES = ("sdk", "api", "file")

# The columns every file has (the partition columns live in the folder names).
RECORD_SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("row", pa.int32(), nullable=False),
        pa.field("label", pa.float64()),
        pa.field("label_text", pa.string()),
        pa.field("logged_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("source", pa.string(), nullable=False),
    ],
    metadata={SCHEMA_VERSION_KEY: SCHEMA_VERSION},
)
# What ``read_labels`` returns.
LABEL_LOG_SCHEMA = pa.unify_schemas([PARTITION_SCHEMA, RECORD_SCHEMA]).remove_metadata()
# What ``write_labels`` takes: the validated labels, before the time and source are added.
LABEL_COLUMNS = pa.schema([RECORD_SCHEMA.field(n) for n in ("request_id", "row", "label",
                                                            "label_text")])  # fmt: skip


@dataclass(frozen=True)
class LabelSet:
    """The newest label of each ``(request_id, row)``, and how many older ones it replaced."""

    table: pa.Table  # LABEL_LOG_SCHEMA, ordered by logged_at, request_id, row
    superseded: int


def write_labels(
    root: str, deployment: str, labels: pa.Table, *, logged_at: datetime, source: str
) -> str:
    """Write ``labels`` (LABEL_COLUMNS, already validated) as one file of ``deployment``'s
    partition for the hour of ``logged_at``; returns its path relative to ``root``."""
    if logged_at.tzinfo is None:
        raise ValueError("logged_at must be timezone-aware")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
    rows = labels.num_rows
    columns = [labels.column(name).cast(LABEL_COLUMNS.field(name).type) for name in
               LABEL_COLUMNS.names]  # fmt: skip
    stamp = pa.scalar(logged_at.astimezone(UTC), pa.timestamp("us", tz="UTC"))
    columns += [pa.repeat(stamp, rows), pa.repeat(pa.scalar(source, pa.string()), rows)]
    table = pa.Table.from_arrays(columns, schema=RECORD_SCHEMA)
    hour = logged_at.astimezone(UTC).strftime(HOUR_FORMAT)
    relative = f"{partition_path(deployment, hour)}/part-{uuid.uuid4().hex}.parquet"
    _write_atomically(root, relative, table)
    return relative


def _write_atomically(root: str, relative: str, table: pa.Table) -> None:
    """Write under ``.{name}.tmp`` in the same folder, then rename: readers (and
    ``part-*.parquet`` globs) only ever see complete files. On object storage the rename is a
    copy then a delete, which still only makes complete objects visible."""
    fs, fs_root = fsspec.core.url_to_fs(root)
    folder, name = f"{fs_root.rstrip('/')}/{relative}".rsplit("/", 1)
    tmp, final = f"{folder}/.{name}.tmp", f"{folder}/{name}"
    fs.makedirs(folder, exist_ok=True)
    try:
        with fs.open(tmp, "wb") as out:
            # request ids are unique-ish, so a dictionary would only grow the file
            pq.write_table(table, out, compression="zstd", use_dictionary=["label_text", "source"])
        fs.mv(tmp, final)
    except BaseException:
        if fs.exists(tmp):
            fs.rm(tmp)
        raise


def delete_file(root: str, relative: str) -> None:
    """Remove a file ``write_labels`` wrote (its ledger event could not be recorded)."""
    fs, fs_root = fsspec.core.url_to_fs(root)
    path = f"{fs_root.rstrip('/')}/{relative}"
    if fs.exists(path):
        fs.rm(path)


def read_labels(
    root: str,
    deployment: str,
    request_ids: Collection[str] | None = None,
    since: datetime | None = None,
) -> LabelSet:
    """The newest label of each ``(request_id, row)`` of ``deployment`` logged at or after
    ``since`` (timezone-aware), restricted to ``request_ids`` when given.

    Only the hour folders that can hold such labels are listed and opened. A correction logged
    after ``since`` still replaces an older label; an older label alone, before ``since``, is
    left out. A missing root or no files gives an empty table with ``LABEL_LOG_SCHEMA``.
    """
    files = [path for folder in partitions(root, deployment, since=since) for path in folder]
    if not files or (request_ids is not None and not request_ids):
        return LabelSet(LABEL_LOG_SCHEMA.empty_table(), 0)
    fs, fs_root = fsspec.core.url_to_fs(root)
    dataset = ds.dataset(
        files, schema=LABEL_LOG_SCHEMA, filesystem=fs, format="parquet",
        partitioning=ds.partitioning(PARTITION_SCHEMA, flavor="hive"),
        partition_base_dir=fs_root.rstrip("/"),
    )  # fmt: skip
    table = dataset.to_table(filter=_condition(request_ids, since))
    newest, superseded = newest_labels(table)
    order = [("logged_at", "ascending"), ("request_id", "ascending"), ("row", "ascending")]
    return LabelSet(newest.sort_by(order), superseded)


def newest_label(root: str, deployment: str) -> datetime | None:
    """When ``deployment``'s newest label was logged (None: it has none); only the newest hour
    folder is read, and only its ``logged_at`` column."""
    folders = partitions(root, deployment)
    if not folders:
        return None
    fs, _ = fsspec.core.url_to_fs(root)
    dataset = ds.dataset(folders[-1], schema=RECORD_SCHEMA, filesystem=fs, format="parquet")
    newest = pc.max(dataset.to_table(columns=["logged_at"]).column("logged_at")).as_py()
    return newest if isinstance(newest, datetime) else None


def _condition(request_ids: Collection[str] | None, since: datetime | None) -> Any:
    condition = None
    if since is not None:
        condition = ds.field("logged_at") >= pa.scalar(since, pa.timestamp("us", tz="UTC"))
    if request_ids is not None:
        wanted = ds.field("request_id").isin(pa.array(list(request_ids), pa.string()))
        condition = wanted if condition is None else condition & wanted
    return condition


def newest_labels(table: pa.Table) -> tuple[pa.Table, int]:
    """``table`` with one row per ``(request_id, row)``: the one logged last; and how many rows
    were dropped. Ties on ``logged_at`` (two files of the same microsecond) keep the row read
    last. Without a ``logged_at`` column, the last row of each key wins."""
    if table.num_rows == 0:
        return table, 0
    if "logged_at" in table.column_names:
        # a stable sort: rows of equal logged_at keep the order they were read in
        table = table.take(pc.sort_indices(table, [("logged_at", "ascending")]))
    numbered = table.select(list(KEY_COLUMNS)).append_column(
        "_position", pa.array(np.arange(table.num_rows, dtype=np.int64))
    )
    last = numbered.group_by(list(KEY_COLUMNS), use_threads=False).aggregate([("_position", "max")])
    if last.num_rows == table.num_rows:
        return table, 0
    keep = pc.sort_indices(last.column("_position_max"))
    return table.take(last.column("_position_max").take(keep)), table.num_rows - last.num_rows


__all__ = [
    "KEY_COLUMNS",
    "LABEL_COLUMNS",
    "LABEL_LOG_SCHEMA",
    "RECORD_SCHEMA",
    "SCHEMA_VERSION",
    "SOURCES",
    "LabelSet",
    "delete_file",
    "newest_label",
    "newest_labels",
    "read_labels",
    "write_labels",
]
