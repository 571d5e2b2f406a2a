"""Sparklines: a series of numbers as one line of block characters, for the terminal.

    sparkline([1, 2, None, 8])   # "▁▂·█"

The lowest value is ``▁`` and the highest ``█``, the rest scaled linearly between them; a
missing value (None, NaN, infinity) is ``·``; a series that never moves sits in the middle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

BLOCKS = "▁▂▃▄▅▆▇█"
MISSING = "·"
_FLAT = BLOCKS[len(BLOCKS) // 2 - 1]  # ▄: neither low nor high


def sparkline(values: Sequence[float | None]) -> str:
    """One character per value, in the order given (oldest first, by convention)."""
    known = [v for v in values if v is not None and math.isfinite(v)]
    if not known:
        return MISSING * len(values)
    low, high = min(known), max(known)
    return "".join(
        MISSING if v is None or not math.isfinite(v) else _block(v, low, high) for v in values
    )


def _block(value: float, low: float, high: float) -> str:
    if high == low:
        return _FLAT
    return BLOCKS[round((value - low) / (high - low) * (len(BLOCKS) - 1))]
