"""Vectorised bootstrap: resampled counts over compact cells or row chunks, percentile intervals.

A bootstrap resample draws the n rows with replacement. Nothing here loops over resamples:

- **Cells.** When a statistic depends on the rows only through which cell each row falls in
  (confusion-matrix cells, score bins per class), counting the resampled rows by cell is one
  multinomial draw over the cells with probabilities ``count / n``; ``resample_cells`` draws all
  resamples at once, exactly.
- **Chunks.** When a statistic needs several per-row quantities jointly (regression sums,
  multiclass probability vectors), the rows are split at random into at most ``MAX_CHUNKS``
  equal chunks and whole chunks are resampled (``ChunkResamples``): a ``(resamples, chunks)``
  weight matrix times the per-chunk sums. With ``n <= MAX_CHUNKS`` every chunk is one row and
  this *is* the row bootstrap; above, chunks of a random partition are exchangeable units, so
  the resampled sums have the right variance in expectation (estimated from ``MAX_CHUNKS - 1``
  degrees of freedom).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse

from steward.domain.evaluation import Estimate

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

MAX_CHUNKS = 2048
# Below this share of resamples where the metric is defined, an interval would describe a
# different population than the point estimate (e.g. a tiny group that a resample misses).
_MIN_DEFINED_SHARE = 0.5
# Above this share of filled (chunk, cell) pairs a dense BLAS product beats a sparse one.
_DENSE_SHARE = 0.05
# Bounds the (resamples x chunks) random integers drawn at once.
_DRAW_BATCH = 4_000_000


@dataclass(frozen=True)
class Replicated:
    """A metric's exact value and its bootstrap replicates (NaN where undefined in a resample)."""

    value: float | None
    replicates: FloatArray | None = None
    note: str | None = None


def bincount(keys: IntArray, weights: FloatArray | None, size: int) -> FloatArray:
    """Sum of ``weights`` (or count of rows) per key in ``range(size)``, as float64."""
    return np.bincount(keys, weights, minlength=size).astype(np.float64, copy=False)


def finite_or_none(value: float) -> float | None:
    """A float for the report: NaN (undefined) becomes None."""
    return float(value) if np.isfinite(value) else None


def rng_for(seed: int, *key: str) -> np.random.Generator:
    """A generator for one population and part (e.g. ``("groups", "sex", "F", "labels")``).

    Seeded from the user's seed and the key, so a population's intervals do not depend on which
    other groups or metrics were computed in the same call.
    """
    words = [zlib.crc32(part.encode()) for part in key]
    return np.random.default_rng(np.random.SeedSequence([seed, *words]))


def resample_cells(rng: np.random.Generator, counts: FloatArray, resamples: int) -> FloatArray:
    """Cell counts in each bootstrap resample, shape ``(resamples, *counts.shape)``.

    Exact: resampling the rows with replacement and counting them by cell is a multinomial draw
    of n over the cells. Empty cells are left out of the draw (they stay empty).
    """
    flat = np.asarray(counts, dtype=np.float64).ravel()
    total = int(flat.sum())
    out = np.zeros((resamples, flat.size))
    filled = flat > 0
    if total > 0:
        out[:, filled] = rng.multinomial(total, flat[filled] / total, size=resamples)
    return out.reshape((resamples, *np.shape(counts)))


@dataclass(frozen=True)
class ChunkResamples:
    """Rows split into chunks, and how many times each chunk is drawn in each resample.

    Rows are their own chunks up to ``MAX_CHUNKS``; above, a random equal partition. Each
    resample is a multinomial(chunks, uniform) draw, made by counting ``chunks`` uniform indices
    (several times faster than ``Generator.multinomial`` here).
    """

    ids: IntArray  # each row's chunk
    # (chunks, resamples): the layout sparse products need; dense ones use the transposed view
    weights_t: FloatArray

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int, resamples: int) -> ChunkResamples:
        chunks = min(n, MAX_CHUNKS)
        if n <= MAX_CHUNKS:
            ids = np.arange(n, dtype=np.intp)
        else:
            ids = np.empty(n, dtype=np.intp)
            ids[rng.permutation(n)] = np.arange(n, dtype=np.intp) % chunks
        weights_t = np.empty((chunks, resamples))
        step = max(1, _DRAW_BATCH // chunks)
        for start in range(0, resamples, step):  # batches of resamples bound memory
            rows = min(step, resamples - start)
            picks = rng.integers(0, chunks, size=(rows, chunks), dtype=np.int64) * rows
            picks += np.arange(rows)[:, None]  # flat index chunk * rows + resample
            drawn = np.bincount(picks.ravel(), minlength=rows * chunks)
            weights_t[:, start : start + rows] = drawn.reshape(chunks, rows)
        return cls(ids, weights_t)

    @property
    def weights(self) -> FloatArray:
        """(resamples, chunks): how many times each chunk is drawn in each resample."""
        return self.weights_t.T

    @property
    def chunks(self) -> int:
        return int(self.weights_t.shape[0])

    def totals(self, values: FloatArray | None = None) -> FloatArray:
        """Per resample, the sum of ``values`` over the drawn rows (the row count if None)."""
        return self.weights @ bincount(self.ids, values, self.chunks)

    def cell_totals(
        self,
        cells: IntArray,
        n_cells: int,
        values: FloatArray | None = None,
        order: IntArray | None = None,
    ) -> FloatArray:
        """Per resample and cell, the sum of ``values`` (or rows): ``(resamples, n_cells)``.

        ``cells`` (and ``values``) may list the rows in another ``order`` (row indices). A
        sparse chunk x cell table when rows are few against chunks x cells, so the product
        costs resamples x rows; a dense BLAS product otherwise.
        """
        ids = self.ids if order is None else self.ids[order]
        if ids.size >= _DENSE_SHARE * self.chunks * n_cells:
            table = bincount(ids * n_cells + cells, values, self.chunks * n_cells)
            return self.weights @ table.reshape(self.chunks, n_cells)
        data = np.ones(ids.size) if values is None else values
        table_t = sparse.csr_array((data, (cells, ids)), shape=(n_cells, self.chunks))
        return np.asarray(table_t @ self.weights_t, dtype=np.float64).T


def estimate(metric: Replicated, confidence: float) -> Estimate:
    """The percentile interval of the replicates around the exact value.

    Replicates where the metric is undefined are left out (and said so in the note); with fewer
    than half defined there is no interval. The interval is widened to include the point
    estimate, which a biased statistic such as ECE near 0 can otherwise fall outside of.
    """
    if metric.value is None:
        return Estimate(value=None, note=metric.note)
    reps = metric.replicates
    if reps is None or reps.size == 0:
        return Estimate(value=metric.value, note=metric.note)
    defined = reps[np.isfinite(reps)]
    notes = [metric.note] if metric.note else []
    if defined.size < _MIN_DEFINED_SHARE * reps.size:
        notes.append(
            f"no interval: the metric is undefined in {reps.size - defined.size} of "
            f"{reps.size} resamples"
        )
        return Estimate(value=metric.value, note="; ".join(notes))
    if defined.size < reps.size:
        notes.append(
            f"interval from the {defined.size} of {reps.size} resamples where the metric is defined"
        )
    alpha = 1.0 - confidence
    lower, upper = np.quantile(defined, [alpha / 2, 1 - alpha / 2])
    return Estimate(
        value=metric.value,
        lower=min(float(lower), metric.value),
        upper=max(float(upper), metric.value),
        note="; ".join(notes) or None,
    )
