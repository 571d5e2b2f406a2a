"""What a drift comparison found: one result per column and the dataset's verdict.

Pure data. ``steward.stats.drift`` computes a :class:`DriftReport` from a reference (raw values
or a profile) and current values; the monitoring capability stores it per window. The tests,
their defaults and how one is chosen per column are Evidently's (docs/drift.md).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from steward.domain.entities import Entity


class ColumnKind(StrEnum):
    """How a column is compared; inferred from its type as Evidently infers it."""

    NUMERICAL = "numerical"  # floats; integers with more than 10 distinct values
    CATEGORICAL = "categorical"  # text, booleans; integers with at most 10 distinct values
    TEXT = "text"  # text with more distinct values than half its rows: not tested
    DATETIME = "datetime"  # not tested


class DriftMethod(StrEnum):
    KS = "ks"  # two-sample Kolmogorov-Smirnov; p-value
    WASSERSTEIN = "wasserstein"  # first Wasserstein distance / the reference's std; distance
    PSI = "psi"  # population stability index on reference-range bins; distance
    CHISQUARE = "chisquare"  # chi-square goodness of fit of current to reference; p-value
    JENSENSHANNON = "jensenshannon"  # Jensen-Shannon distance (natural log); distance
    Z = "z"  # two-proportion z-test; p-value


# The methods whose score is a p-value: drift when it is small. The others are distances.
P_VALUE_METHODS = frozenset({DriftMethod.KS, DriftMethod.CHISQUARE, DriftMethod.Z})
# Evidently's default thresholds: 0.05 for the p-value tests, 0.1 for the distances.
DEFAULT_THRESHOLDS: dict[DriftMethod, float] = {
    DriftMethod.KS: 0.05,
    DriftMethod.CHISQUARE: 0.05,
    DriftMethod.Z: 0.05,
    DriftMethod.WASSERSTEIN: 0.1,
    DriftMethod.PSI: 0.1,
    DriftMethod.JENSENSHANNON: 0.1,
}
DEFAULT_DRIFT_SHARE = 0.5


class Histogram(Entity):
    """Both sides binned alike, for a report: shares of each side's values per bin.

    Numeric columns: ``edges`` has one more entry than the shares (the first and last bins
    also hold the values beyond them); categorical columns: ``labels`` are the categories.
    """

    labels: list[str]
    edges: list[float] | None = None
    reference: list[float]
    current: list[float]


class ColumnDrift(Entity):
    """One column's test. ``method`` is None when the column was not tested (``note`` says why:
    free text, a datetime, no values on one side); such a column is not counted in the share.

    ``score`` is what is compared with ``threshold``: the p-value for ks / chisquare / z, else
    the distance (equal to ``statistic``). ``exact`` is False when the reference came from a
    profile's quantile sketch; ``error_bound`` then bounds ``|statistic - exact statistic|``
    (with the sketch's 99% confidence).
    """

    column: str
    kind: ColumnKind
    method: DriftMethod | None
    statistic: float | None = None
    p_value: float | None = None
    score: float | None = None
    threshold: float | None = None
    drifted: bool = False
    n_reference: int = 0  # values compared (nulls, NaN and infinities dropped)
    n_current: int = 0
    missing_reference: int = 0  # the values dropped: null, NaN, +-inf
    missing_current: int = 0
    exact: bool = True
    error_bound: float | None = None
    note: str | None = None
    histogram: Histogram | None = None


class DriftReport(Entity):
    """Every column's result, and the dataset's drift: the share of tested columns that
    drifted reaches ``drift_share`` (Evidently's rule, ``share >= drift_share``)."""

    columns: list[ColumnDrift]
    drift_share: float = DEFAULT_DRIFT_SHARE
    n_tested: int
    n_drifted: int
    share_drifted: float
    dataset_drift: bool
    reference_rows: int
    current_rows: int
    reference_from_profile: bool = False
    extra_columns: list[str] = Field(default_factory=list)  # in current only: not compared
    missing_columns: list[str] = Field(default_factory=list)  # in the reference only

    def column(self, name: str) -> ColumnDrift:
        for result in self.columns:
            if result.column == name:
                return result
        raise KeyError(name)

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]
