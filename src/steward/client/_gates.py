"""What the SDK's gate operations do on the caller's side, whichever backend carries them:
turn evaluation data into the Parquet artifact the service reads, and run a reproduction.

pandas, pyarrow and the reproduction engine load inside the functions that need them (an
import-time saving, not a way around a cycle), so ``import steward`` stays light.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from steward.errors import InvalidInput
from steward.schemas.gates import ReproductionRecord

if TYPE_CHECKING:
    from steward.domain.entities import ModelVersion
    from steward.gates.reproduce import ReproductionOutcome

_PARQUET = (".parquet", ".pq")


def parquet_bytes(data: object) -> bytes:
    """``data`` as Parquet bytes: a pandas DataFrame, a pyarrow Table, or a .parquet or .csv
    file (a Parquet file is sent as it is)."""
    if isinstance(data, str | Path):
        path = Path(data)
        suffix = path.suffix.lower()
        if suffix in _PARQUET:
            return path.read_bytes()
        if suffix == ".csv":
            import pandas as pd

            return _write(pd.read_csv(path))
        raise InvalidInput(
            f"Cannot read evaluation data from {path.name!r}: use a .parquet or .csv file.",
            field="data",
        )
    return _write(data)


def _write(data: object) -> bytes:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(data, pd.DataFrame):
        table = pa.Table.from_pandas(data, preserve_index=False)
    elif isinstance(data, pa.Table):
        table = data
    else:
        raise InvalidInput(
            f"Cannot evaluate on an object of type {type(data).__name__}; pass a pandas "
            "DataFrame, a pyarrow Table, or the path of a .parquet or .csv file.",
            field="data",
        )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def run_reproduction(
    version: ModelVersion, *, repo_path: Path | None, tolerance: float, timeout_s: float
) -> tuple[ReproductionOutcome, ReproductionRecord]:
    """Re-run ``version``'s training on this machine; the outcome and the record to store."""
    # loaded here: the policy parser and checks behind steward.gates are not needed otherwise
    from steward.gates.reproduce import reproduce_training

    outcome = reproduce_training(
        version, repo_path=repo_path, tolerance=tolerance, timeout_s=timeout_s
    )
    record = ReproductionRecord(
        matched=outcome.matched,
        tolerance=outcome.tolerance,
        recorded=outcome.recorded,
        reproduced=outcome.reproduced,
        data_fingerprints_matched=outcome.data_fingerprints_matched,
        detail=outcome.detail,
    )
    return outcome, record


def as_utc(at: datetime | None) -> datetime | None:
    """A naive time is read as UTC (the store keeps UTC)."""
    if at is None or at.tzinfo is not None:
        return at
    return at.replace(tzinfo=UTC)
