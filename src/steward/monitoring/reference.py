"""The reference a deployment's live traffic is compared with: the profile of the answering
version's reference sample, and the profile of that version's own predictions on it.

The input profile is built at registration (``profile_sample``, wired into the registry) and
stored with the version (``ModelVersion.reference_profile``); a version registered before
profiles existed gets one built from its sample on first use. The prediction profile needs the
model itself, so it is built here, on first use, by running the version on its sample, and kept
per process (``ReferenceCache``): the scheduler in a long-lived server builds it once.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from steward.domain.entities import ModelVersion
from steward.errors import InvalidInput, StewardError
from steward.monitoring._tables import column_batch
from steward.stats.profile import Profile

logger = logging.getLogger(__name__)

# The prediction log's output columns that are profiled for prediction drift.
PREDICTION_COLUMNS = ("prediction", "prediction_label", "score")
_BATCH_ROWS = 65_536
_MAX_CACHED = 64


def profile_sample(sample: bytes) -> bytes:
    """The JSON profile of a reference sample's Parquet bytes (what registration stores)."""
    return profile_table(_read_parquet(sample)).to_json().encode()


def profile_table(table: pa.Table) -> Profile:
    profile = Profile()
    for batch in table.to_batches(max_chunksize=_BATCH_ROWS):
        columns = {}
        for name, array in zip(batch.schema.names, batch.columns, strict=True):
            column = column_batch(array)
            if column is not None:
                columns[name] = column
        profile.update(columns, rows=batch.num_rows)
    return profile


def _read_parquet(content: bytes) -> pa.Table:
    try:
        return pq.read_table(io.BytesIO(content))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidInput(
            f"The reference sample is not a readable Parquet file: {exc}",
            field="reference_sample",
        ) from exc


@dataclass(frozen=True)
class Reference:
    version: int
    inputs: Profile
    predictions: Profile | None  # None when the model could not be run on the sample
    built_at: datetime  # when the reference data was registered: its age is a freshness signal
    prediction_note: str | None = None


# runs a version on a table: (predictions, probabilities or None)
Predict = Callable[[ModelVersion, pa.Table], tuple[np.ndarray, np.ndarray | None]]


class ReferenceCache:
    """References by version id, built once per process."""

    def __init__(self, read_artifact: Callable[[str], bytes], predict: Predict) -> None:
        self._read_artifact = read_artifact
        self._predict = predict
        self._built: dict[str, Reference] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._built.clear()

    def get(self, version: ModelVersion) -> Reference | None:
        """The version's reference; None when it was registered without a reference sample."""
        with self._lock:
            found = self._built.get(version.id)
        if found is not None:
            return found
        if version.reference_sample is None:
            return None
        built = self._build(version)
        with self._lock:
            if len(self._built) >= _MAX_CACHED:
                self._built.pop(next(iter(self._built)))
            self._built[version.id] = built
        return built

    def _build(self, version: ModelVersion) -> Reference:
        assert version.reference_sample is not None
        sample = _read_parquet(self._read_artifact(version.reference_sample.digest))
        if version.reference_profile is not None:
            inputs = Profile.from_json(self._read_artifact(version.reference_profile.digest))
        else:
            inputs = profile_table(sample)
        predictions, note = self._prediction_profile(version, sample)
        return Reference(version.version, inputs, predictions, version.created_at, note)

    def _prediction_profile(
        self, version: ModelVersion, sample: pa.Table
    ) -> tuple[Profile | None, str | None]:
        features = _feature_table(version, sample)
        if features is None:
            return None, "the reference sample lacks the model's input columns"
        try:
            predicted, probabilities = self._predict(version, features)
        except (StewardError, ValueError, TypeError, RuntimeError) as exc:
            # A model that cannot run on its own sample loses prediction drift, not the rest.
            logger.warning("v%s could not predict on its reference sample: %s", version.version,
                           exc)  # fmt: skip
            return None, f"the model could not predict on its reference sample: {exc}"
        return profile_table(prediction_table(predicted, probabilities)), None


def _feature_table(version: ModelVersion, sample: pa.Table) -> pa.Table | None:
    if version.signature is None:
        return sample
    names = version.signature.input_names
    if not set(names) <= set(sample.column_names):
        return None
    return sample.select(names)


def prediction_table(predicted: np.ndarray, probabilities: np.ndarray | None) -> pa.Table:
    """Predictions as the prediction log stores them: numbers in ``prediction``, text in
    ``prediction_label``, a binary classifier's positive-class probability in ``score``."""
    columns: dict[str, pa.Array] = {}
    flat = np.asarray(predicted)
    if flat.ndim == 1 and (flat.dtype.kind in "biuf"):
        columns["prediction"] = pa.array(flat.astype(np.float64))
    elif flat.ndim == 1:
        columns["prediction_label"] = pa.array([str(v) for v in flat.tolist()], pa.string())
    if probabilities is not None and np.ndim(probabilities) == 2 and probabilities.shape[1] == 2:
        columns["score"] = pa.array(np.asarray(probabilities[:, 1], dtype=np.float64))
    return pa.table(columns)
