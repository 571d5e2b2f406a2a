"""Durations as people type them: ``90s``, ``15m``, ``1h``, ``2d``.

    parse_duration("1h")        # 3600
    format_duration(5400)       # "90m"

One whole number and one unit, nothing else: ``1h30m``, ``1.5h`` or a bare ``60`` are refused
with a message naming the field, so a typo never becomes a window nobody meant.
"""

from __future__ import annotations

import re

from steward.errors import InvalidInput

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_DURATION = re.compile(r"(\d{1,9})([smhd])")


def parse_duration(
    text: str, *, field: str = "window", minimum: int = 1, maximum: int | None = None
) -> int:
    """``text`` as whole seconds, within ``[minimum, maximum]``; InvalidInput naming ``field``
    otherwise."""
    seconds, problem = _seconds(text, minimum, maximum)
    if problem is not None:
        raise InvalidInput(f"The {field!r} {problem}.", field=field)
    return seconds


def duration_problem(text: str, *, minimum: int = 1, maximum: int | None = None) -> str | None:
    """What is wrong with ``text`` as a duration ("must be ..."), or None when it is fine."""
    return _seconds(text, minimum, maximum)[1]


def _seconds(text: str, minimum: int, maximum: int | None) -> tuple[int, str | None]:
    found = _DURATION.fullmatch(text.strip().lower())
    if found is None:
        return 0, (
            "must be a whole number and a unit (s, m, h or d), e.g. 90s, 15m, 1h or 2d; "
            f"got {text!r}"
        )
    seconds = int(found[1]) * UNIT_SECONDS[found[2]]
    if seconds < minimum or (maximum is not None and seconds > maximum):
        bounds = f"at least {format_duration(minimum)}"
        if maximum is not None:
            bounds = f"between {format_duration(minimum)} and {format_duration(maximum)}"
        return seconds, f"must be {bounds}; got {text!r}"
    return seconds, None


def format_duration(seconds: float) -> str:
    """The largest unit that divides ``seconds`` exactly: 3600 -> "1h", 5400 -> "90m"."""
    whole = int(seconds)
    if whole != seconds or whole <= 0:
        return f"{seconds:g}s"
    for unit in ("d", "h", "m"):
        if whole % UNIT_SECONDS[unit] == 0:
            return f"{whole // UNIT_SECONDS[unit]}{unit}"
    return f"{whole}s"
