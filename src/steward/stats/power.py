"""Planning: power, required sample size per arm and minimum detectable effect (MDE).

Two arms of equal size ``n``, a two-sided test at level ``alpha``; effects are relative to the
baseline (``relative_mde=0.05`` is +5%). The power counts both rejection tails, so the numbers
match statsmodels' ``TTestIndPower`` / ``NormalIndPower`` (means) and
``power_proportions_2indep`` (proportions, pooled null variance) to solver precision. Sample
sizes are rounded up. For k treatments corrected with Bonferroni, plan with ``alpha / k``.

- Means, ``method="t"`` (default; the analysis runs Welch's t-test): with ``d = |delta| / sd``,
  ``df = 2n - 2`` and non-centrality ``lam = d * sqrt(n / 2)``,
  ``power = P(T(df, lam) > t_crit) + P(T(df, lam) < -t_crit)``, ``t_crit = t_{1 - alpha/2, df}``
  and ``T`` the non-central t. ``method="z"``: ``Phi(lam - z) + Phi(-lam - z)``.
- Proportions, baseline ``p1``, ``p2 = p1 * (1 + mde)``, ``delta = p2 - p1``:
  ``s1 = sqrt(p1(1-p1) + p2(1-p2))``; under the null ``s0 = s1`` (unpooled test) or
  ``s0 = sqrt(2 pbar (1-pbar))``, ``pbar = (p1 + p2) / 2`` (pooled);
  ``power = Phi((|delta| sqrt(n) - z s0) / s1) + Phi((-|delta| sqrt(n) - z s0) / s1)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

from scipy import optimize, stats

from steward.errors import InvalidInput
from steward.stats._results import check_alpha

MeansMethod = Literal["t", "z"]
_MAX_N = 10**12


def power_means(
    n_per_arm: int,
    baseline_mean: float,
    sd: float,
    relative_mde: float,
    *,
    alpha: float = 0.05,
    method: MeansMethod = "t",
) -> float:
    """Power to detect ``relative_mde`` with ``n_per_arm`` rows in each of two arms."""
    n = _check_n(n_per_arm)
    d = _effect_size(baseline_mean, sd, relative_mde)
    return _means_power(n, d, check_alpha(alpha), _check_method(method))


def sample_size_means(
    baseline_mean: float,
    sd: float,
    relative_mde: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    method: MeansMethod = "t",
) -> int:
    """Rows per arm to detect ``relative_mde`` of ``baseline_mean`` (sd ``sd``) with ``power``."""
    d = _effect_size(baseline_mean, sd, relative_mde)
    alpha, method = check_alpha(alpha), _check_method(method)
    target = _check_power(power, alpha)
    return _solve_n(lambda n: _means_power(n, d, alpha, method), target)


def mde_means(
    n_per_arm: int,
    baseline_mean: float,
    sd: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    method: MeansMethod = "t",
) -> float:
    """The smallest relative effect (> 0) detected with ``power`` at ``n_per_arm`` per arm."""
    n = _check_n(n_per_arm)
    _effect_size(baseline_mean, sd, 1.0)
    alpha, method = check_alpha(alpha), _check_method(method)
    target = _check_power(power, alpha)
    d = _solve_effect(lambda d: _means_power(n, d, alpha, method), target)
    return d * sd / abs(baseline_mean)


def power_proportions(
    n_per_arm: int,
    baseline_rate: float,
    relative_mde: float,
    *,
    alpha: float = 0.05,
    pooled: bool = False,
) -> float:
    """Power of the two-proportion z-test for a ``relative_mde`` change of ``baseline_rate``."""
    n = _check_n(n_per_arm)
    p1, p2 = _rates(baseline_rate, relative_mde)
    return _proportions_power(n, p1, p2, check_alpha(alpha), pooled)


def sample_size_proportions(
    baseline_rate: float,
    relative_mde: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    pooled: bool = False,
) -> int:
    """Rows per arm to detect a ``relative_mde`` change of ``baseline_rate`` with ``power``."""
    p1, p2 = _rates(baseline_rate, relative_mde)
    alpha = check_alpha(alpha)
    target = _check_power(power, alpha)
    return _solve_n(lambda n: _proportions_power(n, p1, p2, alpha, pooled), target)


def mde_proportions(
    n_per_arm: int,
    baseline_rate: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    pooled: bool = False,
    decrease: bool = False,
) -> float:
    """The smallest relative change detected with ``power``: an increase, or with ``decrease``
    a fall (returned negative). Raises when even a rate of 1 (or 0) would not be detected."""
    n = _check_n(n_per_arm)
    p1, _ = _rates(baseline_rate, 0.0)
    alpha = check_alpha(alpha)
    target = _check_power(power, alpha)
    bound = -1.0 if decrease else 1.0 / p1 - 1.0

    def gap(mde: float) -> float:
        return _proportions_power(n, p1, p1 * (1 + mde), alpha, pooled) - target

    if gap(bound) < 0:
        raise InvalidInput(
            f"With {n:,} rows per arm no {'fall' if decrease else 'rise'} of the rate "
            f"{baseline_rate} is detected with power {power}: add rows.",
            field="n_per_arm",
        )
    low, high = sorted((bound * 1e-12, bound))
    return float(optimize.brentq(gap, low, high, xtol=1e-14, rtol=1e-12))


# -- power functions ------------------------------------------------------------------------


def _means_power(n: float, d: float, alpha: float, method: MeansMethod) -> float:
    lam = d * math.sqrt(n / 2.0)
    if method == "z":
        crit = float(stats.norm.isf(alpha / 2.0))
        return float(stats.norm.cdf(lam - crit) + stats.norm.cdf(-lam - crit))
    df = 2.0 * n - 2.0
    crit = float(stats.t.isf(alpha / 2.0, df))
    near, far = float(stats.nct.sf(crit, df, lam)), float(stats.nct.cdf(-crit, df, lam))
    # scipy's non-central t returns NaN deep in a tail (e.g. df=1998, lam=20); there the
    # normal tail is as good an answer (both are below 1e-80).
    near = near if math.isfinite(near) else float(stats.norm.sf(crit - lam))
    far = far if math.isfinite(far) else float(stats.norm.cdf(-crit - lam))
    return near + far


def _proportions_power(n: float, p1: float, p2: float, alpha: float, pooled: bool) -> float:
    sigma_alt = math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    p_bar = (p1 + p2) / 2.0
    sigma_null = math.sqrt(2.0 * p_bar * (1 - p_bar)) if pooled else sigma_alt
    shift = abs(p2 - p1) * math.sqrt(n)
    crit = float(stats.norm.isf(alpha / 2.0))
    if sigma_alt == 0.0:  # p1 = 0 or 1 and p2 likewise: the difference is certain
        return 1.0 if shift > 0 else alpha
    return float(
        stats.norm.cdf((shift - crit * sigma_null) / sigma_alt)
        + stats.norm.cdf((-shift - crit * sigma_null) / sigma_alt)
    )


# -- solvers ---------------------------------------------------------------------------------


def _solve_n(power_at: Callable[[float], float], target: float) -> int:
    """The smallest whole n >= 2 whose power reaches ``target`` (power grows with n)."""
    low = 2.0
    if power_at(low) >= target:
        return 2
    high = 4.0
    while power_at(high) < target:
        low, high = high, high * 4.0
        if high > _MAX_N:
            raise InvalidInput(
                "The effect is too small to detect with any practical sample size "
                f"(over {_MAX_N:,} rows per arm). Plan for a larger effect.",
                field="relative_mde",
            )
    n = float(optimize.brentq(lambda n: power_at(n) - target, low, high, xtol=1e-9, rtol=1e-13))
    whole = math.ceil(n - 1e-9)
    return whole if power_at(whole) >= target else whole + 1


def _solve_effect(power_at: Callable[[float], float], target: float) -> float:
    high = 1.0
    while power_at(high) < target:
        high *= 4.0
    return float(optimize.brentq(lambda d: power_at(d) - target, 0.0, high, xtol=1e-14, rtol=1e-12))


# -- checks ----------------------------------------------------------------------------------


def _effect_size(baseline_mean: float, sd: float, relative_mde: float) -> float:
    _check_number(baseline_mean, "baseline_mean")
    if baseline_mean == 0:
        raise InvalidInput(
            "A relative effect of a baseline mean of 0 is undefined: give the baseline's "
            "non-zero mean.",
            field="baseline_mean",
        )
    if _check_number(sd, "sd") <= 0:
        raise InvalidInput(f"'sd' must be positive. Got {sd}.", field="sd")
    if _check_number(relative_mde, "relative_mde") == 0:
        raise InvalidInput("'relative_mde' must be non-zero (e.g. 0.05).", field="relative_mde")
    return abs(baseline_mean * relative_mde) / sd


def _rates(baseline_rate: float, relative_mde: float) -> tuple[float, float]:
    p1 = _check_number(baseline_rate, "baseline_rate")
    if not 0.0 < p1 < 1.0:
        raise InvalidInput(
            f"'baseline_rate' must be between 0 and 1 (exclusive). Got {baseline_rate}.",
            field="baseline_rate",
        )
    mde = _check_number(relative_mde, "relative_mde")
    p2 = p1 * (1.0 + mde)
    if relative_mde and not 0.0 <= p2 <= 1.0:
        raise InvalidInput(
            f"'relative_mde' {relative_mde} takes the rate {baseline_rate} to {p2}, outside "
            f"[0, 1]: it must lie between -1 and {1 / p1 - 1:.4g}.",
            field="relative_mde",
        )
    return p1, p2


def _check_number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"'{field}' must be a finite number. Got {value!r}.", field=field)
    return float(value)


def _check_power(power: Any, alpha: float) -> float:
    if not alpha < _check_number(power, "power") < 1:
        raise InvalidInput(
            f"'power' must be between alpha ({alpha}) and 1 (e.g. 0.8). Got {power}.",
            field="power",
        )
    return float(power)


def _check_n(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise InvalidInput(
            f"'n_per_arm' must be an integer of at least 2. Got {n!r}.", field="n_per_arm"
        )
    return n


def _check_method(method: Any) -> MeansMethod:
    if method not in ("t", "z"):
        raise InvalidInput(f"'method' must be 't' or 'z'. Got {method!r}.", field="method")
    return "t" if method == "t" else "z"
