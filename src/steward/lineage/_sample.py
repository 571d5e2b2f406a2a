"""Reference samples: a seeded, bounded Parquet sample of the training data.

Monitoring compares live traffic against it, so it must be small and reproducible: the same
data and seed always give the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from steward.errors import InvalidInput
from steward.lineage._fingerprint import fingerprint

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_MAX_ROWS = 10_000


def reference_sample(
    data: object,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: int = 0,
    columns: Sequence[str] | None = None,
) -> bytes:
    """Parquet bytes of up to ``max_rows`` rows drawn without replacement, seeded.

    ``data`` is a pandas DataFrame, a pyarrow Table or a 2-D numpy array (its columns are
    named ``columns`` or x0, x1, ...).
    """
    if max_rows < 1:
        raise InvalidInput(f"'max_rows' must be at least 1. Got {max_rows}.", field="max_rows")
    # pandas/pyarrow load here, not on `import steward.lineage`.
    from steward.lineage import _tables

    return _tables.sample_parquet(data, max_rows, seed, columns)


def read_reference_sample(content: bytes) -> pd.DataFrame:
    """The sample back as a DataFrame."""
    from steward.lineage import _tables

    return _tables.read_parquet(content)


@dataclass(frozen=True)
class ReferenceSample:
    """A reference sample with what a registry records about it."""

    content: bytes  # Parquet
    fingerprint: str  # of the Parquet bytes
    source_fingerprint: str  # of the full data the sample was drawn from
    max_rows: int
    seed: int

    @classmethod
    def from_data(
        cls,
        data: object,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        seed: int = 0,
        columns: Sequence[str] | None = None,
    ) -> ReferenceSample:
        content = reference_sample(data, max_rows=max_rows, seed=seed, columns=columns)
        return cls(
            content=content,
            fingerprint=fingerprint(content),
            source_fingerprint=fingerprint(data),
            max_rows=max_rows,
            seed=seed,
        )

    def to_pandas(self) -> pd.DataFrame:
        return read_reference_sample(self.content)
