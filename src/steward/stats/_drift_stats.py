"""The drift statistics, on prepared samples: each matches its scipy / Evidently reference.

The two numeric statistics that need the whole samples are written here rather than called
from scipy: ``scipy.stats.ks_2samp`` and ``wasserstein_distance`` each re-sort both samples and
run two ``searchsorted`` passes over their concatenation, several times the work once the
samples are sorted (and every column's samples are sorted once, for all its uses), and
``ks_2samp`` takes no weighted reference (a profile's sketch). Kolmogorov-Smirnov's D comes from
one merge of the two sorted samples, which reproduces scipy's arithmetic term for term (the same
empirical CDF differences); the Wasserstein distance from the quantile functions
(``_wasserstein``), the same sum in another order. The small final steps (chi-square and
Kolmogorov distribution tails, the Jensen-Shannon sum) are scipy's own functions.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import stats
from scipy.spatial import distance

from steward.stats import _wasserstein
from steward.stats._samples import OTHER, CategoricalSample, FloatArray, NumericSample, scale_for

# scipy's ks_2samp is exact (lattice-path counting) up to this sample size, asymptotic above.
SCIPY_EXACT_KS_N = 10_000
# Evidently's floor on the reference std that normalises the Wasserstein distance.
WASSERSTEIN_MIN_NORM = 0.001
# Evidently bins a numeric column (Sturges' rule) for PSI / Jensen-Shannon above this many
# distinct reference values; at or below, each value is its own bin.
BINNED_ABOVE_DISTINCT = 20


# -- numeric: one merge gives both CDFs ---------------------------------------------------------
def _cdf_steps(ref: NumericSample, cur: NumericSample) -> tuple[FloatArray, FloatArray]:
    """The sorted union ``z`` of both samples and ``F_ref - F_cur`` on each step
    ``[z[k], z[k+1])``.

    The shorter sample is placed into the longer one by binary search (ties: shorter first).
    Inside a run of equal values the CDFs are read before the run ends, but those steps have
    zero width (no area) and are skipped by the KS maximum, so the tie order does not matter.
    """
    small, big, ref_is_small = (ref, cur, True) if ref.values.size <= cur.values.size else (
        cur, ref, False)  # fmt: skip
    pos = np.searchsorted(big.values, small.values, side="left")
    pos += np.arange(small.values.size)
    total = big.values.size + small.values.size
    from_small = np.zeros(total, dtype=bool)
    from_small[pos] = True
    z = np.empty(total, dtype=np.float64)
    z[pos] = small.values
    z[~from_small] = big.values
    f_small = _cdf_at(from_small, pos, small)
    f_big = _cdf_at(~from_small, None, big)
    diff = np.subtract(f_small, f_big, out=f_small) if ref_is_small else np.subtract(
        f_big, f_small, out=f_big)  # fmt: skip
    return z, diff


def _cdf_at(mask: Any, pos: Any, sample: NumericSample) -> FloatArray:
    """The sample's empirical CDF after each position of the merged order."""
    if sample.weights is None:
        # integer counts divided once, as scipy's searchsorted(...) / n does
        return np.cumsum(mask, dtype=np.int64) / sample.values.size
    weights = np.zeros(mask.size, dtype=np.float64)
    if pos is None:
        weights[mask] = sample.weights
    else:
        weights[pos] = sample.weights
    cdf = np.cumsum(weights, out=weights)
    cdf /= cdf[-1]
    return cdf


def _scaled(sample: NumericSample, scale: float) -> NumericSample:
    if scale == 1.0:
        return sample
    return NumericSample(values=sample.values * scale, n=sample.n, weights=sample.weights,
                         integer=sample.integer, exact=sample.exact)  # fmt: skip


def _peak(ref: NumericSample, cur: NumericSample) -> float:
    ends = [abs(ref.low()), abs(ref.high()), abs(cur.low()), abs(cur.high())]
    return max(ends)


def ks_statistic(ref: NumericSample, cur: NumericSample) -> float:
    """Two-sided D = max |F_ref - F_cur|, read at the end of each run of equal values."""
    z, diff = _cdf_steps(ref, cur)
    ends = np.empty(z.size, dtype=bool)
    np.not_equal(z[1:], z[:-1], out=ends[:-1])
    ends[-1] = True
    return float(np.max(np.abs(diff[ends])))


def ks_test(ref: NumericSample, cur: NumericSample) -> tuple[float, float]:
    """(D, p-value) as ``scipy.stats.ks_2samp(ref, cur)`` (``method="auto"``) gives them.

    Up to ``SCIPY_EXACT_KS_N`` values per side scipy's exact lattice-path p-value is the
    reference, and recomputing it by hand would only add risk: those samples are small, so they
    go to scipy whole. Above, D comes from the merge and the p-value from scipy's asymptotic
    branch, ``kstwo.sf(D, round(n1 n2 / (n1 + n2)))``. A sketched reference (inexact) always
    takes the asymptotic branch, with its ``n``.
    """
    if ref.exact and max(ref.n, cur.n) <= SCIPY_EXACT_KS_N:
        with warnings.catch_warnings():
            # "Exact calculation unsuccessful. Switching to method=asymp": scipy's own fallback
            warnings.simplefilter("ignore", RuntimeWarning)
            result = stats.ks_2samp(ref.expanded(), cur.expanded(), method="auto")
        return float(result.statistic), float(result.pvalue)
    d = ks_statistic(ref, cur)
    m, n = float(max(ref.n, cur.n)), float(min(ref.n, cur.n))
    en = float(np.round(m * n / (m + n)))
    p = float(np.clip(stats.kstwo.sf(d, en), 0.0, 1.0))
    return d, p


def _area(ref: NumericSample, cur: NumericSample, scale: float) -> float:
    """W1 in units scaled by ``scale``: by quantile functions (``_wasserstein``) when the
    weights' common scale fits in int64, else from the merge."""
    ref_s, cur_s = _scaled(ref, scale), _scaled(cur, scale)
    if _wasserstein.fits(ref_s, cur_s):
        return _wasserstein.area(ref_s, cur_s)
    z, diff = _cdf_steps(ref_s, cur_s)
    gaps = np.diff(z)
    np.abs(diff[:-1], out=diff[:-1])
    return float(np.sum(np.multiply(diff[:-1], gaps, out=gaps)))


def wasserstein(ref: NumericSample, cur: NumericSample) -> float:
    """The first Wasserstein distance, as ``scipy.stats.wasserstein_distance`` (with the
    reference's weights as ``u_weights``)."""
    scale = scale_for(_peak(ref, cur))
    return _area(ref, cur, scale) / scale


def wasserstein_normed(ref: NumericSample, cur: NumericSample) -> float:
    """Evidently's ``wasserstein``: the distance divided by ``max(std(ref), 0.001)``."""
    scale = scale_for(_peak(ref, cur))
    # in scaled units, so that neither the distance nor the std overflows
    norm = max(ref.population_std() * scale, WASSERSTEIN_MIN_NORM * scale)
    return _area(ref, cur, scale) / norm


def wasserstein_error_bound(ref: NumericSample, cur: NumericSample) -> float:
    """Bound on the normed distance's error when the reference is a sketch: the sketch's CDF is
    within ``rank_error`` of the true one everywhere, so the area between them is at most
    ``rank_error * (range of both samples)``."""
    if ref.exact:
        return 0.0
    span = max(ref.high(), cur.high()) - min(ref.low(), cur.low())
    return ref.rank_error * span / max(ref.population_std(), WASSERSTEIN_MIN_NORM)


# -- binning (PSI, Jensen-Shannon) -------------------------------------------------------------
def sturges_edges(ref: NumericSample, cur: NumericSample) -> FloatArray:
    """``np.histogram_bin_edges(concat(ref, cur), "sturges")`` without the concatenation."""
    first = min(ref.low(), cur.low())
    last = max(ref.high(), cur.high())
    size = ref.n + cur.n
    scale = scale_for(max(abs(first), abs(last)))
    lo, hi = first * scale, last * scale
    if lo == hi:  # numpy widens an empty range by 0.5 on each side
        lo, hi = lo - 0.5 * scale, hi + 0.5 * scale
    width = (last * scale - first * scale) / (math.log2(size) + 1.0)
    if ref.integer and cur.integer and width < 1.0 * scale:
        width = 1.0 * scale  # numpy: integer data never gets bins narrower than 1
    bins = math.ceil((hi - lo) / width) if width else 1
    return np.linspace(lo, hi, bins + 1) / scale


def _binned_counts(sample: NumericSample, edges: FloatArray) -> FloatArray:
    """``np.histogram(sample, edges)[0]``: [e_i, e_i+1) and the last bin closed."""
    cut = np.concatenate((
        np.searchsorted(sample.values, edges[:-1], side="left"),
        np.searchsorted(sample.values, edges[-1:], side="right"),
    ))  # fmt: skip
    if sample.weights is None:
        return np.diff(cut).astype(np.float64)
    cumulative = np.concatenate(([0.0], np.cumsum(sample.weights)))
    return np.diff(cumulative[cut])


def numeric_shares(ref: NumericSample, cur: NumericSample) -> tuple[FloatArray, FloatArray]:
    """Evidently's ``get_binned_data`` for a numeric column: Sturges bins over both samples when
    the reference has more than 20 distinct values, else one bin per value seen on either side;
    shares of each side's count."""
    if ref.count_distinct() > BINNED_ABOVE_DISTINCT:
        edges = sturges_edges(ref, cur)
        return _binned_counts(ref, edges) / ref.n, _binned_counts(cur, edges) / cur.n
    ref_keys, ref_counts = ref.value_counts()
    cur_keys, cur_counts = cur.value_counts()
    keys = np.union1d(ref_keys, cur_keys)
    ref_full = np.zeros(keys.size)
    cur_full = np.zeros(keys.size)
    ref_full[np.searchsorted(keys, ref_keys)] = ref_counts
    cur_full[np.searchsorted(keys, cur_keys)] = cur_counts
    return ref_full / ref.n, cur_full / cur.n


# -- categorical --------------------------------------------------------------------------------
def aligned_counts(
    ref: CategoricalSample, cur: CategoricalSample
) -> tuple[list[Any], FloatArray, FloatArray]:
    """Both sides' counts over the union of categories seen (zero where a side has none).

    When the reference profile lumped its rare categories into ``OTHER``, a current category
    the reference does not list is counted there too: it may be one of the lumped ones.
    """
    index = {key: i for i, key in enumerate(ref.keys)}
    keys = list(ref.keys)
    ref_counts = [float(c) for c in ref.counts]
    cur_counts = [0.0] * len(keys)
    lumped = index.get(OTHER) if not ref.exact else None
    for key, count in zip(cur.keys, cur.counts.tolist(), strict=True):
        slot = index.get(key, lumped)
        if slot is None:
            slot = index[key] = len(keys)
            keys.append(key)
            ref_counts.append(0.0)
            cur_counts.append(0.0)
        cur_counts[slot] += count
    ref_arr, cur_arr = np.asarray(ref_counts), np.asarray(cur_counts)
    keep = (ref_arr > 0) | (cur_arr > 0)
    if not bool(keep.all()):
        keys = [k for k, kept in zip(keys, keep.tolist(), strict=True) if kept]
        ref_arr, cur_arr = ref_arr[keep], cur_arr[keep]
    return keys, ref_arr, cur_arr


def chisquare_test(ref_counts: FloatArray, cur_counts: FloatArray) -> tuple[float, float]:
    """Evidently's ``chisquare``: ``scipy.stats.chisquare(f_obs=current, f_exp=reference
    counts scaled to the current total)``.

    Defined answers where scipy has none: one category on both sides is (0, 1.0) (scipy gives
    a NaN p-value with 0 degrees of freedom); a category absent from the reference but present
    now has an infinite term, so (inf, 0.0) (scipy: the same, with a division warning).
    """
    if ref_counts.size <= 1:
        return 0.0, 1.0
    expected = ref_counts * (cur_counts.sum() / ref_counts.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = (cur_counts - expected) ** 2 / expected
    statistic = float(terms.sum())
    p_value = float(stats.chi2.sf(statistic, ref_counts.size - 1))
    return statistic, p_value


def z_test(keys: list[Any], ref_counts: FloatArray, cur_counts: FloatArray) -> tuple[float, float]:
    """Evidently's ``z``: two-proportion z-test on "the first category (sorted) vs the rest".

    The p-value is ``2 * norm.sf(|z|)``, which equals Evidently's ``2 * (1 - norm.cdf(|z|))``
    except that it does not round to 0 below 1e-16. One value on both sides is (0, 1.0).
    """
    if len(keys) <= 1:
        return 0.0, 1.0
    first = min(range(len(keys)), key=lambda i: _sort_key(keys[i]))
    n1, n2 = float(ref_counts.sum()), float(cur_counts.sum())
    p1 = (n1 - ref_counts[first]) / n1
    p2 = (n2 - cur_counts[first]) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    z = (p1 - p2) / spread
    return float(z), float(min(1.0, 2.0 * stats.norm.sf(abs(z))))


def _sort_key(key: Any) -> tuple[str, Any]:
    # Evidently sorts the keys with Python's sorted(); group by type so mixed keys compare
    return (type(key).__name__, key)


def jensenshannon(ref_shares: FloatArray, cur_shares: FloatArray) -> float:
    """``scipy.spatial.distance.jensenshannon`` (natural log), 0.0 for identical inputs."""
    return float(distance.jensenshannon(ref_shares, cur_shares))


def psi(ref_shares: FloatArray, cur_shares: FloatArray) -> float:
    """Evidently's ``psi``: empty bins get a small share first (its ``feel_zeroes``), then
    ``sum((ref - cur) * ln(ref / cur))``."""
    ref_filled = _fill_zeros(ref_shares)
    cur_filled = _fill_zeros(cur_shares)
    return float(np.sum((ref_filled - cur_filled) * np.log(ref_filled / cur_filled)))


def _fill_zeros(shares: FloatArray) -> FloatArray:
    out = shares.astype(np.float64, copy=True)
    nonzero = out[out != 0]
    if nonzero.size == 0:
        return out
    smallest = float(nonzero.min())
    out[out == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return out


def category_shares(
    ref: CategoricalSample, cur: CategoricalSample
) -> tuple[list[Any], FloatArray, FloatArray]:
    keys, ref_counts, cur_counts = aligned_counts(ref, cur)
    return keys, ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()


__all__ = [
    "aligned_counts",
    "category_shares",
    "chisquare_test",
    "jensenshannon",
    "ks_statistic",
    "ks_test",
    "numeric_shares",
    "psi",
    "sturges_edges",
    "wasserstein",
    "wasserstein_normed",
    "z_test",
]
