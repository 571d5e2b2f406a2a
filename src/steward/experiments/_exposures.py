"""Who was in the experiment and in which variant: the exposed units, assigned by the hash.

A unit is exposed when the deployment answered one of its requests during the experiment (the
prediction log; shadow copies are not exposures). The unit is the request's ``unit_id``, or the
request itself when it carried none (the gateway then hashes the request id).

A unit's variant is the version that served it, as the log says, so the analysis judges what
happened: if the split was changed during the experiment, the sample-ratio check sees it. Where
the log cannot say (every request of the unit was answered by a fallback, which logs another
version), the variant is recomputed with the gateway's own hash
(``steward.domain.assignment``). Units whose logged version disagrees with the hash of the
design are counted: the check that the split ran as designed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from steward.domain.assignment import split_boundaries
from steward.domain.experiments import Experiment
from steward.store import unit_keys
from steward.store.prediction_log import read_predictions

# the prediction-log columns the analysis reads
EXPOSURE_COLUMNS = (
    "unit_id", unit_keys.HI, unit_keys.LO, "request_id", "version", "timestamp", "latency_ms",
    "fallback", "error", "prediction", "score", "shadow",
)  # fmt: skip
FAILED_FALLBACKS = ("error", "timeout")


@dataclass(frozen=True)
class Design:
    """Where each variant's units fall in [0, 1): ``versions[i]`` takes the units whose bucket
    is below ``upper[i]`` and not below the one before."""

    salt: str
    versions: tuple[int, ...]
    upper: tuple[float, ...]

    @classmethod
    def of(cls, experiment: Experiment) -> Design:
        weights = experiment.weights or {v: 1.0 for v in experiment.variants}
        salt = experiment.salt or experiment.deployment
        if salt.startswith("canary:"):  # the canary takes [0, share), the champion the rest
            canary = int(salt.removeprefix("canary:v"))
            share = weights[canary] / sum(weights.values())
            champion = next(v for v in experiment.variants if v != canary)
            return cls(salt, (canary, champion), (share, 1.0))
        versions, bounds = split_boundaries(weights)
        return cls(salt, versions, bounds)

    def weight(self, version: int) -> float:
        i = self.versions.index(version)
        return self.upper[i] - (self.upper[i - 1] if i else 0.0)


@dataclass(frozen=True)
class Exposures:
    """The exposed units and their requests.

    ``units`` are the distinct unit ids (a request's id where it carried none) and ``keys``
    their 128-bit keys (``unit_keys``: hi, lo); ``variant[i]`` is the version unit ``i`` is
    assigned to. ``requests`` is the log's rows with ``unit`` (an index into ``units``) added,
    for the metrics computed from the log (latency, errors, predictions) and for outcomes keyed
    by request id.
    """

    units: pa.Array
    variant: np.ndarray
    requests: pa.Table
    mismatched: int  # of the units checked, those served another version than the hash gives
    checked: int = 0  # units whose served version was checked against the design's hash
    keys: tuple[pa.Array, pa.Array] | None = None  # None: made from ``units`` when needed

    def unit_keys(self) -> tuple[pa.Array, pa.Array]:
        return self.keys if self.keys is not None else unit_keys.unit_keys(self.units)


def read_exposures(root: str, experiment: Experiment, start: datetime, end: datetime) -> Exposures:
    log = read_predictions(root, experiment.deployment, start, end, EXPOSURE_COLUMNS,
                           ordered=False)  # fmt: skip
    log = log.filter(pc.invert(pc.fill_null(log["shadow"], False)))
    key = pc.coalesce(log["unit_id"], log["request_id"]).combine_chunks()
    encoded = pc.dictionary_encode(key)
    units = encoded.dictionary
    unit_of_row = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    served = _served(log, unit_of_row, len(units), experiment.variants)
    # the hash for the units the log cannot place, and for a seeded sample of the others: the
    # check of the design needs a share, not every unit (sha256 costs ~0.5 us a unit)
    checked = _checked(served)
    hashed = np.zeros(len(units), dtype=np.int64)
    hashed[checked] = assign(Design.of(experiment), units.take(pa.array(checked)))
    variant = np.where(served > 0, served, hashed)
    routed = checked[served[checked] > 0]
    mismatched = int(np.count_nonzero(served[routed] != hashed[routed]))
    requests = log.append_column("unit", pa.array(unit_of_row))
    keys = _keys(log, unit_of_row, units)
    return Exposures(units, variant, requests, mismatched, int(routed.size), keys)


def _keys(log: pa.Table, unit_of_row: np.ndarray, units: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Each unit's key, as the log wrote it beside the unit id; hashed here for the units the
    log has none for (keyed by request id, or logged before the key existed)."""
    hi, lo = np.zeros(len(units), np.uint64), np.zeros(len(units), np.uint64)
    known = np.zeros(len(units), dtype=bool)
    logged = pc.is_valid(log[unit_keys.HI]).to_numpy(zero_copy_only=False)
    if logged.any():
        # null keys filled first: a uint64 column with nulls would come back as float64
        rows = np.flatnonzero(logged)
        row_unit = unit_of_row[rows]
        hi[row_unit] = pc.fill_null(log[unit_keys.HI], 0).to_numpy()[rows]
        lo[row_unit] = pc.fill_null(log[unit_keys.LO], 0).to_numpy()[rows]
        known[row_unit] = True
    missing = np.flatnonzero(~known)
    if missing.size:
        found_hi, found_lo = unit_keys.unit_keys(units.take(pa.array(missing)))
        hi[missing], lo[missing] = found_hi.to_numpy(), found_lo.to_numpy()
    return pa.array(hi), pa.array(lo)


def assign(design: Design, units: pa.Array) -> np.ndarray:
    """Each unit's version, by the gateway's hash: ``bucket(salt, unit)`` in [0, 1) falls in
    one variant's slice. Vectorized but for the hash itself (sha256 per unit, ~0.5 µs)."""
    points = buckets(design.salt, units)
    index = np.searchsorted(np.asarray(design.upper), points, side="right")
    index = np.minimum(index, len(design.versions) - 1)  # bucket < 1 always; belt and braces
    return np.asarray(design.versions, dtype=np.int64)[index]


def buckets(salt: str, units: pa.Array) -> np.ndarray:
    """``steward.domain.assignment.bucket`` for many units at once: the same numbers."""
    prefix = f"{salt}:"
    digests = b"".join(
        hashlib.sha256((prefix + unit).encode()).digest()[:8] for unit in units.to_pylist()
    )
    top = np.frombuffer(digests, dtype=">u8").astype(np.uint64) >> np.uint64(11)
    return top.astype(np.float64) / float(2**53)


CHECK_SAMPLE = 100_000  # units whose served version is checked against the hash, at most


def _checked(served: np.ndarray) -> np.ndarray:
    """The units to hash: every unit no routed answer placed, and up to CHECK_SAMPLE of the
    others (all of them below that), drawn with a fixed seed."""
    unplaced = np.flatnonzero(served == 0)
    placed = np.flatnonzero(served > 0)
    if placed.size > CHECK_SAMPLE:
        placed = np.sort(np.random.default_rng(0).choice(placed, CHECK_SAMPLE, replace=False))
    return np.concatenate([unplaced, placed])


def _served(log: pa.Table, unit_of_row: np.ndarray, units: int, variants: list[int]) -> np.ndarray:
    """Each unit's version from its requests the routed version answered (no fallback), 0
    where none did; a version outside the experiment's variants counts as none."""
    version = log["version"].to_numpy(zero_copy_only=False).astype(np.int64)
    routed = pc.is_null(log["fallback"]).to_numpy(zero_copy_only=False)
    routed &= np.isin(version, variants)
    served = np.zeros(units, dtype=np.int64)
    served[unit_of_row[routed]] = version[routed]
    return served


def request_failed(requests: pa.Table) -> np.ndarray:
    """1.0 where the routed model failed the request (a fallback answered, or nothing did)."""
    fallback = requests["fallback"]
    failed_fallback = pc.fill_null(pc.is_in(fallback, pa.array(FAILED_FALLBACKS)), False)
    failed_fallback = failed_fallback.to_numpy(zero_copy_only=False)
    unanswered = (
        pc.and_(pc.is_null(fallback), pc.is_valid(requests["error"]))
        .to_numpy(zero_copy_only=False)
    )  # fmt: skip
    failed: np.ndarray = np.asarray(failed_fallback, dtype=bool) | np.asarray(unanswered, bool)
    return failed.astype(np.float64)
